"""The parameter check: bad values fail in a second, naming the parameter, the value and the rule."""

from __future__ import annotations

import pytest
import torch

import lenet5_helpers as lh
from lenet5_series.runs import RunError


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
    ("train_subset", 0, "train_subset=0 is not accepted: train_subset must be an integer from 1 to 55,000"),
    ("train_subset", 60_001, "train_subset=60001 is not accepted"),
    ("recipe", "adam", "recipe='adam' is not accepted: use one of 'reference', 'default'"),
    ("recipe", "seed", "recipe='seed' is not accepted: the reference post's recipe is now called "
                       "'reference'; pass recipe='reference'"),
    ("device", "gpu", "device='gpu' is not known; use one of auto, cpu, cuda, mps"),
    ("augment", "maybe", "augment='maybe' is not accepted: augment must be True or False"),
    ("seed", -1, "seed=-1 is not accepted"),
])
def test_a_bad_parameter_names_itself_its_value_and_what_is_accepted(name, value, expected):
    with pytest.raises(ValueError) as error:
        lh.checked_params(**{name: value})
    assert expected in str(error.value)


def test_an_unknown_name_is_refused_naming_the_accepted_ones():
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) epoch; the parameters are data_dir, "
                                        r"run_dir, seed, device, recipe, epochs, batch_size"):
        lh.checked_params(epoch=3)
    with pytest.raises(TypeError):
        lh.checked_params(None)  # names only: a value without its name says nothing


def test_papermill_strings_are_accepted_where_they_mean_the_right_thing():
    p = lh.checked_params(epochs="3", batch_size="64", lr="0.05", train_subset="1000",
                          augment="True", resume="false", seed="7")
    assert (p["epochs"], p["batch_size"], p["lr"], p["train_subset"], p["augment"],
            p["resume"], p["seed"]) == (3, 64, 0.05, 1000, True, False, 7)


def test_the_checked_values_are_a_new_dict_and_the_device_a_torch_device():
    given = {"seed": "1", "device": "cpu"}
    p = lh.checked_params(**given)
    assert p == {"seed": 1, "device": torch.device("cpu")} and given == {"seed": "1", "device": "cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_fails_in_the_parameter_check():
    with pytest.raises(RuntimeError, match="device='cuda' was asked for, but this machine has no cuda"):
        lh.checked_params(device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_amp_without_cuda_fails_in_the_parameter_check():
    with pytest.raises(ValueError, match="amp=True is not accepted here: it asks for bfloat16 mixed "
                                         "precision on a CUDA GPU, and this run uses cpu. Pass amp=False "
                                         ".*the fast recipe computes in bfloat16 by itself"):
        lh.checked_params(device="cpu", amp=True)
    assert lh.checked_params(device="cpu", amp=False)["amp"] is False


def test_a_data_dir_or_run_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="data_dir=.* is a file"):
        lh.checked_params(data_dir=tmp_path / "f")
    with pytest.raises(ValueError, match="run_dir=.* is a file"):
        lh.checked_params(run_dir=tmp_path / "f")


def test_resume_needs_a_checkpoint_and_says_so_in_one_way(tmp_path):
    training = {"recipe": "default", "seed": 0}
    with pytest.raises(RunError, match="resume=True, but run_dir=.* holds no checkpoint.pt. Pass"):
        lh.checked_params(run_dir=tmp_path, resume=True, **training)
    with pytest.raises(RunError, match="resume=True, but run_dir=None holds no checkpoint.pt"):
        lh.checked_params(run_dir=None, resume=True, **training)


def test_quick_mode_fills_in_only_what_was_not_given(capsys):
    p = lh.checked_params(quick=True, epochs=None, train_subset=None)
    assert (p["epochs"], p["train_subset"]) == (lh.QUICK["epochs"], lh.QUICK["train_subset"])
    assert "QUICK MODE: train_subset=10,000, epochs=3" in capsys.readouterr().out
    assert lh.checked_params(quick=True, epochs=5, train_subset=None)["epochs"] == 5


def test_quick_mode_says_nothing_where_it_changes_nothing(capsys):
    lh.checked_params(quick=True, batch_size=64)  # notebook 01: it trains nothing
    assert "QUICK MODE" not in capsys.readouterr().out
