"""Drives a live sandbox-server through the official Judge0 Python SDK (`judge0`) and the
third-party async client (`judge0-client`), as existing Judge0 users would.

Usage: python sdk_check.py http://127.0.0.1:PORT
Prints one line per check and a closing line "N passed, M failed"; exits 1 on any failure.
"""
import asyncio
import sys
import traceback

import judge0
from judge0 import LanguageAlias, TestCase

ENDPOINT = sys.argv[1]
results = {"passed": 0, "failed": 0}


def check(name, function):
    try:
        function()
    except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
        results["failed"] += 1
        print(f"FAIL {name}: {error!r}")
        traceback.print_exc(limit=3)
    else:
        results["passed"] += 1
        print(f"ok   {name}")


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


client = None


def construct_client():
    global client
    client = judge0.Client(ENDPOINT)
    expect(client.config.max_submission_batch_size >= 1, "config_info read")
    expect(len(client.languages) >= 6, f"languages listed: {client.languages}")


check("Client construction (GET /languages, /config_info)", construct_client)
if client is None:
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1)

HELLO = {
    "C": (LanguageAlias.C, '#include <stdio.h>\nint main(void){char s[64]; if(scanf("%63s", s)==1) printf("hello, %s\\n", s); return 0;}\n'),
    "C++": (LanguageAlias.CPP, '#include <iostream>\n#include <string>\nint main(){std::string s; std::cin >> s; std::cout << "hello, " << s << "\\n";}\n'),
    "Java": (LanguageAlias.JAVA, 'import java.util.Scanner;\npublic class Main { public static void main(String[] a) { '
             'Scanner in = new Scanner(System.in); System.out.println("hello, " + in.next()); } }\n'),
    "JavaScript": (LanguageAlias.JAVASCRIPT, 'const s = require("fs").readFileSync(0, "utf8").trim();\nconsole.log("hello, " + s);\n'),
    "Python": (LanguageAlias.PYTHON, 'print("hello, " + input())\n'),
    "Bash": (LanguageAlias.BASH, 'read s\necho "hello, $s"\n'),
}


def run_language(name, alias, source):
    def body():
        result = judge0.run(client=client, source_code=source, language=alias, stdin="judge0")
        expect(result.status == judge0.Status.ACCEPTED, f"status {result.status} compile={result.compile_output!r} stderr={result.stderr!r}")
        expect(result.stdout == "hello, judge0\n", f"stdout {result.stdout!r}")
        expect(result.time is not None and result.memory is not None, "time and memory reported")
    check(f"judge0.run {name} with stdin", body)


for language_name, (language_alias, program) in HELLO.items():
    run_language(language_name, language_alias, program)


def accepted_with_expected_output():
    result = judge0.run(client=client, source_code='print("42")  \n', language=LanguageAlias.PYTHON,
                        expected_output="42\n\n")
    expect(result.status == judge0.Status.ACCEPTED, f"status {result.status}")


def wrong_answer():
    result = judge0.run(client=client, source_code='print("41")\n', language=LanguageAlias.PYTHON, expected_output="42")
    expect(result.status == judge0.Status.WRONG_ANSWER, f"status {result.status}")
    expect(result.stdout == "41\n", f"stdout {result.stdout!r}")


def compile_error():
    result = judge0.run(client=client, source_code="int main( { return 0; }\n", language=LanguageAlias.C)
    expect(result.status == judge0.Status.COMPILATION_ERROR, f"status {result.status}")
    expect(result.compile_output and "error" in result.compile_output, f"compile_output {result.compile_output!r}")


def time_limit():
    result = judge0.run(client=client, source_code="while True:\n    pass\n", language=LanguageAlias.PYTHON,
                        cpu_time_limit=1, wall_time_limit=3)
    expect(result.status == judge0.Status.TIME_LIMIT_EXCEEDED, f"status {result.status}")


def runtime_error_nzec():
    result = judge0.run(client=client, source_code="import sys\nsys.exit(3)\n", language=LanguageAlias.PYTHON)
    expect(result.status == judge0.Status.RUNTIME_ERROR_NZEC, f"status {result.status}")
    expect(result.exit_code == 3, f"exit_code {result.exit_code}")


def runtime_error_sigsegv():
    result = judge0.run(client=client, source_code="int main(void){ volatile int *p = 0; *p = 1; return 0; }\n",
                        language=LanguageAlias.C)
    expect(result.status == judge0.Status.RUNTIME_ERROR_SIGSEGV, f"status {result.status}, message {result.message!r}")


