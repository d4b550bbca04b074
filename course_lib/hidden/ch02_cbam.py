"""Hidden checks of chapter 02 (CBAM), and the values its visible checks compare with.

At grading time, with the reference modules at hand: random shapes over seeded trials, the reference's weights
copied into the student's module, float64, channels_last, gradients, dtype and device following the input.
``build_expected()`` writes ``expected/ch02_cbam.pt``.
"""
from __future__ import annotations

import copy
import random
from typing import Any

import torch

from course_lib.reference.cbam import CBAM, ChannelAttention, SpatialAttention
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.toolkit import (
    build,
    call,
    call_with_hints,
    exercise,
    expect,
    expect_close_or_name,
    expect_shape,
    forward_keeps_input,
    passed,
    seeded_randn,
    tolerances,
)
from course_lib.checks.ch02_cbam import (
    ACCEPT_BIASES,
    HINTS,
    load_by_shape,
    load_channel_weights,
    load_spatial_weights,
    mlp_roles,
)

__all__ = ["ANSWERS", "build_expected", "hidden_cbam", "hidden_channel_attention", "hidden_spatial_attention",
           "hidden_q_spatial_params", "hidden_q_gate_order", "hidden_q_cbam_params"]

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    "q_spatial_params": ("int", 2 * 7 * 7, {}),  # one 7 x 7 kernel per input map, 2 maps in, no bias: 98
    # the spatial gate sees F'; order matters; its max may move
    "q_gate_order": ("choices", "ade", {"options": "abcde"}),
    "q_cbam_params": ("int", 2 * 256 * 16 + 2 * 7 * 7, {}),  # shared MLP 2 C C' + spatial conv 2 k^2: 8,290
}
define_hidden_question_checks(globals(), ANSWERS)


def _channel_ref(c: int, r: int, seed: int) -> ChannelAttention:
    m = ChannelAttention(c, r).double().eval()
    h = c // r
    with torch.no_grad():
        m.mlp[0].weight.copy_(seeded_randn(h, c, 1, 1, seed=seed) * 0.6)
        m.mlp[2].weight.copy_(seeded_randn(c, h, 1, 1, seed=seed + 1) * 0.6)
    return m


def _spatial_ref(k: int, seed: int) -> SpatialAttention:
    m = SpatialAttention(k).double().eval()
    with torch.no_grad():
        m.conv.weight.copy_(seeded_randn(1, 2, k, k, seed=seed) * 0.5)
    return m


