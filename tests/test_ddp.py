"""lenet5_series.ddp under torchrun: the same training as one process, on one "machine" or two,
a dead or hung rank stops the others with a message, resuming. (Notebook 05 runs under papermill
with other parameters once, in tests/test_exercises.py, with its exercises' solutions.)

The slow tests start real torchrun launchers on this machine (gloo on the CPU, one thread per
process: LENET5_THREADS=1). Two launchers with --nnodes 2 and a c10d rendezvous on 127.0.0.1 stand
for two machines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import ddp_paused as paused
import psutil
import pytest
import torch
from conftest import needs_mnist

import lenet5_helpers as lh
from lenet5_series import ddp

SUBSET, EPOCHS = 4000, 3  # 32 steps per epoch: seconds per run
PAUSED = Path(paused.__file__)
RUN = ["--train-subset", SUBSET, "--epochs", EPOCHS, "--lr", 0.05]  # 0.15 diverges in 96 steps


# --- fast: the sharding itself, in this process ---------------------------------------------

@pytest.mark.parametrize("length, world_size", [(128, 2), (128, 4), (16, 2), (7, 2), (3, 4)])
def test_shares_are_equal_disjoint_and_cover_the_batch_but_a_remainder(length, world_size):
    batch = torch.arange(length)
    shares = [ddp.my_share(batch, r, world_size) for r in range(world_size)]
    assert len({len(s) for s in shares}) == 1
    assert torch.equal(torch.cat(shares), batch[:length - length % world_size])


def test_steps_per_epoch_counts_the_last_batch_only_when_every_rank_gets_an_image():
    assert ddp.steps_per_epoch(640, 128, 2) == 5
    assert ddp.steps_per_epoch(10_000, 128, 2) == 79  # 78 full batches and one of 16
    assert ddp.steps_per_epoch(129, 128, 2) == 1  # a last batch of 1 image cannot be shared by 2
    assert ddp.steps_per_epoch(130, 128, 2) == 2
    assert ddp.steps_per_epoch(60_000, 128, 1) == lh.steps_per_epoch(60_000, 128)  # as lh.fit


def test_each_rank_trains_on_its_share_of_the_same_global_batches():
    """Rank 0 and rank 1 (run here one after the other, without DDP) see disjoint halves of the
    global batches that one process would see, in the same order."""
    images = torch.randn(300, 1, 32, 32)
    labels = torch.randint(0, 10, (300,))
    seen = {}
    for rank in (0, 1):
        model = lh.LeNet5()
        inputs = []
        model.register_forward_hook(lambda _m, args, _out, inputs=inputs: inputs.append(args[0]))
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        ddp.train_epoch(model, images, labels, opt, sched, 128, torch.Generator().manual_seed(0),
                        rank, 2)
        seen[rank] = inputs
    order = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    assert [len(x) for x in seen[0]] == [len(x) for x in seen[1]] == [64, 64, 22]
    for step, start in enumerate((0, 128, 256)):
        idx = order[start:start + 128]
        together = torch.cat([seen[0][step], seen[1][step]])
        assert torch.equal(together, images[idx][:len(together)])


def test_without_torchrun_it_says_how_to_start_it(monkeypatch, capsys):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert ddp.main(["--quick"]) == 2
    assert "torchrun --standalone --nproc-per-node 2 -m lenet5_series.ddp" in capsys.readouterr().err


# --- slow: real processes --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args, nproc: int = 2, endpoint: str | None = None, pause: str | None = None
           ) -> subprocess.Popen:
    """One torchrun launcher running lenet5_series.ddp: --standalone, or one of two "machines"
    meeting at `endpoint` (c10d rendezvous). pause="E:K FILE": its processes stop themselves after
    step K of epoch E and say so in FILE (tests/ddp_paused.py)."""
    where = (["--standalone"] if endpoint is None else
             ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
              "--rdzv-id", "test"])
    program = ["-m", "lenet5_series.ddp"] if pause is None else [str(PAUSED)]
    # one thread per process however the run is launched (threads.use_cpu_threads reads LENET5_THREADS),
    # so runs launched differently can be compared bit for bit
    env = dict(os.environ, LENET5_THREADS="1", **({paused.VARIABLE: pause} if pause else {}))
    command = [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node",
               str(nproc), *program, *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(launcher: subprocess.Popen, ok: bool = True, limit: float = 600) -> str:
    out, _ = launcher.communicate(timeout=limit)
    assert (launcher.returncode == 0) == ok, out[-3000:]
    return out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return lh.load_checkpoint(run_dir / "checkpoint.pt")["model"]


def largest_gap(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def two_machines(run_dir: Path, *args, pause: str | None = None
                 ) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Two launchers of one process each meeting at a c10d rendezvous; `pause` goes to the second."""
    port = free_port()
    first = launch(*RUN, "--run-dir", run_dir, *args, nproc=1, endpoint=f"127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while not listening(port):  # the first launcher hosts the rendezvous: wait until it listens
        assert first.poll() is None and time.monotonic() < deadline, "the rendezvous did not start"
        time.sleep(0.05)
    second = launch(*RUN, "--run-dir", run_dir, *args, nproc=1, endpoint=f"127.0.0.1:{port}",
                    pause=pause)
    return first, second


def wait_for_signal(signal_file: Path, launchers: list, limit: float = 300) -> tuple[float, int]:
    """Wait until a paused process has written its line (tests/ddp_paused.py): when it stopped
    (time.time()) and its process id."""
    deadline = time.monotonic() + limit
    while not signal_file.exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in launchers), \
            "the run stopped before it reached the step where it pauses"
        time.sleep(0.02)
    *_, when, pid = signal_file.read_text().split()
    return float(when), int(pid)


