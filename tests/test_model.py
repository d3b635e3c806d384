"""Model, shapes and device: the network of the reference post, explained failures."""

from __future__ import annotations

import pytest
import torch

import lenet5_helpers as lh


def test_lenet5_has_the_reference_parameter_count():
    model = lh.LeNet5()
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_layer_table_gives_each_layer_its_shape_and_parameters():
    rows = lh.layer_table(lh.LeNet5(), (2, 1, 32, 32))
    assert [(r["layer"], r["output_shape"], r["params"]) for r in rows] == [
        ("conv1", (6, 28, 28), 156), ("pool", (6, 14, 14), 0), ("conv2", (16, 10, 10), 2_416),
        ("pool", (16, 5, 5), 0), ("conv3", (120, 1, 1), 48_120), ("fc1", (84,), 10_164),
        ("fc2", (10,), 850)]


def test_layer_table_works_for_any_model():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten())
    rows = lh.layer_table(model, (1, 3, 8, 8))
    assert [r["output_shape"] for r in rows] == [(4, 8, 8), (256,)]
    assert rows[0]["params"] == 3 * 4 * 9 + 4


def test_print_layer_table_counts_a_shared_layer_once(capsys):
    lh.print_layer_table(lh.layer_table(lh.LeNet5()))
    assert capsys.readouterr().out.splitlines()[-1].split()[-1] == "61,706"


def test_conv_output_size_formula():
    assert [lh.conv_output_size(32, 5), lh.conv_output_size(28, 2, stride=2),
            lh.conv_output_size(28, 5, padding=2), lh.conv_output_size(7, 3, stride=2)] == [28, 14, 28, 3]


def test_28x28_input_is_explained_not_a_matmul_error():
    with pytest.raises(ValueError) as error:
        lh.LeNet5()(torch.zeros(4, 1, 28, 28))
    message = str(error.value)
    assert "32, 32" in message and "4x1x28x28" in message
    assert "Resize((32, 32))" in message and "Pad(2)" in message
    assert "mat1" not in message


def test_other_wrong_shapes_are_explained_too():
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 1, 32, 32\); got 1x32x32"):
        lh.LeNet5()(torch.zeros(1, 32, 32))


def test_auto_device_picks_what_is_there(capsys):
    device = lh.pick_device("auto")
    assert device.type == lh.available_devices()[0]
    assert "picked" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_is_an_error_at_once():
    with pytest.raises(RuntimeError, match=r"device='cuda' was asked for.*available: .*cpu"):
        lh.pick_device("cuda")


def test_an_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="device='gpu'.*auto, cpu, cuda, mps"):
        lh.pick_device("gpu")


def test_draw_network_writes_every_tensor_shape_of_the_model():
    fig = lh.draw_network(lh.LeNet5())
    texts = [t.get_text() for t in fig.axes[0].texts]
    shapes = [t for t in texts if t and "\n" not in t]
    assert shapes == ["1@32×32", "6@28×28", "6@14×14", "16@10×10", "16@5×5", "120@1×1", "84", "10"]
    assert "conv1\n5×5 conv\n156 params" in texts and "pool\n2×2 max-pool" in texts
    assert "fc2\nlinear\n850 params" in texts


def test_draw_network_follows_the_model_not_a_fixed_picture():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.AvgPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 7))
    texts = [t.get_text() for t in lh.draw_network(model, (1, 1, 16, 16)).axes[0].texts]
    assert [t for t in texts if t and "\n" not in t] == ["1@16×16", "4@16×16", "4@8×8", "256", "7"]
    assert "0\n3×3 conv\n40 params" in texts and "1\n2×2 avg-pool" in texts


def test_shift_images_moves_a_known_image_and_fills_with_background():
    images = torch.arange(16.0).reshape(1, 1, 4, 4)
    right_down = lh.shift_images(images, 1, 2)  # one pixel right, two down
    assert torch.equal(right_down[0, 0, 2:, 1:], images[0, 0, :2, :3])  # what stays in the frame
    assert (right_down[0, 0, :2] == lh.BACKGROUND).all() and (right_down[0, 0, :, 0] == lh.BACKGROUND).all()
    left_up = lh.shift_images(images, -3, -1, fill=7.5)
    assert torch.equal(left_up[0, 0, :3, :1], images[0, 0, 1:, 3:])
    assert (left_up[0, 0, 3] == 7.5).all() and (left_up[0, 0, :, 1:] == 7.5).all()
    assert torch.equal(lh.shift_images(images, 0, 0), images)
    assert (lh.shift_images(images, 4, 0) == lh.BACKGROUND).all()  # past the frame: only background
    batch = torch.randn(5, 1, 8, 8)
    assert torch.equal(lh.shift_images(lh.shift_images(batch, 2, -1), -2, 1)[..., 1:-1, 2:-2],
                       batch[..., 1:-1, 2:-2])  # there and back: the middle is unchanged


