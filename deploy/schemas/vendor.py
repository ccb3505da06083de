"""Vendor the JSON Schemas that tests/cluster/test_deploy_files.py validates deploy/ against.

The schemas come from PyPI packages, never from the network at test time:

- ``compose-spec.json``: the Compose specification's schema as check-jsonschema ships it
  (``check_jsonschema/builtin_schemas/vendor``, with its licence).
- ``kubernetes/<kind>.json``: the strict Kubernetes schemas kubernetes-validate ships for one
  Kubernetes version, each made self-contained (the definitions it uses copied in) so that
  any JSON Schema validator reads it alone.

Run again to move to newer schemas:
``pip install check-jsonschema kubernetes-validate && python deploy/schemas/vendor.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KUBERNETES = "1.37.0"
KINDS = (
    "configmap-v1",
    "service-v1",
    "statefulset-apps-v1",
    "deployment-apps-v1",
    "poddisruptionbudget-policy-v1",
    "persistentvolumeclaim-v1",
)
REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")
"""A reference to a definition: from a kind's file, or from one definition to another."""


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (match := REF.match(value)):
                found.add(match.group(1))
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _local(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: REF.sub(r"#/$defs/\1", value) if key == "$ref" and isinstance(value, str) else _local(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_local(item) for item in node]
    return node


def kubernetes(source: Path) -> None:
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    for kind in KINDS:
        schema = json.loads((source / f"{kind}.json").read_text())
        needed: set[str] = set()
        todo = _refs(schema)
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo |= _refs(definitions[name]) - needed
        bundled = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **_local(schema),
            "$defs": {name: _local(definitions[name]) for name in sorted(needed)},
        }
        text = json.dumps(bundled, indent=1, sort_keys=True)
        (HERE / "kubernetes" / f"{kind}.json").write_text(text + "\n")


def main() -> int:
    import check_jsonschema
    import kubernetes_validate

    vendor = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
    shutil.copy(vendor / "compose-spec.json", HERE / "compose-spec.json")
    shutil.copy(vendor / "licenses" / "LICENSE.compose-spec", HERE / "LICENSE.compose-spec")
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    source = schemas / f"v{KUBERNETES}-local-strict"
    kubernetes(source)
    print(
        f"vendored compose-spec.json from check-jsonschema {version('check-jsonschema')} and {len(KINDS)} "
        f"Kubernetes {KUBERNETES} schemas from kubernetes-validate {version('kubernetes-validate')}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
