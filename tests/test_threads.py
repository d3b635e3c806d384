"""The CPU thread budget: affinity, cgroup quotas, LENET5_THREADS; sweeps share it out among kernels."""

from __future__ import annotations

import json
import os
import re

import nbformat
import pytest
import torch
from conftest import printed

import lenet5_helpers as lh
from lenet5_series import runner, threads


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A pretend machine: 4 cores this process may use, a cgroup tree in tmp_path with no limit."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(threads, "own_cgroups", lambda: {"": "/user.slice/jupyter-ada.scope"})
    monkeypatch.delenv(threads.VARIABLE, raising=False)
    return tmp_path


@pytest.fixture
def torch_threads():
    """Put torch's thread count back after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_lone_run_takes_the_cores_it_may_use_but_never_more_than_torch_would(machine):
    assert threads.budget(None, {}, machine) == (4, "this process may use 4 cores")
    assert threads.budget(8, {}, machine) == (4, "this process may use 4 cores")
    assert threads.budget(2, {}, machine) == (2, "torch's default; this process may use 4 cores")


def test_the_count_follows_the_affinity(machine, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert threads.budget(4, {}, machine) == (1, "this process may use 1 core")


def test_a_cgroup_v2_quota_on_the_process_or_a_parent_limits_it_rounded_down(machine):
    write(machine / "user.slice" / "cpu.max", "250000 100000\n")
    assert threads.cgroup_cores(machine) == 2.5
    assert threads.budget(4, {}, machine) == (2, "a CPU limit of 2.5 cores")
    write(machine / "user.slice" / "jupyter-ada.scope" / "cpu.max", "50000 100000\n")
    assert threads.budget(4, {}, machine) == (1, "a CPU limit of 0.5 cores")  # the tightest, at least 1


def test_a_quota_of_max_or_above_the_cores_changes_nothing(machine):
    write(machine / "user.slice" / "cpu.max", "max 100000\n")
    assert threads.cgroup_cores(machine) is None
    write(machine / "cpu.max", "800000 100000\n")
    assert threads.budget(4, {}, machine) == (4, "this process may use 4 cores")


def test_a_cgroup_v1_quota_is_read_from_the_cpu_controller(tmp_path):
    own = {"cpu": "/docker/abc"}
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cores(tmp_path, own) is None
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "300000\n")
    assert threads.cgroup_cores(tmp_path, own) == 3.0


def test_a_container_that_sees_its_own_cgroup_as_the_root_is_limited_too(tmp_path):
    write(tmp_path / "cpu.max", "100000 100000\n")  # the path in /proc/self/cgroup is not there
    assert threads.cgroup_cores(tmp_path, {"": "/kubepods/pod1/ctr"}) == 1.0


def test_own_cgroups_reads_both_versions(tmp_path):
    write(tmp_path / "cgroup", "12:memory:/m\n4:cpu,cpuacct:/docker/abc\n0::/user.slice/s\nodd\n")
    assert threads.own_cgroups(tmp_path / "cgroup") == {"cpu": "/docker/abc", "": "/user.slice/s"}
    assert threads.own_cgroups(tmp_path / "absent") == {}


def test_lenet5_threads_overrides_every_limit(machine):
    write(machine / "cpu.max", "100000 100000\n")
    assert threads.budget(2, {"LENET5_THREADS": "6"}, machine) == (6, "LENET5_THREADS=6")
    assert threads.budget(2, {"LENET5_THREADS": " "}, machine) == (1, "a CPU limit of 1 core")


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "2 threads"])
def test_a_bad_lenet5_threads_names_the_variable_the_value_and_what_is_accepted(value):
    with pytest.raises(ValueError, match=rf"LENET5_THREADS='{value}' is not accepted: it must be a "
                                         r"whole number of threads >= 1"):
        threads.budget(2, {"LENET5_THREADS": value})


def test_picking_a_device_leaves_the_threads_alone(machine, monkeypatch, capsys, torch_threads):
    torch.set_num_threads(3)
    assert lh.pick_device("cpu").type == "cpu" and torch.get_num_threads() == 3
    assert capsys.readouterr().out == "device='cpu'\n"


def test_the_parameter_check_sets_torch_and_prints_the_threads_with_the_device(machine, monkeypatch, capsys,
                                                                               torch_threads):
    monkeypatch.setenv("LENET5_THREADS", "1")
    assert lh.checked_params(device="cpu")["device"].type == "cpu" and torch.get_num_threads() == 1
    assert capsys.readouterr().out == "device='cpu'; 1 CPU thread (LENET5_THREADS=1)\n"
    monkeypatch.delenv("LENET5_THREADS")
    monkeypatch.setattr(threads, "torch_default", lambda: 8)  # torch's own count on a bigger machine
    lh.checked_params(device="auto")
    expected = 4  # the 4 cores this process may use (the machine above), fewer than torch's 8
    assert torch.get_num_threads() == expected
    assert f"picked {lh.available_devices()[0]}" in capsys.readouterr().out
    assert threads.use_cpu_threads().startswith(f"{expected} CPU thread")


def test_processes_started_together_each_get_their_share(machine, monkeypatch, torch_threads):
    """torchrun's ranks and a benchmark's workers: threads.use_cpu_threads(processes=k), the one place
    that sets the count, gives each its share of this machine's budget."""
    monkeypatch.setattr(threads, "torch_default", lambda: 8)  # torch's own count on a bigger machine
    assert threads.use_cpu_threads(processes=2) == ("2 CPU threads (this process may use 4 cores, shared "
                                               "by 2 processes)") and torch.get_num_threads() == 2
    threads.use_cpu_threads(processes=8)
    assert torch.get_num_threads() == 1  # at least one each


