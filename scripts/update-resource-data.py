#!/usr/bin/env python3
"""Regenerate data/create-only-properties.json (and
data/conditional-create-only-properties.json) from cfn-lint's bundled schemas.

cfn-lint ships the CloudFormation resource provider schemas. Each schema has a
"typeName" and an optional "createOnlyProperties" list of JSON pointers such as
"/properties/BucketName". Changing one of those properties on an existing
resource makes CloudFormation replace the resource, so edits to them on an
already deployed stack are not in-place hardening changes.

The output maps every resource type to the sorted list of its create-only
pointers, relative to the resource's "Properties" object:

    "/properties/BucketName"            -> "/BucketName"
    "/properties/Export/Name"           -> "/Export/Name"  (nested pointers stay nested)
    "/properties/Policies/*/PolicyArn"  -> "/Policies/*/PolicyArn"  ("*" = any array item)

Types without create-only properties map to []. A leading "_source" entry
records the cfn-lint version, schema region and schema date.

Some schemas also list "conditionalCreateOnlyProperties": properties whose
change MAY replace the resource, depending on the old and new values (e.g.
AWS::DynamoDB::Table /KeySchema, AWS::OpenSearchService::Domain
/EncryptionAtRestOptions/KmsKeyId). They go, in the same format, to
data/conditional-create-only-properties.json, which lists only the types that
have any.

Only the schemas bundled inside the installed cfnlint package are read (never
cfn-lint's per-user download cache), so the output depends only on the
cfn-lint version and is byte-for-byte reproducible.

Usage (cfn-lint comes from scripts/install-validators.sh):
    target/validators/bin/python scripts/update-resource-data.py [--region us-east-1] [--check]

When target/validators exists and the script was started by another
interpreter, it re-runs itself with target/validators/bin/python, so the
pinned cfn-lint is always the one used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_REGION = "us-east-1"
VENV_DIR = REPO_ROOT / "target" / "validators"
PROPERTIES_PREFIX = "/properties"


def import_cfnlint():
    # Prefer the pinned cfn-lint in the validators venv over any other install
    # (a cfn-lint elsewhere on the machine would silently give other data).
    if VENV_DIR.is_dir() and Path(sys.prefix).resolve() != VENV_DIR.resolve():
        venv_python = VENV_DIR / "bin" / "python"
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    try:
        import cfnlint
        from cfnlint.version import __version__
    except ImportError:
        sys.exit(
            "error: cfnlint is not importable; run scripts/install-validators.sh, then "
            "target/validators/bin/python scripts/update-resource-data.py"
        )
    return Path(cfnlint.__file__).resolve().parent, __version__


def load_schemas(schemas_dir: Path, region: str) -> dict[str, dict]:
    """Return {typeName: schema} for one region, whatever the package layout.

    Layouts seen in cfn-lint 1.x:
      providers/us-east-1.json  {type: hash} + resources/<hash>.json   (1.5x and later)
      providers/us_east_1.py    types = {type: hash} + resources/<hash>.json
      providers/us_east_1/*.json  one full schema per file             (early 1.x)
    """
    providers = schemas_dir / "providers"
    resources = schemas_dir / "resources"
    mod_name = region.replace("-", "_")

    index: dict[str, str] | None = None
    index_json = providers / f"{region}.json"
    if index_json.is_file():
        index = json.loads(index_json.read_text(encoding="utf-8"))
    elif (providers / f"{mod_name}.py").is_file():
        index = dict(importlib.import_module(f"cfnlint.data.schemas.providers.{mod_name}").types)

    schemas: dict[str, dict] = {}
    if index is not None:
        for type_name, schema_hash in index.items():
            schema = json.loads((resources / f"{schema_hash}.json").read_text(encoding="utf-8"))
            schemas[type_name] = schema
    elif (providers / mod_name).is_dir():
        for path in sorted((providers / mod_name).glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            if "typeName" in schema:
                schemas[schema["typeName"]] = schema
    else:
        sys.exit(f"error: no provider schemas for region {region!r} under {providers}")

    for type_name, schema in schemas.items():
        if schema.get("typeName", type_name) != type_name:
            sys.exit(f"error: schema for {type_name} declares typeName {schema['typeName']}")
    return schemas


def relative_pointer(pointer: str, type_name: str) -> str:
    if pointer == PROPERTIES_PREFIX or not pointer.startswith(PROPERTIES_PREFIX + "/"):
        sys.exit(f"error: {type_name}: unexpected createOnlyProperties pointer {pointer!r}")
    return pointer[len(PROPERTIES_PREFIX):]


def schema_date(schemas_dir: Path) -> str | None:
    version_file = schemas_dir / "version.json"
    if version_file.is_file():
        return json.loads(version_file.read_text(encoding="utf-8")).get("schema_date")
    return None


def render(source: dict, table: dict[str, list[str]]) -> str:
    """One line per resource type: compact, yet one changed type = one changed line."""
    lines = ['  "_source": ' + json.dumps(source, sort_keys=True)]
    for type_name in sorted(table):
        lines.append(f"  {json.dumps(type_name)}: {json.dumps(table[type_name])}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def build_table(schemas: dict[str, dict], key: str, include_empty: bool) -> dict[str, list[str]]:
    table = {}
    for type_name, schema in schemas.items():
        pointers = sorted({relative_pointer(p, type_name) for p in schema.get(key) or []})
        if pointers or include_empty:
            table[type_name] = pointers
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default=DEFAULT_REGION, help="schema region (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=DATA_DIR, help="output directory (default: <repo>/data)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output files are not up to date")
    args = parser.parse_args()

    package_dir, cfn_lint_version = import_cfnlint()
    schemas_dir = package_dir / "data" / "schemas"
    schemas = load_schemas(schemas_dir, args.region)

    source = {
        "generator": "scripts/update-resource-data.py",
        "cfn_lint": cfn_lint_version,
        "region": args.region,
        "schema_date": schema_date(schemas_dir),
    }
    pointers_note = "relative to the resource's Properties; '*' matches any array item"
    outputs = {
        "create-only-properties.json": render(
            {**source, "schema_key": "createOnlyProperties", "pointers": pointers_note + "; every type is listed"},
            build_table(schemas, "createOnlyProperties", include_empty=True),
        ),
        "conditional-create-only-properties.json": render(
            {**source, "schema_key": "conditionalCreateOnlyProperties",
             "pointers": pointers_note + "; types not listed have none"},
            build_table(schemas, "conditionalCreateOnlyProperties", include_empty=False),
        ),
    }

    stale = []
    for name, text in outputs.items():
        json.loads(text)  # sanity: output must be valid JSON
        path = args.output_dir / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            print(f"{path}: up to date", file=sys.stderr)
            continue
        stale.append(path)
        if args.check:
            print(f"{path}: out of date; rerun scripts/update-resource-data.py", file=sys.stderr)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"{path}: wrote {len(text.encode())} bytes, {text.count(chr(10)) - 3} resource types", file=sys.stderr)

    print(f"cfn-lint {cfn_lint_version}, region {args.region}: {len(schemas)} resource types", file=sys.stderr)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
