#!/usr/bin/env bash
# openapi.yaml is valid YAML, declares OpenAPI 3.1, and every $ref points at a defined component.
# (OpenAPIDocumentTests checks the schemas against the Swift types; this checks the YAML
# syntax that test's line-based reader does not.) Needs python3 with PyYAML (Debian: python3-yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    echo "SKIP openapi-yaml: /usr/bin/python3 has no yaml module (apt-get install python3-yaml)"
    exit 0
fi
/usr/bin/python3 - <<'PY'
import sys, yaml

with open("openapi.yaml", encoding="utf-8") as f:
    document = yaml.safe_load(f)

problems = []
if document.get("openapi") != "3.1.0":
    problems.append(f"openapi is {document.get('openapi')!r}, expected '3.1.0'")

def walk(node, path):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                parts = value.split("/")
                target = document
                for part in parts[1:]:
                    target = target.get(part) if isinstance(target, dict) else None
                if parts[0] != "#" or target is None:
                    problems.append(f"{path}: dangling $ref {value}")
            else:
                walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            walk(value, f"{path}[{index}]")

walk(document, "")
for name, schema in document["components"]["schemas"].items():
    required = set(schema.get("required", []))
    missing = required - set(schema.get("properties", {}))
    if missing:
        problems.append(f"schema {name}: required but not defined: {sorted(missing)}")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"openapi.yaml: {len(document['paths'])} paths, {len(document['components']['schemas'])} schemas, references resolve")
PY
