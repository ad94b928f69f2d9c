"""The JSON Schema (draft 2020-12) of the report's JSON, schema 1, shipped inside the package.

The file is ``graphprobe/model/schemas/report-1.json``; it types every key that
:meth:`graphprobe.Report.to_dict` writes (``graphprobe render x.py -o report.json``).

>>> from graphprobe.model.schema import json_schema
>>> json_schema()["properties"]["schema"]
{'description': 'the version of this contract', 'const': 1}
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["SCHEMA_FILE", "json_schema", "validate"]

#: The schema's path inside the package, per schema version.
SCHEMA_FILE = {1: "schemas/report-1.json"}


def json_schema(version: int = 1) -> dict[str, Any]:
    """The JSON Schema of report schema ``version``, as a dict (read from the package's data)."""
    try:
        name = SCHEMA_FILE[version]
    except KeyError:
        raise ValueError(f"no JSON Schema for report schema {version}; known: {sorted(SCHEMA_FILE)}") from None
    return json.loads(resources.files("graphprobe.model").joinpath(name).read_text(encoding="utf-8"))


def validate(report: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``report`` (a Report or its dict) fits its schema.

    Needs the ``jsonschema`` package (in the ``test`` extra); graphprobe itself never does.
    """
    import jsonschema

    data = report.to_dict() if hasattr(report, "to_dict") else report
    version = data.get("schema") if isinstance(data, dict) else None
    # An unknown version is checked against schema 1, whose "const" then names the mismatch.
    schema = json_schema(version if version in SCHEMA_FILE else 1)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
