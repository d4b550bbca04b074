"""The shipped checkpoints of chapters 01-07 (course_lib/learned.py, course_lib/checkpoints/*.pt).

* every checkpoint is small, loads into the reference module by the chapter checks' loader, and
  reproduces its recorded test accuracy and every recorded figure number;
* a module with other attribute names (a student's) gets the same network by the same roles, and
  wrong roles or a wrong module are caught with a message;
* training is deterministic for a seed.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from course_lib import capstone as cap
from course_lib import learned
from course_lib.checks.toolkit import CheckFailure
from course_lib.tools import checkpoints


@pytest.fixture(scope="module")
def test_data():
    return learned.test_split()


def test_test_split_is_drawn_once_and_every_call_gets_its_own_copy(test_data):
    """test_split is cached per process (the warm grading template draws it once for every child); a
    caller who changes its tensors in place must change nothing for the next caller, and the cached split
    must be the one a fresh draw gives."""
    small = dataclasses.replace(learned.BUDGET, num_test=30)
    first = learned.test_split(small)
    fresh = learned.make_cluttered_digits(30, learned.split_sources(seed=small.data_seed)[1],
                                          seed=2 * small.data_seed + 1, **learned._common(small))
    for field in dataclasses.fields(first):
        assert torch.equal(getattr(first, field.name), getattr(fresh, field.name)), field.name
        getattr(first, field.name).zero_()  # a student's in-place change
    second = learned.test_split(small)
    for field in dataclasses.fields(second):
        assert torch.equal(getattr(second, field.name), getattr(fresh, field.name)), field.name
    assert len(learned.test_split()) == len(test_data) == learned.BUDGET.num_test


@pytest.fixture(scope="module")
def loaded():
    return {name: checkpoints.load_reference(name) for name in learned.RECIPES}


@pytest.mark.parametrize("name", list(learned.RECIPES))
def test_checkpoint_is_small_and_records_what_it_was_built_from(name):
    path = learned.CHECKPOINT_DIR / f"{name}.pt"
    assert path.stat().st_size < 400_000, f"{path} is {path.stat().st_size} bytes"
    state = learned.read_checkpoint(name)
    assert state["seed"] == learned.RECIPES[name].seed and state["budget"] == dataclasses.asdict(learned.BUDGET)
    assert 0.5 < state["accuracy"] <= 1.0 and state["numbers"] and state["train_seconds"] > 0


@pytest.mark.parametrize("name", list(learned.RECIPES))
def test_checkpoint_reproduces_its_accuracy_and_figure_numbers(name, loaded, test_data):
    state = learned.read_checkpoint(name)
    net = loaded[name]
    # one image more or less right on another CPU is tolerated; nothing else
    assert cap.evaluate(net, test_data) == pytest.approx(state["accuracy"], abs=1.5 / len(test_data))
    numbers = learned.measure(name, net, test_data)
    assert numbers.keys() == state["numbers"].keys()
    for key, value in state["numbers"].items():
        # a pointing hit is an argmax over the map's pixels: where two pixels tie or nearly tie (a saturated
        # gate, a bilinear plateau), another CPU's rounding (AVX2 against AVX-512) moves the maximum to the
        # other pixel. Measured: 2 of 1000 images for ctdnet_sam's control, 5 for hacnn_soft's map.
        tolerance = dict(abs=0.01) if key.endswith("pointing_hit") else dict(rel=1e-4, abs=1e-5)
        assert numbers[key] == pytest.approx(value, **tolerance), key


class LinearSE(nn.Module):
    """A student's SE with other names and nn.Linear layers: the checks load it by shape."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.squeeze_to = nn.Linear(channels, channels // reduction)
        self.expand_to = nn.Linear(channels // reduction, channels)

    def attention(self, x):
        z = x.mean((2, 3))
        return torch.sigmoid(self.expand_to(torch.relu(self.squeeze_to(z))))[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)


def test_a_module_with_other_names_loads_the_same_network(loaded, test_data):
    mine = learned.load_trained("se", LinearSE)
    images = test_data.images[:200]
    torch.testing.assert_close(mine(images), loaded["se"](images), rtol=1e-5, atol=1e-5)


def test_loading_goes_through_the_checks_loaders(monkeypatch):
    """Every slot is loaded by the checks' own functions (the same mapping as the graded checks)."""
    from course_lib.checks import toolkit

    calls = []
    real = toolkit.load_by_shape

    def spy(module, weights, **kw):
        calls.append(sorted(weights))
        return real(module, weights, **kw)

    monkeypatch.setattr(toolkit, "load_by_shape", spy)
    checkpoints.load_reference("se")
    assert len(calls) == 3 and all(c == sorted(["W1 weight (C' x C)", "W1 bias", "W2 weight (C x C')", "W2 bias"])
                                   for c in calls)


def test_swapped_roles_would_be_caught(tmp_path, loaded, test_data):
    """Query and key swapped in the stored roles: the network loads, but the figure numbers change,
    so the reproduction test above fails on a wrong mapping."""
    state = learned.read_checkpoint("danet_pam")
    roles = state["modules"]["attention"]
    for part in ("weight", "bias"):
        roles[f"query_conv.{part}"], roles[f"key_conv.{part}"] = roles[f"key_conv.{part}"], roles[f"query_conv.{part}"]
    torch.save(state, tmp_path / "danet_pam.pt")
    wrong = learned.measure("danet_pam", checkpoints.load_reference("danet_pam", directory=tmp_path), test_data)
    right = state["numbers"]
    assert any(abs(wrong[k] - right[k]) > 1e-3 for k in right)


def test_a_module_that_does_not_fit_gets_the_checks_message():
    class NoBias(LinearSE):
        def __init__(self, channels, reduction=16):
            super().__init__(channels, reduction)
            self.squeeze_to = nn.Linear(channels, channels // reduction, bias=False)
            self.expand_to = nn.Linear(channels // reduction, channels, bias=False)

    with pytest.raises(CheckFailure, match="W1 bias"):
        learned.load_trained("se", NoBias)


def test_a_stub_that_is_not_written_yet_gets_a_clear_message(capsys):
    class Stub(nn.Module):
        def __init__(self, channels, reduction=16):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(learned.NotWrittenYet, match="Stub is not written yet"):
        learned.load_trained("se", Stub)
    assert learned.try_load("se", Stub) is None
    assert "not written yet" in capsys.readouterr().out


def test_unknown_recipe_and_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="expected one of: se, cbam"):
        checkpoints.load_reference("sse")
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        checkpoints.load_reference("se", directory=tmp_path)


def test_training_is_deterministic_for_a_seed(tmp_path):
    budget = dataclasses.replace(learned.BUDGET, num_train=120, num_test=60, epochs=1)
    first, rec1 = checkpoints.train_reference("cbam", budget=budget, progress=False)
    second, rec2 = checkpoints.train_reference("cbam", budget=budget, progress=False)
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k
    assert rec1["numbers"] == rec2["numbers"]
    learned.save_checkpoint("cbam", first, rec1, tmp_path)
    again = checkpoints.load_reference("cbam", directory=tmp_path)
    test = learned.test_split(budget)
    assert cap.evaluate(again, test) == rec1["accuracy"]


class ForwardOnlyCBAM(nn.Module):
    """A student's CBAM as chapter 02 has it: sub-modules with attention(x), the block itself forward only."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        from course_lib.reference.cbam import ChannelAttention, SpatialAttention

        self.channel_gate = ChannelAttention(channels, reduction)
        self.spatial_gate = SpatialAttention(kernel_size)

    def forward(self, x):
        return self.spatial_gate(self.channel_gate(x))


def test_a_forward_only_cbam_gives_the_recorded_numbers(test_data):
    net = learned.load_trained("cbam", ForwardOnlyCBAM)
    state = learned.read_checkpoint("cbam")
    numbers = learned.measure("cbam", net, test_data)
    for key, value in state["numbers"].items():
        # a pointing hit is an argmax over the map's pixels: where two pixels tie or nearly tie (a saturated
        # gate, a bilinear plateau), another CPU's rounding (AVX2 against AVX-512) moves the maximum to the
        # other pixel. Measured: 2 of 1000 images for ctdnet_sam's control, 5 for hacnn_soft's map.
        tolerance = dict(abs=0.01) if key.endswith("pointing_hit") else dict(rel=1e-4, abs=1e-5)
        assert numbers[key] == pytest.approx(value, **tolerance), key


def test_try_load_reports_a_module_that_raises_when_run(capsys):
    class HalfDone(LinearSE):
        def attention(self, x):
            raise NotImplementedError()

    assert learned.try_load("se", HalfDone) is None
    assert "HalfDone is not finished yet" in capsys.readouterr().out


def test_figures_draw_and_return_what_they_show(tmp_path, loaded, test_data):
    from course_lib.figures import learned as figs

    se = figs.plot_se_by_depth(loaded["se"], test_data, tmp_path / "se.png")
    assert [se[f"depth_{d}"].shape for d in (1, 2, 3)] == [(10, 16), (10, 32), (10, 48)]
    assert se["class_share_3"] == pytest.approx(learned.read_checkpoint("se")["numbers"]["class_share_3"])
    # the notebook prints the plot's numbers instead of measuring again: they must be measure's, every one
    assert {k: v for k, v in se.items() if not k.startswith("depth_")} == learned.measure("se", loaded["se"], test_data)
    sp = figs.plot_learned_spatial(loaded["ctdnet_sam"], test_data, "ctdnet_sam", tmp_path / "sam.png")
    assert len(sp["scores"]) == 2 and sp["images"].shape == (6, 48, 48)
    pam = figs.plot_pam_queries(loaded["danet_pam"], test_data, 0, tmp_path / "pam.png")
    assert pam["rows"].shape == (4, 12, 12) and len(set(pam["top_keys"].values())) == 1  # one key for all four
    cam = figs.plot_cam_affinity({"paper": loaded["danet_cam"], "official": loaded["danet_cam_official"]}, test_data,
                                 tmp_path / "cam.png")
    assert cam["paper"].shape == (48, 48)
    torch.testing.assert_close(torch.from_numpy(cam["official"]).sum(1).double(), torch.ones(48, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    for name in ("se", "sam", "pam", "cam"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_make_checkpoints_rebuilds_a_shipped_checkpoint_from_its_seed(tmp_path):
    """The cheapest recipe (CAM, no weights but gamma; ~10-20 s on one core), retrained in full on the CPU.

    On the kind of CPU the checkpoint was built on (same torch, same kernel set: AVX2, AVX512, ...) the retrain
    gives the shipped weights and numbers exactly. Another kernel set rounds differently, and 4 epochs of SGD
    carry that into other weights: measured 0.907 and 0.910-0.914 (AVX512, AVX2 kernels on one Xeon) against
    the shipped 0.923. There the retrain must still reach the shipped accuracy within 3 points."""
    checkpoints.build_checkpoints(["danet_cam_official"], directory=tmp_path, device="cpu", progress=False)
    fresh, shipped = learned.read_checkpoint("danet_cam_official", tmp_path), learned.read_checkpoint("danet_cam_official")
    assert fresh["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    same_kind = (shipped.get("cpu_capability"), shipped["torch"]) == (fresh["cpu_capability"], fresh["torch"])
    if not same_kind:
        assert fresh["accuracy"] == pytest.approx(shipped["accuracy"], abs=0.03)
        return
    for key, tensor in shipped["trunk"].items():
        torch.testing.assert_close(fresh["trunk"][key], tensor, rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(fresh["modules"], shipped["modules"], rtol=1e-5, atol=1e-6)
    assert fresh["accuracy"] == pytest.approx(shipped["accuracy"], abs=1e-3)


def test_training_is_deterministic_on_one_machine():
    """The same recipe and seed twice on this machine give the same weights, bit for bit (what makes a
    checkpoint reproducible where it was built)."""
    budget = dataclasses.replace(learned.BUDGET, num_train=120, num_test=60, epochs=1)
    nets = [checkpoints.train_reference("danet_cam_official", budget=budget, device="cpu", progress=False)[0] for _ in range(2)]
    for (name, a), (_, b) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none found")
def test_training_on_cuda_gives_a_cpu_network_that_saves_and_loads(tmp_path):
    budget = dataclasses.replace(learned.BUDGET, num_train=120, num_test=60, epochs=1)
    net, record = checkpoints.train_reference("danet_pam", budget=budget, device="cuda", progress=False)
    assert record["device"] == "cuda" and next(net.parameters()).device.type == "cpu"
    learned.save_checkpoint("danet_pam", net, record, tmp_path)
    again = checkpoints.load_reference("danet_pam", directory=tmp_path)
    assert cap.evaluate(again, learned.test_split(budget)) == pytest.approx(record["accuracy"], abs=1 / 60)


def test_stripes_start_where_the_initialisation_puts_them():
    """An untrained StripeNet (fc weight zero) has its learnt stripes exactly at the initial ones."""
    net = learned.build_net("hacnn_hard", checkpoints.reference_class("hacnn_hard")).eval()
    images = learned.test_split(dataclasses.replace(learned.BUDGET, num_test=20)).images
    torch.testing.assert_close(learned.stripe_boxes(net, images), learned.stripe_boxes(net, images, initial=True))
    rows = learned.stripe_boxes(net, images)[0, :, 0].tolist()  # tops: centres tanh(+-0.75), tanh(+-0.25) - 6 rows
    want = [(math.tanh(t) + 1) / 2 * 48 - 6 for t in (-0.75, -0.25, 0.25, 0.75)]
    assert rows == pytest.approx(want)
