"""The check toolkit's mistake classes (issue 13), tested on the toolkit itself and through the catalog.

Each class is closed once in course_lib/checks/toolkit.py; the catalog must hold, for each, wrong answers named
with its mistake id (tests/test_catalog.py proves they are caught with that id, and that the valid variants
written in the same style get full marks).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from catalog import load_all
from course_lib.checks import toolkit as core
from course_lib.checks.toolkit import CheckFailure

_, IMPLS = load_all()

#: class of the issue -> the mistake ids that prove it in the catalog
CLASSES = {
    "1 gradients of functions and maps": {"no_grad"},
    "2 realistic magnitudes": {"overflow"},
    "3 float64 strict": {"float32_inside"},
    "4 unclaimed parameters": {"extra_parameter"},
    "5 constructor defaults": {"default_args"},
    "6 device and dtype without a GPU": {"tensor_attribute", "cpu_constant"},
    "7 integer answers": {"float_count"},
    "8 asymmetric data": {"argmax_axis"},
    "9 misdirected hints": {"cbam_residual", "spatial_applied_to_input", "pool_kernel", "divisor", "gate_layout",
                            "einops_axes", "batch_mean", "bn_forced_eval", "theta_reshape"},
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_class_has_catalogued_wrong_answers(name):
    caught = {i.mistake for i in IMPLS if not i.valid}
    missing = CLASSES[name] - caught
    assert not missing, f"class {name}: no catalog entry names {sorted(missing)}"


def _fails(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailure) as info:
        fn(*args, **kwargs)
    return info.value.mistake


@pytest.mark.parametrize("value", [12, np.int64(12), np.int32(12), torch.tensor(12), torch.tensor(12, dtype=torch.int32)])
def test_integral_answers_are_accepted(value):
    assert core.expect_int(value, what="n") == 12


@pytest.mark.parametrize("value", [12.0, np.float64(12.0), torch.tensor(12.0), 12.5])
def test_float_answers_get_the_float_hint(value):
    with pytest.raises(CheckFailure) as info:
        core.expect_int(value, what="n")
    assert info.value.mistake == "float_count" and "float" in str(info.value)


def test_float64_is_compared_strictly_and_float32_inside_is_named():
    want = torch.linspace(0.1, 1, 7, dtype=torch.float64)
    rounded = want.float().double()  # what an answer computing in float32 inside returns
    assert core.is_close(want.float(), want)  # a float32 result: float32 tolerance
    assert not core.is_close(rounded, want)  # a float64 result: float64 tolerance
    assert _fails(core.expect_close, rounded, want, what="r") == "float32_inside"
    core.expect_close(want + 1e-14, want, what="r")  # float64 rounding of another summation order passes


def test_nan_where_finite_values_are_expected_is_named_as_overflow():
    want = torch.ones(3, dtype=torch.float64)
    assert _fails(core.expect_close, torch.tensor([1.0, float("nan"), 1.0], dtype=torch.float64), want,
                  what="r") == "overflow"


class _Wrap(nn.Module):
    def __init__(self, fn, attribute=None):
        super().__init__()
        self.fn = fn
        if attribute is not None:
            self.extra = attribute

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("fn", [
    lambda x: x * torch.ones(x.shape[-1]),
    lambda x: x + torch.arange(x.shape[-1]),
    lambda x: x * (torch.ones(x.shape[-1]) * 2).to(x.dtype),
])
def test_cpu_constants_meeting_the_input_are_named(fn):
    assert _fails(core.expect_device_free, _Wrap(fn), torch.randn(2, 3, 4), what="m") == "cpu_constant"


@pytest.mark.parametrize("fn", [
    lambda x: x * torch.ones(x.shape[-1], device=x.device),
    lambda x: x * torch.ones(x.shape[-1]).to(x.device),
    lambda x: x * torch.ones(x.shape[-1]).type_as(x),
    lambda x: x / torch.tensor(3.0).sqrt(),  # a CPU scalar may meet a GPU tensor
    lambda x: x * torch.ones_like(x) * x.new_ones(x.shape[-1]),
])
def test_device_following_constants_pass(fn):
    core.expect_device_free(_Wrap(fn), torch.randn(2, 3, 4), what="m")


def test_plain_tensor_attributes_are_named_and_buffers_pass():
    plain = _Wrap(lambda x: x, attribute=torch.ones(3))
    assert _fails(core.expect_device_free, plain, torch.randn(2, 3), what="m") == "tensor_attribute"
    buffered = _Wrap(lambda x: x)
    buffered.register_buffer("extra", torch.ones(3))
    core.expect_device_free(buffered, torch.randn(2, 3), what="m")


def test_gradients_of_functions_name_a_detached_term():
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    core.expect_gradients(lambda a, b: a * b + a, (x, y), doing="f", names=("a", "b"))
    assert _fails(core.expect_gradients, lambda a, b: (a * b).detach(), (x, y), doing="f", names=("a", "b")) == "no_grad"
    assert _fails(core.expect_gradients, lambda a, b: a * b.detach() + a, (x, y), doing="f",
                  names=("a", "b")) == "no_grad"
    assert _fails(core.expect_gradients, lambda a, b: a * b + (a * b).detach(), (x, y), doing="f",
                  names=("a", "b")) == "no_grad"


def test_unclaimed_bias_fails_unless_accepted():
    weights = {"w": torch.randn(4, 3)}
    assert _fails(core.load_by_shape, nn.Linear(3, 4), weights, what="m") == "extra_parameter"
    layer = nn.Linear(3, 4)
    core.load_by_shape(layer, weights, what="m", accept_extra_biases=True)
    assert torch.equal(layer.bias, torch.zeros(4))


def test_defaults_are_compared_with_the_explicit_arguments():
    class Good(nn.Module):
        def __init__(self, c, r=4):
            super().__init__()
            self.fc = nn.Linear(c, c // r)

        def forward(self, x):
            return self.fc(x)

    class Bad(Good):
        def __init__(self, c, r=2):
            super().__init__(c, r)

    x = torch.randn(2, 8)
    core.expect_defaults(Good, (8,), {"r": 4}, x, what="Good")
    assert _fails(core.expect_defaults, Bad, (8,), {"r": 4}, x, what="Bad") == "default_args"
