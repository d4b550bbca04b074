"""Hidden checks of chapter 03 (CTDNet SAM) and the builder of its stored expected values.

Run at grading time: the student's module gets the reference module's weights (found by role, see
``ch03_ctdnet_sam.sam_layers``) and must match it on random shapes, in float32 and float64, with a
channels_last input, in eval and in training mode, with the same gradients. ``build_expected()`` makes
the values the visible checks compare against, and the results that known mistakes give.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.checks.toolkit import CheckFailure, build, exercise, expect, expect_close, expect_follows, \
    expect_int, float32_exact, fmt_shape, passed, seeded_picker, seeded_randn
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.ch03_ctdnet_sam import ADVICE, _call, _close, _unchanged, load_sam, sam_count_by_hand, \
    sam_layers
from course_lib.hidden.toolkit import LAYOUTS, Result, expect_same_gradients, sweep
from course_lib.reference.ctdnet import SpatialAttentionModule as Reference

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    "q_stacked_shape": ("shape", (2, 2, 44, 44), {}),  # [S_avg; S_max]: two one-channel maps, every pixel kept
    "q_wide_window": ("int", 9, {}),  # a 7x7 gate, then the 3x3 projection (stride 1): 7 + 3 - 1
    # a mirrored kernel = mirror, convolve, mirror back; nothing else holds
    "q_kernel_flip": ("choices", "a", {"options": "abcd"}),
}
define_hidden_question_checks(globals(), ANSWERS)

# --------------------------------------------------------------------------------------------
# reference modules with non-trivial weights
# --------------------------------------------------------------------------------------------
def reference(c_in: int, c_out: int, seed: int) -> Reference:
    """A float64 reference SAM with random weights and running statistics (seeded)."""
    module = Reference(c_in, c_out).double()
    with torch.no_grad():
        module.conv_atten.weight.copy_(float32_exact(seeded_randn(1, 2, 3, 3, seed=seed) * 0.6))
        module.conv.weight.copy_(float32_exact(seeded_randn(c_out, c_in, 3, 3, seed=seed + 1) / (3 * c_in ** 0.5)))
        module.bn.weight.copy_(float32_exact(1 + 0.3 * seeded_randn(c_out, seed=seed + 2)))
        module.bn.bias.copy_(float32_exact(0.2 * seeded_randn(c_out, seed=seed + 3)))
        module.bn.running_mean.copy_(float32_exact(0.1 * seeded_randn(c_out, seed=seed + 4)))
        module.bn.running_var.copy_(float32_exact(0.5 + seeded_randn(c_out, seed=seed + 5).abs()))
    return module


def weights_of(module: Reference) -> dict[str, torch.Tensor]:
    return {
        "att": module.conv_atten.weight.detach().clone(),
        "conv": module.conv.weight.detach().clone(),
        "bn_weight": module.bn.weight.detach().clone(),
        "bn_bias": module.bn.bias.detach().clone(),
        "bn_mean": module.bn.running_mean.detach().clone(),
        "bn_var": module.bn.running_var.detach().clone(),
    }


# --------------------------------------------------------------------------------------------
# what known mistakes compute (for the diagnoses)
# --------------------------------------------------------------------------------------------
def _stacked(x: torch.Tensor, *, order: str = "avg_max", first: str = "mean") -> torch.Tensor:
    avg = x.sum(1, keepdim=True) if first == "sum" else x.mean(1, keepdim=True)
    mx = x.amax(1, keepdim=True)
    return torch.cat((avg, mx) if order == "avg_max" else (mx, avg), dim=1)


def _pre_activation(x: torch.Tensor, weight: torch.Tensor, *, order: str = "avg_max", first: str = "mean"):
    return F.conv2d(_stacked(x, order=order, first=first), weight, padding=1)


def attention_mistakes(x: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.double()
    z = _pre_activation(x, weight)
    b, _, h, w = z.shape
    return {
        "pool_order": torch.sigmoid(_pre_activation(x, weight, order="max_avg")),
        "missing_sigmoid": z,
        "softmax_gate": torch.softmax(z.reshape(b, 1, h * w), dim=-1).reshape(b, 1, h, w),
        "channel_sum": torch.sigmoid(_pre_activation(x, weight, first="sum")),
        "sigmoid_first": F.conv2d(torch.sigmoid(_stacked(x)), weight, padding=1),
        # student trial t093: another statistic where (S1) takes the max, a piecewise-linear gate, a padded border
        "std_pool": torch.sigmoid(F.conv2d(torch.cat((x.mean(1, keepdim=True), x.std(1, keepdim=True)), 1), weight,
                                           padding=1)),
        "min_pool": torch.sigmoid(F.conv2d(torch.cat((x.mean(1, keepdim=True), x.amin(1, keepdim=True)), 1), weight,
                                           padding=1)),
        "abs_max_pool": torch.sigmoid(F.conv2d(torch.cat((x.mean(1, keepdim=True), x.abs().amax(1, keepdim=True)), 1),
                                               weight, padding=1)),
        "hard_sigmoid": F.hardsigmoid(z),
        "reflect_padding": torch.sigmoid(F.conv2d(F.pad(_stacked(x), (1, 1, 1, 1), mode="reflect"), weight)),
        "replicate_padding": torch.sigmoid(F.conv2d(F.pad(_stacked(x), (1, 1, 1, 1), mode="replicate"), weight)),
    }


def forward_mistakes(x: torch.Tensor, module: Reference) -> dict[str, torch.Tensor]:
    module = copy.deepcopy(module).eval()
    x = x.double()
    with torch.no_grad():
        weight = module.conv_atten.weight
        a = module.attention(x)
        a_swapped = torch.sigmoid(_pre_activation(x, weight, order="max_avg"))
        z = _pre_activation(x, weight)
        project = lambda t: F.relu(module.bn(module.conv(t)))  # noqa: E731
        return {
            "missing_relu": module.bn(module.conv(x * a)),
            "projection_order": module.bn(F.relu(module.conv(x * a))),
            "gate_not_applied": project(x),
            "pool_order": project(x * a_swapped),
            "missing_sigmoid": project(x * z),
            "gate_residual": project(x * a + x),
            "gate_after_projection": project(x) * a,
        }


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
def build_expected() -> dict:
    att_ref = reference(12, 6, seed=303)
    x = seeded_randn(3, 12, 9, 7, seed=301).float()
    x2 = seeded_randn(2, 12, 4, 11, seed=302).float()
    with torch.no_grad():
        attention = {
            "in_channels": 12,
            "out_channels": 6,
            "weight": att_ref.conv_atten.weight.detach().clone(),
            "x": x,
            "a": att_ref.attention(x.double()),
            "diagnoses": attention_mistakes(x, att_ref.conv_atten.weight),
            "x2": x2,
            "a2": att_ref.attention(x2.double()),
            "diagnoses2": attention_mistakes(x2, att_ref.conv_atten.weight),
        }

    fwd_ref = reference(12, 6, seed=313)
    xf = seeded_randn(3, 12, 9, 7, seed=311).float()
    with torch.no_grad():
        forward = {
            "in_channels": 12,
            "out_channels": 6,
            "weights": weights_of(fwd_ref),
            "x": xf,
            "eval": copy.deepcopy(fwd_ref).eval()(xf.double()),
            "train": copy.deepcopy(fwd_ref).train()(xf.double()),
            "diagnoses": forward_mistakes(xf, fwd_ref),
            "x_small": seeded_randn(2, 12, 5, 4, seed=312).float(),
            # the map of forward's module on forward's input, and the gradient of <forward(x), upstream> with
            # respect to x in eval mode (float64): through the projection and through the gate
            "a": fwd_ref.attention(xf.double()),
            "attention_diagnoses": attention_mistakes(xf, fwd_ref.conv_atten.weight),
        }
    ref64 = copy.deepcopy(fwd_ref).eval()
    x64 = xf.double().requires_grad_(True)
    out = ref64(x64)
    upstream = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
    (out * upstream).sum().backward()
    forward["grad_x"] = x64.grad.detach().clone()

    weights = [seeded_randn(1, 2, 3, 3, seed=321), seeded_randn(1, 2, 7, 7, seed=322)]
    swap = {
        "weights": weights,
        "swapped": [w.flip(1) for w in weights],
        "diagnoses": [
            {"unchanged": w.clone(), "flip_w": w.flip(3), "flip_h": w.flip(2), "flip_hw": w.flip((2, 3)),
             "aliased_0": w[:, 1:].expand_as(w).clone(), "aliased_1": w[:, :1].expand_as(w).clone(),
             "transpose_hw": w.transpose(2, 3).clone(), "negated": -w,
             "swap_flip_w": w.flip(1).flip(3), "swap_flip_h": w.flip(1).flip(2), "swap_transposed": w.flip(1).transpose(2, 3).clone()}
            for w in weights
        ],
        "pooled": seeded_randn(2, 2, 6, 5, seed=323),
    }
    # SpatialAttentionModule(2, 1): both convolutions are (1, 2, 3, 3); section 4 says the first one created is the
    # attention conv (student trial t093: no visible check built this size)
    tie_ref = reference(2, 1, seed=331)
    xt = seeded_randn(2, 2, 5, 4, seed=332).float()
    with torch.no_grad():
        tie = {"weights": weights_of(tie_ref), "x": xt, "eval": copy.deepcopy(tie_ref).eval()(xt.double())}
    return {"attention": attention, "forward": forward, "swap": swap, "tie": tie}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, n: int = 3):
    pick = seeded_picker(seed)
    for trial in range(n):
        c_in, c_out = pick(3, 20), pick(3, 9)
        while c_out == c_in:
            c_out = pick(3, 9)
        yield trial, pick(2, 4), c_in, c_out, pick(1, 12), pick(1, 12)


def _student(cls: type, ref: Reference, mode: str = "eval") -> Callable:
    """The sweep's builder: the student's SAM with the reference's weights (found by role), in ``mode``."""
    c_in, c_out = ref.in_channels, ref.out_channels

    def student(dtype: torch.dtype, device: str) -> torch.nn.Module:
        module = build(cls, c_in, c_out)
        load_sam(module, sam_layers(module, c_in, c_out, what=f"{cls.__name__}({c_in}, {c_out})"), weights_of(ref))
        return module.to(device=device, dtype=dtype).train(mode == "train")
    return student


