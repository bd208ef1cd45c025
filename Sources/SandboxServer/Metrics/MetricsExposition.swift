/// The Prometheus text exposition format, version 0.0.4: what `GET /metrics` answers.
///
/// Families are written sorted by name and series sorted by their label values, so two scrapes of
/// the same state are byte-identical (diffable, and cheap for Prometheus to compare). Counter
/// names carry their `_total` suffix here; the `# TYPE` line names the family as written.
enum MetricsExposition {
    /// `Content-Type` of the exposition.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders every family, sorted by name.
    static func render(_ families: [MetricFamily]) -> String {
        var output = ""
        output.reserveCapacity(16 * 1024)
        for family in families.sorted(by: { $0.name < $1.name }) { render(family, into: &output) }
        return output
    }

    /// Appends one family: `# HELP`, `# TYPE`, then its series sorted by label values.
    static func render(_ family: MetricFamily, into output: inout String) {
        output += "# HELP \(family.name) \(escapeHelp(family.help))\n"
        output += "# TYPE \(family.name) \(family.type.rawValue)\n"
        for series in family.series.sorted(by: { $0.labels.lexicographicallyPrecedes($1.labels, by: Self.labelOrder) }) {
            switch series.value {
            case .number(let value):
                output += "\(family.name)\(labelText(series.labels)) \(format(value))\n"
            case .histogram(let histogram):
                var cumulative: UInt64 = 0
                for (bound, count) in zip(histogram.upperBounds, histogram.bucketCounts) {
                    cumulative += count
                    output += "\(family.name)_bucket\(labelText(series.labels + [MetricLabel("le", format(bound))])) \(cumulative)\n"
                }
                output += "\(family.name)_bucket\(labelText(series.labels + [MetricLabel("le", "+Inf")])) \(histogram.count)\n"
                output += "\(family.name)_sum\(labelText(series.labels)) \(format(histogram.sum))\n"
                output += "\(family.name)_count\(labelText(series.labels)) \(histogram.count)\n"
            }
        }
    }

    private static func labelOrder(_ lhs: MetricLabel, _ rhs: MetricLabel) -> Bool {
        lhs.name != rhs.name ? lhs.name < rhs.name : lhs.value < rhs.value
    }

    /// `{name="value",...}`, or nothing without labels.
    static func labelText(_ labels: [MetricLabel]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }.joined(separator: ",") + "}"
    }

    /// A label value with `\`, `"` and line feeds escaped.
    static func escapeLabelValue(_ value: String) -> String { escape(value, quotes: true) }

    /// Help text with `\` and line feeds escaped (quotes stay as they are in 0.0.4).
    static func escapeHelp(_ text: String) -> String { escape(text, quotes: false) }

    /// The two escapings of the format, which differ only in quotes; text with nothing to
    /// escape (nearly every label value) is returned as it is.
    private static func escape(_ text: String, quotes: Bool) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\n") || (quotes && $0 == UInt8(ascii: "\"")) }) else {
            return text
        }
        var escaped = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\"" where quotes: escaped += "\\\""
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// A sample value as Prometheus parses it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// One metric family: a name, its help and type, and its series.
struct MetricFamily: Sendable, Equatable {
    /// The exposition type of a family.
    enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    var name: String
    var help: String
    var type: Kind
    var series: [MetricSeries]
}

/// One label of a series.
struct MetricLabel: Sendable, Hashable {
    var name: String
    var value: String

    init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One series of a family: its labels and its value.
struct MetricSeries: Sendable, Equatable {
    enum Value: Sendable, Equatable {
        case number(Double)
        case histogram(HistogramSnapshot)
    }

    var labels: [MetricLabel]
    var value: Value

    init(_ labels: [MetricLabel] = [], _ value: Double) {
        self.labels = labels
        self.value = .number(value)
    }

    init(_ labels: [MetricLabel], histogram: HistogramSnapshot) {
        self.labels = labels
        self.value = .histogram(histogram)
    }
}

/// A histogram's state at a scrape: per-bucket (not cumulative) counts, the last bucket being
/// everything above the largest bound; the exposition makes them cumulative.
struct HistogramSnapshot: Sendable, Equatable {
    /// Upper bounds (inclusive), ascending, without `+Inf`.
    var upperBounds: [Double]
    /// `upperBounds.count + 1` counts; the last one is observations above every bound.
    var bucketCounts: [UInt64]
    var sum: Double
    var count: UInt64 { bucketCounts.reduce(0, +) }
}
