"""The GPU script runs end to end on CPU in CI-sized form (``--dry-run``), so a session lent a GPU can trust it."""

from __future__ import annotations

import json

import pytest

gpu = pytest.importorskip("benchmarks.gpu")
pytest.importorskip("lightning")
pytest.importorskip("transformers")


def test_dry_run_writes_every_section(tmp_path):
    assert gpu.main(["--dry-run", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert set(result["syncs"]) == {"bert", "lm"} and set(result["kernels"]) == {"bert", "lm"}
    assert [r["workload"] for r in result["ratios"]] == ["bert", "lm"]
    for r in result["ratios"]:
        assert r["ratios"]["default"]["median"] > 0
    for wl, s in result["syncs"].items():
        # the design rule: no host read from fitwatch's code in a plain step at default settings
        assert s["host_reads"].get("step", {}).get("max", 0) == 0, (wl, s)
    assert "fitwatch default" in (tmp_path / "gpu.md").read_text()
