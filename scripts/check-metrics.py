#!/usr/bin/env python3
"""Checks a /metrics exposition (on stdin) with the reference parser, prometheus_client.

Fails when the text does not parse, a family is not prefixed sandbox_server_, a histogram's
buckets are not cumulative or do not end in +Inf equal to _count, a series repeats, or a label
looks like it carries a job id or a raw path (route labels must be patterns from openapi or
the Judge0/Jobe tables, so the number of series stays bounded). Used by 60-schemathesis.sh
after the generated traffic.
"""
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def main() -> int:
    text = sys.stdin.read()
    problems = []
    families = list(text_string_to_metric_families(text))
    if not families:
        problems.append("no metric families")
    seen = set()
    for family in families:
        if not family.name.startswith("sandbox_server_"):
            problems.append(f"{family.name}: not prefixed sandbox_server_")
        buckets = {}
        counts = {}
        for sample in family.samples:
            identity = (sample.name, tuple(sorted(sample.labels.items())))
            if identity in seen:
                problems.append(f"duplicate series {identity}")
            seen.add(identity)
            for name, value in sample.labels.items():
                if JOB_ID.match(value) and name != "version":
                    problems.append(f"{sample.name}: label {name}={value!r} looks like a job id")
                if name == "route" and value != "unmatched" and not value.startswith("/"):
                    problems.append(f"{sample.name}: route {value!r} is not a pattern")
            if family.type == "histogram":
                key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                if sample.name.endswith("_bucket"):
                    bound = math.inf if sample.labels["le"] == "+Inf" else float(sample.labels["le"])
                    buckets.setdefault(key, []).append((bound, sample.value))
                elif sample.name.endswith("_count"):
                    counts[key] = sample.value
        for key, series in buckets.items():
            series.sort()
            if series[-1][0] != math.inf:
                problems.append(f"{family.name}{key}: no +Inf bucket")
            if any(later[1] < earlier[1] for earlier, later in zip(series, series[1:])):
                problems.append(f"{family.name}{key}: buckets not cumulative")
            if counts.get(key) != series[-1][1]:
                problems.append(f"{family.name}{key}: _count differs from the +Inf bucket")
    requests = sum(s.value for f in families if f.name == "sandbox_server_http_requests"
                   for s in f.samples if s.name == "sandbox_server_http_requests_total")
    if requests <= 0:
        problems.append("sandbox_server_http_requests_total counted nothing")
    for problem in problems:
        print("metrics:", problem, file=sys.stderr)
    print(f"metrics: {len(families)} families, {len(seen)} series, {int(requests)} requests counted; "
          f"{'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
