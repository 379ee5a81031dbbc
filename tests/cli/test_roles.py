"""Tag roles: the HF Trainer's and Lightning's usual names, fitwatch's own tags, ``--map``."""

from __future__ import annotations

import pytest

from fitwatch.report.roles import ROLES, RoleMapping, assign_roles, detect_prefix, parse_mapping
from fitwatch.sinks.tags import tag

# What `TensorBoardCallback.rewrite_logs` makes of a Trainer run whose compute_metrics gives accuracy and f1.
HF_TAGS = [
    "train/loss",
    "train/grad_norm",
    "train/learning_rate",
    "train/epoch",
    "eval/loss",
    "eval/accuracy",
    "eval/f1",
    "eval/runtime",
    "eval/samples_per_second",
    "eval/steps_per_second",
    "train/train_runtime",
    "train/train_samples_per_second",
    "train/train_steps_per_second",
    "train/total_flos",
    "train/train_loss",
]
# self.log("train_loss", on_step=True, on_epoch=True), self.log("val_loss"), self.log("val_acc"),
# LearningRateMonitor(log_momentum=True) on AdamW with two named groups.
LIGHTNING_TAGS = [
    "train_loss_step",
    "train_loss_epoch",
    "epoch",
    "val_loss",
    "val_acc",
    "lr-AdamW/body",
    "lr-AdamW/head",
    "lr-AdamW/body-momentum",
    "lr-AdamW/head-momentum",
    "hp_metric",
]


def test_hf_trainer_names():
    roles = assign_roles(HF_TAGS)
    assert roles.series == {
        "train_loss": {"": "train/loss"},
        "val_loss": {"": "eval/loss"},
        "val_accuracy": {"": "eval/accuracy"},
        "val_f1": {"": "eval/f1"},
        "grad_norm": {"": "train/grad_norm"},
        "epoch_progress": {"": "train/epoch"},
        "lr": {"group0": "train/learning_rate"},
    }
    # Timings, throughput and the whole-run mean `train/train_loss` carry nothing: not listed for --map.
    assert roles.unmapped == [] and not roles.fitwatch


def test_lightning_names_and_lr_monitor_groups():
    roles = assign_roles([*LIGHTNING_TAGS, "val_my_score"])
    assert roles.tags("train_loss") == ["train_loss_step"]
    assert roles.tags("train_mean_loss") == ["train_loss_epoch"]
    assert roles.tags("val_loss") == ["val_loss"] and roles.tags("val_accuracy") == ["val_acc"]
    assert roles.series["lr"] == {"AdamW/body": "lr-AdamW/body", "AdamW/head": "lr-AdamW/head"}
    assert roles.tags("epoch") == ["epoch"]
    assert roles.unmapped == ["val_my_score"]


def test_fitwatch_tags_with_a_detected_prefix():
    prefix = "fw/"
    names = [
        tag("performance", "loss", split="val", prefix=prefix),
        tag("performance", "loss", split="train", prefix=prefix),
        tag("performance", "step_loss", split="train", prefix=prefix),
        tag("performance", "macro_f1", split="val", prefix=prefix),
        tag("calibration", "ece", split="val", prefix=prefix),
        tag("calibration", "ece", split="train", prefix=prefix),
        tag("health", "samples", split="val", prefix=prefix),
        tag("per_class", "recall", subject="cat", split="val", prefix=prefix),
        tag("per_class", "recall", subject="dog", split="val", prefix=prefix),
        tag("per_class", "recall", subject="dog", split="train", prefix=prefix),
        tag("optimizer", "lr", subject="head", prefix=prefix),
        tag("weights", "update_ratio", subject="encoder.layer.0", prefix=prefix),
        tag("gap", "loss", prefix=prefix),
        tag("findings", "FW-OVERFIT", prefix=prefix),
        "epoch",
        "val_loss",  # the user's own, next to fitwatch's: fitwatch's wins
    ]
    assert detect_prefix(names) == prefix
    roles = assign_roles(names)
    assert roles.fitwatch and roles.prefix == prefix
    assert roles.tags("val_loss") == ["fw/performance/loss/val"]
    assert roles.tags("train_mean_loss") == ["fw/performance/loss/train"]
    assert roles.tags("train_loss") == ["fw/performance/step_loss/train"]
    assert roles.tags("val_f1") == ["fw/performance/macro_f1/val"]
    assert roles.tags("train_ece") == ["fw/calibration/ece/train"]
    assert roles.tags("val_samples") == ["fw/health/samples/val"]
    assert roles.series["class_recall"] == {
        "cat": "fw/per_class/recall/cat/val",
        "dog": "fw/per_class/recall/dog/val",
    }
    assert roles.series["lr"] == {"head": "fw/optimizer/lr/head"}
    assert roles.series["update_ratio"] == {"encoder.layer.0": "fw/weights/update_ratio/encoder.layer.0"}
    assert roles.tags("epoch") == ["epoch"]
    assert roles.unmapped == []


def test_explicit_mappings_win_and_none_drops_a_tag():
    names = ["eval/loss", "my_val_loss", "loss", "sched/lr_head", "sched/lr_body"]
    mappings = [
        parse_mapping("my_val_loss=val_loss"),
        parse_mapping("loss=none"),
        parse_mapping("sched/lr_head=lr:head"),
        parse_mapping("sched/lr_body=lr"),
    ]
    roles = assign_roles(names, mappings)
    assert roles.tags("val_loss") == ["my_val_loss"]
    assert "train_loss" not in roles.series  # `loss` would be the training loss, but was dropped
    assert roles.series["lr"] == {"head": "sched/lr_head", "sched/lr_body": "sched/lr_body"}
    assert roles.unmapped == []  # eval/loss lost to the mapping but is a known name


def test_parse_mapping_accepts_equals_in_tags_and_subjects():
    assert parse_mapping("a=b=val_ece") == RoleMapping("a=b", "val_ece", None)
    assert parse_mapping(" x = class_recall:New York ") == RoleMapping("x", "class_recall", "New York")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("val_acc", r"Expected `--map` to be TAG=ROLE, but got 'val_acc'"),
        ("=val_loss", r"Expected `--map` to name a tag before '='"),
        ("x=validation_loss", r"Expected a role in `--map` \(train_loss, .*\), but got 'validation_loss'"),
        (
            "x=val_loss:head",
            (
                r"Expected a subject after ':' only for the roles class_precision, .*, lr, update_ratio, "
                r"but got 'x=val_loss:head'"
            ),
        ),
        ("x=lr:", r"Expected a subject after ':' in `--map`, but got 'x=lr:'"),
    ],
)
def test_parse_mapping_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_mapping(text)


def test_every_known_name_maps_to_a_role():
    from fitwatch.report.roles import KNOWN_TAGS

    assert set(KNOWN_TAGS) <= set(ROLES)
