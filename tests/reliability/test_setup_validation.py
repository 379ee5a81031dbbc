"""Set-up validation: every bad setting is rejected at construction with a message that names the argument,
what was expected and what came; the friendly forms (one ``stop_on`` code as a str) are accepted."""

from __future__ import annotations

import pytest

from fitwatch.config import FitWatchConfig, resolve_config
from fitwatch.monitor import Monitor
from fitwatch.sinks.tags import tag


@pytest.mark.parametrize(
    ("names", "first", "second", "shared"),
    [(["a/b", "a_b"], "a/b", "a_b", "a_b"), (["c 4", "c_4"], "c 4", "c_4", "c_4"), (["", "_"], "", "_", "_")],
)
def test_class_names_whose_tags_collide_are_rejected_naming_both(names, first, second, shared):
    # The collision is real: both names give the same TensorBoard tag.
    assert tag("per_class", "recall", subject=first) == tag("per_class", "recall", subject=second)
    message = f"but {first!r} and {second!r} both become {shared!r}"
    with pytest.raises(ValueError, match="Expected `class_names` to give distinct TensorBoard tags, " + message):
        FitWatchConfig(class_names=names)


def test_a_str_of_class_names_is_rejected_not_taken_as_one_class_per_letter():
    with pytest.raises(TypeError, match=r"Expected `class_names` to be a sequence of str .* but got str 'abc'\."):
        FitWatchConfig(class_names="abc")
    with pytest.raises(TypeError, match=r"Expected 'class_names' in fw\.yaml to be"):
        FitWatchConfig.from_mapping({"class_names": 3}, source="fw.yaml")
    with pytest.raises(ValueError, match=r"Expected `class_names` to be unique, but got 'a' twice"):
        FitWatchConfig(class_names=["a", "b", "a"])


@pytest.mark.parametrize("stop_on", ["FW-DIVERGENCE", ["FW-DIVERGENCE"], tuple("FW-DIVERGENCE")])
def test_one_stop_on_code_as_a_str_is_one_code(stop_on):
    """A str, a list, and a str that a caller split with ``tuple()`` (what the adapters do today)."""
    assert FitWatchConfig(stop_on=stop_on).stop_on == ("FW-DIVERGENCE",)
    assert resolve_config(None, stop_on=stop_on).stop_on == ("FW-DIVERGENCE",)
    assert FitWatchConfig.from_mapping({"stop_on": "critical"}).stop_on == ("critical",)
    assert Monitor(detectors=[], stop_on="FW-DIVERGENCE").stop_on == ("FW-DIVERGENCE",)
    with pytest.raises(ValueError, match=r"Expected `stop_on` to hold finding codes .* but got 'FW-NOPE'\."):
        FitWatchConfig(stop_on="FW-NOPE")


@pytest.mark.parametrize(("n_bins", "error"), [(1, ValueError), (1001, ValueError), (0, ValueError), (2.0, TypeError)])
def test_n_bins_is_within_2_and_1000(n_bins, error):
    with pytest.raises(error, match="Expected `n_bins` to be"):
        FitWatchConfig(n_bins=n_bins)
    assert FitWatchConfig(n_bins=2).n_bins == 2 and FitWatchConfig(n_bins=1000).n_bins == 1000


def test_invalid_yaml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "fitwatch.yaml"
    path.write_text("n_bins: 10\nclass_names: [a, b\nwarn: true\n")
    with pytest.raises(ValueError, match=r"Expected `config` '.*fitwatch\.yaml' to be valid YAML, but it is not at line 3") as caught:
        resolve_config(str(path))
    assert "<unicode string>" not in str(caught.value)


@pytest.mark.parametrize("name", ["../../../x", "a/b.jsonl", "..", ".", "sub\\f.jsonl", ""])
def test_findings_file_cannot_leave_the_log_directory(name):
    with pytest.raises(ValueError, match=r"Expected `findings_file` to be a plain file name in the log directory"):
        FitWatchConfig(findings_file=name)
    assert FitWatchConfig(findings_file="my..findings.jsonl").findings_file == "my..findings.jsonl"
