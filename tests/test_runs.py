"""Run folders on small synthetic tensors (no MNIST): refusals, locks, folders, the seed of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lenet5_helpers as lh
from lenet5_series import paths, runs


def tiny_data(n_train: int = 256, n_test: int = 64) -> dict:
    """Random 'digits' of the right shape: enough to exercise fit without MNIST."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)

    return {"train": split(n_train), "test": split(n_test)}


def fit(run_dir, model=None, **kwargs):
    settings = {"epochs": 1, "progress": False, **kwargs}
    return lh.fit(model or lh.LeNet5(), tiny_data(), run_dir, **settings)


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(runs.RunError, match="resume=True, but run_dir=.* holds no checkpoint.pt"):
        fit(tmp_path, resume=True)


def test_a_damaged_checkpoint_is_refused(tmp_path):
    (tmp_path / runs.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(runs.RunError, match="cannot be read as a checkpoint.*Delete it"):
        fit(tmp_path, resume=True)


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    fit(tmp_path)
    checkpoint = torch.load(tmp_path / runs.CHECKPOINT, weights_only=True)
    checkpoint["config"]["arch"] = "ResNet18"
    torch.save(checkpoint, tmp_path / runs.CHECKPOINT)
    with pytest.raises(runs.RunError, match="holds a 'ResNet18' model, not 'LeNet5'"):
        fit(tmp_path, resume=True)


def test_a_folder_holding_another_run_is_refused_not_overwritten(tmp_path):
    fit(tmp_path)
    before = (tmp_path / runs.CHECKPOINT).read_bytes()
    with pytest.raises(runs.RunError, match="another run.*lr: 0.15 there, 0.05 here"):
        fit(tmp_path, lr=0.05)
    with pytest.raises(runs.RunError, match="Refusing to overwrite it: pass resume=True"):
        fit(tmp_path, epochs=2)
    assert (tmp_path / runs.CHECKPOINT).read_bytes() == before


def test_a_model_on_another_device_than_the_data_is_explained(tmp_path):
    data = tiny_data()
    data["train"] = tuple(t.to("meta") for t in data["train"])
    with pytest.raises(ValueError, match="model is on cpu but the data is on meta.*model.to"):
        lh.fit(lh.LeNet5(), data, tmp_path, epochs=1, progress=False)


def test_the_recorded_seed_is_the_seed_the_weights_came_from(tmp_path):
    lh.seed_everything(0)
    built_with_0 = fit(tmp_path / "a", lh.LeNet5(), seed=0)
    lh.seed_everything(5)  # a learner who built the model from another seed, or from none
    built_with_5 = fit(tmp_path / "b", lh.LeNet5(), seed=0)
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in built_with_0] == \
           [{k: v for k, v in h.items() if k != "seconds"} for h in built_with_5]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["seed"] == 0


def test_initialise_gives_the_weights_of_a_model_built_after_seeding():
    lh.seed_everything(7)
    built = lh.LeNet5()
    reset = lh.initialise(lh.LeNet5(), 7)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                 reset.state_dict().values(), strict=True))
    assert not torch.equal(lh.initialise(lh.LeNet5(), 8).conv1.weight, built.conv1.weight)


def test_a_second_live_run_on_the_same_folder_is_refused(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(str(other.pid))
        with pytest.raises(runs.RunError, match="in use by another training run"):
            runs.lock_run_dir(tmp_path)
    finally:
        other.kill()
        other.wait()
    assert runs.lock_run_dir(tmp_path).read_text() == str(os.getpid())  # stale: taken


def test_an_empty_or_dead_lock_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text("")  # killed between creating and writing the lock
    assert runs.lock_run_dir(tmp_path).read_text() == str(os.getpid())


def test_a_kept_run_holds_its_folder_while_it_trains_and_frees_it_when_stopped(tmp_path):
    """fit trains inside runs.kept_run: a stopped cell (KeyboardInterrupt) must not leave the lock
    behind, and a second run may then take the folder and continue what the first saved."""
    model = lh.LeNet5()
    config = lh.run_config(epochs=1, train_size=256, val_size=0)
    optimizer, scheduler = lh.make_optimizer(model, config, 1)
    generator = torch.Generator()
    with pytest.raises(KeyboardInterrupt):
        with runs.kept_run(tmp_path, config, model, optimizer, scheduler, generator, False) as history:
            assert history == []
            assert (tmp_path / ".lock").read_text() == str(os.getpid())
            raise KeyboardInterrupt
    assert not (tmp_path / ".lock").exists()

    def stop(history: list[dict]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "run", epochs=2, on_epoch=stop)
    assert not (tmp_path / "run" / ".lock").exists()
    assert len(fit(tmp_path / "run", epochs=2, resume=True)) == 2


def test_two_new_run_folders_never_collide(tmp_path):
    folders = {runs.new_run_dir(tmp_path) for _ in range(5)}
    assert len(folders) == 5 and all(f.is_dir() for f in folders)


def test_runs_started_at_once_get_different_folders(tmp_path):
    code = f"from lenet5_series import runs; print(runs.new_run_dir({str(tmp_path)!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    folders = {p.communicate()[0].strip() for p in procs}
    assert len(folders) == 4 and len(list(tmp_path.iterdir())) == 4


def test_a_run_started_by_the_tests_without_a_folder_stays_out_of_the_projects_runs():
    """A process that the tests start (as nbval starts each notebook's kernel) makes its new run
    folder in the tests' own folder, so make test leaves runs/, whose newest finished run 04, 06
    and 07 read, as the learner left it."""
    code = "from lenet5_series import runs; print(runs.new_run_dir())"
    folder = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.strip())
    folder.rmdir()
    assert folder.parent == Path(os.environ["LENET5_RUNS_DIR"])  # this test run's own (./conftest.py)
    assert folder.parent.parent == paths.BASE_DIR / "build" / "test-runs"


def test_latest_run_is_the_one_that_finished_last(tmp_path):
    first, second, unfinished = (tmp_path / name for name in ("b-first", "a-second", "c-unfinished"))
    fit(first)
    time.sleep(0.01)
    fit(second)
    (first / "figures").mkdir()  # looking at the first run later must not make it the latest
    unfinished.mkdir()
    (unfinished / "metrics.json").write_text(json.dumps({"finished": False}))
    assert runs.latest_run(tmp_path) == second
    assert runs.latest_run(tmp_path / "none") is None


def test_choose_run_prefers_a_full_run_to_a_newer_short_one_and_says_why(tmp_path):
    """By the finish time metrics.json records (not the folder's time), a run on all the training
    images beats a newer short run; with only short runs, the newest one, said to be short."""
    def finished(name: str, when: str, train_size: int, val_size: int = 5_000) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"finished": True, "finished_at": when, "train_size": train_size, "val_size": val_size,
             "epochs": 3}))

    finished("quick-newer", "2026-12-03T10:00:00.000000+00:00", 10_000)
    folder, why = runs.choose_run(tmp_path)
    assert folder.name == "quick-newer" and "shorter run (10,000 images, 3 epochs" in why
    finished("full-older", "2026-12-02T10:00:00.000000+00:00", 55_000)
    finished("refit-oldest", "2026-12-01T10:00:00.000000+00:00", 60_000, val_size=0)
    os.utime(tmp_path / "refit-oldest" / "metrics.json")  # touched later: the recorded time counts
    folder, why = runs.choose_run(tmp_path)
    assert folder.name == "full-older"
    assert why == "the newest finished run on all the training images (finished 2026-12-02 10:00 UTC)"
    assert runs.choose_run(tmp_path / "none") == (None, "no run under runs/ has finished yet")
