"""lenet5_series.ddp that pauses itself at an exact step: what tests/test_ddp.py's kill and hang
tests start with torchrun (in place of `-m lenet5_series.ddp`; the same options).

With LENET5_TEST_PAUSE="E:K FILE" in its environment, each process this torchrun starts trains until
it has taken step K of epoch E, writes "epoch E step K done <time.time()> <pid>" to FILE (atomically)
and stops itself with SIGSTOP: alive but silent, wherever it is, however fast the machine. The other
ranks then wait for it in the next step's all-reduce, until the test kills it (a dead rank) or leaves
it stopped (a hung rank). Without the variable it is lenet5_series.ddp unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from torch.optim.optimizer import register_optimizer_step_post_hook

from lenet5_series import ddp

VARIABLE = "LENET5_TEST_PAUSE"


def pause_at(epoch: int, step: int, signal_file: Path) -> None:
    """Count this process's epochs (ddp.train_epoch calls) and optimizer steps; stop after the named one."""
    real_epoch = ddp.train_epoch
    seen = {"epoch": 0, "step": 0}

    def counted_epoch(*args, **kwargs):
        seen["epoch"], seen["step"] = seen["epoch"] + 1, 0
        return real_epoch(*args, **kwargs)

    def after_step(_optimizer, _args, _kwargs) -> None:
        seen["step"] += 1
        if (seen["epoch"], seen["step"]) == (epoch, step):
            part = signal_file.with_name(signal_file.name + ".part")
            part.write_text(f"epoch {epoch} step {step} done {time.time()} {os.getpid()}\n")
            part.replace(signal_file)  # the test sees the whole line or nothing
            os.kill(os.getpid(), signal.SIGSTOP)

    ddp.train_epoch = counted_epoch  # ddp.train looks it up by name at every epoch
    register_optimizer_step_post_hook(after_step)


if __name__ == "__main__":
    if os.environ.get(VARIABLE):
        where, file = os.environ[VARIABLE].split(" ", 1)
        e, k = map(int, where.split(":"))
        pause_at(e, k, Path(file))
    sys.exit(ddp.main())
