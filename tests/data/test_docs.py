"""Every python example in docs/data.md runs as written, in order, and prints what the page says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    printed = out.getvalue()
    assert "stage 'stopwords' runs at position 3 in training and 1 at inference" in printed
    assert "((0, 0),)" in printed
    assert "False 1 2024-01-28 00:00:00 2024-01-29 00:00:00" in printed
    assert "True 0.15 ('refund',)" in printed
    assert namespace["precision"] >= 0.9
    assert "| I was charged twice | billing | technical |" in printed
    assert "extra.lr: 3e-05 -> 1e-05" in printed
    for name in ("finding",):
        assert namespace[name] is not None
