"""The SGD update of the series' recipes written so that a CUDA graph can hold it.

On a GPU, LeNet-5's step is a few hundred tiny operations, each launched by Python one after another
(notebook 07, "Where the time goes"); a CUDA graph records them once and replays the whole step with
one launch. A graph replays the same operations on the same memory, so nothing in it may be a Python
number that changes from step to step: torch.optim.SGD with a one-cycle schedule reads a new
learning rate and momentum from its param_groups at every step. Here the whole run's schedule is a
tensor on the device, read at a step counter that is itself a device tensor, and the update is
written with in-place tensor operations only, so one recorded step serves every step of the run.

Not taught in the notebooks, and no trainer uses it yet: capturing a whole step in a graph needs a
CUDA GPU to be built and measured on. tests/test_graphed.py checks, on the CPU, that this update
takes the same steps as torch.optim.SGD with torch.optim.lr_scheduler.OneCycleLR, Nesterov momentum
and weight decay, and that it never reads a number back from the device (which a graph forbids).
"""

from __future__ import annotations

import torch
from torch import nn


class CapturableSGD:
    """SGD (momentum, Nesterov, weight decay) whose learning rate and momentum come from device tensors.

    settings: a recipe's (lenet5_helpers.resolve_recipe); schedule: every step's learning rate and
    momentum, {"lr": [...], "momentum": [...]}, as lenet5_helpers.schedule_per_step gives them: the
    values torch.optim.SGD and its scheduler would use.
    """

    def __init__(self, model: nn.Module, settings: dict, schedule: dict[str, list[float]]) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        device = self.params[0].device
        self.lrs = torch.tensor(schedule["lr"], dtype=torch.float32, device=device)
        self.momentums = torch.tensor(schedule["momentum"], dtype=torch.float32, device=device)
        self.step_index = torch.zeros((), dtype=torch.long, device=device)
        self.buffers = [torch.zeros_like(p) for p in self.params]
        self.weight_decay, self.nesterov = settings["weight_decay"], settings["nesterov"]
        self.uses_momentum = settings["momentum"] > 0 or settings.get("cycle_momentum", False)

    @torch.no_grad()
    def step(self) -> None:
        """One update, as torch.optim.SGD's: g = grad + wd * w; b = m * b + g (b = g at the first
        step: b starts at zero); d = g + m * b (Nesterov) or b; w = w - lr * d. Then the counter moves."""
        i = self.step_index.clamp(max=len(self.lrs) - 1).view(1)  # a tensor index: no .item(), no wait
        lr, momentum = self.lrs.index_select(0, i).squeeze(0), self.momentums.index_select(0, i).squeeze(0)
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        if self.uses_momentum:
            torch._foreach_mul_(self.buffers, momentum)
            torch._foreach_add_(self.buffers, grads)
            if self.nesterov:
                grads = torch._foreach_add(grads, torch._foreach_mul(self.buffers, momentum))
            else:
                grads = self.buffers
        torch._foreach_sub_(self.params, torch._foreach_mul(grads, lr))
        self.step_index.add_(1)

    def zero_grad(self) -> None:
        """Set the gradients to zero in place (a graph keeps their memory; None would drop it)."""
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
