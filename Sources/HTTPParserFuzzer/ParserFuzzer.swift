import Glibc
import HTTPCore

// libFuzzer target for HTTPRequestParser (build and run: scripts/fuzz-http.sh).
//
// Each input is parsed twice: in one piece, and split into pieces at offsets derived from the
// input. Besides memory errors (the fuzz build also uses AddressSanitizer) it checks that the
// incremental parser gives the same requests and the same error for any split, that no body
// exceeds the limit, and that a failed parser stays failed. Small limits make the 414/431/413
// paths reachable.

private let limits: HTTPParserLimits = {
    var limits = HTTPParserLimits()
    limits.maxRequestLineLength = 200
    limits.maxHeaderSectionLength = 600
    limits.maxHeaderFields = 12
    limits.maxBodySize = 1000
    return limits
}()

/// Everything observable about a parse, for comparing the two runs.
private func summarize(_ bytes: [UInt8], pieces: [Int]) -> [String] {
    var parser = HTTPRequestParser(limits: limits)
    var summary: [String] = []
    var offset = 0
    var failed = false
    func drain() {
        while true {
            switch parser.next() {
            case .needMoreData:
                return
            case .expectsContinue:
                continue  // depends on where the input was split: not compared
            case .request(let request):
                precondition(!failed, "a request after a failure")
                precondition(request.body.count <= limits.maxBodySize, "body over the limit")
                precondition(request.target.utf8.first == UInt8(ascii: "/") || request.target == "*")
                let headers = request.headers.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
                summary.append("\(request.method) \(request.target) \(request.version) \(headers) \(request.body) \(request.keepAlive)")
            case .failure(let error):
                if failed { return }
                failed = true
                summary.append("failure \(error.status.code)")
                if case .failure(let again) = parser.next() {
                    precondition(again == error, "a failed parser changed its error")
                } else {
                    preconditionFailure("a failed parser recovered")
                }
                return
            }
        }
    }
    for length in pieces + [bytes.count] {
        let end = min(bytes.count, offset + length)
        if end > offset {
            parser.append(Array(bytes[offset..<end]))
            offset = end
        }
        drain()
        if failed || offset == bytes.count { break }
    }
    return summary
}

func fuzzOne(_ bytes: [UInt8]) {
    let whole = summarize(bytes, pieces: [])
    // Piece lengths from the input itself: 1…8 bytes, then the rest.
    var pieces: [Int] = []
    var seed = bytes.count
    for byte in bytes.prefix(64) {
        seed = (seed &* 31 &+ Int(byte)) & 0xFFFF
        pieces.append(1 + seed % 8)
    }
    let split = summarize(bytes, pieces: pieces)
    precondition(whole == split, "split parse differs:\n\(whole)\nvs\n\(split)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if HTTP_FUZZING
/// libFuzzer's driver (in libclang_rt.fuzzer, linked by -sanitize=fuzzer).
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links executables with `main` aliased to `<module>_main`; in fuzz builds that entry
/// point hands control to libFuzzer.
@_cdecl("HTTPParserFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzerTestOneInput(data, size) }
}
#else
/// Without libFuzzer (ordinary builds): replays the files named on the command line.
@main
struct ParserFuzzerReplay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let file = fopen(path, "rb") else {
                print("cannot open \(path)")
                exit(2)
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = fread(&chunk, 1, chunk.count, file)
                if count <= 0 { break }
                bytes.append(contentsOf: chunk[0..<count])
            }
            fclose(file)
            fuzzOne(bytes)
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs")
    }
}
#endif