def test_cases_batch():
    results = judge0.run(client=client, source_code="a, b = map(int, input().split())\nprint(a + b)\n",
                         language=LanguageAlias.PYTHON,
                         test_cases=[("1 2", "3"), ("2 2", "4"), TestCase(input="5 5", expected_output="11")])
    statuses = [r.status for r in results]
    expect(statuses == [judge0.Status.ACCEPTED, judge0.Status.ACCEPTED, judge0.Status.WRONG_ANSWER], f"statuses {statuses}")


def language_by_id():
    result = judge0.run(client=client, source_code='print("by id")\n', language=71)
    expect(result.stdout == "by id\n", f"stdout {result.stdout!r}")


check("expected output: Accepted (trailing whitespace ignored)", accepted_with_expected_output)
check("expected output: Wrong Answer", wrong_answer)
check("compile error (C)", compile_error)
check("time limit exceeded", time_limit)
check("runtime error NZEC with exit code", runtime_error_nzec)
check("segfault is SIGSEGV (7), not NZEC", runtime_error_sigsegv)
check("test_cases through the batch endpoints", test_cases_batch)
check("language given by Judge0 id", language_by_id)



def additional_files_for_any_language():
    from judge0 import File, Filesystem  # noqa: PLC0415

    header = Filesystem(content=[File(name="include/answer.h", content="#define ANSWER 42\n")])
    compiled = judge0.run(client=client, language=LanguageAlias.C, additional_files=header,
                          source_code='#include <stdio.h>\n#include "include/answer.h"\nint main(void){ printf("%d\\n", ANSWER); return 0; }\n')
    expect(compiled.status == judge0.Status.ACCEPTED, f"C status {compiled.status} compile={compiled.compile_output!r}")
    expect(compiled.stdout == "42\n", f"C stdout {compiled.stdout!r}")
    data = Filesystem(content=[File(name="data/words.txt", content="sandbox server\n")])
    interpreted = judge0.run(client=client, language=LanguageAlias.PYTHON, additional_files=data,
                             source_code='print(open("data/words.txt").read().split()[1])\n')
    expect(interpreted.status == judge0.Status.ACCEPTED, f"Python status {interpreted.status} compile={interpreted.compile_output!r}")
    expect(interpreted.stdout == "server\n", f"Python stdout {interpreted.stdout!r}")


check("judge0.run with additional_files next to a C and a Python source", additional_files_for_any_language)


async def finished_submission(client, token):
    """Polls every 100 ms, as the SDKs do, until the submission leaves In Queue (1) and Processing (2), for 30 s at most."""
    detail = None
    for _ in range(300):
        detail = await client.get_submission(token)
        if detail.status.id not in (1, 2):
            break
        await asyncio.sleep(0.1)
    return detail


def judge0_client_roundtrip():
    from judge0_client import Judge0Client, SingleFileSubmission  # noqa: PLC0415 - the second client

    async def main():
        async with Judge0Client(base_url=ENDPOINT) as other:
            about = await other.get_about()
            expect(about.version == "1.13.1", f"about {about}")
            workers = await other.get_workers()
            expect(len(workers) == 1 and workers[0].failed == 0, f"workers {workers}")
            expect(await other.get_isolate(), "isolate text")
            expect(await other.get_license(), "license text")
            created = await other.create_submission(
                SingleFileSubmission(source_code='import sys\nprint(sys.stdin.read().upper(), end="")\n',
                                     language_id=71, stdin="über\n"))
            detail = await finished_submission(other, created.token)
            expect(detail.status.id == 3, f"status {detail.status}")
            expect(detail.stdout == "ÜBER\n", f"stdout {detail.stdout!r}")

    asyncio.run(main())


check("judge0-client: about, workers, isolate, license, submit and poll (base64, UTF-8)", judge0_client_roundtrip)


def judge0_client_multi_file():
    from judge0_client import Judge0Client, MultiFileSubmission  # noqa: PLC0415

    async def main():
        async with Judge0Client(base_url=ENDPOINT) as other:
            created = await other.create_submission(MultiFileSubmission(
                additional_files={
                    "compile": "gcc -O2 -o program src/main.c src/greet.c\n",
                    "run": "./program \"$@\"\n",
                    "src/main.c": '#include <stdio.h>\nvoid greet(const char *);\nint main(void){ char s[32]; scanf("%31s", s); greet(s); return 0; }\n',
                    "src/greet.c": '#include <stdio.h>\nvoid greet(const char *s){ printf("multi, %s\\n", s); }\n',
                },
                stdin="file\n", expected_output="multi, file\n"))
            detail = await finished_submission(other, created.token)
            expect(detail.status.id == 3, f"status {detail.status} compile_output={detail.compile_output!r} stderr={detail.stderr!r}")
            expect(detail.stdout == "multi, file\n", f"stdout {detail.stdout!r}")

    asyncio.run(main())


check("judge0-client: Multi-file program (89) with compile and run scripts", judge0_client_multi_file)

print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