@pytest.fixture
def registry(machine, monkeypatch, tmp_path, torch_threads):
    """The folder where trainings announce themselves, empty, on the 4-core pretend machine."""
    monkeypatch.setattr(threads, "torch_default", lambda: 4)
    monkeypatch.setattr(threads, "LOOK_EVERY", 0.0)  # look at every check
    return tmp_path / "trainings"


def test_a_lone_training_keeps_its_budget_and_gives_the_threads_back(registry):
    torch.set_num_threads(3)
    with threads.SharedCores("cpu", registry) as cores:
        assert torch.get_num_threads() == 4 and threads.trainings_now(registry) == 1
        cores.check()
        assert torch.get_num_threads() == 4
    assert torch.get_num_threads() == 3 and threads.trainings_now(registry) == 0  # its file is gone


def test_trainings_that_did_not_start_each_other_share_the_cores(registry):
    with threads.SharedCores("cpu", registry) as first:
        with threads.SharedCores("cpu", registry):  # a second notebook, or another user's run
            assert torch.get_num_threads() == 2
            first.check()
            assert torch.get_num_threads() == 2
            (registry / "a-third-run").touch()
            first.check()
            assert torch.get_num_threads() == 1  # 4 cores, 3 trainings: at least one thread each
            (registry / "a-third-run").unlink()
        first.check()  # the others finished: the whole budget again
        assert torch.get_num_threads() == 4


def test_a_training_that_stopped_without_a_word_no_longer_counts(registry):
    registry.mkdir()
    (registry / "killed-run").touch()
    old = os.stat(registry / "killed-run").st_mtime - threads.FRESH - 1
    os.utime(registry / "killed-run", (old, old))
    assert threads.trainings_now(registry) == 0
    with threads.SharedCores("cpu", registry):
        assert torch.get_num_threads() == 4


def test_a_gpu_run_or_lenet5_threads_keeps_its_threads_but_is_counted(registry, monkeypatch):
    for device in ("cuda", torch.device("mps")):
        torch.set_num_threads(3)
        with threads.SharedCores(device, registry) as cores:
            assert not cores.adjust and threads.trainings_now(registry) == 1  # the others count it
        assert torch.get_num_threads() == 3
    monkeypatch.setenv(threads.VARIABLE, "1")
    torch.set_num_threads(1)
    with threads.SharedCores("cpu", registry), threads.SharedCores("cpu", registry) as second:
        second.check()
        assert torch.get_num_threads() == 1 and threads.trainings_now(registry) == 2


