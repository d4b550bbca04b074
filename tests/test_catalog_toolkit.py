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


# --------------------------------------------------------------------------------------------
# issue 27: training-mode normalisation, defaults that matter, every function's protections, real overflow,
# points on the right exercise, named mistakes
# --------------------------------------------------------------------------------------------
#: class of issue 27 -> the mistake ids that prove it in the catalog
CLASSES_27 = {
    "1 training-mode normalisation on loaded weights": {"bn_forced_eval", "bn_per_branch", "bn_twice",
                                                         "bn_statistics"},
    "2 defaults probed where they matter": {"default_args"},
    "3 protections per exercise": {"cpu_constant", "float32_inside", "modifies_input"},
    "4 finite for large inputs at real scale": {"overflow"},
    "5 points on the right exercise": {"memory_layout"},
    "6 named where the mistake is knowable": {"hw_swapped", "bn_forced_train", "missing_choice", "extra_choice"},
}


@pytest.mark.parametrize("name", sorted(CLASSES_27))
def test_every_issue_27_class_has_catalogued_wrong_answers(name):
    caught = {i.mistake for i in IMPLS if not i.valid}
    missing = CLASSES_27[name] - caught
    assert not missing, f"class {name}: no catalog entry names {sorted(missing)}"


class _Normed(nn.Module):
    """conv -> BatchNorm, with the BatchNorm misused in one of the known ways."""

    def __init__(self, how="right"):
        super().__init__()
        self.conv, self.bn, self.how = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), how

    def forward(self, x):
        t = self.conv(x)
        if self.how == "twice":
            self.bn(t)
        if self.how == "per_branch":
            a, b = t.split([2, t.shape[2] - 2], dim=2)
            return torch.cat([self.bn(a), self.bn(b)], dim=2)
        if self.how == "pinned":
            return torch.nn.functional.batch_norm(t, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                                                  self.bn.bias, training=False)
        if self.how == "batch_only":
            return torch.nn.functional.batch_norm(t, None, None, self.bn.weight, self.bn.bias, training=True)
        return self.bn(t)


@pytest.mark.parametrize("how,mistake", [("twice", "bn_twice"), ("per_branch", "bn_per_branch"),
                                         ("pinned", "bn_forced_eval"), ("batch_only", "bn_forced_train")])
def test_misused_batch_norms_are_named(how, mistake):
    x = torch.randn(3, 3, 5, 4)
    assert _fails(core.expect_normalisation_modes, _Normed(how), x, what="m") == mistake


def test_a_batch_norm_used_once_passes_and_the_module_is_left_alone():
    module = _Normed().eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    core.expect_normalisation_modes(module, torch.randn(3, 3, 5, 4), what="m")
    assert not module.training and all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_the_training_step_compares_running_statistics_with_the_reference():
    from course_lib.hidden.toolkit import expect_training_step

    ref = _Normed().double()
    same = _Normed().double()
    same.load_state_dict(ref.state_dict())
    x = torch.randn(3, 3, 5, 4, dtype=torch.float64)
    expect_training_step(same, ref, x, what="m")
    keras = _Normed().double()
    keras.bn.momentum = 0.9
    keras.load_state_dict(ref.state_dict())
    assert _fails(expect_training_step, keras, ref, x, what="m") == "bn_statistics"


