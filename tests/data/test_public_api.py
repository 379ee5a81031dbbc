"""fitwatch.data's public surface: a sorted, complete __all__, and no torch import for the pure checks."""

from __future__ import annotations

import subprocess
import sys

from fitwatch import data


def test_all_is_sorted_and_resolves():
    assert data.__all__ == sorted(data.__all__)
    for name in data.__all__:
        assert getattr(data, name) is not None
    assert set(data.__all__) <= set(dir(data))


def test_every_public_name_of_the_modules_is_exported():
    modules = [
        "chi_square",
        "duplicates",
        "fingerprint",
        "label_shift",
        "mislabels",
        "mistakes",
        "pipelines",
        "temporal",
    ]
    exported = set(data.__all__)
    for module in modules:
        mod = __import__(f"fitwatch.data.{module}", fromlist=["_"])
        public = {n for n in mod.__all__ if not n.isupper()}  # constants stay in their module
        helpers = {"shingles", "token_diff", "values_equal", "regularized_gamma_q"}
        assert public - helpers <= exported, (module, public - helpers - exported)


def test_unknown_attribute():
    try:
        data.not_there  # noqa: B018
    except AttributeError as err:
        assert "not_there" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_pure_checks_do_not_import_torch_lightning_or_transformers():
    code = (
        "import sys, fitwatch.data as d\n"
        "d.find_duplicates(['a'], ['a'], near=False); d.label_shift([0], [1])\n"
        "d.check_temporal_split([1], [2])\n"
        "d.compare_pipelines(str.lower, str.lower, ['A']); d.diff_fingerprints({}, {})\n"
        "print(sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
