// HTTPCore: HTTP/1.1 server on POSIX sockets. Implementation lands with issue 4.
