#!/usr/bin/env python3
"""Checks sandbox-server's Jobe-compatible API (/jobe/index.php/restapi/) against the rules of
docs/jobe.md and the Jobe reference: every language's hello world, stdin, compile and runtime
errors, time, output and memory limits, numprocs, non-UTF-8 output, support files via PUT/HEAD,
the 400/404 messages and the overload answer.

Usage: jobe_cases.py --port PORT [--host 127.0.0.1] [--only SUBSTRING]
Prints one line per case and a closing "N passed, M failed"; exits 1 on any failure.
Standard library only.
"""
import argparse
import base64
import hashlib
import http.client
import json
import sys
import threading

BASE = "/jobe/index.php/restapi"
API_KEY_HEADER = {"X-API-KEY": "2AAA7A5415B4A9B394B54BF1D2E9D"}  # what testsubmit.py sends


class Client:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def request(self, method, path, body=None, raw=None, timeout=120):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = dict(API_KEY_HEADER)
        data = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json; charset-utf-8"
        connection.request(method, BASE + path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        return response.status, payload

    def run(self, run_spec, path="/runs/"):
        status, payload = self.request("POST", path, {"run_spec": run_spec})
        return status, (json.loads(payload) if payload else None)


def hello(language):
    """Source that prints 'Hello world\\n' in each language."""
    return {
        "c": '#include <stdio.h>\nint main(void) { printf("Hello world\\n"); return 0; }\n',
        "cpp": '#include <iostream>\nint main() { std::cout << "Hello world" << std::endl; }\n',
        "python3": 'print("Hello world")\n',
        "java": 'public class Hello {\n    public static void main(String[] args) {\n        System.out.println("Hello world");\n    }\n}\n',
        "nodejs": 'console.log("Hello world");\n',
        "php": '<?php\necho "Hello world\\n";\n',
        "pascal": "program hello;\nbegin\n  writeln('Hello world');\nend.\n",
        "octave": 'disp("Hello world")\n',
    }[language]


def build_cases(languages):
    """(name, language or None, function(client) -> problem or None)."""
    cases = []

    def case(name, language=None):
        def register(function):
            cases.append((name, language, function))
            return function
        return register

    def expect_run(run_spec, outcome, stdout=None, stderr=None, cmpinfo_contains=None, stdout_contains=None, path="/runs/"):
        def check(client):
            status, result = client.run(run_spec, path)
            if status != 200 or not isinstance(result, dict):
                return f"HTTP {status}: {result!r}"
            problems = []
            if result.get("outcome") != outcome:
                problems.append(f"outcome {result.get('outcome')} != {outcome}")
            if stdout is not None and result.get("stdout") != stdout:
                problems.append(f"stdout {result.get('stdout')!r} != {stdout!r}")
            if stderr is not None and result.get("stderr") != stderr:
                problems.append(f"stderr {result.get('stderr')!r} != {stderr!r}")
            if cmpinfo_contains is not None and cmpinfo_contains not in result.get("cmpinfo", ""):
                problems.append(f"cmpinfo {result.get('cmpinfo')!r} lacks {cmpinfo_contains!r}")
            if stdout_contains is not None and stdout_contains not in result.get("stdout", ""):
                problems.append(f"stdout {result.get('stdout')[:200]!r} lacks {stdout_contains!r}")
            if set(result) != {"run_id", "outcome", "cmpinfo", "stdout", "stderr"}:
                problems.append(f"keys {sorted(result)}")
            return "; ".join(problems) or None
        return check

    def expect_error(method, path, body, status, message, raw=None):
        def check(client):
            got_status, payload = client.request(method, path, body, raw=raw)
            try:
                got = json.loads(payload)
            except ValueError:
                return f"HTTP {got_status}: body is not JSON: {payload[:200]!r}"
            if got_status != status or got != message:
                return f"got {got_status} {got!r}, expected {status} {message!r}"
            return None
        return check

    # --- Each language's hello world (sourcefilename as CodeRunner sends it, and Jobe's default).
    for language in languages:
        spec = {"language_id": language, "sourcecode": hello(language)}
        if language == "nodejs":
            spec["parameters"] = {"memorylimit": 1000000}
        if language == "octave":
            spec["parameters"] = {"memorylimit": 200000}
        cases.append((f"{language}: hello world", language, expect_run(spec, 15, "Hello world\n", "")))
        if language != "java":
            coderunner = dict(spec, sourcefilename=f"__tester__.{language}")
            cases.append((f"{language}: CodeRunner file name __tester__.{language}, POST runs without slash", language,
                          expect_run(coderunner, 15, "Hello world\n", "", path="/runs")))

    # --- stdin
    cases.append(("python3: stdin", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "print(input().upper())\nprint(input())\n", "input": "abc\nxyz\n"},
        15, "ABC\nxyz\n")))
    cases.append(("c: stdin", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\nint main(void){int a,b; if(scanf("%d %d",&a,&b)!=2) return 1; printf("%d\\n",a+b); return 0;}\n',
         "input": "20 22\n"}, 15, "42\n")))
    cases.append(("python3: empty input is the null device (EOF at once)", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import sys\nprint(repr(sys.stdin.read()))\n"}, 15, "''\n")))

    # --- compile errors (11)
    cases.append(("c: syntax error is 11 with cmpinfo", "c", expect_run(
        {"language_id": "c", "sourcecode": "int main(void) { return 0 }\n"}, 11, cmpinfo_contains="error")))
    cases.append(("c: warning is an error under the default -Wall -Werror", "c", expect_run(
        {"language_id": "c", "sourcecode": "int main(void) { int unused; return 0; }\n"}, 11, cmpinfo_contains="unused")))
    cases.append(("c: <iostream> is a compile error (\"-x c\" word-split into two gcc args)", "c", expect_run(
        {"language_id": "c", "sourcecode": "#include <iostream>\nint main() { return 0; }\n", "sourcefilename": "__tester__.cpp"},
        11, cmpinfo_contains="iostream")))
    cases.append(("c: compileargs replace the defaults verbatim (std=c89 goes to the linker)", "c", expect_run(
        {"language_id": "c", "sourcecode": hello("c"), "parameters": {"compileargs": ["std=c89"]}}, 11,
        cmpinfo_contains="std=c89")))
    cases.append(("c: compileargs replace, not merge (unused variable compiles without -Werror)", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\nint main(void) { int unused; printf("ok\\n"); return 0; }\n',
         "parameters": {"compileargs": ["-std=c99"]}}, 15, "ok\n")))
    cases.append(("c: linkargs are appended (-lm)", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\n#include <math.h>\nint main(int c, char **v) { printf("%.1f\\n", sqrt(c * 81.0)); return 0; }\n',
         "parameters": {"linkargs": ["-lm"]}}, 15, "9.0\n")))
    cases.append(("cpp: compile error", "cpp", expect_run(
        {"language_id": "cpp", "sourcecode": "int main() { undefined_thing(); }\n"}, 11, cmpinfo_contains="undefined_thing")))
    cases.append(("python3: syntax error is 11", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "print('x'\n"}, 11, cmpinfo_contains="SyntaxError")))
    cases.append(("java: compile error", "java", expect_run(
        {"language_id": "java", "sourcecode": "public class Bad { public static void main(String[] a) { int x = \"s\"; } }\n"},
        11, cmpinfo_contains="incompatible types")))
    cases.append(("php: syntax error is 11", "php", expect_run(
        {"language_id": "php", "sourcecode": "<?php\necho 'x'\necho 'y';\n"}, 11, cmpinfo_contains="Parse error")))
    cases.append(("pascal: compile error is 11 with the -Fe error file", "pascal", expect_run(
        {"language_id": "pascal", "sourcecode": "program bad;\nbegin\n  writeln(undefinedthing);\nend.\n"}, 11,
        cmpinfo_contains="undefinedthing")))
    cases.append(("nodejs: syntax error shows at run time (12)", "nodejs", expect_run(
        {"language_id": "nodejs", "sourcecode": "console.log(\"x\";\n", "parameters": {"memorylimit": 1000000}}, 12)))
    cases.append(("octave: syntax error goes to stderr (12)", "octave", expect_run(
        {"language_id": "octave", "sourcecode": "disp(\"x\"\n", "parameters": {"memorylimit": 200000}}, 12)))

    # --- runtime errors (12)
    cases.append(("python3: exception is 12 with the traceback in stderr", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "print('before')\nraise ValueError('boom')\n"}, 12, "before\n")))
    cases.append(("python3: non-zero exit without stderr is still 15 (exit status ignored)", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import sys\nprint('x')\nsys.exit(3)\n"}, 15, "x\n", "")))
    cases.append(("c: segfault by recursion (8 MB stack) is 12, only the shell's report in stderr", "c", expect_run(
        {"language_id": "c", "sourcecode": "int f(int n) { volatile char b[1000]; b[0] = n; return f(n + 1) + b[0]; }\nint main(void) { return f(0); }\n",
         "parameters": {"compileargs": ["-std=c99"]}}, 12, stdout="", stderr="Segmentation fault\n")))
    cases.append(("c: abort() is 12 with the signal warning", "c", expect_run(
        {"language_id": "c", "sourcecode": "#include <stdlib.h>\nint main(void) { abort(); }\n"}, 12)))
    cases.append(("java: exception is 12, stack-trace tabs become 8 spaces", "java", check_java_exception()))

    # --- time limit (13)
    cases.append(("c: infinite loop is 13 with stderr cleared", "c", expect_run(
        {"language_id": "c", "sourcecode": "int main(void) { volatile long i = 0; for (;;) i++; }\n", "parameters": {"cputime": 2}},
        13, stderr="")))
    cases.append(("python3: sleeping past 2 x cputime is 13 (wall time)", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import time\ntime.sleep(30)\n", "parameters": {"cputime": 1}}, 13)))
    cases.append(("python3: cputime 6 lets a 3 s busy loop finish", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import time\nend = time.process_time() + 3\nwhile time.process_time() < end: pass\nprint('done')\n",
         "parameters": {"cputime": 6}}, 15, "done\n")))

    # --- output limit: truncation only; the endless printer ends at the CPU limit (13)
    cases.append(("c: endless output ends at the time limit (13), pipe drained", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\nint main(void) { for (;;) printf("Hello world\\n"); }\n',
         "parameters": {"cputime": 2}}, 13)))
    cases.append(("python3: streamsize 1 truncates stdout at 1000x1024 bytes, 15", "python3", check_streamsize()))

    # --- memory (address-space limit)
    cases.append(("c: malloc(2 GB) returns NULL under the default 400 MB", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { char *p = malloc(2000000000); printf(p ? "got\\n" : "null\\n"); return 0; }\n'},
        15, "null\n")))
    cases.append(("c: malloc(2 GB) succeeds with memorylimit 0 (unlimited)", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { char *p = malloc(2000000000); printf(p ? "got\\n" : "null\\n"); return 0; }\n',
         "parameters": {"memorylimit": 0}}, 15, "got\n")))
    cases.append(("python3: MemoryError under memorylimit 100 is 12", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "x = bytearray(300 * 1024 * 1024)\nprint('allocated')\n", "parameters": {"memorylimit": 100}},
        12, "")))
    cases.append(("java: runs with Jobe's forced memorylimit 0 even if 10 MB is asked", "java", expect_run(
        {"language_id": "java", "sourcecode": hello("java"), "parameters": {"memorylimit": 10}}, 15, "Hello world\n")))

    # --- numprocs
    fork_source = r'''#include <stdio.h>
#include <unistd.h>
#include <sys/types.h>
int main(void) {
    int forked = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t pid = fork();
        if (pid == 0) { for (;;) {} }
        if (pid > 0) forked++;
    }
    printf("%d\n", forked);
    return 0;
}
'''
    cases.append(("c: numprocs 20 lets 6 to 20 of 1000 forks succeed; returns when the parent exits", "c",
                  check_forks(fork_source, 20, 6, 20)))
    cases.append(("c: numprocs 5 caps forks at 5 or fewer", "c", check_forks(fork_source, 5, 1, 5)))

    cases.append(("c: numprocs 1 makes every fork fail; the program still finishes cleanly", "c", check_forks(fork_source, 1, 0, 0)))
    cases.append(("c: numprocs 10 lets exactly 9 forks succeed (shell and program count)", "c", check_forks(fork_source, 10, 9, 9)))
    cases.append(("python3: the working directory is writable", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "with open('out.txt', 'w') as f: f.write('One fish\\n')\nprint(open('out.txt').read(), end='')\n",
         "sourcefilename": "test.py"}, 15, "One fish\n")))
    cases.append(("php: HTML with embedded PHP, file named test.py (language never inferred from the name)", "php", expect_run(
        {"language_id": "php", "sourcecode": "<p><?php echo \"A paragraph\"; ?></p>\n", "sourcefilename": "test.py"},
        15, "<p>A paragraph</p>\n")))
    cases.append(("nodejs: interpreterargs replace --use_strict (an unknown flag makes node fail, 12)", "nodejs", expect_run(
        {"language_id": "nodejs", "sourcecode": "console.log('x')\n",
         "parameters": {"memorylimit": 1000000, "interpreterargs": ["--no-such-node-flag"]}}, 12, "")))
    cases.append(("pascal: program without a header", "pascal", expect_run(
        {"language_id": "pascal", "sourcecode": "begin\nwriteln('Hello world!');\nend.\n"}, 15, "Hello world!\n")))

    # --- shell word splitting of argument lists, run inside the sandbox
    cases.append(("python3: interpreterargs are shell-parsed (-c \"print(\\\"Blah\\\")\")", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "print('not me')\n", "parameters": {"interpreterargs": ['-c "print(\\"Blah\\")"']}},
        15, "Blah\n")))
    cases.append(("python3: runargs reach sys.argv after word splitting", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import sys\nprint(sys.argv[1:])\n", "parameters": {"runargs": ["a 'b c'", "d"]}},
        15, "['a', 'b c', 'd']\n")))
    cases.append(("python3: -BE default (PYTHONPATH-like env ignored) and LANG is C.UTF-8", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import os, sys\nprint(os.environ.get('LANG'), sys.flags.ignore_environment, sys.flags.dont_write_bytecode)\n"},
        15, "C.UTF-8 1 1\n")))
    cases.append(("java: UTF-8 source and output", "java", expect_run(
        {"language_id": "java", "sourcecode": 'public class U {\n  public static void main(String[] a) {\n    System.out.println("Ωmega ✓");\n  }\n}\n'},
        15, "Ωmega ✓\n")))
    cases.append(("java: class name inferred from the public class with main", "java", expect_run(
        {"language_id": "java", "sourcecode": 'class Helper { static String s() { return "inferred"; } }\npublic class Solution {\n  static public void main(String[] args) {\n    System.out.println(Helper.s());\n  }\n}\n'},
        15, "inferred\n")))
    cases.append(("java: main_class parameter", "java", expect_run(
        {"language_id": "java", "sourcecode": 'public class Other {\n  public static void main(String[] a) { System.out.println("other"); }\n}\n',
         "sourcefilename": "Other.java", "parameters": {"main_class": "Other"}}, 15, "other\n")))

    # --- output sanitisation
    cases.append(("python3: non-UTF-8 output comes back as \\xNN", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "import sys\nsys.stdout.buffer.write(b'Hello world\\n\\x01\\x06\\xc0\\xc9\\n')\n"},
        15, "Hello world\n\\x01\\x06\\xc0\\xc9\n")))
    cases.append(("c: valid UTF-8 with control characters is kept as is", "c", expect_run(
        {"language_id": "c", "sourcecode": '#include <stdio.h>\nint main(void) { printf("\\x01tab\\there \\xc3\\xa9\\n"); return 0; }\n'},
        15, "\x01tab\there \u00e9\n")))

    # --- support files (PUT/HEAD) and the file errors
    cases.extend(file_cases())

    # --- errors (400/404) and overload
    cases.append(("error: missing file id is 404 with Jobe's message", "python3", expect_error(
        "POST", "/runs/", {"run_spec": {"language_id": "python3", "sourcecode": "print(1)\n", "file_list": [["nosuchfileid", "x.txt"]]}},
        404, "One or more of the specified files is missing/unavailable")))
    cases.append(("error: unknown language is 400", None, expect_error(
        "POST", "/runs/", {"run_spec": {"language_id": "nosuchlanguage", "sourcecode": "x"}}, 400,
        "Language 'nosuchlanguage' is not known")))
    cases.append(("error: missing language_id is 400", None, expect_error(
        "POST", "/runs/", {"run_spec": {"sourcecode": "x"}}, 400, "run_spec is missing the required attribute 'language_id'")))
    cases.append(("error: missing sourcecode is 400 (checked before language_id)", None, expect_error(
        "POST", "/runs/", {"run_spec": {}}, 400, "run_spec is missing the required attribute 'sourcecode'")))
    cases.append(("error: cputime 151 is 400", None, expect_error(
        "POST", "/runs/", {"run_spec": {"language_id": "python3", "sourcecode": "x", "parameters": {"cputime": 151}}}, 400,
        "cputime exceeds maximum allowed on this Jobe server (120 secs)")))
    cases.append(("error: illegal sourcefilename is 400", None, expect_error(
        "POST", "/runs/", {"run_spec": {"language_id": "python3", "sourcecode": "x", "sourcefilename": "../evil.py"}}, 400,
        "The sourcefilename for the run_spec is illegal")))
    cases.append(("error: non-object JSON body is 400", None, expect_error(
        "POST", "/runs/", None, 400, "Non-JSON post data received", raw=b"[1, 2]")))
    cases.append(("error: no run_spec is 400", None, expect_error(
        "POST", "/runs/", {"spec": {}}, 400, "No run_spec attribute found in post data")))
    cases.append(("error: bad file specifier is 400", None, check_bad_file_specifier()))
    cases.append(("overload: the magic test string answers 21 (HTTP 200)", "python3", expect_run(
        {"language_id": "python3", "sourcecode": "!** TESTING OVERLOAD EXCEPTION **!"}, 21, "")))
    cases.append(("overload: run_id \"0\" and empty texts", "python3", check_overload_shape()))
    cases.append(("routes: GET runs/{id} and POST files are 404", None, check_unrouted()))
    cases.append(("languages: [id, version] pairs, sorted, python3 present", None, check_languages(languages)))
    cases.append(("concurrency: 10 parallel C hello worlds all 15", "c", check_parallel()))
    return cases


