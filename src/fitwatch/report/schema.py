"""The JSON documents ``fitwatch report --json`` and ``fitwatch diff --json`` print, as JSON Schemas.

Both are plain JSON Schema (draft 2020-12) documents, so any validator reads them; docs/report.md shows the
same structure with an example. ``schema`` in each document names its layout and version; a change that
removes or renames a field bumps the version, an added field does not.
"""

from __future__ import annotations

from typing import Any

from fitwatch.findings import CATALOGUE

__all__ = ["DIFF_SCHEMA", "DIFF_SCHEMA_ID", "REPORT_SCHEMA", "REPORT_SCHEMA_ID"]

#: ``schema`` value of a report document.
REPORT_SCHEMA_ID = "fitwatch.report/1"
#: ``schema`` value of a diff document.
DIFF_SCHEMA_ID = "fitwatch.diff/1"

_SEVERITIES = ["info", "warning", "critical"]
_NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
_NULLABLE_NUMBER: dict[str, Any] = {"type": ["number", "null"]}

_FINDING: dict[str, Any] = {
    "type": "object",
    "required": [
        "code",
        "title",
        "severity",
        "step",
        "epoch",
        "first_step",
        "first_epoch",
        "subject",
        "message",
        "evidence",
        "hint",
        "sources",
    ],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "enum": sorted(CATALOGUE)},
        "title": {"type": "string"},
        "severity": {"type": "string", "enum": _SEVERITIES},
        "step": {"type": "integer"},
        "epoch": _NULLABLE_INT,
        "first_step": {"type": "integer"},
        "first_epoch": _NULLABLE_INT,
        "subject": {"type": "string"},
        "message": {"type": "string"},
        "evidence": {"type": "object"},
        "hint": {"type": "string"},
        "sources": {
            "type": "array",
            "items": {"type": "string", "enum": ["live", "replay"]},
            "minItems": 1,
            "uniqueItems": True,
        },
    },
}

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["file", "error"],
    "additionalProperties": False,
    "properties": {"file": {"type": "string"}, "error": {"type": "string"}},
}

_RUN: dict[str, Any] = {
    "type": "object",
    "required": [
        "run",
        "files",
        "fitwatch_tags",
        "live_findings",
        "evaluations",
        "step_records",
        "last_step",
        "roles",
        "unmapped_tags",
        "findings",
        "errors",
        "notes",
    ],
    "additionalProperties": False,
    "properties": {
        "run": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string"}},
        "fitwatch_tags": {"type": "boolean"},
        "live_findings": {"type": ["string", "null"], "enum": ["findings.jsonl", "tensorboard", None]},
        "evaluations": {"type": "integer", "minimum": 0},
        "step_records": {"type": "integer", "minimum": 0},
        "last_step": _NULLABLE_INT,
        "roles": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "unmapped_tags": {"type": "array", "items": {"type": "string"}},
        "findings": {"type": "array", "items": _FINDING},
        "errors": {"type": "array", "items": _ERROR},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}

#: The document ``fitwatch report --json`` prints.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fitwatch report",
    "type": "object",
    "required": ["schema", "fitwatch_version", "fail_on", "failed", "runs"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": REPORT_SCHEMA_ID},
        "fitwatch_version": {"type": "string"},
        "fail_on": {"type": ["string", "null"], "enum": [*_SEVERITIES, None]},
        "failed": {"type": "boolean"},
        "runs": {"type": "array", "items": _RUN},
    },
}

_METRIC: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "role", "a", "b", "change", "a_step", "b_step"],
    "additionalProperties": False,
    "properties": {
        "metric": {"type": "string"},
        "role": {"type": "string"},
        "a": _NULLABLE_NUMBER,
        "b": _NULLABLE_NUMBER,
        "change": _NULLABLE_NUMBER,
        "a_step": {"type": "integer"},
        "b_step": {"type": "integer"},
    },
}

_CHANGE: dict[str, Any] = {
    "type": "object",
    "required": ["key", "kind", "before", "after"],
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string"},
        "kind": {"type": "string", "enum": ["changed", "added", "removed"]},
        "before": {},
        "after": {},
    },
}

#: The document ``fitwatch diff --json`` prints.
DIFF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fitwatch diff",
    "type": "object",
    "required": ["schema", "fitwatch_version", "a", "b", "changes", "metrics"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": DIFF_SCHEMA_ID},
        "fitwatch_version": {"type": "string"},
        "a": {"type": "string"},
        "b": {"type": "string"},
        "changes": {"type": "array", "items": _CHANGE},
        "metrics": {"type": "array", "items": _METRIC},
    },
}
