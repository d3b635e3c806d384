"""Fast tests (synthetic tensors, no MNIST): the validation split in fit, the run folder's added
columns and keys, the momentum the recipes really use, the per-step schedule, check_answer."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

import lenet5_helpers as lh
from lenet5_series import exercises, runs


def synthetic(n_train: int = 256, n_val: int = 64, n_test: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)

    return {"train": split(n_train), "val": split(n_val), "test": split(n_test)}


def test_with_a_val_split_fit_scores_val_every_epoch_and_test_once_at_the_end(tmp_path):
    seen = []
    history = lh.fit(lh.LeNet5(), synthetic(), tmp_path, epochs=3, progress=False,
                     on_epoch=lambda h: seen.append(len(h)))
    assert seen == [1, 2, 3]
    assert all(h["val_accuracy"] is not None and h["train_accuracy"] is not None for h in history)
    assert [h["test_accuracy"] is None for h in history] == [True, True, False]
    assert lh.read_history(tmp_path) == history  # empty cells come back as None
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                 "seconds", "lr"]  # the old columns keep their names and places
    assert {"val_loss", "val_accuracy", "momentum"} <= set(rows[0]) and rows[0]["test_accuracy"] == ""
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val_accuracy"] == history[-1]["val_accuracy"] and metrics["val_size"] == 64
    assert metrics["test_accuracy"] == history[-1]["test_accuracy"]
    assert (metrics["momentum"], metrics["cycle_momentum"], metrics["weight_decay"],
            metrics["label_smoothing"], metrics["schedule"]) == (0.9, True, 5e-4, 0.1, "onecycle")
    assert metrics["amp"] is False


def test_metrics_json_says_whether_the_run_trained_in_bfloat16():
    """amp=True is only accepted on a GPU; its record is written the same way on any device."""
    history = [{"epoch": 1, "train_accuracy": 0.9, "train_loss": 0.3, "seconds": 1.0}]
    for amp in (True, False):
        config = lh.run_config("default", epochs=1, amp=amp) | {"device": "cuda"}
        assert runs.metrics_from(config, history)["amp"] is amp


def test_without_a_val_split_fit_scores_test_every_epoch_as_before(tmp_path):
    data = synthetic()
    del data["val"]
    history = lh.fit(lh.LeNet5(), data, tmp_path, epochs=2, progress=False)
    assert all(h["test_accuracy"] is not None for h in history)
    assert all(h.get("val_accuracy") is None for h in history)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val_size"] == 0 and metrics["val_accuracy"] is None


def test_history_records_the_momentum_the_optimizer_used(tmp_path):
    history = lh.fit(lh.LeNet5(), synthetic(), tmp_path, epochs=3, progress=False)
    assert history[0]["momentum"] == pytest.approx(0.95)  # one-cycle starts at its highest momentum
    assert min(h["momentum"] for h in history) < 0.9  # and lowers it while the rate rises


@pytest.mark.parametrize("cycle, low, high", [(True, 0.85, 0.95), (False, 0.9, 0.9)])
def test_cycle_momentum_decides_whether_the_momentum_moves(cycle, low, high):
    settings = dict(lh.resolve_recipe("default", epochs=2), cycle_momentum=cycle)
    schedule = lh.schedule_per_step(settings, steps=50)
    assert len(schedule["lr"]) == len(schedule["momentum"]) == 100
    assert min(schedule["momentum"]) == pytest.approx(low, abs=1e-3)
    assert max(schedule["momentum"]) == pytest.approx(high, abs=1e-3)
    assert max(schedule["lr"]) == pytest.approx(0.15, rel=1e-3) and schedule["lr"][-1] < 1e-4


def test_the_default_recipe_keeps_cycling_momentum_and_the_reference_has_none():
    assert lh.RECIPES["default"]["cycle_momentum"] is True
    assert lh.RECIPES["reference"]["momentum"] == 0.0
    schedule = lh.schedule_per_step(lh.resolve_recipe("reference", epochs=1), steps=10)
    assert set(schedule["lr"]) == {1e-3} and set(schedule["momentum"]) == {0.0}


def test_plot_history_draws_a_run_with_one_test_point_and_redraws_one_figure(tmp_path):
    history = lh.fit(lh.LeNet5(), synthetic(), tmp_path, epochs=2, progress=False)
    fig = lh.plot_history(history)
    left, right = fig.axes
    lines = {line.get_label(): len(line.get_xdata()) for line in left.get_lines()}
    assert lines == {"train": 2, "val": 2, "test": 1}
    lowest = min(100 * h[f"{s}_accuracy"] for h in history for s in ("train", "val"))
    assert right.get_ylim()[0] <= lowest
    assert lh.plot_history(history[:1], fig) is fig and len(fig.axes) == 2


def test_a_train_subset_above_the_55000_training_images_is_refused_by_name():
    with pytest.raises(ValueError, match="train_subset=60000 is not accepted.*1 to 55,000"):
        lh.checked_params(train_subset=60000)


def test_check_answer_says_right_or_wrong_with_a_hint_and_never_stores_the_answer(capsys):
    assert lh.check_answer("03-1", math.log(10)) and "is right" in capsys.readouterr().out
    assert lh.check_answer("03-1", 2.3)  # rounded to the two decimals the exercise asks for
    assert not lh.check_answer("03-1", 2.5)
    out = capsys.readouterr().out
    assert "is not it" in out and "Hint:" in out
    assert lh.check_answer("01-2", 5) and not lh.check_answer("01-2", 1)
    assert lh.check_answer("03-5", 108) and not lh.check_answer("03-5", 107)
    assert lh.check_answer("04-2", 95) and lh.check_answer("01-3", 0.2892) and lh.check_answer("02-2", 1216)
    assert lh.check_answer("02-1", 28) and not lh.check_answer("02-1", 32)
    assert lh.check_answer("05-1", 32) and lh.check_answer("05-4", 0.353125)
    assert not lh.check_answer("05-4", 0.55)
    assert lh.check_answer("06-1", 4) and not lh.check_answer("06-1", 20)
    source = Path(exercises.__file__).read_text()  # where the answers are kept (lh re-exports it)
    assert lh.check_answer is exercises.check_answer
    answers = source[source.index("ANSWERS = {"):source.index("def check_answer")]
    assert "2.30" not in answers and "108" not in answers and "0.29" not in answers
    with pytest.raises(ValueError, match="exercise='09-9' has no stored answer"):
        lh.check_answer("09-9", 1)
