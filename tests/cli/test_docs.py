"""docs/report.md shows what the code defines: the JSON schemas, every role, the exit statuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fitwatch import cli
from fitwatch.report.roles import ROLES
from fitwatch.report.schema import DIFF_SCHEMA, REPORT_SCHEMA

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def test_schemas_on_the_page_are_the_ones_the_code_checks():
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert [json.loads(b) for b in blocks] == [REPORT_SCHEMA, DIFF_SCHEMA]


def test_every_role_is_documented():
    section = DOC.read_text().split("### Roles")[1].split("###")[0]
    documented = re.findall(r"^\| `([a-z_0-9]+)(?::SUBJECT)?` \|", section, flags=re.MULTILINE)
    assert documented == list(ROLES)


def test_exit_statuses_are_documented():
    table = dict(re.findall(r"^\| (\d+) \| (.*) \|$", DOC.read_text(), flags=re.MULTILINE))
    constants = {
        cli.EXIT_OK,
        cli.EXIT_FINDINGS,
        cli.EXIT_USAGE,
        cli.EXIT_UNREADABLE,
        cli.EXIT_INTERNAL,
        cli.EXIT_BROKEN_PIPE,
    }
    assert {int(k) for k in table} == constants
    assert "--fail-on" in table[str(cli.EXIT_FINDINGS)] and "truncated" in table[str(cli.EXIT_UNREADABLE)]
