"""Mixed precision for the modules a student writes (issue 29): the checks' contract.

Every visible check of a module exercise ends with ``toolkit.expect_device_free``, which also runs
``toolkit.expect_autocast``: the student's module, inside ``torch.autocast('cpu', dtype=torch.bfloat16)``,
receives the bfloat16 tensor an autocast convolution hands on while its weights stay float32. It must run
(mistake ``autocast``) and stay within ``toolkit.AUTOCAST_BOUND`` of its float32 result (mistake
``autocast_precision``). The catalog holds the wrong modules that only this catches (a dtype guard that
refuses mixed precision, chapters 01, 05 and 08; tests/test_catalog.py grades them); this file proves the
mechanism runs for every module exercise and that both mistakes are named.
"""
from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn as nn

import catalog
from course_lib.checks import CheckFailure, toolkit

EXERCISES, IMPLS = catalog.load_all()


class Standardise(nn.Module):
    """A hand-written normalisation, then a 1x1 convolution; ``naive`` takes the variance as E[x^2] - E[x]^2."""

    def __init__(self, naive: bool):
        super().__init__()
        self.naive = naive
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        mu = x.mean((1, 2, 3), keepdim=True)
        if self.naive:
            var = (x * x).mean((1, 2, 3), keepdim=True) - mu * mu
        else:
            var = ((x - mu) ** 2).mean((1, 2, 3), keepdim=True)
        return self.conv((x - mu) / torch.sqrt(var + 1e-5))


def offset_input() -> torch.Tensor:
    return torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(0)) + 20


def test_a_variance_that_cancels_in_bfloat16_is_named():
    torch.manual_seed(0)
    toolkit.expect_autocast(Standardise(naive=False), offset_input(), what="Standardise")
    torch.manual_seed(0)
    with pytest.raises(CheckFailure) as caught:
        toolkit.expect_autocast(Standardise(naive=True), offset_input(), what="Standardise")
    assert caught.value.mistake == "autocast_precision"
    assert "E[x^2] - E[x]^2" in str(caught.value)


def test_a_module_that_refuses_mixed_precision_is_named_and_its_error_quoted():
    class Guarded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            if x.dtype != self.conv.weight.dtype:
                raise TypeError(f"Guarded: weights {self.conv.weight.dtype}, input {x.dtype}")
            return self.conv(x)

    with pytest.raises(CheckFailure) as caught:
        toolkit.expect_autocast(Guarded(), torch.randn(1, 4, 3, 3), what="Guarded")
    assert caught.value.mistake == "autocast"
    assert "Guarded: weights torch.float32, input torch.bfloat16" in str(caught.value)


def test_the_student_module_is_left_as_it_was():
    module = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    toolkit.expect_autocast(module, torch.randn(2, 4, 3, 3), what="block")
    assert module.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_float64_inputs_are_not_put_under_autocast():
    calls = []

    class Spy(nn.Module):
        def forward(self, x):
            calls.append((x.dtype, torch.is_autocast_enabled("cpu")))
            return x

    toolkit.expect_autocast(Spy(), torch.randn(1, 2, 3, 3, dtype=torch.float64), what="Spy")
    assert calls == []




def _autocast_probes(ex: catalog.Exercise) -> list[str]:
    valid = [impl for impl in IMPLS if impl.exercise == ex and impl.valid]
    if not valid:
        return []
    probes: list[str] = []
    original = toolkit.expect_autocast

    def spy(module, x, **kwargs):
        probes.append(kwargs.get("what", "?"))
        return original(module, x, **kwargs)

    toolkit.expect_autocast = spy
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ex.visible(valid[0].load())
    finally:
        toolkit.expect_autocast = original
    return probes


#: every module exercise of the course (class exercises: a student writes an nn.Module), except chapter 09's
#: network-level check of the gate, whose own exercise (ChannelSpatialGate) runs the probe on the same class
MODULE_EXERCISES = [ex for ex in EXERCISES if ex.symbol[:1].isupper()
                    and ex.name != "ChannelSpatialGate in CapstoneNet"]


def test_there_are_module_exercises_in_every_chapter_that_has_modules():
    chapters = {ex.chapter for ex in MODULE_EXERCISES}
    assert {"01_se", "02_cbam", "03_ctdnet_sam", "04_hacnn", "05_danet_pam", "06_danet_cam",
            "07_nonlocal_gcnet", "08_eca_coordatt", "09_capstone"} <= chapters


@pytest.mark.parametrize("ex", MODULE_EXERCISES, ids=lambda ex: f"{ex.chapter}:{ex.name}")
def test_every_module_exercise_checks_mixed_precision(ex):
    assert _autocast_probes(ex), f"{ex.chapter} {ex.name}: its visible check never ran toolkit.expect_autocast"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none found")
def test_on_cuda_the_probe_is_float16_autocast():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            seen.append((x.dtype, y.dtype, torch.is_autocast_enabled("cuda")))
            return y

    toolkit.expect_autocast(Spy().cuda(), torch.randn(2, 4, 3, 3, device="cuda"), what="Spy")
    assert (torch.float16, torch.float16, True) in seen
