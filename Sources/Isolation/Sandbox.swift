import CIsolation