def _channel_variants(m: ChannelAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    avg, mx = m.mlp(x.mean((2, 3), keepdim=True)), m.mlp(x.amax((2, 3), keepdim=True))
    last = lambda z: m.mlp[2](torch.relu(m.mlp[0](z)))  # noqa: E731
    linear = lambda z: m.mlp[2](m.mlp[0](z))  # noqa: E731  (no ReLU between the layers)
    return {
        "single_pool:avg": torch.sigmoid(avg),
        "single_pool:max": torch.sigmoid(mx),
        "missing_sigmoid": avg + mx,
        "softmax_gate": torch.softmax(avg + mx, dim=1),
        "relu_after_last": torch.sigmoid(torch.relu(last(x.mean((2, 3), keepdim=True)))
                                         + torch.relu(last(x.amax((2, 3), keepdim=True)))),
        "missing_relu": torch.sigmoid(linear(x.mean((2, 3), keepdim=True)) + linear(x.amax((2, 3), keepdim=True))),
        "sigmoid_per_descriptor:sum": torch.sigmoid(avg) + torch.sigmoid(mx),
        "sigmoid_per_descriptor:mean": (torch.sigmoid(avg) + torch.sigmoid(mx)) / 2,
        "single_pool:avg_twice": torch.sigmoid(2 * avg),
        "single_pool:max_twice": torch.sigmoid(2 * mx),
        "min_pool": torch.sigmoid(avg + m.mlp(x.amin((2, 3), keepdim=True))),
        # the maximum over the channels too: one number per image, repeated for every channel
        "pool_axis:global_max": torch.sigmoid(avg + m.mlp(x.amax((1, 2, 3), keepdim=True).expand_as(
            x.mean((2, 3), keepdim=True)))),
        "branch_combination:sum_first": torch.sigmoid(m.mlp(x.mean((2, 3), keepdim=True)
                                                            + x.amax((2, 3), keepdim=True))),
        "branch_combination:mean": torch.sigmoid((avg + mx) / 2),
        "branch_combination:product": torch.sigmoid(avg * mx),
        "sum_pool:squeeze": torch.sigmoid(m.mlp(x.sum((2, 3), keepdim=True)) + mx),
    }


def _spatial_variants(m: SpatialAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    avg, mx = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
    return {
        "pool_order": torch.sigmoid(m.conv(torch.cat([mx, avg], 1))),
        "missing_sigmoid": m.conv(torch.cat([avg, mx], 1)),
        "sum_pool": torch.sigmoid(m.conv(torch.cat([x.sum(1, keepdim=True), mx], 1))),
        "softmax_gate:positions": torch.softmax(m.conv(torch.cat([avg, mx], 1)).flatten(2), -1).view_as(avg),
        "softmax_gate:rows": torch.softmax(m.conv(torch.cat([avg, mx], 1)), -1),
        "std_pool": torch.sigmoid(m.conv(torch.cat([avg, x.std(1, keepdim=True)], 1))),
        "max_indices": torch.sigmoid(m.conv(torch.cat([avg, x.argmax(1, keepdim=True).to(x.dtype)], 1))),
        "relu_before_sigmoid": torch.sigmoid(torch.relu(m.conv(torch.cat([avg, mx], 1)))),
        **{f"conv_padding_mode:{mode}": torch.sigmoid(torch.nn.functional.conv2d(
            torch.nn.functional.pad(torch.cat([avg, mx], 1), [m.conv.padding[0]] * 4, mode=mode), m.conv.weight))
           for mode in ("reflect", "replicate", "circular")},
    }


def _as_stored(m: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy whose weights are the float32 values the visible checks load (their float64 targets)."""
    twin = copy.deepcopy(m)
    with torch.no_grad():
        for p in twin.parameters():
            p.copy_(p.float().double())
    return twin


def _grad(module, x, upstream):
    xd = x.double().requires_grad_(True)
    (g,) = torch.autograd.grad((module(xd) * upstream.double()).sum(), xd)
    return g.float()


def build_expected() -> dict[str, Any]:
    # channel: C = 40, r = 8 -> C' = 5 while a hard-coded // 16 gives 2; B > 1, H != W, odd sizes
    c, r = 40, 8
    ch = _channel_ref(c, r, seed=501)
    x = (seeded_randn(2, c, 7, 5, seed=502) + seeded_randn(2, c, 1, 1, seed=503)).float()
    up = seeded_randn(2, c, 7, 5, seed=504).float()
    with torch.no_grad():
        xd = x.double()
        channel = {"channels": c, "reduction": r,
                   "weights": {k: v.float() for k, v in ch.state_dict().items()},
                   "x": x, "upstream": up, "gate": ch.attention(xd).float(), "out": ch(xd).float(),
                   "gate64": _as_stored(ch).attention(xd), "out64": _as_stored(ch)(xd),
                   "gate_diagnoses": {k: v.float() for k, v in _channel_variants(ch, xd).items()}}
    channel["grad_x"] = _grad(ch, x, up)

    k = 7
    sp, sp3 = _spatial_ref(k, seed=511), _spatial_ref(3, seed=512)
    xs = (seeded_randn(3, 6, 11, 9, seed=513) + 0.5 * seeded_randn(3, 6, 1, 1, seed=514)).float()
    ups = seeded_randn(3, 6, 11, 9, seed=515).float()
    with torch.no_grad():
        xd = xs.double()
        spatial = {"kernel_size": k, "weight": sp.conv.weight.float(), "weight3": sp3.conv.weight.float(),
                   "x": xs, "upstream": ups, "gate": sp.attention(xd).float(), "gate3": sp3.attention(xd).float(),
                   "out": sp(xd).float(), "gate64": _as_stored(sp).attention(xd), "out64": _as_stored(sp)(xd),
                   "gate_diagnoses": {k_: v.float() for k_, v in _spatial_variants(sp, xd).items()}}
    spatial["grad_x"] = _grad(sp, xs, ups)

    cb = CBAM(24, 4, 5).double().eval()
    cb.channel_gate.load_state_dict(_channel_ref(24, 4, seed=521).state_dict())
    cb.spatial_gate.load_state_dict(_spatial_ref(5, seed=522).state_dict())
    xc = (seeded_randn(2, 24, 9, 6, seed=523) + seeded_randn(2, 24, 1, 1, seed=524)).float()
    upc = seeded_randn(2, 24, 9, 6, seed=525).float()
    with torch.no_grad():
        xd = xc.double()
        cg, sg = cb.channel_gate, cb.spatial_gate
        s_first = sg(xd)
        cbam = {"channels": 24, "reduction": 4, "kernel_size": 5,
                "weights": {"mlp.0.weight": cg.mlp[0].weight.float(), "mlp.2.weight": cg.mlp[2].weight.float(),
                            "conv": sg.conv.weight.float()},
                "x": xc, "upstream": upc, "out": cb(xd).float(),
                "diagnoses": {"cbam_order": cg(s_first).float(),
                              "spatial_on_input": (cg(xd) * sg.attention(xd)).float(),
                              "cbam_residual": sg(xd + cg(xd)).float(),
                              "cbam_residual:outer": (cb(xd) + xd).float(),
                              "spatial_applied_to_input": (xd * sg.attention(cg(xd))).float(),
                              "channel_gate_twice": cg(cb(xd)).float(),
                              "gates_summed": (cg(xd) + sg(xd)).float(),
                              "gate_applied_twice:channel": cg(cg(xd)).float(),
                              "gate_applied_twice:spatial": sg(sg(cg(xd))).float(),
                              "spatial_gate_missing": cg(xd).float(),
                              "cbam_residual:refined": (cg(xd) + cb(xd)).float(),
                              "bam_like": (xd * (1 + torch.sigmoid(cg.attention(xd) + sg.attention(xd)))).float()}}
    cbam["grad_x"] = _grad(cb, xc, upc)
    return {"channel": channel, "spatial": spatial, "cbam": cbam}


def _follow(module, reference, x, *, what, attention=True):
    """Output (and map) against the reference for one input; dtype and device follow x."""
    rtol, atol = tolerances(x.dtype)
    if attention:
        gate = call_with_hints(module.attention, x, doing=f"{what}.attention(x)", hints=HINTS)
        want = reference.attention(x)
        expect_shape(gate, want.shape, what=f"{what}.attention(x)")
        expect(gate.dtype == x.dtype, f"{what}.attention(x) returned {gate.dtype} for a {x.dtype} input: do not "
               "hard-code a dtype.", mistake="dtype")
        expect(gate.device == x.device, f"{what}.attention(x) returned a tensor on {gate.device} for an input on "
               f"{x.device}: no .cuda()/.cpu().", mistake="device")
        expect_close_or_name(gate, want, what=f"{what}.attention(x)", rtol=rtol, atol=atol)
    out = forward_keeps_input(module, x, doing=f"{what}(x)", hints=HINTS)
    want = reference(x)
    expect_shape(out, want.shape, what=f"{what}(x)")
    expect(out.dtype == x.dtype and out.device == x.device,
           f"{what}(x) returned {out.dtype} on {out.device} for a {x.dtype} input on {x.device}.", mistake="dtype")
    expect_close_or_name(out, want, what=f"{what}(x)", rtol=rtol, atol=atol)


def _run_trials(make, *, seed: int, attention: bool = True) -> None:
    rng = random.Random(seed)
    for trial in range(3):
        b, c, h, w = rng.randint(1, 3), rng.choice([16, 24, 40, 48]), rng.randint(3, 12), rng.randint(3, 12)
        module, reference, what = make(c, rng)
        x = seeded_randn(b, c, h, w, seed=seed + trial, dtype=torch.float32) + seeded_randn(
            b, c, 1, 1, seed=seed + 50 + trial, dtype=torch.float32)
        with torch.no_grad():
            _follow(module.float(), reference.float(), x, what=what, attention=attention)
            if trial == 0:
                _follow(module.double(), reference.double(), x.double(), what=f"{what} in float64", attention=attention)
            if trial == 1:
                _follow(module.float(), reference.float(), x.contiguous(memory_format=torch.channels_last),
                        what=f"{what} on a channels_last input", attention=attention)
        module.double(), reference.double()
        xs, xr = x.double().requires_grad_(True), x.double().requires_grad_(True)
        up = seeded_randn(b, c, h, w, seed=seed + 90 + trial)
        out = call(module, xs, doing=f"{what}(x) in float64 with x.requires_grad=True")
        call(lambda: (out * up).sum().backward(), doing=f"backward through {what}(x)")
        (reference(xr) * up).sum().backward()
        expect(xs.grad is not None, f"no gradient reached x through {what}(x).", mistake="no_grad")
        expect_close_or_name(xs.grad, xr.grad, what=f"the gradient of {what}(x)", rtol=1e-9, atol=1e-11,
                             fallback=("no_grad", "part of the computation is cut from the graph."))
        if torch.cuda.is_available() and trial == 2:
            with torch.no_grad():
                _follow(module.float().cuda(), reference.float().cuda(), x.cuda(), what=f"{what} on CUDA",
                        attention=attention)
    passed()


@exercise("ChannelAttention (hidden)", budget_s=20)
def hidden_channel_attention(cls: type) -> None:
    def make(c, rng):
        r = rng.choice([4, 8, 2])
        what = f"ChannelAttention({c}, reduction={r})"
        reference = _channel_ref(c, r, seed=rng.randint(0, 10_000))
        module = build(cls, c, reduction=r).double()
        load_channel_weights(module, c, r, reference.state_dict(), what=what)
        return module, reference, what
    _run_trials(make, seed=601)


@exercise("SpatialAttention (hidden)", budget_s=20)
def hidden_spatial_attention(cls: type) -> None:
    def make(c, rng):
        k = rng.choice([7, 3, 5])
        what = f"SpatialAttention(kernel_size={k})"
        reference = _spatial_ref(k, seed=rng.randint(0, 10_000))
        module = build(cls, kernel_size=k).double()
        load_spatial_weights(module, reference.conv.weight, what=what)
        return module, reference, what
    _run_trials(make, seed=701)


@exercise("CBAM (hidden)", budget_s=20)
def hidden_cbam(cls: type) -> None:
    def make(c, rng):
        r, k = rng.choice([4, 8]), rng.choice([7, 3])
        what = f"CBAM({c}, reduction={r}, kernel_size={k})"
        reference = CBAM(c, r, k).double().eval()
        s = rng.randint(0, 10_000)
        reference.channel_gate.load_state_dict(_channel_ref(c, r, seed=s).state_dict())
        reference.spatial_gate.load_state_dict(_spatial_ref(k, seed=s + 7).state_dict())
        module = build(cls, c, reduction=r, kernel_size=k).double()
        roles = mlp_roles({k_[len("channel_gate."):]: v for k_, v in reference.state_dict().items()
                           if k_.startswith("channel_gate.")})
        load_by_shape(module, roles | {"conv weight (1, 2, k, k)": reference.spatial_gate.conv.weight},
                      what=what, duplicate_mistake="separate_mlps", accept_extra_biases=ACCEPT_BIASES)
        return module, reference, what
    _run_trials(make, seed=801, attention=False)
