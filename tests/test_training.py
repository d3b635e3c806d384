"""Training: short real runs end to end (exact metrics, determinism, resume after a stop or a kill),
and the pure pieces of training (recipes, divergence, augmentation) on synthetic tensors."""

from __future__ import annotations

import ast
import csv
import functools
import json
import math
import signal
import subprocess
import sys
import textwrap

import nbformat
import pytest
import torch
import torch.nn.functional as F
from conftest import needs_mnist

import lenet5_helpers as lh
from lenet5_series import runs
from lenet5_series.paths import NOTEBOOKS_DIR


def train(data, run_dir, epochs=2, seed=0, **kwargs):
    lh.seed_everything(seed)
    model = lh.LeNet5()
    history = lh.fit(model, data, run_dir, epochs=epochs, seed=seed, progress=False, **kwargs)
    return model, history


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@needs_mnist
def test_a_short_run_learns_and_writes_its_run_folder(mnist_2000, tmp_path):
    lh.seed_everything(0)
    untrained_loss, _ = lh.evaluate(lh.LeNet5(), *mnist_2000["train"])
    assert untrained_loss == pytest.approx(math.log(10), abs=0.05)
    model, history = train(mnist_2000, tmp_path, epochs=2)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["train_loss"] < min(history[0]["train_loss"], untrained_loss) - 0.5
    assert history[-1]["test_accuracy"] > 0.5  # chance is 0.1
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                             "seconds", "lr", "val_loss", "val_accuracy", "momentum"]
    assert lh.read_history(tmp_path) == history
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"test_accuracy", "train_accuracy", "test_loss", "train_loss", "epochs", "recipe", "seed",
            "device", "seconds_per_epoch", "torch_version"} <= set(metrics)
    assert metrics["test_accuracy"] == history[-1]["test_accuracy"] and metrics["epochs"] == 2
    assert metrics["finished"] and metrics["device"] == "cpu"
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    assert all(torch.equal(a, b) for a, b in zip(checkpoint["model"].values(),
                                                 model.state_dict().values(), strict=True))
    assert not list(tmp_path.glob(".*.tmp"))


@needs_mnist
def test_accuracy_and_loss_are_exact_over_all_images(mnist_2000):
    lh.seed_everything(0)
    model = lh.LeNet5()
    x, y = mnist_2000["test"]
    x, y = x[:1234], y[:1234]  # not a multiple of any batch size
    loss, accuracy = lh.evaluate(model, x, y)
    with torch.no_grad():
        logits = model(x)
    assert accuracy == (logits.argmax(1) == y).sum().item() / 1234
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


@needs_mnist
def test_the_same_seed_gives_the_same_history(mnist_2000, tmp_path):
    _, first = train(mnist_2000, tmp_path / "a", epochs=1, seed=3)
    _, second = train(mnist_2000, tmp_path / "b", epochs=1, seed=3)
    _, other = train(mnist_2000, tmp_path / "c", epochs=1, seed=4)
    assert without_time(first) == without_time(second)
    assert without_time(first) != without_time(other)


