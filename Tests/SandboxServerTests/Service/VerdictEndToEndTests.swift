import Foundation
import Testing

@testable import SandboxServer

/// One program per verdict and language, submitted as a batch over HTTP and run in real sandboxes.
@Suite("every verdict in every language, end to end", .enabled(if: runningAsRoot, "needs root"), .serialized,
       .timeLimit(.minutes(5)))
struct VerdictEndToEndTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let language: String
        /// verdict name → source; every program reads "2 3" and should print "5".
        let programs: [(verdict: String, source: String)]
        var testDescription: String { language }
    }

    static let cases: [Case] = [
        Case(language: "c", programs: [
            ("accepted", "#include <stdio.h>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a+b);return 0;}"),
            ("wrong_answer", "#include <stdio.h>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a-b);return 0;}"),
            ("runtime_error", "int main(){int *p=0; *p=1; return 0;}"),
            ("time_limit_exceeded", "int main(){volatile unsigned long x=0; for(;;) x++;}"),
            ("memory_limit_exceeded", "#include <stdlib.h>\n#include <string.h>\nint main(){for(int i=0;i<64;i++){char*p=malloc(16<<20);memset(p,1,16<<20);}return 0;}"),
            ("output_limit_exceeded", "#include <stdio.h>\nint main(){for(;;) puts(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\");}"),
            ("compile_error", "int main( { return 0; }"),
        ]),
        Case(language: "cpp", programs: [
            ("accepted", "#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}"),
            ("wrong_answer", "#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a*b<<std::endl;}"),
            ("runtime_error", "#include <stdexcept>\nint main(){throw std::runtime_error(\"boom\");}"),
            ("time_limit_exceeded", "int main(){volatile unsigned long x=0; for(;;) x++;}"),
            ("memory_limit_exceeded", "#include <vector>\nint main(){std::vector<std::vector<char>> v; for(int i=0;i<64;i++) v.emplace_back(16<<20, 1); return v.size()==0;}"),
            ("output_limit_exceeded", "#include <cstdio>\nint main(){for(;;) std::puts(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\");}"),
            ("compile_error", "int main() { return undefined_name; }"),
        ]),
        Case(language: "python3", programs: [
            ("accepted", "a, b = map(int, input().split())\nprint(a + b)"),
            ("wrong_answer", "print(4)"),
            ("runtime_error", "raise SystemExit(3)"),
            ("time_limit_exceeded", "while True:\n    pass"),
            ("memory_limit_exceeded", "blocks = []\nwhile True:\n    blocks.append(b'x' * (16 << 20))"),
            ("output_limit_exceeded", "while True:\n    print('x' * 100)"),
        ]),
        Case(language: "java", programs: [
            ("accepted", "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { Scanner s = new Scanner(System.in); System.out.println(s.nextInt() + s.nextInt()); } }"),
            ("wrong_answer", "public class Main { public static void main(String[] a) { System.out.println(6); } }"),
            ("runtime_error", "public class Main { public static void main(String[] a) { throw new IllegalStateException(\"boom\"); } }"),
            ("time_limit_exceeded", "public class Main { public static void main(String[] a) { long x = 0; while (true) { x++; if (x == -1) break; } System.out.println(x); } }"),
            // Native memory (not the Java heap, which ends in an OutOfMemoryError) until the cgroup's limit.
            ("memory_limit_exceeded", "import java.lang.reflect.Field;\npublic class Main { public static void main(String[] a) throws Exception { Field f = sun.misc.Unsafe.class.getDeclaredField(\"theUnsafe\"); f.setAccessible(true); sun.misc.Unsafe u = (sun.misc.Unsafe) f.get(null); for (int i = 0; i < 128; i++) { long p = u.allocateMemory(16L << 20); u.setMemory(p, 16L << 20, (byte) 1); } } }"),
            ("output_limit_exceeded", "public class Main { public static void main(String[] a) { while (true) System.out.println(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"); } }"),
            ("compile_error", "public class Main { public static void main(String[] a) { int x = \"no\"; } }"),
        ]),
        Case(language: "javascript", programs: [
            ("accepted", "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(a + b);"),
            ("wrong_answer", "console.log(7);"),
            ("runtime_error", "throw new Error('boom');"),
            ("time_limit_exceeded", "for (;;) {}"),
            ("memory_limit_exceeded", "const blocks = []; for (;;) blocks.push(Buffer.alloc(16 << 20, 1));"),
            ("output_limit_exceeded", "for (;;) process.stdout.write('x'.repeat(100) + '\\n');"),
        ]),
        // PHP and Free Pascal reach their binaries through /etc/alternatives (make test installs
        // both); the sandbox's copied alternatives links must resolve for these to run at all.
        Case(language: "php", programs: [
            ("accepted", "<?php\n[$a, $b] = array_map('intval', explode(' ', trim(fgets(STDIN))));\necho $a + $b, \"\\n\";"),
            ("wrong_answer", "<?php\necho \"6\\n\";"),
            ("runtime_error", "<?php\nexit(3);"),
        ]),
        Case(language: "pascal", programs: [
            ("accepted", "program sum;\nvar a, b: integer;\nbegin\n  readln(a, b);\n  writeln(a + b);\nend."),
            ("wrong_answer", "program sum;\nbegin\n  writeln(4);\nend."),
            ("runtime_error", "program fail;\nbegin\n  halt(3);\nend."),
            ("compile_error", "program broken;\nbegin\n  writeln(\nend."),
        ]),
        Case(language: "bash", programs: [
            ("accepted", "read a b\necho $((a + b))"),
            ("wrong_answer", "echo 8"),
            ("runtime_error", "exit 3"),
            ("time_limit_exceeded", "while :; do :; done"),
            ("memory_limit_exceeded", "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}"),
            ("output_limit_exceeded", "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"),
        ]),
    ]

    @Test(arguments: cases)
    func verdicts(_ testCase: Case) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        let jobs: [[String: Any]] = testCase.programs.map { program in
            var limits: [String: Any] = ["cpu_time_ms": 2_000, "wall_time_ms": 20_000, "output_bytes": 4_096]
            // The smallest memory each runtime may have (languages raise lower requests to it).
            limits["memory_bytes"] = ["java": 268_435_456, "javascript": 134_217_728, "cpp": 67_108_864][testCase.language] ?? 67_108_864
            if program.verdict == "time_limit_exceeded" { limits["cpu_time_ms"] = 1_000 }
            return ["language": testCase.language, "source": program.source, "limits": limits, "metadata": program.verdict,
                    "tests": [["stdin": "2 3\n", "expected_output": "5\n"]]]
        }
        let batch = try await api.post("/v1/jobs/batch", jsonText(["jobs": jobs]))
        #expect(batch.status == 201, "\(batch)")
        let items = try #require(batch.json["jobs"] as? [[String: Any]])
        #expect(items.count == testCase.programs.count)
        for (item, program) in zip(items, testCase.programs) {
            let id = try #require((item["job"] as? [String: Any])?["id"] as? String, "batch item refused: \(item)")
            let job = try await api.get("/v1/jobs/\(id)?wait=60")
            #expect(job.json["state"] as? String == "finished", "\(testCase.language) \(program.verdict): \(job)")
            #expect(job.json["verdict"] as? String == program.verdict, "\(testCase.language) \(program.verdict): \(job)")
            #expect(job.json["metadata"] as? String == program.verdict)
            if program.verdict == "accepted" {
                let tests = try #require(job.json["tests"] as? [[String: Any]])
                #expect(tests.first?["stdout"] as? String == "5\n")
                #expect(job.json["score"] as? Int == 1)
            }
            if program.verdict == "compile_error" {
                let compile = try #require(job.json["compile"] as? [String: Any])
                #expect(!(compile["output"] as? String ?? "").isEmpty, "the compiler's complaint is reported")
                #expect((job.json["tests"] as? [[String: Any]])?.first?["verdict"] as? String == "skipped")
            }
        }
    }
}
