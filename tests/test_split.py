"""The validation split: fixed, disjoint, the right sizes, the training order kept (synthetic data);
the ablation benchmark uses the same split (real MNIST)."""

from __future__ import annotations

import ablation  # benchmarks/ablation.py (conftest puts benchmarks/ on sys.path)
import pytest
import torch
import tta  # benchmarks/tta.py
from conftest import needs_mnist

import lenet5_helpers as lh


def numbered(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n 'images' whose single pixel is their own index, so every image can be traced back."""
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    return x, torch.arange(n) % 10


def ids(split: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    return split[0].flatten().long().tolist()


def test_sizes_and_disjoint_cover():
    x, y = numbered(1000)
    train, val = lh.split_validation(x, y, size=100)
    assert len(train[0]) == len(train[1]) == 900 and len(val[0]) == len(val[1]) == 100
    assert not set(ids(train)) & set(ids(val))
    assert sorted(ids(train) + ids(val)) == list(range(1000))


def test_images_keep_their_labels_and_training_keeps_its_order():
    x, y = numbered(1000)
    train, val = lh.split_validation(x, y, size=100)
    for images, labels in (train, val):
        assert torch.equal(images.flatten().long() % 10, labels)
    assert ids(train) == sorted(ids(train))
    assert ids(val) != sorted(ids(val))  # a random draw, not the first or last 100


def test_the_same_images_every_call_whatever_the_global_seed():
    x, y = numbered(1000)
    torch.manual_seed(1)
    first = lh.split_validation(x, y, size=100)
    torch.manual_seed(2)
    torch.rand(10)
    second = lh.split_validation(x, y, size=100)
    assert ids(first[1]) == ids(second[1]) and ids(first[0]) == ids(second[0])


def test_default_size_holds_out_5000_of_60000():
    x, y = numbered(60_000)
    train, val = lh.split_validation(x, y)
    assert lh.VALIDATION_SIZE == 5_000
    assert len(train[0]) == 55_000 and len(val[0]) == 5_000
    assert len(set(ids(val))) == 5_000


@needs_mnist
def test_the_ablation_benchmark_trains_and_scores_on_the_notebooks_split(monkeypatch):
    """benchmarks/ablation.py must measure on the split the notebooks use: 55,000 training images and
    the same 5,000 validation images (splitting again would train on 50,000 and score other digits),
    with the threads it was given (through LENET5_THREADS, which the helper's thread budget reads)."""
    monkeypatch.setenv("LENET5_THREADS", "2")  # put back after the test: init_worker sets it
    before = torch.get_num_threads()
    try:
        ablation.init_worker(threads_each=1, with_test=False)
        assert torch.get_num_threads() == 1  # runs side by side share the cores instead of fighting
    finally:
        torch.set_num_threads(before)
    data = lh.mnist_tensors()
    assert len(ablation.WORKER["train"][0]) == lh.TRAIN_SIZE
    for split in ("train", "val"):
        assert all(torch.equal(a, b) for a, b in zip(ablation.WORKER[split], data[split], strict=True))


def tiny_data() -> dict:
    x, y = numbered(64)
    images = x.expand(64, 1, 32, 32).contiguous()
    return {"train": (images, y), "val": (images[:8], y[:8])}


def spy_on_distortion(monkeypatch) -> list[dict]:
    """lh.random_distort replaced for the test by one that records its sizes and changes nothing."""
    calls = []

    def spy(x, **sizes):
        calls.append(sizes)
        return x

    monkeypatch.setattr(lh, "random_distort", spy)
    return calls


def test_the_ablation_ladder_is_the_helpers_reference_recipe_plus_named_changes():
    assert ablation.REFERENCE == dict(lh.RECIPES["reference"], epochs=12, augment=False)
    assert all(ablation.STEPS["label-smoothing"][k] == v for k, v in lh.RECIPES["default"].items())
    for name, (_, change, _) in ablation.LADDER.items():  # each step: the one before, plus its change
        before = list(ablation.LADDER).index(name)
        base = ablation.STEPS[list(ablation.LADDER)[before - 1]] if before else ablation.REFERENCE
        assert ablation.STEPS[name] == {**base, **change}


def test_an_ablation_variant_trains_with_its_own_distortion_sizes(monkeypatch):
    """A variant's "distort" sizes must reach lh.random_distort (the sweep compared them) through
    lh.train_epoch's `distort`; a step without them gets the helper's own sizes."""
    calls = spy_on_distortion(monkeypatch)
    for step, expected in (("augmentation-milder", ablation.STEPS["augmentation-milder"]["distort"]),
                           ("augmentation", {})):
        calls.clear()
        ablation.train(dict(ablation.STEPS[step], epochs=1, batch_size=32), 0, tiny_data())
        assert len(calls) == 2 and all(c == {"generator": calls[0]["generator"], **expected} for c in calls)
    assert ablation.distortion(ablation.STEPS["augmentation"]) is None
    assert "turn 10 deg" in ablation.describe(ablation.STEPS["augmentation-milder"])
    assert "deg" not in ablation.describe(ablation.STEPS["augmentation"])  # old rows keep their names


def test_an_ablation_variant_can_leave_its_last_epochs_undistorted(monkeypatch):
    """"clean_last": k trains the last k epochs on the digits as they are (the sweep measured k = 2..8),
    and --final --recipe default-undistorted-end --augment scores exactly that variant's settings, so
    the test figures in final_test.csv belong to the variant chosen on validation."""
    calls = spy_on_distortion(monkeypatch)
    settings = dict(ablation.STEPS["augmentation-clean-last-4"], epochs=3, batch_size=32, clean_last=1)
    ablation.train(settings, 0, tiny_data())
    assert len(calls) == 2 * 2  # 2 batches in each of the first 2 epochs; none in the third
    assert ablation.describe(settings).endswith("augment True, not in the last 1 epochs")
    final = ablation.final_settings("default-undistorted-end", augment=True)  # what --final trains
    assert final == ablation.STEPS["augmentation-clean-last-4"] and final["clean_last"] == 4
    assert ablation.final_settings("default", augment=True) == ablation.STEPS["augmentation"]


def test_an_ablation_run_that_dies_stops_and_is_counted_as_diverged():
    """The rule fit stops on (runs.divergence), applied to the validation curve: a run whose
    validation loss is not a number stops in that epoch and is recorded as diverged."""
    data = {"train": (torch.randn(64, 1, 32, 32), torch.randint(0, 10, (64,)))}
    data["val"] = data["train"]
    _, scores = ablation.train(dict(ablation.STEPS["label-smoothing"], epochs=3, lr=1e6), 0, data)
    assert scores["diverged"] and len(scores["val_curve"].split()) < 3  # stopped before the end


@needs_mnist
def test_the_ablation_refit_trains_on_all_60000_and_reports_no_validation(monkeypatch):
    """--final --all-training-images: the 5,000 validation images join the training set, so there is
    no validation figure to report (an accuracy on images it trained on would read as one)."""
    monkeypatch.setenv("LENET5_THREADS", "2")  # put back after the test: init_worker sets it
    before = torch.get_num_threads()
    try:
        ablation.init_worker(threads_each=1, with_test=True, validation=False)
    finally:
        torch.set_num_threads(before)
    assert len(ablation.WORKER["train"][0]) == 60_000 and ablation.WORKER["val"] is None
    short = dict(ablation.WORKER, train=tuple(t[:256] for t in ablation.WORKER["train"]))  # a short run
    _, scores = ablation.train(dict(ablation.STEPS["label-smoothing"], epochs=1), 0, short)
    assert scores["val_accuracy"] is None and "val_curve" not in scores


def test_the_ablation_refuses_the_undistorted_end_without_augmentation(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["ablation.py", "--final", "--recipe", "default-undistorted-end",
                                     "--out", "unused"])
    with pytest.raises(SystemExit):
        ablation.main()
    assert "goes with --augment" in capsys.readouterr().err


def test_the_ablation_refuses_to_train_the_ladder_on_its_validation_images(monkeypatch, capsys):
    """--all-training-images without --final would choose recipes on images they trained on."""
    monkeypatch.setattr("sys.argv", ["ablation.py", "--all-training-images", "--out", "unused"])
    with pytest.raises(SystemExit):
        ablation.main()
    assert "--all-training-images goes with --final" in capsys.readouterr().err


def test_the_benchmarks_read_seeds_as_a_range_or_a_list_and_refuse_anything_else(monkeypatch, capsys,
                                                                                  tmp_path):
    """benchmarks/ablation.py and seeds.py share lenet5_series.params.parse_seeds; a bad --seeds stops
    the benchmark at once, with the accepted forms, instead of an hour later or with a traceback."""
    from lenet5_series.params import parse_seeds

    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("5") == [5]
    for bad in ("4-0", "a-b", "", "1,,2", "-1"):
        with pytest.raises(ValueError, match="range like 0-4 or a list like 0,3,7"):
            parse_seeds(bad)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["ablation.py", "--seeds", "zero", "--out", "unused"])
    with pytest.raises(SystemExit):
        ablation.main()
    assert "--seeds 'zero' is not accepted" in capsys.readouterr().err
    assert not (tmp_path / "unused").exists()  # refused before it makes anything


BEFORE_TTA = ["recipe", "augment", "epochs", "seed", "val_accuracy", "test_accuracy", "seconds", "source",
              "settings", "train_images", "test_images", "device", "torch", "date"]  # final_test.csv's header


def test_appending_to_a_csv_from_before_a_new_column_rewrites_its_header(tmp_path):
    """An old final_test.csv (14 columns) gets the TTA columns in its header when a row with them is
    added, instead of 17 cells under a 14-cell header."""
    csv_path = tmp_path / "final_test.csv"
    old = {k: str(i) for i, k in enumerate(BEFORE_TTA)}
    ablation.append_row(csv_path, old, BEFORE_TTA)
    ablation.append_row(csv_path, dict(old, seed="9", test_accuracy_tta=0.9955), ablation.FINAL_COLUMNS)
    rows = ablation.read_rows(csv_path)
    assert list(rows[0]) == ablation.FINAL_COLUMNS
    assert rows[0]["seed"] == "3" and rows[0]["test_accuracy_tta"] == ""  # the old row keeps its cells
    assert rows[1]["seed"] == "9" and rows[1]["test_accuracy_tta"] == "0.9955"


def test_the_tta_benchmark_reads_the_helpers_five_views_and_asks_for_missing_weights_first(
        tmp_path, monkeypatch, capsys):
    """benchmarks/tta.py: its "4 shifts of 1 px" is what lh.predict_tta does, "plain" is one reading;
    without the ablation's saved weights it says which runs to train, before loading any data."""
    x = torch.randn(6, 1, 32, 32)
    model = lh.LeNet5()
    readers = tta.readers()
    assert readers["4 shifts of 1 px"][0] == 5
    assert torch.equal(readers["4 shifts of 1 px"][1](model, x), lh.predict_tta(model, x))
    assert torch.allclose(readers["plain"][1](model, x), torch.softmax(lh.predict(model, x), 1))
    assert readers["8 random small distortions"][0] == 9
    monkeypatch.setenv("LENET5_RUNS_DIR", str(tmp_path))  # no saved weights there
    monkeypatch.setattr(tta.lh, "mnist_tensors", lambda *a, **k: pytest.fail("loaded data first"))
    monkeypatch.setattr("sys.argv", ["tta.py", "--steps", "augmentation", "--seeds", "0-1"])
    with pytest.raises(SystemExit) as stop:
        tta.main()
    said = str(stop.value)
    assert "augmentation seed 0, augmentation seed 1" in said
    assert "python benchmarks/ablation.py --steps augmentation --seeds 0-1 first" in said