@needs_mnist
def test_resume_gives_the_same_history_as_a_run_never_stopped(mnist_2000, tmp_path, monkeypatch):
    _, straight = train(mnist_2000, tmp_path / "straight", epochs=3, augment=True)
    real_save = runs.save_run

    def save_then_stop(run_dir, config, model, optimizer, scheduler, generator, history):
        real_save(run_dir, config, model, optimizer, scheduler, generator, history)
        if len(history) == 2:
            raise KeyboardInterrupt  # the learner presses stop after epoch 2

    monkeypatch.setattr(runs, "save_run", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(mnist_2000, tmp_path / "stopped", epochs=3, augment=True)
    monkeypatch.setattr(runs, "save_run", real_save)
    assert json.loads((tmp_path / "stopped" / "metrics.json").read_text())["epochs"] == 2
    assert not (tmp_path / "stopped" / ".lock").exists()
    lh.seed_everything(99)  # a new process, other random states: the checkpoint restores them all
    resumed = lh.fit(lh.LeNet5(), mnist_2000, tmp_path / "stopped", epochs=3, augment=True, seed=0,
                     resume=True, progress=False)
    assert without_time(resumed) == without_time(straight)


@needs_mnist
def test_rerunning_a_finished_run_loads_it_instead_of_training(mnist_2000, tmp_path, capsys):
    model, history = train(mnist_2000, tmp_path, epochs=1)
    fresh = lh.LeNet5()
    again = lh.fit(fresh, mnist_2000, tmp_path, epochs=1, seed=0, progress=False)
    assert again == history and "already holds this finished run" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


@needs_mnist
def test_a_run_that_diverges_stops_with_advice(mnist_2000, tmp_path):
    advice = r"diverged in epoch 1: the train loss is nan.*lr=1e\+06.*try lr=500000"
    with pytest.raises(runs.RunError, match=advice):
        train(mnist_2000, tmp_path, epochs=2, lr=1e6)
    assert len(lh.read_history(tmp_path)) == 1  # the broken epoch is on record, no more
    assert not (tmp_path / ".lock").exists()


@pytest.mark.parametrize(("accuracies", "loss", "message"), [
    ([0.10, 0.15, 0.22], 2.2, None),  # the reference recipe: slow, but rising
    ([0.95, 0.98, 0.97], 0.1, None),  # a small dip is noise
    ([0.95, 0.98, 0.11], 2.3, r"epoch 3: train accuracy fell from 98\.0% to 11\.0%"),  # one class
    ([0.10], float("nan"), "epoch 1: the train loss is nan"),  # the loss blew up
])
def test_check_diverged(accuracies, loss, message):
    history = [{"epoch": i + 1, "train_accuracy": a, "train_loss": 0.5} for i, a in enumerate(accuracies)]
    history[-1]["train_loss"] = loss
    if message:
        with pytest.raises(runs.RunError, match=f"Training diverged in {message}.*try lr=0.075"):
            runs.check_diverged(history, 0.15)
    else:
        runs.check_diverged(history, 0.15)


def test_divergence_reads_any_split_and_check_diverged_is_its_train_rule():
    rows = [{"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.3},
            {"epoch": 2, "val_accuracy": 0.1, "val_loss": 2.3}]
    assert runs.divergence(rows, "val") == "val accuracy fell from 90.0% to 10.0%"
    assert runs.divergence(rows[:1], "val") is None
    blown = [{"epoch": 1, "train_accuracy": 0.1, "train_loss": math.inf}]
    assert runs.divergence(blown) == "the train loss is inf"


def one_augmented_epoch(**kwargs) -> dict:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 32, 32, generator=g), torch.randint(0, 10, (96,), generator=g)
    model = lh.initialise(lh.LeNet5(), 0)
    opt, sched = lh.make_optimizer(model, lh.resolve_recipe("default", epochs=1), 3)
    lh.train_epoch(model, x, y, opt, sched, 32, torch.Generator().manual_seed(1), augment=True, **kwargs)
    return model.state_dict()


def test_train_epoch_distorts_with_random_distort_unless_given_another():
    """augment=True without `distort` is random_distort with its own sizes, the same random numbers in
    the same order (stored runs stay bit for bit); a `distort` given is used instead."""
    own = one_augmented_epoch()
    assert all(torch.equal(a, b) for a, b in zip(own.values(), one_augmented_epoch(
        distort=lh.random_distort).values(), strict=True))
    milder = one_augmented_epoch(distort=functools.partial(lh.random_distort, max_rotate=5.0))
    assert not all(torch.equal(a, b) for a, b in zip(own.values(), milder.values(), strict=True))


def square_images(n=64):
    x = torch.full((n, 1, 32, 32), lh.BACKGROUND)
    x[:, :, 14:18, 14:18] = 1.0  # a small bright square in the middle
    return x


def centre_of_mass(x):
    weight = (x - lh.BACKGROUND)[:, 0]
    grid = torch.arange(32.0)
    total = weight.sum(dim=(1, 2))
    return (weight.sum(2) * grid).sum(1) / total, (weight.sum(1) * grid).sum(1) / total


def test_random_distort_moves_each_digit_a_little_and_its_own_way():
    x = square_images()
    out = lh.random_distort(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    rows, cols = centre_of_mass(out)  # shift <= 2 px per axis, then turned and scaled up to 1.15x:
    assert (rows - 15.5).abs().max() <= 2.9 and (cols - 15.5).abs().max() <= 2.9  # 2.3 (cos+sin)15°
    assert len({(round(r, 2), round(c, 2)) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}) == 64
    assert out.min() >= lh.BACKGROUND - 1e-5 and out.max() <= 1.0 + 1e-5
    again = lh.random_distort(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator alone decides: runs are reproducible


def test_random_distort_turns_and_scales_within_its_limits():
    x = square_images()
    shifted = lh.random_distort(x, max_rotate=0, max_scale=0, generator=torch.Generator().manual_seed(3))
    rows, cols = centre_of_mass(shifted)
    assert (rows - 15.5).abs().max() <= 2.001 and (cols - 15.5).abs().max() <= 2.001
    assert (rows - 15.5).abs().max() > 1.5  # the whole range is used
    turned = lh.random_distort(x, max_shift=0, max_rotate=15, max_scale=0,
                               generator=torch.Generator().manual_seed(1))
    rows, cols = centre_of_mass(turned)  # a turn about the centre leaves the centre in place
    assert torch.allclose(rows, torch.full_like(rows, 15.5), atol=0.05)
    assert not torch.allclose(turned, x, atol=0.1)
    scaled = lh.random_distort(x, max_shift=0, max_rotate=0, max_scale=0.15,
                               generator=torch.Generator().manual_seed(2))
    ink = (scaled - lh.BACKGROUND).sum(dim=(1, 2, 3)) / (x - lh.BACKGROUND).sum(dim=(1, 2, 3))
    assert ink.min() >= 0.85 ** 2 - 0.01 and ink.max() <= 1.15 ** 2 + 0.01  # area scales as size^2
    assert ink.max() - ink.min() > 0.2


def test_random_distort_with_no_range_changes_nothing_and_keeps_the_background():
    x = square_images(8)
    same = lh.random_distort(x, max_shift=0, max_rotate=0, max_scale=0)
    assert torch.allclose(same, x, atol=1e-5)
    blank = torch.full((8, 1, 32, 32), lh.BACKGROUND)
    assert torch.allclose(lh.random_distort(blank), blank, atol=1e-6)


def test_random_distort_elastic_bends_smoothly_by_about_its_size_and_is_off_by_default():
    """A ramp image (pixel value = its column) read back gives each pixel's horizontal move: with
    elastic=e and no affine part the moves are about e pixels, differ little between neighbours (a
    smooth bend, not noise), and elastic=0 (the default) draws no extra random numbers."""
    ramp = torch.arange(32.0).expand(64, 1, 32, 32) + lh.BACKGROUND
    bent = lh.random_distort(ramp, max_shift=0, max_rotate=0, max_scale=0, elastic=1.5,
                             generator=torch.Generator().manual_seed(0))
    moves = (bent - ramp)[:, 0, 6:26, 6:26]  # inside: never read from beyond the edge
    assert 0.6 * 1.5 <= moves.std() <= 1.5 * 1.5
    assert (moves[:, :, 1:] - moves[:, :, :-1]).abs().mean() < 0.25 * moves.abs().mean()  # noise: above 1
    assert (moves.abs().amax(dim=(1, 2)) > 0.3).all()  # every image is bent
    used, expected = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    lh.random_distort(ramp, generator=used)  # elastic=0: only the affine map's 4 numbers per image
    torch.rand(64, 4, generator=expected)
    assert torch.equal(used.get_state(), expected.get_state())


def test_recipes_and_overrides():
    reference = lh.resolve_recipe("reference")
    assert (reference["lr"], reference["momentum"], reference["epochs"]) == (1e-3, 0, 500)
    settings = lh.resolve_recipe("default", epochs=3, batch_size=64, lr=0.05)
    assert [settings[k] for k in ("epochs", "batch_size", "lr", "nesterov")] == [3, 64, 0.05, True]
    fast = lh.resolve_recipe("fast")  # the default recipe, shorter, channels-last (notebook 07)
    assert {k: v for k, v in fast.items() if v != lh.RECIPES["default"].get(k)} == \
        {"epochs": 2, "batch_size": 96, "channels_last": True, "recipe": "fast"}
    with pytest.raises(ValueError, match="recipe='quickest'"):
        lh.resolve_recipe("quickest")
    with pytest.raises(ValueError, match="now called 'reference'"):
        lh.resolve_recipe("seed")


def test_steps_per_epoch_counts_the_last_smaller_batch():
    assert lh.steps_per_epoch(60_000, 128) == 469 and lh.steps_per_epoch(256, 128) == 2


KILLED = textwrap.dedent("""
    import os, signal, sys
    import lenet5_helpers as lh

    real_epoch = lh.train_epoch
    epochs_started = []

    def train_then_die(model, images, labels, *rest):
        epochs_started.append(1)
        if len(epochs_started) == 2:  # epoch 1's files are written; now die inside epoch 2
            real_epoch(model, images[:512], labels[:512], *rest)
            os.kill(os.getpid(), signal.SIGKILL)
        real_epoch(model, images, labels, *rest)

    lh.train_epoch = train_then_die if sys.argv[2] == "kill" else real_epoch
    data = lh.mnist_tensors(train_subset=2000)
    lh.fit(lh.LeNet5(), data, sys.argv[1], epochs=3, seed=0, progress=False)
""")


@needs_mnist
def test_a_run_killed_mid_epoch_keeps_its_last_epoch_and_resumes_to_the_same_end(tmp_path, monkeypatch):
    # the three trainings compared digit for digit use one fixed thread count: otherwise each would
    # take its share of the cores among whatever else trains on the machine (threads.SharedCores)
    fixed = str(torch.get_num_threads())
    monkeypatch.setenv("LENET5_THREADS", fixed)
    monkeypatch.setenv("OMP_NUM_THREADS", fixed)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([sys.executable, "-c", KILLED, str(straight), "no"], check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-c", KILLED, str(killed), "kill"], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    metrics = json.loads((killed / "metrics.json").read_text())
    checkpoint = lh.load_checkpoint(killed / "checkpoint.pt")
    assert (metrics["epochs"], metrics["finished"], checkpoint["epoch"]) == (1, False, 1)
    assert len(lh.read_history(killed)) == 1 and (killed / ".lock").exists()  # the lock: taken over
    assert not list(killed.glob(".*.tmp"))
    lh.seed_everything(123)
    resumed = lh.fit(lh.LeNet5(), lh.mnist_tensors(train_subset=2000), killed, epochs=3, seed=0,
                     resume=True, progress=False)
    final = json.loads((straight / "metrics.json").read_text())
    assert len(resumed) == 3 and resumed[-1]["test_accuracy"] == final["test_accuracy"]
    assert resumed[-1]["train_loss"] == final["train_loss"]


def test_a_run_dir_in_use_is_refused_before_the_model_is_touched(tmp_path):
    """fit claims the run folder before it sets the first weights: a run refused because another live
    training holds the folder leaves the model passed in as it was."""
    data = {"train": (torch.zeros(8, 1, 32, 32), torch.zeros(8, dtype=torch.long))}
    model = lh.LeNet5()
    with torch.no_grad():
        for weight in model.parameters():
            weight.fill_(0.5)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # the live training
    try:
        (tmp_path / ".lock").write_text(str(other.pid))
        with pytest.raises(runs.RunError, match="in use by another training run"):
            lh.fit(model, data, tmp_path, epochs=1, progress=False)
        assert (tmp_path / ".lock").read_text() == str(other.pid)  # its lock is left as it was
    finally:
        other.kill()
        other.wait()
    assert all(bool((weight == 0.5).all()) for weight in model.parameters())


@needs_mnist
def test_a_run_dir_holding_another_run_is_refused_in_the_parameter_check(tmp_path):
    data = lh.mnist_tensors(train_subset=2000)  # with the validation split, as the notebooks run
    lh.fit(lh.LeNet5(), data, tmp_path, epochs=1, progress=False)
    same = dict(run_dir=tmp_path, recipe="default", epochs=1, batch_size=None, lr=None, seed=0,
                augment=False, amp=False, train_subset=2000)
    assert lh.checked_params(**same, resume=False)["run_dir"] == tmp_path  # finished, same: loads
    with pytest.raises(runs.RunError, match="already holds another run.*epochs: 1 there, 12 here"):
        lh.checked_params(**dict(same, epochs=None), resume=False)
    with pytest.raises(runs.RunError, match="train_size: 2000 there, 55000 here"):
        lh.checked_params(**dict(same, train_subset=None), resume=True)


# ------------------------------------------------------------------------------------------------
# The notebooks write the helper's loops out; the checks that the two agree live here
# ------------------------------------------------------------------------------------------------

def notebook_code(name: str, first_line: str) -> str:
    """The source of the code cell of notebooks/<name> that begins with `first_line`."""
    nb = nbformat.read(str(NOTEBOOKS_DIR / name), as_version=4)
    (found,) = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith(first_line)]
    return found


def notebook_function(name: str, function: str):
    """The function `function` as a notebook cell defines it, run with torch, F and lh."""
    source = notebook_code(name, f"def {function}(")
    (tree,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function]
    namespace = {"torch": torch, "F": F, "lh": lh}
    exec(compile(ast.Module([tree], type_ignores=[]), name, "exec"), namespace)
    return namespace[function]


@needs_mnist
def test_03s_written_out_recipe_is_what_make_optimizer_and_train_epoch_do(mnist_2000, capsys):
    """Notebook 03, "The default recipe, written out": its cell, run as it stands, ends with the
    weights lh.make_optimizer + lh.train_epoch give from the same seed (lh.fit's loop), bit for bit."""
    x, y = mnist_2000["train"]
    namespace = {"torch": torch, "F": F, "lh": lh, "p": {"device": torch.device("cpu"), "seed": 0},
                 "x_train": x, "y_train": y, "x_val": x[:500], "y_val": y[:500]}
    exec(notebook_code("03-training.ipynb", 'settings = lh.resolve_recipe("default", epochs=1)'), namespace)
    assert "validation accuracy" in capsys.readouterr().out
    settings, steps = namespace["settings"], namespace["steps"]
    part_x, part_y = namespace["part_x"], namespace["part_y"]
    by_helper = lh.initialise(lh.LeNet5(), 0)
    optimizer, scheduler = lh.make_optimizer(by_helper, settings, steps)
    lh.train_epoch(by_helper, part_x, part_y, optimizer, scheduler, settings["batch_size"],
                   torch.Generator().manual_seed(0), label_smoothing=settings["label_smoothing"])
    by_hand = namespace["recipe_by_hand"].state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(by_hand, by_helper.state_dict().values(), strict=True))


def test_03s_distort_is_random_distort():
    """Notebook 03, "Augmentation: new digits for free", writes lh.random_distort out: the same
    random numbers give the same images."""
    distort = notebook_function("03-training.ipynb", "distort")
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    for seed in (0, 1):
        assert torch.equal(distort(images, generator=torch.Generator().manual_seed(seed)),
                           lh.random_distort(images, generator=torch.Generator().manual_seed(seed)))


def test_04s_shift_is_shift_images():
    """Notebook 04, "Shifted digits", writes lh.shift_images out."""
    shift = notebook_function("04-results.ipynb", "shift")
    images = torch.rand(8, 1, 32, 32)
    for dx, dy in [(0, 0), (3, 0), (-2, 4), (0, -1), (4, -4)]:
        assert torch.equal(shift(images, dx, dy), lh.shift_images(images, dx, dy))


@needs_mnist
def test_the_learning_rate_and_momentum_a_run_records_lie_on_schedule_per_step(mnist_2000, tmp_path):
    """history.csv's lr and momentum (at the start of each epoch) are schedule_per_step's values
    for the run's settings, read from its checkpoint: notebook 03 draws that schedule."""
    _, history = train(mnist_2000, tmp_path, epochs=3)
    config = lh.load_checkpoint(tmp_path / lh.CHECKPOINT)["config"]
    steps = lh.steps_per_epoch(config["train_size"], config["batch_size"])
    schedule = lh.schedule_per_step(config, steps)
    for h in history:
        for key in ("lr", "momentum"):
            assert math.isclose(schedule[key][(h["epoch"] - 1) * steps], h[key]), (key, h)


@needs_mnist
def test_a_fast_run_on_lenet5fast_is_a_lenet5_run(tmp_path):
    """The fast recipe trains LeNet5Fast and records it as "LeNet5": the parameter check accepts the
    finished run, and LeNet5 (notebooks 04, 06, 07) loads its checkpoint and gives its scores."""
    data = lh.mnist_tensors(train_subset=2000)  # with the validation split, as the notebooks run
    fast = lh.lenet5_for("fast")
    lh.fit(fast, data, tmp_path, recipe="fast", epochs=1, progress=False)
    checkpoint = lh.load_checkpoint(tmp_path / lh.CHECKPOINT)
    assert checkpoint["config"]["arch"] == "LeNet5"
    same = dict(run_dir=tmp_path, recipe="fast", epochs=1, batch_size=None, lr=None, seed=0,
                augment=False, amp=False, train_subset=2000, resume=False, device="cpu")
    assert lh.checked_params(**same)["run_dir"] == tmp_path  # finished, the same run: it loads
    plain = lh.LeNet5()
    plain.load_state_dict(checkpoint["model"])
    x = data["val"][0][:64]
    assert torch.allclose(plain(x), fast(x), atol=1e-5)


def with_cpu_flags(monkeypatch, **flags):
    """Make torch report a CPU with these instruction flags (the rest of its capabilities kept)."""
    real = torch.cpu.get_capabilities()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**real, "avx512_bf16": False,
                                                                  "amx_bf16": False, **flags})