@exercise("SpatialAttentionModule.attention (hidden)", budget_s=30)
def hidden_sam_attention(cls: type) -> None:
    for trial, b, c_in, c_out, h, w in _trials(3030):
        ref = reference(c_in, c_out, seed=3100 + trial)
        x64 = seeded_randn(b, c_in, h, w, seed=3200 + trial)
        with torch.no_grad():
            target = Result("attention", ref.attention(x64), attention_mistakes(x64, ref.conv_atten.weight),
                            always=True, hint="compare each step with (S1)-(S2).")
        sweep(_student(cls, ref), x64, [target], advice=ADVICE, call=_call, unchanged=_unchanged)
        # gradient with respect to the input equals the reference's
        expect_same_gradients(_student(cls, ref)(torch.float64, "cpu"), ref, x64,
                              lambda shape: seeded_randn(*shape, seed=3300 + trial), method="attention", call=_call)


@exercise("SpatialAttentionModule.forward (hidden)", budget_s=30)
def hidden_sam_forward(cls: type) -> None:
    for trial, b, c_in, c_out, h, w in _trials(3031):
        ref = reference(c_in, c_out, seed=3400 + trial)
        x64 = seeded_randn(b, c_in, h, w, seed=3500 + trial)
        for mode in ("eval", "train"):
            ref_m = copy.deepcopy(ref).train(mode == "train")
            target = Result("forward", ref_m(x64).detach(), forward_mistakes(x64, ref) if mode == "eval" else {},
                            always=True, hint="compare each step with (S3)-(S4).")

            def running_mean(module: torch.nn.Module, device: str, dtype: torch.dtype) -> None:
                bn = sam_layers(module, c_in, c_out, what="the module")["bn"]
                expect_close(bn.running_mean.detach().cpu(), ref_m.bn.running_mean.detach(),
                             what="the BatchNorm's running mean after one training-mode forward",
                             hint="use nn.BatchNorm2d with its default momentum (0.1).")

            # one training-mode call per module: running statistics move
            sweep(_student(cls, ref, mode), x64, [target], advice=ADVICE, call=_call, unchanged=_unchanged,
                  layouts=LAYOUTS if mode == "eval" else LAYOUTS[:1], after=running_mean if mode == "train" else None,
                  doing=f"{{call}} in {mode} mode with x of shape {{shape}}, {{dtype}}, {{layout}}, on {{device}}")
        # gradients with respect to the input and the weights equal the reference's
        module, ref_m = _student(cls, ref, "train")(torch.float64, "cpu"), copy.deepcopy(ref).train()
        layers = sam_layers(module, c_in, c_out, what="the module")
        expect_same_gradients(module, ref_m, x64, lambda shape: seeded_randn(*shape, seed=3600 + trial), call=_call,
                              params=[("the att weight", layers["att"], ref_m.conv_atten.weight),
                                      ("the conv weight", layers["conv"], ref_m.conv.weight),
                                      ("the BatchNorm weight", layers["bn"].weight, ref_m.bn.weight)])


