"""Hidden checks of chapter 01 (Squeeze-and-Excitation), and the values its visible checks compare with.

The hidden checks run at grading time with the reference module at hand: random shapes over several
seeded trials, the reference's weights copied into the student's module, float64, channels_last,
gradients, and dtype/device following the input. ``build_expected()`` writes ``expected/ch01_se.pt``.
"""
from __future__ import annotations

import random
from typing import Any, Callable

import torch

from course_lib.checks.toolkit import CheckFailure, build, call, count_parameters, exercise, expect, \
    expect_close_or_name, expect_int, expect_shape, forward_keeps_input, load_by_shape, passed, seeded_randn, \
    tolerances
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.ch01_se import ADVICE, SE_ERROR_HINTS, call_se, check_se_parameters, role_weights
from course_lib.reference.se import SqueezeExcitation

__all__ = ["ANSWERS", "build_expected", "hidden_se", "hidden_se_parameter_count",
           "hidden_seresnet50_extra_parameters", "hidden_q_w1_shape", "hidden_q_softmax_scale",
           "hidden_q_stage_params"]

#: (blocks, output channels of each bottleneck block) for ResNet-50's four stages.
RESNET50_STAGES = ((3, 256), (4, 512), (6, 1024), (3, 2048))

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    "q_w1_shape": ("shape", (32, 512, 1, 1), {}),  # (out, in, kH, kW) with out = C // r = 512 // 16
    "q_softmax_scale": ("float", 1 / 512, {"digits": 3}),  # equal logits: each of the C = 512 weights is 1 / C
    "q_stage_params": ("int", 6 * (2 * 1024 * 64 + 64 + 1024), {}),  # 6 blocks of C = 1024, C' = 64: 792,960
}
define_hidden_question_checks(globals(), ANSWERS)


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
def _se_weights(channels: int, reduction: int, seed: int) -> dict[str, torch.Tensor]:
    """Weights in the reference's layout, big enough that every known mistake changes the gate."""
    hidden = channels // reduction
    return {
        "fc1.weight": seeded_randn(hidden, channels, 1, 1, seed=seed) * 0.5,
        "fc1.bias": seeded_randn(hidden, seed=seed + 1) * 0.5,
        "fc2.weight": seeded_randn(channels, hidden, 1, 1, seed=seed + 2) * 0.8,
        "fc2.bias": seeded_randn(channels, seed=seed + 3) * 0.5,
    }


def _reference(channels: int, reduction: int, weights: dict[str, torch.Tensor]) -> SqueezeExcitation:
    module = SqueezeExcitation(channels, reduction).double()
    module.load_state_dict({k: v.double() for k, v in weights.items()})
    return module.eval()


