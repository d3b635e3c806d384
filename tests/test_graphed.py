"""The update a CUDA graph can hold (lenet5_series.graphed) takes torch.optim.SGD's steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import lenet5_helpers as lh
from lenet5_series.graphed import CapturableSGD


def train_both(recipe: str, steps: int = 24, batch: int = 16) -> tuple[lh.LeNet5, lh.LeNet5]:
    """The same LeNet-5, data and recipe (3 epochs of `steps // 3` steps), once with torch.optim.SGD and
    its scheduler, once with CapturableSGD."""
    settings = lh.resolve_recipe(recipe, epochs=3, lr=0.1 if recipe == "reference" else None)  # moves
    per_epoch = steps // 3
    torch.manual_seed(0)
    x, y = torch.randn(steps * batch, 1, 32, 32), torch.randint(0, 10, (steps * batch,))
    reference, ours = lh.initialise(lh.LeNet5(), 0), lh.initialise(lh.LeNet5(), 0)
    optimizer, scheduler = lh.make_optimizer(reference, settings, per_epoch)
    capturable = CapturableSGD(ours, settings, lh.schedule_per_step(settings, per_epoch))
    for i in range(steps):
        xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
        F.cross_entropy(reference(xb), yb, label_smoothing=settings["label_smoothing"]).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        F.cross_entropy(ours(xb), yb, label_smoothing=settings["label_smoothing"]).backward()
        capturable.step()
        capturable.zero_grad()
    assert capturable.step_index.item() == steps
    return reference, ours


@pytest.mark.parametrize("recipe", ["default", "fast", "reference"])
def test_the_capturable_update_takes_the_steps_torch_sgd_takes(recipe):
    reference, ours = train_both(recipe)
    moved = max((a - lh.initialise(lh.LeNet5(), 0).state_dict()[k]).abs().max().item()
                for k, a in reference.state_dict().items())
    assert moved > 1e-3  # the weights did move: the comparison below means something
    for (name, a), b in zip(reference.state_dict().items(), ours.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


def test_a_wrong_schedule_is_caught():
    """The check can fail: the same update read one step late in its schedule drifts away."""
    settings = lh.resolve_recipe("default", epochs=3)
    model = lh.initialise(lh.LeNet5(), 0)
    capturable = CapturableSGD(model, settings, lh.schedule_per_step(settings, 8))
    capturable.lrs = torch.roll(capturable.lrs, 1)
    reference = lh.initialise(lh.LeNet5(), 0)
    optimizer, scheduler = lh.make_optimizer(reference, settings, 8)
    torch.manual_seed(0)
    for _ in range(8):
        x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
        F.cross_entropy(reference(x), y).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        capturable.step()
        capturable.zero_grad()
    assert not torch.allclose(reference.conv1.weight, model.conv1.weight, rtol=1e-5, atol=1e-6)


class OperationsSeen(TorchDispatchMode):
    """Every tensor operation run inside it, by name."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_the_update_never_reads_a_number_back_from_the_device():
    """A CUDA graph cannot hold a step that asks the device for a value (.item(), which indexing a
    tensor by a 0-d tensor does); the update reads its schedule with tensor operations only."""
    settings = lh.resolve_recipe("default", epochs=1)
    model = lh.initialise(lh.LeNet5(), 0)
    capturable = CapturableSGD(model, settings, lh.schedule_per_step(settings, 4))
    F.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.arange(4)).backward()
    with OperationsSeen() as seen:
        capturable.step()
    assert seen.names and not [n for n in seen.names if "_local_scalar_dense" in n or "item" in n], seen.names
    with OperationsSeen() as seen:
        capturable.lrs[capturable.step_index]  # the way it must not be read: the check can fail
    assert any("_local_scalar_dense" in n for n in seen.names)
