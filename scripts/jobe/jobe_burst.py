#!/usr/bin/env python3
"""Jobe-style load test, modelled on testsubmit.py --perf, of the Jobe API.

1. Burst: n = 1, 2, 4, ... simultaneous POST runs of "Test good C hello world" until one
   fails (outcome 21 overload, a wrong answer or an HTTP error) or n exceeds --max-burst;
   then a binary search between the last good and the first failing n. Prints the largest
   burst handled with no errors.
2. Sustained: starting at max(1, half the best burst rate) jobs/s, sends --window seconds'
   worth of jobs spaced 1/rate apart (each on its own thread, as testsubmit does); the rate
   rises by 1 below 10 jobs/s and by 20 % above, until a rate fails or --max-rate is passed.
   Prints the highest rate sustained.

Usage: jobe_burst.py --port PORT [--window 10] [--max-burst 512] [--max-rate 200] [--start-rate R]
Standard library only.
"""
import argparse
import http.client
import json
import threading
import time

SOURCE = '#include <stdio.h>\n\nint main() {\n    printf("Hello world\\nIsn\'t this fun!\\n");\n}\n'
EXPECTED = "Hello world\nIsn't this fun!\n"


def submit(port, results, index):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        body = json.dumps({"run_spec": {"language_id": "c", "sourcecode": SOURCE, "sourcefilename": "test.c"}})
        connection.request("POST", "/jobe/index.php/restapi/runs/", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
        connection.close()
        ok = response.status == 200 and payload.get("outcome") == 15 and payload.get("stdout") == EXPECTED
        results[index] = "ok" if ok else f"{response.status} outcome {payload.get('outcome') if isinstance(payload, dict) else payload}"
    except Exception as error:  # counted as a failed job
        results[index] = f"exception {type(error).__name__}: {error}"


def burst(port, n):
    """Runs n jobs at once; returns (all ok, jobs/s, failures)."""
    results = [None] * n
    threads = [threading.Thread(target=submit, args=(port, results, i)) for i in range(n)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    failures = [r for r in results if r != "ok"]
    return not failures, n / elapsed, failures


def sustained(port, rate, window):
    count = max(1, int(rate * window))
    results = [None] * count
    threads = []
    started = time.time()
    for i in range(count):
        delay = started + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=submit, args=(port, results, i))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    failures = [r for r in results if r != "ok"]
    return not failures, failures, time.time() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--max-burst", type=int, default=512)
    parser.add_argument("--max-rate", type=float, default=200)
    parser.add_argument("--start-rate", type=float, default=None,
                        help="skip the burst tests and start the sustained test at this rate")
    arguments = parser.parse_args()
    if arguments.start_rate is not None:
        run_sustained(arguments, arguments.start_rate)
        return

    best_ok, best_rate, first_fail = 0, 0.0, None
    n = 1
    while n <= arguments.max_burst:
        ok, rate, failures = burst(arguments.port, n)
        print(f"{n} parallel submits: {'OK' if ok else 'FAIL'}. {rate:.1f} jobs/sec"
              + ("" if ok else f" ({len(failures)} failed, e.g. {failures[0]})"), flush=True)
        if not ok:
            first_fail = n
            break
        best_ok, best_rate = n, max(best_rate, rate)
        n *= 2
    if first_fail is not None:
        low, high = best_ok, first_fail
        while high - low > max(1, low // 16):
            middle = (low + high) // 2
            ok, rate, failures = burst(arguments.port, middle)
            print(f"{middle} parallel submits: {'OK' if ok else 'FAIL'}. {rate:.1f} jobs/sec", flush=True)
            if ok:
                low, best_rate = middle, max(best_rate, rate)
            else:
                high = middle
        best_ok = low
    limit_note = "" if first_fail is not None else f" (no failure up to --max-burst {arguments.max_burst})"
    print(f"Maximum burst handled with no errors = {best_ok} jobs{limit_note}", flush=True)

    run_sustained(arguments, max(1.0, best_rate / 2))


def run_sustained(arguments, rate):
    best_sustained = None
    while rate <= arguments.max_rate:
        ok, failures, elapsed = sustained(arguments.port, rate, arguments.window)
        print(f"Testing with rate of {rate:.1f} jobs/sec: {'OK' if ok else 'Failed'}"
              + ("" if ok else f" ({len(failures)} failed, e.g. {failures[0]})") + f" [{elapsed:.1f} s]", flush=True)
        if not ok:
            break
        best_sustained = rate
        rate = rate + 1 if rate < 10 else rate * 1.2
    print(f"Sustained throughput rate: {best_sustained if best_sustained is None else round(best_sustained, 1)} jobs/sec", flush=True)


if __name__ == "__main__":
    main()