def _gate_variants(module: SqueezeExcitation, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the known mistakes make of the gate, computed from the reference's layers."""
    z_mean = x.mean((2, 3), keepdim=True)
    z_max = x.amax((2, 3), keepdim=True)
    pre = module.fc2(torch.relu(module.fc1(z_mean)))  # W2 relu(W1 z), before the sigmoid
    return {
        "missing_sigmoid": pre,
        "softmax_gate": torch.softmax(pre, dim=1),
        "relu_after_last": torch.sigmoid(torch.relu(pre)),
        "missing_relu": torch.sigmoid(module.fc2(module.fc1(z_mean))),
        "max_squeeze": torch.sigmoid(module.fc2(torch.relu(module.fc1(z_max)))),
        "batch_mean": torch.sigmoid(module.fc2(torch.relu(module.fc1(x.mean((0, 2, 3), keepdim=True))))).expand_as(pre),
    }


def build_expected() -> dict[str, Any]:
    channels, reduction = 32, 4  # C' = 8, while a hard-coded // 16 would give 2
    weights = {k: v.float() for k, v in _se_weights(channels, reduction, seed=101).items()}
    # B > 1, H != W, odd sizes, C not in {H, W}; a per-channel offset spreads the squeezed means
    x = (seeded_randn(2, channels, 7, 5, seed=102) + 1.5 * seeded_randn(2, channels, 1, 1, seed=103)).float()
    upstream = seeded_randn(2, channels, 7, 5, seed=104).float()
    module = _reference(channels, reduction, weights)
    xd = x.double().requires_grad_(True)
    with torch.no_grad():
        gate = module.attention(xd)
        variants = _gate_variants(module, xd)
    out = module(xd)
    (grad_x,) = torch.autograd.grad((out * upstream.double()).sum(), xd)

    counts = []
    for c, r in ((32, 4), (64, 16), (256, 16), (48, 8), (100, 16), (24, 6)):
        counts.append({"channels": c, "reduction": r, "count": count_parameters(SqueezeExcitation(c, r))})

    reductions = [16, 8, 32]

    def extra(r: int, *, bias: bool = True, per_stage: bool = False, width: int = 1, fixed: int | None = None) -> int:
        total = 0
        for blocks, c in RESNET50_STAGES:
            c //= width
            h = c // (fixed or r)
            total += (1 if per_stage else blocks) * (2 * c * h + (h + c if bias else 0))
        return total

    return {
        "se": {
            "channels": channels,
            "reduction": reduction,
            "weights": weights,
            "x": x,
            "upstream": upstream,
            "gate": gate.float(),
            "out": out.detach().float(),
            "gate64": gate.clone(),  # float64, for the visible check's float64 copies
            "out64": out.detach().clone(),
            "odd_channels": 36,  # with odd_reduction: C / r = 4.5, so C // r and ceil(C / r) differ
            "odd_reduction": 8,
            "grad_x": grad_x.float(),
            "gate_diagnoses": {k: v.float() for k, v in variants.items()},
            "out_gate_added": (xd + gate).detach().float(),
        },
        "parameter_count": counts,
        "seresnet50": {
            "reductions": torch.tensor(reductions),
            "extra": torch.tensor([
                sum(b * count_parameters(SqueezeExcitation(c, r)) for b, c in RESNET50_STAGES) for r in reductions
            ]),
            "diagnoses": {
                "missing_bias": torch.tensor([extra(r, bias=False) for r in reductions]),
                "se_per_stage": torch.tensor([extra(r, per_stage=True) for r in reductions]),
                "bottleneck_width": torch.tensor([extra(r, width=4) for r in reductions]),
                "reduction_ignored": torch.tensor([extra(r, fixed=16) for r in reductions]),
            },
        },
    }


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trial_shapes(seed: int, n: int) -> list[tuple[int, int, int, int, int]]:
    """(B, C, H, W, r) with C' = C // r >= 1, H != W mostly, odd and even sizes."""
    rng = random.Random(seed)
    shapes = []
    for _ in range(n):
        r = rng.choice([2, 3, 4, 8, 16])
        c = rng.choice([r, 2 * r, 3 * r + 1, 5 * r, 48, 64]) if r < 16 else rng.choice([16, 33, 48, 64])
        shapes.append((rng.randint(1, 3), c, rng.randint(1, 9), rng.randint(1, 9), r))
    return shapes


def _compare(module, reference, x: torch.Tensor, *, label: str) -> None:
    rtol, atol = tolerances(x.dtype)
    want_gate = reference.attention(x)
    gate = call_se(module.attention, x, doing=f"{label}.attention(x)")
    expect_shape(gate, want_gate.shape, what=f"{label}.attention(x)")
    expect(gate.dtype == x.dtype,
           f"{label}.attention(x) returned {gate.dtype} for a {x.dtype} input: do not hard-code a dtype "
           "(torch.float32); let the result follow x.", mistake="dtype")
    expect(gate.device == x.device,
           f"{label}.attention(x) returned a tensor on {gate.device} for an input on {x.device}: "
           "do not move tensors to a fixed device (.cuda(), .cpu()).", mistake="device")
    expect_close_or_name(gate, want_gate, what=f"{label}.attention(x)", rtol=rtol, atol=atol,
                         diagnoses=[(k, v, ADVICE[k]) for k, v in _gate_variants(reference, x).items()]
                         + [("softmax_gate", torch.ones_like(want_gate), ADVICE["softmax_one"])])
    want = reference(x)
    out = forward_keeps_input(module, x, doing=f"{label}(x)", hints=SE_ERROR_HINTS)
    expect_shape(out, want.shape, what=f"{label}(x)",
                 mistake="returns_map" if isinstance(out, torch.Tensor) and out.shape == gate.shape else "shape",
                 hint=ADVICE["returns_map"] if isinstance(out, torch.Tensor) and out.shape == gate.shape else "")
    expect(out.dtype == x.dtype, f"{label}(x) returned {out.dtype} for a {x.dtype} input.", mistake="dtype")
    expect_close_or_name(out, want, what=f"{label}(x)", rtol=rtol, atol=atol,
                         diagnoses=[("gate_added", x + want_gate, ADVICE["gate_added"])])


@exercise("SqueezeExcitation (hidden)", budget_s=20)
def hidden_se(cls: type) -> None:
    """Random shapes vs the reference with its weights copied; float64, channels_last, gradients, device."""
    for trial, (b, c, h, w, r) in enumerate(_trial_shapes(seed=11, n=4)):
        label = f"SqueezeExcitation({c}, reduction={r})"
        reference = SqueezeExcitation(c, r)
        module = build(cls, c, reduction=r)
        check_se_parameters(module, c, r, what=label)
        load_by_shape(module, role_weights(reference.state_dict()), what=label)
        x = seeded_randn(b, c, h, w, seed=200 + trial, dtype=torch.float32) + seeded_randn(
            b, c, 1, 1, seed=300 + trial, dtype=torch.float32)
        with torch.no_grad():
            _compare(module, reference, x, label=label)
            if trial == 0:  # float64: a hard-coded float32 fails here
                _compare(module.double(), reference.double(), x.double(), label=f"{label} in float64")
                module.float(), reference.float()
            if trial in (0, 1):  # channels_last: .view() on the 4-D input fails here (with B = 1 in trial 1, a
                # view that merges B and C still works: trial 0 has B = 2)
                _compare(module, reference, x.contiguous(memory_format=torch.channels_last),
                         label=f"{label} on a channels_last input")

    # gradients in float64 equal the reference's, for the input and every parameter
    b, c, h, w, r = 2, 24, 5, 3, 4
    label = f"SqueezeExcitation({c}, reduction={r})"
    reference = SqueezeExcitation(c, r).double()
    module = build(cls, c, reduction=r).double()
    load_by_shape(module, role_weights(reference.state_dict()), what=label)
    x = seeded_randn(b, c, h, w, seed=400) + seeded_randn(b, c, 1, 1, seed=401)
    upstream = seeded_randn(b, c, h, w, seed=402)
    xs, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = call(module, xs, doing=f"{label}(x) in float64")
    call(lambda: (out * upstream).sum().backward(), doing=f"backward through {label}(x)")
    (reference(xr) * upstream).sum().backward()
    expect(xs.grad is not None, f"no gradient reached x through {label}(x).", mistake="no_grad")
    expect_close_or_name(xs.grad, xr.grad, what=f"the gradient of {label}(x) with respect to x", rtol=1e-9,
                         atol=1e-11, fallback=("no_grad", "part of the computation is cut from the graph."))
    ref_grads = {tuple(s for s in q.shape if s != 1): q.grad for q in reference.parameters()}
    for name, p in module.named_parameters():
        expect(p.grad is not None, f"{label}: parameter {name} got no gradient; keep it in the graph.",
               mistake="no_grad")
        want = ref_grads[tuple(s for s in p.shape if s != 1)]
        expect_close_or_name(p.grad.reshape(want.shape), want, what=f"the gradient of {label}.{name}",
                             rtol=1e-9, atol=1e-11)

    if torch.cuda.is_available():  # the module follows its input to the GPU
        reference = SqueezeExcitation(c, r).cuda()
        module = build(cls, c, reduction=r).cuda()
        load_by_shape(module, role_weights(reference.state_dict()), what=label)
        with torch.no_grad():
            _compare(module, reference, x.float().cuda(), label=f"{label} on CUDA")
    passed()


@exercise("se_parameter_count (hidden)", budget_s=5)
def hidden_se_parameter_count(fn: Callable[..., Any]) -> None:
    """Random (C, r) against the reference module's parameter count."""
    rng = random.Random(7)
    for _ in range(6):
        r = rng.randint(1, 20)
        c = rng.randint(r, 600)
        want = count_parameters(SqueezeExcitation(c, r))
        got = expect_int(call(fn, c, r, doing=f"se_parameter_count({c}, {r})"), what=f"se_parameter_count({c}, {r})")
        if got != want:
            raise CheckFailure(f"se_parameter_count({c}, {r}) returned {got}; expected {want} "
                               f"(C' = {c} // {r} = {c // r}).", mistake="param_count")
        passed()


@exercise("seresnet50_extra_parameters (hidden)", budget_s=5)
def hidden_seresnet50_extra_parameters(fn: Callable[..., Any]) -> None:
    """Other reductions, against the reference module's counts."""
    for r in (4, 64, 128):
        want = sum(b * count_parameters(SqueezeExcitation(c, r)) for b, c in RESNET50_STAGES)
        got = expect_int(call(fn, r, doing=f"seresnet50_extra_parameters({r})"),
                         what=f"seresnet50_extra_parameters({r})")
        expect(got == want, f"seresnet50_extra_parameters({r}) returned {got:,}; expected {want:,}.",
               mistake="param_count")