def check_java_exception():
    source = ('public class Boom {\n  static void f() { throw new IllegalStateException("bad"); }\n'
              '  public static void main(String[] a) { f(); }\n}\n')

    def check(client):
        status, result = client.run({"language_id": "java", "sourcecode": source})
        if status != 200 or result.get("outcome") != 12:
            return f"HTTP {status} {result!r}"
        stderr = result.get("stderr", "")
        if "IllegalStateException: bad" not in stderr or "\n        at Boom.f" not in stderr or "\t" in stderr:
            return f"stderr {stderr!r}"
        return None
    return check


def check_streamsize():
    def check(client):
        status, result = client.run({"language_id": "python3", "sourcecode": "import sys\nsys.stdout.write('x' * 3000000)\n",
                                     "parameters": {"streamsize": 1}})
        if status != 200 or result.get("outcome") != 15:
            return f"HTTP {status} outcome {result and result.get('outcome')}"
        if result["stdout"] != "x" * 1024000:
            return f"stdout length {len(result['stdout'])}, expected 1024000"
        return None
    return check


def check_forks(source, numprocs, low, high):
    def check(client):
        status, result = client.run({"language_id": "c", "sourcecode": source, "parameters": {"numprocs": numprocs, "cputime": 3}})
        if status != 200 or result.get("outcome") != 15 or result.get("stderr") != "":
            return f"HTTP {status} {result!r}"
        try:
            forked = int(result["stdout"])
        except ValueError:
            return f"stdout {result['stdout']!r}"
        if not low <= forked <= high:
            return f"{forked} forks succeeded, expected {low}..{high}"
        return None
    return check