def stop_all(launchers: list, worker: psutil.Process | None = None) -> None:
    if worker is not None and worker.is_running():
        worker.kill()
    for launcher in launchers:
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait(timeout=60)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """One launcher, two processes: the reference run of the slow tests."""
    run_dir = tmp_path_factory.mktemp("ddp") / "two-processes"
    finish(launch(*RUN, "--run-dir", run_dir))
    return run_dir


# Two processes with 64 images each end where one process with 128 does: notebook 05 asserts it
# ("The proof: 2 x 64 = 1 x 128"), and nbval runs that assert, so it is not trained again here.


@needs_mnist
@pytest.mark.slow
def test_two_machines_train_exactly_like_one_machine_with_two_processes(two_processes, tmp_path):
    first, second = two_machines(tmp_path / "run")
    out = finish(first) + finish(second)
    assert "2 processes (gloo on cpu)" in out
    a, b = weights(two_processes), weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a), f"differ by {largest_gap(a, b):.1e}"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["world_size"] == 2


# The kill and hang tests do not race the run: the second machine's process stops itself after
# step 5 of epoch 2 (tests/ddp_paused.py) and says so in a file; the test acts only then, so the
# run is in the same place on a slow machine (taskset -c 0) and a fast one.
PAUSE_AT = "2:5"


@needs_mnist
@pytest.mark.slow
def test_a_killed_rank_stops_the_other_within_a_minute_and_the_run_resumes(two_processes,
                                                                            tmp_path):
    run_dir, signal_file = tmp_path / "run", tmp_path / "paused"
    first, second = two_machines(run_dir, pause=f"{PAUSE_AT} {signal_file}")
    worker = None
    try:
        _, pid = wait_for_signal(signal_file, [first, second])
        worker = psutil.Process(pid)
        assert worker.ppid() == second.pid  # the second launcher's process, stopped in epoch 2
        killed = time.monotonic()
        worker.kill()  # SIGKILL: the process dies at once, mid-epoch
        out = finish(first, ok=False, limit=60)  # generous: gloo sees the closed socket at once
        seconds = time.monotonic() - killed
        finish(second, ok=False, limit=60)
    finally:
        stop_all([first, second], worker)
    assert "lost contact with the other processes" in out, out[-3000:]
    print(f"the surviving rank stopped {seconds:.1f} s after the other was killed")
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1  # the last whole epoch
    # The folder holds the last complete epoch; two processes on one launcher continue it.
    out = finish(launch(*RUN, "--run-dir", run_dir, "--resume"))
    assert "Resuming" in out
    a, b = weights(two_processes), weights(run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a), f"differ by {largest_gap(a, b):.1e}"
    assert lh.read_history(run_dir)[-1]["epoch"] == EPOCHS


