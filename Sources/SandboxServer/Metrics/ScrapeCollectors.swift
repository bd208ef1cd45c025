import Foundation
import Glibc
import JobStore

/// Families read when `/metrics` is scraped: states, not events.
enum ScrapeCollectors {
    /// Jobs by state (the queue depth among them), jobs running in this process, and the store's
    /// files. A store that does not answer leaves its families out of this scrape.
    static func store(_ store: any JobStore, databasePath: String, running: RunningJobs, slots: Int) -> [MetricFamily] {
        var families: [MetricFamily] = []
        if let counts = try? store.countsByState() {
            families.append(MetricFamily(
                name: "sandbox_server_jobs", help: "Jobs in the store, by state.", type: .gauge,
                series: JobStore::JobState.allCases.map { MetricSeries([MetricLabel("state", $0.rawValue)], Double(counts[$0])) }))
            families.append(MetricFamily(
                name: "sandbox_server_queue_depth", help: "Jobs waiting for a runner.", type: .gauge,
                series: [MetricSeries([], Double(counts.queued))]))
        }
        families.append(MetricFamily(
            name: "sandbox_server_running_jobs", help: "Jobs this process's runners are running.", type: .gauge,
            series: [MetricSeries([], Double(running.all.count))]))
        families.append(MetricFamily(
            name: "sandbox_server_sandbox_slots", help: "Sandbox slots (runner threads): jobs that can run at once.", type: .gauge,
            series: [MetricSeries([], Double(slots))]))
        var files: [MetricSeries] = []
        for (file, path) in [("database", databasePath), ("wal", databasePath + "-wal")] {
            if let size = fileSize(path) { files.append(MetricSeries([MetricLabel("file", file)], Double(size))) }
        }
        families.append(MetricFamily(
            name: "sandbox_server_store_size_bytes", help: "Size of the job store's files on disk: the database and its write-ahead log.",
            type: .gauge, series: files))
        if let stats = try? store.storageStats() {
            families.append(MetricFamily(
                name: "sandbox_server_store_free_bytes", help: "Bytes of free pages in the database file, reusable without growing it.",
                type: .gauge, series: [MetricSeries([], Double(stats.freeBytes))]))
        }
        return families
    }

    /// `sandbox_server_build_info` and the process facts Prometheus clients conventionally export
    /// (here under the service's prefix): start time, CPU time, resident memory, descriptors, threads.
    static func process(version: String, startTime: Date) -> [MetricFamily] {
        var families = [
            MetricFamily(name: "sandbox_server_build_info", help: "Always 1; the labels say which version is running.", type: .gauge,
                         series: [MetricSeries([MetricLabel("version", version)], 1)]),
            MetricFamily(name: "sandbox_server_process_start_time_seconds", help: "When the service started, in seconds since the Unix epoch.",
                         type: .gauge, series: [MetricSeries([], startTime.timeIntervalSince1970.rounded(.down))]),
        ]
        let status = ProcessStatus.read()
        if let resident = status.residentBytes {
            families.append(MetricFamily(name: "sandbox_server_process_resident_memory_bytes", help: "Resident set size of the process.",
                                         type: .gauge, series: [MetricSeries([], Double(resident))]))
        }
        if let threads = status.threads {
            families.append(MetricFamily(name: "sandbox_server_process_threads", help: "Threads of the process.",
                                         type: .gauge, series: [MetricSeries([], Double(threads))]))
        }
        if let descriptors = openDescriptorCount() {
            families.append(MetricFamily(name: "sandbox_server_process_open_fds", help: "Open file descriptors of the process.",
                                         type: .gauge, series: [MetricSeries([], Double(descriptors))]))
        }
        var usage = rusage()
        if getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 {
            let seconds = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
            families.append(MetricFamily(name: "sandbox_server_process_cpu_seconds_total", help: "User and system CPU time of the process (sandboxed programs not included).",
                                         type: .counter, series: [MetricSeries([], seconds)]))
        }
        return families
    }

    static func fileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Entries of /proc/self/fd, less the one the listing itself holds open.
    static func openDescriptorCount() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
    }

    /// `VmRSS` and `Threads` of /proc/self/status.
    struct ProcessStatus {
        var residentBytes: Int?
        var threads: Int?

        static func read() -> ProcessStatus {
            var status = ProcessStatus()
            guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return status }
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard parts.count >= 2 else { continue }
                switch parts[0] {
                case "VmRSS:": status.residentBytes = Int(parts[1]).map { $0 * 1024 }  // reported in kB
                case "Threads:": status.threads = Int(parts[1])
                default: continue
                }
            }
            return status
        }
    }
}
