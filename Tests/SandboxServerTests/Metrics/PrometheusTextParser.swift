import Foundation

/// A strict reader of the Prometheus text format 0.0.4, for tests: it rejects what Prometheus
/// would reject (bad names, bad escapes, samples before their `# TYPE`, duplicate series) and
/// checks what a histogram promises (cumulative buckets ending in `+Inf` equal to `_count`).
struct PrometheusText {
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
        init(_ line: Int, _ message: String) { description = "line \(line): \(message)" }
    }

    /// Family name to type.
    private(set) var types: [String: String] = [:]
    private(set) var helps: [String: String] = [:]
    private(set) var samples: [Sample] = []

    init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else { throw ParseError(0, "the exposition must end with a line feed") }
        var seen: Set<String> = []
        var closedFamilies: Set<String> = []
        var currentFamily: String?
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let number = offset + 1
            if line.isEmpty { throw ParseError(number, "empty line") }
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                guard Self.isMetricName(name) else { throw ParseError(number, "bad metric name \(name)") }
                if currentFamily != name {
                    if let currentFamily { closedFamilies.insert(currentFamily) }
                    guard !closedFamilies.contains(name) else { throw ParseError(number, "family \(name) is split") }
                    currentFamily = name
                }
                let rest = parts.count > 1 ? String(parts[1]) : ""
                if line.hasPrefix("# HELP ") {
                    guard helps[name] == nil else { throw ParseError(number, "second HELP for \(name)") }
                    helps[name] = try Self.unescape(rest, quotes: false, line: number)
                } else {
                    guard types[name] == nil else { throw ParseError(number, "second TYPE for \(name)") }
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(rest) else {
                        throw ParseError(number, "unknown type \(rest)")
                    }
                    types[name] = rest
                }
                continue
            }
            if line.hasPrefix("#") { continue }
            let sample = try Self.parseSample(line, line: number)
            let family = try family(of: sample.name, line: number)
            guard family == currentFamily else { throw ParseError(number, "\(sample.name) is not in its family's block") }
            let identity = sample.name + "|" + sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            guard seen.insert(identity).inserted else { throw ParseError(number, "duplicate series \(identity)") }
            samples.append(sample)
        }
        try checkHistograms()
    }

    /// The family a sample belongs to; it must have a `# TYPE` line before it.
    private func family(of name: String, line: Int) throws -> String {
        if types[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        throw ParseError(line, "sample \(name) has no TYPE")
    }

    private func checkHistograms() throws {
        for (name, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == name + "_bucket" }
            let groups = Dictionary(grouping: buckets) { $0.labels.filter { $0.key != "le" } }
            for (labels, group) in groups {
                let ordered = try group.map { sample -> (Double, Double) in
                    guard let le = sample.labels["le"], let bound = le == "+Inf" ? .infinity : Double(le) else {
                        throw ParseError(0, "\(name) bucket without a numeric le")
                    }
                    return (bound, sample.value)
                }.sorted { $0.0 < $1.0 }
                guard ordered.last?.0 == .infinity else { throw ParseError(0, "\(name)\(labels) has no +Inf bucket") }
                for (lower, upper) in zip(ordered, ordered.dropFirst()) where upper.1 < lower.1 {
                    throw ParseError(0, "\(name)\(labels) buckets are not cumulative")
                }
                guard let count = value(name + "_count", labels), count == ordered.last?.1 else {
                    throw ParseError(0, "\(name)\(labels): _count differs from the +Inf bucket")
                }
                guard value(name + "_sum", labels) != nil else { throw ParseError(0, "\(name)\(labels) has no _sum") }
            }
        }
    }

    /// The value of the series with exactly these labels.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// Every series of `name` whose labels include `matching`.
    func series(_ name: String, matching: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in sample.name == name && matching.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// The sum over the series of `name` whose labels include `matching` (0 when none).
    func sum(_ name: String, matching: [String: String] = [:]) -> Double {
        series(name, matching: matching).reduce(0) { $0 + $1.value }
    }

    static func isMetricName(_ name: String) -> Bool {
        name.wholeMatch(of: /[a-zA-Z_:][a-zA-Z0-9_:]*/) != nil
    }

    static func parseSample(_ line: Substring, line number: Int) throws -> Sample {
        var rest = line[...]
        let name = String(rest.prefix { $0 != "{" && $0 != " " })
        guard isMetricName(name) else { throw ParseError(number, "bad sample name in \(line)") }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let labelName = String(rest.prefix { $0 != "=" })
                guard labelName.wholeMatch(of: /[a-zA-Z_][a-zA-Z0-9_]*/) != nil else { throw ParseError(number, "bad label name \(labelName)") }
                rest = rest.dropFirst(labelName.count)
                guard rest.hasPrefix("=\"") else { throw ParseError(number, "label \(labelName) has no quoted value") }
                rest = rest.dropFirst(2)
                var raw = ""
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped { raw.append("\\"); raw.append(character); escaped = false; continue }
                    if character == "\\" { escaped = true; continue }
                    if character == "\"" { break }
                    raw.append(character)
                }
                guard labels[labelName] == nil else { throw ParseError(number, "label \(labelName) twice") }
                labels[labelName] = try unescape(raw, quotes: true, line: number)
                if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" {
                    throw ParseError(number, "expected , or } after label \(labelName)")
                }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw ParseError(number, "no space before the value in \(line)") }
        let fields = rest.dropFirst().split(separator: " ")
        guard fields.count == 1 || fields.count == 2 else { throw ParseError(number, "value and at most a timestamp expected") }
        let text = String(fields[0])
        let value: Double? = switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
        guard let value else { throw ParseError(number, "bad value \(text)") }
        return Sample(name: name, labels: labels, value: value)
    }

    /// Undoes `\\`, `\n` and (in label values) `\"`; any other escape is an error.
    static func unescape(_ text: String, quotes: Bool, line: Int) throws -> String {
        var result = ""
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            guard character == "\\" else {
                if quotes, character == "\n" { throw ParseError(line, "raw line feed in a label value") }
                result.append(character)
                continue
            }
            switch iterator.next() {
            case "\\": result.append("\\")
            case "n": result.append("\n")
            case "\"" where quotes: result.append("\"")
            case let other:
                // HELP text keeps unknown escapes as they are in 0.0.4; label values may not have them.
                guard !quotes else { throw ParseError(line, "bad escape \\\(other.map(String.init) ?? "")") }
                result.append("\\")
                if let other { result.append(other) }
            }
        }
        return result
    }
}
