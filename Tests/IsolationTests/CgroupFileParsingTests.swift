@testable import Isolation
import Testing

/// The parsers of cgroup interface files (they run on every sandbox run).
@Suite struct CgroupFileParsingTests {
    @Test func keyedValuesAreFoundByWholeKey() {
        // memory.oom_control of cgroup v1, as the kernel prints it.
        let oomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
        #expect(cgroupKeyedValue(oomControl, key: "oom_kill") == 3, "not oom_kill_disable, which starts the same")
        #expect(cgroupKeyedValue(oomControl, key: "under_oom") == 0)
        #expect(cgroupKeyedValue(oomControl, key: "oom") == nil, "a prefix of a key is not the key")
        #expect(cgroupKeyedValue(oomControl, key: "missing") == nil)
        // memory.events of cgroup v2; no trailing newline; big counters.
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 9223372036854775807"
        #expect(cgroupKeyedValue(events, key: "oom_kill") == Int.max)
        #expect(cgroupKeyedValue(events, key: "max") == 12)
        #expect(cgroupKeyedValue("usage_usec 42 \r\n", key: "usage_usec") == 42, "surrounding whitespace is trimmed")
        #expect(cgroupKeyedValue("oom_kill many\n", key: "oom_kill") == nil, "not a number")
        #expect(cgroupKeyedValue("oom_kill 1 2\n", key: "oom_kill") == nil, "two values are not one")
        #expect(cgroupKeyedValue("", key: "oom_kill") == nil)
    }

    @Test func integersReadMaxAndEmptyAsNil() {
        #expect(cgroupInteger("1048576\n") == 1_048_576)
        #expect(cgroupInteger("max\n") == nil)
        #expect(cgroupInteger("") == nil)
    }
}