@exercise("sam_parameter_count (hidden)", budget_s=5)
def hidden_sam_parameter_count(fn: Callable) -> None:
    g = torch.Generator().manual_seed(3032)
    for _ in range(6):
        c_in, c_out = (int(v) for v in torch.randint(1, 300, (2,), generator=g))
        got = expect_int(_call(fn, c_in, c_out, doing=f"sam_parameter_count({c_in}, {c_out})"),
                         what=f"sam_parameter_count({c_in}, {c_out})")
        right = sam_count_by_hand(c_in, c_out)
        expect(got == right, f"sam_parameter_count({c_in}, {c_out}) returned {got!r}, which is not the number of "
                             f"trainable parameters of SpatialAttentionModule({c_in}, {c_out}).", mistake="param_count")
    module = Reference(128, 64)
    expect(sum(p.numel() for p in module.parameters()) == sam_count_by_hand(128, 64),
           "internal: the by-hand count disagrees with the reference module", mistake="param_count")


@exercise("swap_pool_order (hidden)", budget_s=5)
def hidden_swap_pool_order(fn: Callable) -> None:
    for trial, k in enumerate((1, 3, 5, 7)):
        for dtype in (torch.float32, torch.float64):
            w = seeded_randn(1, 2, k, k, seed=3700 + trial).to(dtype)
            given = w.clone()
            got = _call(fn, given, doing=f"swap_pool_order(w) with w of shape {fmt_shape(w.shape)}, {dtype}")
            if not torch.equal(given, w):
                raise CheckFailure("swap_pool_order(w) changed w itself; return a new tensor.", mistake="modifies_input")
            expect_follows(got, dtype=dtype, doing=f"swap_pool_order(w) with w of shape {fmt_shape(w.shape)}")
            _close(got, w.flip(1), what=f"swap_pool_order(w) for a {k}x{k} kernel",
                   diagnoses={"unchanged": w, "flip_w": w.flip(3), "flip_h": w.flip(2), "flip_hw": w.flip((2, 3)),
                              "aliased_0": w[:, 1:].expand_as(w), "aliased_1": w[:, :1].expand_as(w)}
                   if k > 1 else {"unchanged": w, "aliased_0": w[:, 1:].expand_as(w),
                                  "aliased_1": w[:, :1].expand_as(w)})
    passed()