def file_cases():
    contents = b"line one\nline two\n"
    file_id = hashlib.md5(contents).hexdigest()
    thing = b"public class Thing {\n  public static String name() { return \"thing\"; }\n}\n"
    thing_id = hashlib.md5(thing).hexdigest()
    cases = []

    def put_and_head(client):
        status, payload = client.request("PUT", f"/files/{file_id}", {"file_contents": base64.b64encode(contents).decode()})
        if status != 204 or payload:
            return f"PUT gave {status} {payload!r}"
        status, payload = client.request("HEAD", f"/files/{file_id}/")
        if status != 204:
            return f"HEAD of a cached file gave {status}"
        status, _ = client.request("HEAD", "/files/neverputthisid")
        if status != 404:
            return f"HEAD of an unknown file gave {status}"
        status, payload = client.request("PUT", f"/files/{file_id}", {"file_contents": base64.b64encode(contents).decode()})
        return None if status == 204 else f"second PUT (overwrite) gave {status}"
    cases.append(("files: PUT 204, HEAD 204 when cached (trailing slash too), 404 when not", None, put_and_head))

    def use_file(client):
        put_and_head(client)
        status, result = client.run({"language_id": "python3", "sourcecode": "print(open('data.txt').read().upper(), end='')\n",
                                     "file_list": [[file_id, "data.txt"]]})
        if status != 200 or result.get("stdout") != "LINE ONE\nLINE TWO\n" or result.get("outcome") != 15:
            return f"HTTP {status} {result!r}"
        return None
    cases.append(("files: a cached file is copied into the working directory", "python3", use_file))

    def java_support_class(client):
        client.request("PUT", f"/files/{thing_id}", {"file_contents": base64.b64encode(thing).decode()})
        source = 'public class Blah {\n  public static void main(String[] a) { System.out.println(Thing.name()); }\n}\n'
        status, result = client.run({"language_id": "java", "sourcecode": source, "file_list": [[thing_id, "Thing.java"]]})
        if status != 200 or result.get("outcome") != 15 or result.get("stdout") != "thing\n":
            return f"HTTP {status} {result!r}"
        return None
    cases.append(("files: Java infers Blah.java and javac finds Thing.java", "java", java_support_class))

    def put_errors(client):
        status, payload = client.request("PUT", f"/files/{file_id}", {"contents": "eA=="})
        if (status, json.loads(payload)) != (400, "put: missing file_contents parameter"):
            return f"missing file_contents: {status} {payload!r}"
        status, payload = client.request("PUT", "/files/abc123", {"file_contents": "not*base64!"})
        if (status, json.loads(payload)) != (400, "put: contents of file abc123 are not valid base-64"):
            return f"bad base64: {status} {payload!r}"
        status, _ = client.request("PUT", "/files/bad-id", {"file_contents": "eA=="})
        if status != 404:
            return f"non-alphanumeric id gave {status}"
        return None
    cases.append(("files: PUT errors (missing contents, bad base-64, bad id)", None, put_errors))
    return cases