@needs_mnist
@pytest.mark.slow
def test_a_hung_rank_stops_the_other_after_the_timeout(tmp_path):
    run_dir, signal_file = tmp_path / "run", tmp_path / "paused"
    first, second = two_machines(run_dir, "--timeout", 10, pause=f"{PAUSE_AT} {signal_file}")
    worker = None
    try:
        stopped, pid = wait_for_signal(signal_file, [first, second])  # SIGSTOP: alive, but silent
        worker = psutil.Process(pid)
        assert worker.status() == psutil.STATUS_STOPPED
        out = finish(first, ok=False, limit=120)  # generous: the 10 s timeout, then gloo's clean-up
        seconds = time.time() - stopped
    finally:
        stop_all([first, second], worker)
    assert "lost contact with the other processes" in out and "Timed out" in out, out[-3000:]
    # The other rank's wait began at most one step before the pause (it may have started step 6
    # while this one finished step 5), so it stopped about 10 s after the pause, not sooner; the
    # 1 s margin stands for that step, not for the speed of the machine.
    assert seconds > 9, f"stopped {seconds:.1f} s after the other hung: not by the 10 s timeout"
    print(f"the waiting rank stopped {seconds:.1f} s after the other hung (timeout 10 s)")


@needs_mnist
@pytest.mark.slow
def test_a_batch_that_does_not_split_evenly_is_refused_once_with_its_name(tmp_path):
    out = finish(launch("--batch-size", 129, "--train-subset", 500, "--run-dir", tmp_path),
                 ok=False, limit=300)
    message = "batch_size=129 does not split into 2 equal shares"
    assert out.count(message) == 1, out[-3000:]
    assert not (tmp_path / "checkpoint.pt").exists()


def test_rank_0s_refusal_and_failures_reach_the_caller_and_leave_no_lock_of_its_own(tmp_path, monkeypatch):
    """ddp.kept_run in one process (a group of one rank): a folder another live training holds is
    refused with its lock left alone; a failure after rank 0 took the lock, or inside the `with`
    block, releases it."""
    import torch.distributed as dist

    from lenet5_series import runs

    model = lh.LeNet5()
    config = lh.run_config(epochs=1, train_size=8, val_size=0)
    optimizer, scheduler = lh.make_optimizer(model, config, 1)

    def kept(run_dir: Path):
        return ddp.kept_run(run_dir, config, model, optimizer, scheduler, torch.Generator(), False, 0)

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            (tmp_path / "held").mkdir()
            (tmp_path / "held" / ".lock").write_text(str(other.pid))
            refused = pytest.raises(runs.RunError, match="in use by another training run")
            with refused, kept(tmp_path / "held"):
                pass
            assert (tmp_path / "held" / ".lock").read_text() == str(other.pid)
        finally:
            other.kill()
            other.wait()

        def broken(*args, **kwargs):
            raise OSError("the disk is full")

        with monkeypatch.context() as patch:
            patch.setattr(runs, "start_or_resume", broken)
            with pytest.raises(OSError, match="the disk is full"), kept(tmp_path / "failed"):
                pass
        assert not (tmp_path / "failed" / ".lock").exists()

        with pytest.raises(KeyboardInterrupt), kept(tmp_path / "stopped") as history:
            assert history == [] and (tmp_path / "stopped" / ".lock").exists()
            raise KeyboardInterrupt
        assert not (tmp_path / "stopped" / ".lock").exists()
    finally:
        dist.destroy_process_group()


def test_the_trainer_trains_the_recipes_network(tmp_path, monkeypatch):
    """recipe="fast": ddp.train builds the network lh.lenet5_for gives (LeNet5Fast), as notebook 03
    does, and records the run as a LeNet5 run (one process, a group of one rank)."""
    import torch.distributed as dist

    built = []

    def spy(recipe: str) -> lh.LeNet5:
        built.append(real(recipe))
        return built[-1]

    real = lh.lenet5_for
    monkeypatch.setattr(lh, "lenet5_for", spy)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    config = dict(lh.run_config("fast", epochs=1, batch_size=8, train_size=16, val_size=0), world_size=1)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        history = ddp.train({"train": (x, y), "test": (x, y)}, tmp_path, config, 0, 1, torch.device("cpu"))
    finally:
        dist.destroy_process_group()
    assert len(history) == 1 and [type(net) for net in built] == [lh.LeNet5Fast]
    assert lh.load_checkpoint(tmp_path / lh.CHECKPOINT)["config"]["arch"] == "LeNet5"
