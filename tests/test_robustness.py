"""Bad parameters fail in seconds with their name; a killed run leaves its last epoch intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import lenet5_helpers as lh


@pytest.mark.parametrize("name, value, expected", [
    ("epochs", 0, "epochs=0 is not accepted: epochs must be an integer >= 1"),
    ("epochs", -3, "epochs=-3 is not accepted"),
    ("epochs", 2.5, "epochs=2.5 is not accepted"),
    ("epochs", "three", "epochs='three' is not accepted"),
    ("epochs", True, "epochs=True is not accepted"),
    ("batch_size", 0, "batch_size=0 is not accepted: batch_size must be an integer >= 1"),
    ("lr", 0, "lr=0 is not accepted: lr must be a number > 0"),
    ("lr", -0.1, "lr=-0.1 is not accepted"),
    ("lr", "fast", "lr='fast' is not accepted"),
    ("train_subset", 0, "train_subset=0 is not accepted: train_subset must be an integer from 1 to 60,000"),
    ("train_subset", 60_001, "train_subset=60001 is not accepted"),
    ("recipe", "adam", "recipe='adam' is not accepted: use one of 'seed', 'default'"),
    ("device", "gpu", "device='gpu' is not known; use one of auto, cpu, cuda, mps"),
    ("augment", "maybe", "augment='maybe' is not accepted: augment must be True or False"),
    ("seed", -1, "seed=-1 is not accepted"),
])
def test_a_bad_parameter_names_itself_its_value_and_what_is_accepted(name, value, expected):
    with pytest.raises(ValueError) as error:
        lh.check_params(**{name: value})
    assert expected in str(error.value)


def test_papermill_strings_are_accepted_where_they_mean_the_right_thing():
    p = lh.check_params(epochs="3", batch_size="64", lr="0.05", train_subset="1000",
                        augment="True", resume="false", seed="7")
    assert (p["epochs"], p["batch_size"], p["lr"], p["train_subset"], p["augment"],
            p["resume"], p["seed"]) == (3, 64, 0.05, 1000, True, False, 7)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_fails_in_the_parameter_check():
    with pytest.raises(RuntimeError, match="device='cuda' was asked for, but this machine has no cuda"):
        lh.check_params(device="cuda")


def test_a_data_dir_or_run_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="data_dir=.* is a file"):
        lh.check_params(data_dir=tmp_path / "f")
    with pytest.raises(ValueError, match="run_dir=.* is a file"):
        lh.check_params(run_dir=tmp_path / "f")


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="resume=True, but run_dir=.* holds no checkpoint.pt"):
        lh.check_params(run_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True, but run_dir=None"):
        lh.check_params(run_dir=None, resume=True)


def test_quick_mode_fills_in_only_what_was_not_given(capsys):
    p = lh.check_params(quick=True, epochs=None, train_subset=None)
    assert (p["epochs"], p["train_subset"]) == (lh.QUICK["epochs"], lh.QUICK["train_subset"])
    assert "QUICK MODE" in capsys.readouterr().out
    assert lh.check_params(quick=True, epochs=5, train_subset=None)["epochs"] == 5


def test_runs_started_at_once_get_different_folders(tmp_path):
    code = f"import lenet5_helpers as lh; print(lh.new_run_dir({str(tmp_path)!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    folders = {p.communicate()[0].strip() for p in procs}
    assert len(folders) == 4 and len(list(tmp_path.iterdir())) == 4


TRAIN = textwrap.dedent("""
    import sys, lenet5_helpers as lh
    data = lh.mnist_tensors(train_subset=3000)
    lh.seed_everything(0)
    lh.fit(lh.LeNet5(), data, sys.argv[1], epochs=4, seed=0, progress=False)
""")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_keeps_its_last_epoch_and_resumes_to_the_same_end(
        mnist_2000, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([sys.executable, "-c", TRAIN, str(straight)], check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "metrics.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    metrics = json.loads((killed / "metrics.json").read_text())
    checkpoint = lh.load_checkpoint(killed / "checkpoint.pt")
    history = lh.read_history(killed)
    assert 1 <= metrics["epochs"] < 4 and not metrics["finished"]
    assert checkpoint["epoch"] == metrics["epochs"] == len(history)
    assert (killed / ".lock").exists()  # left by the killed process: the next run takes it over
    data = lh.mnist_tensors(train_subset=3000)
    lh.seed_everything(123)
    resumed = lh.fit(lh.LeNet5(), data, killed, epochs=4, seed=0, resume=True, progress=False)
    final = json.loads((straight / "metrics.json").read_text())
    assert resumed[-1]["test_accuracy"] == final["test_accuracy"]
    assert resumed[-1]["train_loss"] == final["train_loss"]


@pytest.mark.slow
def test_a_run_dir_holding_another_run_is_refused_in_the_parameter_check(mnist_2000, tmp_path):
    lh.seed_everything(0)
    lh.fit(lh.LeNet5(), mnist_2000, tmp_path, epochs=1, progress=False)
    same = dict(run_dir=tmp_path, recipe="default", epochs=1, batch_size=None, lr=None, seed=0,
                augment=False, amp=False, train_subset=2000)
    assert lh.check_params(**same, resume=False)["run_dir"] == tmp_path  # finished, same: loads
    with pytest.raises(lh.RunError, match="already holds another run.*epochs: 1 there, 12 here"):
        lh.check_params(**dict(same, epochs=None), resume=False)
    with pytest.raises(lh.RunError, match="train_size: 2000 there, 60000 here"):
        lh.check_params(**dict(same, train_subset=None), resume=True)
