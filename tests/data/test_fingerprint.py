"""Run fingerprints: versions, model and tokenizer hashes, data hashes, git, JSON round trip, diffs."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
import torch

from fitwatch.data import diff_fingerprints, read_fingerprint, run_fingerprint, write_fingerprint
from fitwatch.data.fingerprint import FINGERPRINT_FILE, FingerprintChange


def tiny_bert(**overrides):
    from transformers import BertConfig, BertModel

    settings = {
        "vocab_size": 50,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
    }
    settings.update(overrides)
    return BertModel(BertConfig(**settings))


def tiny_tokenizer(vocab=("a", "b"), **kwargs):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(
        models.WordLevel({"[UNK]": 0, **{w: i + 1 for i, w in enumerate(vocab)}}, unk_token="[UNK]")
    )
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[UNK]", **kwargs)


def test_versions_platform_and_json_safety():
    fp = run_fingerprint()
    assert fp["versions"]["torch"] == importlib.metadata.version("torch")
    assert fp["versions"]["numpy"] == importlib.metadata.version("numpy")
    assert fp["platform"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert json.loads(json.dumps(fp)) == fp
    assert set(fp) == {"schema", "created", "versions", "platform", "git"}


def test_model_config_hash_ignores_where_it_was_saved():
    a, b = tiny_bert(), tiny_bert()
    b.config._name_or_path = "/somewhere/else"
    fa, fb = run_fingerprint(model=a)["model"], run_fingerprint(model=b)["model"]
    assert fa["config_hash"] == fb["config_hash"]
    assert fa["class"] == "transformers.models.bert.modeling_bert.BertModel"
    assert fa["num_parameters"] == sum(p.numel() for p in a.parameters())
    changed = run_fingerprint(model=tiny_bert(hidden_dropout_prob=0.0))["model"]
    assert changed["config_hash"] != fa["config_hash"]


def test_parameter_layout_hash_sees_frozen_layers_and_new_heads():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    before = run_fingerprint(model=model)["model"]
    assert "config_hash" not in before
    model[0].weight.requires_grad_(False)
    frozen = run_fingerprint(model=model)["model"]
    assert frozen["parameters_hash"] != before["parameters_hash"]
    assert frozen["trainable_parameters"] == before["trainable_parameters"] - 12
    other_head = run_fingerprint(model=torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5)))[
        "model"
    ]
    assert other_head["parameters_hash"] != before["parameters_hash"]


def test_tokenizer_hash():
    base = run_fingerprint(tokenizer=tiny_tokenizer())["tokenizer"]
    assert base["hash"] == run_fingerprint(tokenizer=tiny_tokenizer())["tokenizer"]["hash"]
    assert base["vocab_size"] == 3
    assert run_fingerprint(tokenizer=tiny_tokenizer(vocab=("a", "c")))["tokenizer"]["hash"] != base["hash"]
    assert run_fingerprint(tokenizer=tiny_tokenizer(padding_side="left"))["tokenizer"]["hash"] != base["hash"]
    backend_only = run_fingerprint(tokenizer=tiny_tokenizer().backend_tokenizer)["tokenizer"]
    assert backend_only["class"] == "tokenizers.Tokenizer"


def test_data_hashes():
    texts = [f"sample {i}" for i in range(5000)]
    fp = run_fingerprint(train_samples=texts, val_samples=texts[:10], max_samples=100)
    assert fp["data"]["train"] == {
        "n": 5000,
        "n_hashed": 100,
        "sampling": "evenly spaced",
        "hash": fp["data"]["train"]["hash"],
    }
    assert fp["data"]["val"]["sampling"] == "all" and fp["data"]["val"]["n_hashed"] == 10
    same = run_fingerprint(train_samples=list(texts), max_samples=100)["data"]["train"]["hash"]
    assert same == fp["data"]["train"]["hash"]
    changed = list(texts)
    changed[4950] = "another sample"  # index 99 * 5000 // 100 = 4950 is hashed
    assert run_fingerprint(train_samples=changed, max_samples=100)["data"]["train"]["hash"] != same
    streamed = run_fingerprint(train_samples=iter(texts), max_samples=3)["data"]["train"]
    assert streamed["sampling"] == "first" and streamed["n"] is None and streamed["n_hashed"] == 3
    assert run_fingerprint(train_samples=[{"text": "a", "label": 1}])["data"]["train"]["n_hashed"] == 1


def test_git_commit_of_the_running_script(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    script = repo / "train.py"
    script.write_text("print('hi')\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(sys, "argv", [str(script)])
    info = run_fingerprint()["git"]
    assert info["commit"] == head and info["dirty"] is False
    script.write_text("print('changed')\n")
    assert run_fingerprint()["git"]["dirty"] is True
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "run.py").write_text("")
    monkeypatch.setattr(sys, "argv", [str(outside / "run.py")])
    assert run_fingerprint()["git"] is None


def test_write_and_read(tmp_path):
    fp = run_fingerprint(train_samples=["a"], extra={"lr": 1e-3, "tags": ["x"]})
    path = write_fingerprint(tmp_path / "run1", fp)
    assert path == tmp_path / "run1" / FINGERPRINT_FILE
    assert read_fingerprint(tmp_path / "run1") == fp == read_fingerprint(path)
    assert "versions" in read_fingerprint(write_fingerprint(tmp_path / "run2"))
    with pytest.raises(FileNotFoundError, match="Expected a fingerprint.json at"):
        read_fingerprint(tmp_path / "missing")


def test_diff():
    a = {
        "schema": 1,
        "created": "t1",
        "versions": {"torch": "2.3.0", "numpy": "1.26"},
        "data": {"val": {"hash": "a" * 64, "n": 10}},
        "extra": {"lr": 0.1},
    }
    b = {
        "schema": 1,
        "created": "t2",
        "versions": {"torch": "2.4.0", "peft": "0.11"},
        "data": {"val": {"hash": "b" * 64, "n": 10}},
        "extra": {"lr": 0.1},
    }
    changes = diff_fingerprints(a, b)
    assert changes == [
        FingerprintChange("versions.numpy", "1.26", None, "removed"),
        FingerprintChange("versions.peft", None, "0.11", "added"),
        FingerprintChange("versions.torch", "2.3.0", "2.4.0"),
        FingerprintChange("data.val.hash", "a" * 64, "b" * 64),
    ]
    assert [str(c) for c in changes] == [
        "versions.numpy: 1.26 -> (absent)",
        "versions.peft: (absent) -> 0.11",
        "versions.torch: 2.3.0 -> 2.4.0",
        "data.val.hash: aaaaaaaaaaaa -> bbbbbbbbbbbb",
    ]
    assert diff_fingerprints(a, a) == []
    fp = run_fingerprint()
    assert (
        diff_fingerprints(fp, run_fingerprint()) == []
    )  # two runs of the same thing: only `created` differs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": object()}, TypeError, "Expected `model` to be a torch module or to have a `config`"),
        ({"tokenizer": object()}, TypeError, "Expected `tokenizer` to be a Hugging Face tokenizer"),
        (
            {"train_samples": "abc"},
            TypeError,
            "Expected `train_samples` to be a sequence of samples, but got str",
        ),
        ({"val_samples": [{1, 2}]}, TypeError, r"Expected `val_samples\[0\]` to be text"),
        ({"extra": [1]}, TypeError, "Expected `extra` to be a mapping, but got list"),
        ({"extra": {"f": object()}}, TypeError, "Expected `extra` to be JSON-serialisable"),
        ({"max_samples": 0}, ValueError, "Expected `max_samples` to be a positive int, but got 0"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        run_fingerprint(**kwargs)


def test_diff_bad_input():
    with pytest.raises(TypeError, match="Expected `b` to be a fingerprint mapping, but got list"):
        diff_fingerprints({}, [])