def test_a_limit_already_in_the_budget_is_not_divided_again(registry, monkeypatch):
    """A user limited to 2 of the machine's 4 cores, beside another training: still 2 threads, the
    share of the 4 cores; a third training brings each to 1."""
    monkeypatch.setattr(threads, "torch_default", lambda: 2)
    with threads.SharedCores("cpu", registry), threads.SharedCores("cpu", registry) as second:
        second.check()
        assert torch.get_num_threads() == 2
        (registry / "a-third-run").touch()
        second.check()
        assert torch.get_num_threads() == 1


def test_a_registry_that_is_a_link_or_a_file_is_not_used(registry, tmp_path):
    mine = tmp_path / "my-own-folder"
    mine.mkdir(mode=0o700)
    registry.symlink_to(mine)
    torch.set_num_threads(3)
    with threads.SharedCores("cpu", registry) as cores:
        assert cores.file is None and torch.get_num_threads() == 3  # no sharing: its threads kept
    assert list(mine.iterdir()) == [] and (mine.stat().st_mode & 0o7777) == 0o700  # left as it was
    (tmp_path / "a-file").touch()
    with threads.SharedCores("cpu", tmp_path / "a-file" / "trainings") as cores:  # cannot be a folder
        assert cores.file is None


def test_a_registry_removed_while_training_is_made_again(registry):
    with threads.SharedCores("cpu", registry) as cores:
        cores.file.unlink()
        registry.rmdir()
        cores.check()
        assert threads.trainings_now(registry) == 1


def test_fit_shares_the_cores_with_a_training_it_did_not_start(registry, monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "REGISTRY", registry)
    seen = []
    real = lh.train_epoch

    def spy(*args, **kwargs):  # what the threads are while fit trains, beside a "running" other
        (registry / "another-notebook").touch()
        real(*args, **kwargs)
        seen.append(torch.get_num_threads())

    monkeypatch.setattr(lh, "train_epoch", spy)
    x = torch.randn(64, 1, 32, 32)
    y = torch.randint(0, 10, (64,))
    data = {"train": (x, y), "test": (x[:16], y[:16])}
    lh.fit(lh.LeNet5(), data, tmp_path / "run", epochs=2, progress=False)
    assert seen == [2, 2] and threads.trainings_now(registry) == 1  # fit's own file is gone


def test_a_bad_lenet5_threads_stops_the_parameter_check(monkeypatch, torch_threads):
    monkeypatch.setenv("LENET5_THREADS", "all")
    with pytest.raises(ValueError, match="LENET5_THREADS='all' is not accepted"):
        lh.checked_params(device="auto")