@pytest.mark.parametrize("flags, has", [({}, False), ({"avx512_bf16": True}, True),
                                         ({"amx_bf16": True}, True)])
def test_the_fast_recipe_computes_in_bfloat16_only_on_a_cpu_with_its_instructions(monkeypatch, flags, has):
    with_cpu_flags(monkeypatch, **flags)
    assert lh.cpu_has_bfloat16() is has
    assert lh.BFLOAT16_ON_CPU == ("fast",)
    assert lh.cpu_bfloat16("fast", "cpu") is has and lh.cpu_bfloat16("fast", torch.device("cpu")) is has
    assert not lh.cpu_bfloat16("default", "cpu") and not lh.cpu_bfloat16("reference", "cpu")  # only "fast"
    assert not lh.cpu_bfloat16("fast", "cuda") and not lh.cpu_bfloat16("fast", "mps")  # a GPU: amp=True asks


@pytest.mark.parametrize("has", [False, True])
def test_fit_trains_the_fast_recipe_in_bfloat16_where_the_cpu_has_it_and_records_it(monkeypatch, tmp_path,
                                                                                    has):
    with_cpu_flags(monkeypatch, avx512_bf16=has)
    used = []
    real_epoch = lh.train_epoch
    monkeypatch.setattr(lh, "train_epoch", lambda *a, **k: used.append(a[8]) or real_epoch(*a, **k))
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    data = {"train": (x, y), "test": (x, y)}
    lh.fit(lh.lenet5_for("fast"), data, tmp_path, recipe="fast", epochs=2, progress=False)
    assert used == [has, has]  # train_epoch's 9th argument: amp
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["cpu_bfloat16"] is has and metrics["amp"] is False  # amp: what was asked for
    lh.fit(lh.LeNet5(), data, tmp_path / "default", epochs=1, progress=False)  # another recipe: float32
    assert used[-1] is False and not json.loads((tmp_path / "default" / "metrics.json").read_text())[
        "cpu_bfloat16"]