class ReadsOnePixel(torch.nn.Module):
    """Two logits: 0, and 5 x the pixel at row 16, column 16 (bright there: class 1)."""

    def forward(self, x):
        bright = x[:, 0, 16, 16]
        return torch.stack([torch.zeros_like(bright), 5 * bright], dim=1)


def test_predict_tta_averages_the_probabilities_of_the_digit_and_its_four_one_pixel_shifts():
    """A model that reads one pixel sees a dot one pixel right of it only in the copy moved one pixel
    left: TTA gives the mean of five probabilities (not of logits, not fewer copies)."""
    image = torch.full((1, 1, 32, 32), 0.0)
    image[0, 0, 16, 17] = 1.0  # the dot, one pixel right of the pixel the model reads
    model = ReadsOnePixel()
    plain = torch.softmax(lh.predict(model, image), dim=1)
    assert plain[0, 1] == 0.5  # the read pixel is dark (0): a tie
    probabilities = lh.predict_tta(model, image)
    seen = torch.sigmoid(torch.tensor(5.0))  # the copy moved left puts the dot on the read pixel
    assert torch.allclose(probabilities[0, 1], (4 * 0.5 + seen) / 5)  # four ties and the one that saw it
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(1))
    assert torch.allclose(lh.predict_tta(model, image, shifts=((0, 0),)), plain)  # one view: no change


def test_notebook_02s_class_is_the_helpers_lenet5():
    """Notebook 02 writes the class out and says lh.LeNet5 is this very class plus an input check:
    the same layer names, the same weights from the same seed, the same outputs."""
    import nbformat
    from torch import nn
    from torch.nn import functional as F

    from lenet5_series.paths import NOTEBOOKS_DIR

    nb = nbformat.read(str(NOTEBOOKS_DIR / "02-building-lenet5.ipynb"), as_version=4)
    (source,) = [c.source for c in nb.cells
                 if c.cell_type == "code" and "class LeNet5(nn.Module)" in c.source]
    namespace = {"nn": nn, "F": F, "torch": torch}
    exec(source[:source.index("\ntorch.manual_seed")], namespace)  # the class, not the cell's run
    torch.manual_seed(0)
    ours = namespace["LeNet5"]()
    torch.manual_seed(0)
    helper = lh.LeNet5()
    assert list(ours.state_dict()) == list(helper.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), helper.state_dict().values(),
                                                 strict=True))
    x = torch.randn(4, 1, 32, 32)
    assert torch.equal(ours(x), helper(x))


@pytest.mark.parametrize("channels_last", [False, True])
def test_lenet5fast_is_lenet5_computed_in_a_cheaper_order(channels_last):
    """The same weights give the same scores and gradients (pool-then-ReLU to the last digit)."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 32, 32), torch.randint(0, 10, (64,))
    settings = {"channels_last": channels_last}
    plain = lh.use_memory_format(lh.initialise(lh.LeNet5(), 0), settings)
    fast = lh.use_memory_format(lh.initialise(lh.LeNet5Fast(), 0), settings)
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in plain.named_parameters()]
    for net in (plain, fast):
        torch.nn.functional.cross_entropy(net(x), y).backward()
    assert torch.allclose(fast(x), plain(x), rtol=0, atol=1e-6)
    for a, b in zip(plain.parameters(), fast.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-6)
    # its first rewrite alone, pooling before ReLU, gives the same numbers to the last digit
    first = [lh.initialise(lh.LeNet5(), 0).conv1 for _ in range(2)]
    relu_first = plain.pool(torch.relu(first[0](x)))
    pool_first = torch.relu(plain.pool(first[1](x)))
    assert torch.equal(relu_first, pool_first)
    (relu_first * y[:, None, None, None]).sum().backward()
    (pool_first * y[:, None, None, None]).sum().backward()
    assert torch.equal(first[0].weight.grad, first[1].weight.grad)
    conv3_ran, pooled_negatives = [], []
    fast.conv3.register_forward_hook(lambda *_: conv3_ran.append(True))
    fast.pool.register_forward_hook(lambda _, args, out: pooled_negatives.append(bool((args[0] < 0).any())))
    fast(x)
    assert not conv3_ran and pooled_negatives == [True, True]  # its own order: pool, then ReLU, twice
    plain.load_state_dict(fast.state_dict())  # a fast run's checkpoint loads into LeNet5


def test_lenet5fast_is_what_the_fast_recipe_trains():
    assert type(lh.lenet5_for("fast")) is lh.LeNet5Fast
    assert type(lh.lenet5_for("default")) is type(lh.lenet5_for("reference")) is lh.LeNet5