def check_bad_file_specifier():
    def check(client):
        status, payload = client.request("POST", "/runs/", {"run_spec": {
            "language_id": "python3", "sourcecode": "x", "file_list": [["short", "x.txt"]]}})
        message = json.loads(payload)
        if status != 400 or not isinstance(message, str) or not message.startswith("Invalid file specifier: "):
            return f"{status} {payload!r}"
        return None
    return check


def check_overload_shape():
    def check(client):
        status, result = client.run({"language_id": "python3", "sourcecode": "!** TESTING OVERLOAD EXCEPTION **!"})
        expected = {"run_id": "0", "outcome": 21, "cmpinfo": "", "stdout": "", "stderr": ""}
        return None if status == 200 and result == expected else f"{status} {result!r}"
    return check


def check_unrouted():
    def check(client):
        for method, path in [("GET", "/runs/12345"), ("POST", "/files")]:
            status, _ = client.request(method, path, {} if method == "POST" else None)
            if status != 404:
                return f"{method} {path} gave {status}"
        return None
    return check


def check_languages(expected_languages):
    def check(client):
        status, payload = client.request("GET", "/languages")
        pairs = json.loads(payload)
        if status != 200 or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs):
            return f"{status} {payload!r}"
        names = [p[0] for p in pairs]
        if names != sorted(names) or "python3" not in names:
            return f"names {names}"
        if set(expected_languages) - set(names):
            return f"missing {set(expected_languages) - set(names)}"
        return None
    return check