def test_the_share_of_each_worker_is_at_least_one_thread():
    assert [threads.share(8, j) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_the_default_jobs_follow_the_budget_and_the_points():
    assert runner.default_jobs(points=4, cpu_threads=2) == 2
    assert runner.default_jobs(points=2, cpu_threads=16) == 2
    assert runner.default_jobs(points=40, cpu_threads=64) == runner.MAX_JOBS
    assert runner.default_jobs(points=3, cpu_threads=1) == 1


def test_time_left_shares_the_waiting_points_among_the_workers_as_they_free_up():
    assert runner.time_left([60.0], running=[], waiting=3, jobs=1) == 180.0
    # mean 50 s: the running point ends in 30 s, the idle worker takes one at 0 s, the next at 30 s
    assert runner.time_left([60.0, 40.0], running=[20.0], waiting=2, jobs=2) == 80.0
    assert runner.time_left([60.0], running=[60.0], waiting=1, jobs=2) == 60.0  # the last one alone
    assert runner.time_left([10.0], running=[99.0], waiting=0, jobs=2) == 0.0
    assert [runner.in_words(s) for s in (5, 89.6, 600, 7200)] == ["5 s", "90 s", "10 min", "2.0 h"]


@pytest.fixture
def fake_execute(monkeypatch):
    """runner.execute replaced: records each kernel's extra environment, writes a metrics.json."""
    calls = []

    def execute(notebook, out, parameters, env=None):
        calls.append({"env": dict(env or {}), **parameters})
        if parameters["lr"] < 0:
            raise ValueError("lr=-1 is not accepted")
        metrics = {"test_accuracy": 0.9 + parameters["lr"], "train_accuracy": 0.95, "epochs": 1,
                   "seconds_per_epoch": 1.0}
        (out.parent / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr(runner, "execute", execute)
    return calls


def test_sweep_workers_get_their_share_of_the_threads(machine, fake_execute, capsys):
    rows = runner.sweep({"lr": [0.01, 0.02, 0.03]}, {"epochs": 1}, machine / "sweep", jobs=2)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert [c["env"] for c in fake_execute] == [{"LENET5_THREADS": "2", "OMP_NUM_THREADS": "2"}] * 3
    out = capsys.readouterr().out
    assert out.startswith("3 points, 2 at a time, 2 CPU threads each (4 in all: this process may "
                          "use 4 cores)")
    assert "[1/3] 00-lr=0.01 started" in out and "[3/3] 02-lr=0.03 started" in out
    assert re.search(r"\[2/3\] 01-lr=0\.02: test accuracy 92\.00% in \d+ s", out)  # any duration
    assert out.count("left)") == 2 and "(3/3 done)" in out
    assert re.search(r"\n3 points in \d+ s; results: ", out)


def test_sweep_defaults_to_one_point_per_thread_and_divides_an_override(machine, fake_execute,
                                                                        monkeypatch, capsys):
    runner.sweep({"lr": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}, {}, machine / "a")
    assert "6 points, 4 at a time, 1 CPU thread each" in capsys.readouterr().out
    assert {c["env"]["LENET5_THREADS"] for c in fake_execute} == {"1"}
    monkeypatch.setenv("LENET5_THREADS", "6")
    fake_execute.clear()
    runner.sweep({"lr": [0.01, 0.02]}, {}, machine / "b", jobs=4)  # never more jobs than points
    assert "2 points, 2 at a time, 3 CPU threads each (6 in all: LENET5_THREADS=6)" in capsys.readouterr().out
    assert {c["env"]["OMP_NUM_THREADS"] for c in fake_execute} == {"3"}


def test_sweep_reports_a_failed_point_in_its_progress_line(machine, fake_execute, capsys):
    rows = runner.sweep({"lr": [0.01, -1.0]}, {}, machine / "s", jobs=1)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "[2/2] 01-lr=-1.0: FAILED: lr=-1 is not accepted in" in capsys.readouterr().out


def test_the_command_line_refuses_bad_jobs_and_a_bad_lenet5_threads(machine, fake_execute,
                                                                     monkeypatch, capsys):
    assert runner.main(["sweep", "-g", "lr", "0.1", "--jobs", "0", "--out", str(machine / "s")]) == 2
    assert "jobs=0 is not accepted: jobs must be an integer >= 1" in capsys.readouterr().err
    monkeypatch.setenv("LENET5_THREADS", "lots")
    assert runner.main(["sweep", "-g", "lr", "0.1", "--out", str(machine / "s")]) == 2
    assert "LENET5_THREADS='lots' is not accepted" in capsys.readouterr().err
    assert fake_execute == []


@pytest.mark.slow
def test_a_kernel_started_with_a_share_has_it_before_torch_is_imported(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nimport torch\nprint(os.environ['LENET5_THREADS'], torch.get_num_threads())")])
    nbformat.write(nb, str(tmp_path / "tiny.ipynb"))
    runner.execute(tmp_path / "tiny.ipynb", tmp_path / "out.ipynb", {},
                   env={"LENET5_THREADS": "1", "OMP_NUM_THREADS": "1"})
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert printed(out.cells) == "1 1\n"
