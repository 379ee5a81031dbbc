"""The README keeps its promises: the two set-up commands first, and every finding code documented."""

from __future__ import annotations

import re
from pathlib import Path

from fitwatch.findings import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_setup_commands_come_first():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_finding_code_is_documented_with_its_warning_class_and_action():
    table = README.split("<!-- catalogue:start -->")[1].split("<!-- catalogue:end -->")[0]
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines() if line.startswith("| `")}
    assert set(rows) == set(CATALOGUE)
    for code, spec in CATALOGUE.items():
        assert spec.warning.__name__ in rows[code] and spec.action in rows[code]


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