def check_parallel():
    def check(client):
        results = []

        def one():
            status, result = client.run({"language_id": "c", "sourcecode": hello("c")})
            results.append((status, result and result.get("outcome"), result and result.get("stdout")))
        threads = [threading.Thread(target=one) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        bad = [r for r in results if r != (200, 15, "Hello world\n")]
        return f"{len(bad)} of 10 failed: {bad[:3]}" if bad or len(results) != 10 else None
    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("--require", default="c,cpp,python3,java,nodejs,php,pascal",
                        help="languages that must be offered (octave is tested when offered)")
    arguments = parser.parse_args()
    client = Client(arguments.host, arguments.port)
    status, payload = client.request("GET", "/languages")
    offered = [pair[0] for pair in json.loads(payload)] if status == 200 else []
    print("languages:", json.loads(payload) if status == 200 else f"HTTP {status}")
    passed = failed = 0
    for required in filter(None, arguments.require.split(",")):
        if required not in offered:
            print(f"FAIL  language {required} is not offered (install its toolchain)")
            failed += 1
    for name, language, function in build_cases(offered):
        if arguments.only and arguments.only not in name:
            continue
        if language is not None and language not in offered:
            print(f"SKIP  {name} ({language} not installed)")
            continue
        try:
            problem = function(client)
        except Exception as error:  # a crash is a failure of that case, not of the driver
            problem = f"exception {type(error).__name__}: {error}"
        if problem:
            failed += 1
            print(f"FAIL  {name}: {problem}")
        else:
            passed += 1
            print(f"ok    {name}")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