def test_a_fast_run_continues_and_reloads_on_a_cpu_with_other_instructions(monkeypatch, tmp_path):
    """Whether the fast recipe computed in bfloat16 is the machine's doing, not the run's settings: a
    run started on a CPU without bfloat16 instructions resumes on one with them (and the finished run
    reloads on one without), each epoch in the precision of the CPU it ran on."""
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    data = {"train": (x, y), "test": (x, y)}
    real_epoch, used = lh.train_epoch, []

    def epoch(*a, **k):
        if len(used) == 1 and not a[8]:
            raise RuntimeError("stopped after epoch 1")  # the run stops there, unfinished
        used.append(a[8])
        return real_epoch(*a, **k)

    monkeypatch.setattr(lh, "train_epoch", epoch)
    with_cpu_flags(monkeypatch, avx512_bf16=False)
    with pytest.raises(RuntimeError, match="stopped after epoch 1"):
        lh.fit(lh.lenet5_for("fast"), data, tmp_path, recipe="fast", epochs=2, progress=False)
    with_cpu_flags(monkeypatch, avx512_bf16=True)
    history = lh.fit(lh.lenet5_for("fast"), data, tmp_path, recipe="fast", epochs=2, resume=True,
                     progress=False)
    assert [h["epoch"] for h in history] == [1, 2] and used == [False, True]
    assert json.loads((tmp_path / "metrics.json").read_text())["cpu_bfloat16"] is True
    with_cpu_flags(monkeypatch, avx512_bf16=False)
    lh.fit(lh.lenet5_for("fast"), data, tmp_path, recipe="fast", epochs=2, progress=False)  # reloads
    assert used == [False, True]  # nothing trained again


def test_fit_records_lenet5fast_as_lenet5_and_another_network_by_its_own_name(tmp_path):
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    data = {"train": (x, y), "test": (x, y)}

    class Wider(lh.LeNet5):  # a learner's own variant: its checkpoints are not LeNet5's
        pass

    for model, arch in ((lh.LeNet5Fast(), "LeNet5"), (Wider(), "Wider")):
        lh.fit(model, data, tmp_path / arch, epochs=1, batch_size=8, progress=False)
        assert lh.load_checkpoint(tmp_path / arch / lh.CHECKPOINT)["config"]["arch"] == arch