def test_a_probe_where_a_wrong_default_gives_the_same_module_is_refused():
    width = lambda channels, reduction: max(8, channels // reduction)  # noqa: E731 - Coordinate Attention's
    assert set(core.uninformative_defaults((64,), {"reduction": 32}, width)) == {"reduction=16", "reduction=64"}
    assert core.uninformative_defaults((512,), {"reduction": 32}, width) == []
    with pytest.raises(RuntimeError):
        core.expect_informative_defaults(nn.Identity, (64,), {"reduction": 32}, torch.zeros(1), layout=width,
                                         what="m")


def test_a_plain_function_gets_a_modules_protections():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    want = x.mean((2, 3), keepdim=True)
    core.expect_function_contract(lambda t: t.mean((2, 3), keepdim=True), (x,), what="f", target64=want)
    assert _fails(core.expect_function_contract, lambda t: t.float().mean((2, 3), keepdim=True).double(), (x,),
                  what="f", target64=want) == "float32_inside"
    assert _fails(core.expect_function_contract, lambda t: t.sum((2, 3), keepdim=True) / torch.tensor([20.0],
                  dtype=t.dtype), (x,), what="f", target64=want) == "cpu_constant"
    assert _fails(core.expect_function_contract, lambda t: t.mul_(1).mean((2, 3), keepdim=True) + 0 * t.add_(1).sum(),
                  (x,), what="f", target64=want) == "modifies_input"


def test_a_function_that_up_casts_a_float32_input_is_named():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    want = x.mean((2, 3), keepdim=True)
    assert _fails(core.expect_function_contract, lambda t: t.double().mean((2, 3), keepdim=True), (x,),
                  what="f", target64=want) == "dtype_upcast"


class _Gate(torch.nn.Module):
    def __init__(self, extra: torch.nn.Module | None = None, doubled: bool = False, upcast: bool = False):
        super().__init__()
        self.conv, self.extra, self.doubled, self.upcast = torch.nn.Conv2d(3, 3, 1), extra, doubled, upcast

    def forward(self, x):
        g = self.conv(x)
        g = self.extra(g) if self.extra is not None else g
        y = x * torch.sigmoid(g) * (2 if (self.doubled and self.training) else 1)
        return y.double() if self.upcast else y


@pytest.mark.parametrize("module, mistake", [
    (_Gate(), None), (_Gate(torch.nn.BatchNorm2d(3)), None), (_Gate(torch.nn.LayerNorm([3, 4, 5])), None),
    (_Gate(torch.nn.Dropout(0.5)), "train_mode"), (_Gate(torch.nn.Sequential(torch.nn.BatchNorm2d(3),
                                                                             torch.nn.Dropout2d(0.2))), "train_mode"),
    (_Gate(doubled=True), "train_mode"), (_Gate(upcast=True), "dtype_upcast")])
def test_training_mode_and_float32_results_are_checked(module, mistake):
    x = torch.randn(2, 3, 4, 5)
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    if mistake is None:
        core.expect_train_mode(module, x, what="g")
        core.expect_keeps_float32(module, x, what="g")
    else:
        with pytest.raises(CheckFailure) as info:
            core.expect_train_mode(module, x, what="g")
            core.expect_keeps_float32(module, x, what="g")
        assert info.value.mistake == mistake
    # the student's module keeps its mode and its running statistics: the checks run copies
    assert module.training and all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_a_function_that_needs_contiguous_memory_loses_its_own_points():
    x = torch.randn(2, 3, 4, 5)
    core.expect_layouts(lambda t: t.reshape(2, 3, -1).mean(-1), (x,), what="f")
    assert _fails(core.expect_layouts, lambda t: t.view(2, 3, -1).mean(-1), (x,), what="f") == "memory_layout"


def test_large_entries_break_the_direct_cosine_and_not_the_rescaled_one():
    v = torch.randn(2, 5, 9, dtype=torch.float64)

    def direct(t):
        n = t.norm(dim=-1)
        return (t @ t.transpose(1, 2) / (n[:, :, None] * n[:, None, :])).mean((1, 2))

    def rescaled(t):
        return direct(t / t.abs().amax(-1, keepdim=True))

    core.expect_finite_at_scale(rescaled, v, what="f")
    core.expect_finite(direct((1e3 * v).float()), what="f")  # the old probe's scale: nothing overflows there
    assert _fails(core.expect_finite_at_scale, direct, v, what="f") == "overflow"


def test_h_and_w_swapped_when_unflattening_is_named():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    branch = 2 * x
    wrong = branch.flatten(2).reshape(2, 3, 5, 4).transpose(2, 3) + x  # unflattened as (W, H), then transposed
    assert _fails(core.expect_close, wrong, branch + x, what="y",
                  diagnoses=core.hw_diagnoses(branch + x, base=x)) == "hw_swapped"
    assert core.swapped_unflatten(torch.zeros(1, 1, 3, 3)) == []
