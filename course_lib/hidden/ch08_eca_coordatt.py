"""Hidden checks of chapter 08 (ECA and Coordinate Attention), and the values its visible checks compare with.

The hidden checks run at grading time with the reference modules at hand (``course_lib.reference.eca``,
``course_lib.reference.coord_attention``): random channel counts and shapes over seeded trials, the reference's
weights copied into the student's module, float64, channels_last, gradients, and CUDA when there is one.
``build_expected()`` writes ``expected/ch08_eca_coordatt.pt``; the wrong results stored there (what each
known mistake computes) are made here, from the reference's own layers.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable

import torch
import torch.nn.functional as F

from course_lib.checks import ch08_eca_coordatt as visible
from course_lib.checks.toolkit import CheckFailure, build, call, count_parameters, exercise, expect, expect_close, \
    expect_follows, expect_int, passed, seeded_randn, tolerances
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.hidden.toolkit import expect_training_step
from course_lib.reference.coord_attention import CoordinateAttention
from course_lib.reference.eca import EfficientChannelAttention, adaptive_kernel_size

__all__ = ["build_expected", "hidden_adaptive_kernel_size", "hidden_eca", "hidden_directional_pool",
           "hidden_coordinate_attention", "hidden_attention_parameters", "ANSWERS",
           "hidden_q_eca_resnet50_parameters", "hidden_q_why_no_reduction", "hidden_q_shared_shape"]

#: the plain answers of the chapter's questions (kind, answer, options/digits); the notebook only holds their keys
ANSWERS = {
    "q_eca_resnet50_parameters": ("int", 86, {}),  # psi on the widths ECA sees: 3*5 + 4*5 + 6*5 + 3*7
    "q_why_no_reduction": ("choices", "ac", {"options": "abcde"}),
    "q_shared_shape": ("shape", (2, 8, 32, 1), {}),
}
define_hidden_question_checks(globals(), ANSWERS)


# --------------------------------------------------------------------------------------------
# what the known mistakes compute: the kernel-size rule
# --------------------------------------------------------------------------------------------
def _t(channels: int, gamma: float, b: float, log: Callable[[float], float] = math.log2) -> float:
    return abs((log(channels) + b) / gamma)


def _odd_up(t: int) -> int:
    return t if t % 2 else t + 1


def kernel_variants(channels: int, gamma: float, b: float) -> dict[str, int]:
    """k of the known wrong rules (a rule that happens to agree with psi here is still listed)."""
    t = _t(channels, gamma, b)
    low = 2 * math.floor((t - 1) / 2) + 1  # the largest odd number <= t
    return {
        "nearest_odd_tie": low if t - low <= low + 2 - t else low + 2,  # nearest odd, a tie goes down
        "banker_tie": 2 * round((t - 1) / 2) + 1,  # nearest odd by Python's round: ties to even
        "even_kernel": int(t),  # no odd fix
        "round_not_floor": _odd_up(round(t)),
        "ceil_not_floor": _odd_up(math.ceil(t)),
        "log_base": _odd_up(int(_t(channels, gamma, b, math.log))),
        "constants_ignored": _odd_up(int(_t(channels, 2, 1))),
        "fixed_kernel": 3,
        "kernel_clamp": max(3, _odd_up(int(t))),
        "odd_down": int(t) if int(t) % 2 else int(t) - 1,  # an even floor goes down (trial t78)
        "b_misplaced": _odd_up(int(math.log2(channels) / gamma + b)),  # log2(C) / gamma + b (trial t78)
    }


#: (channels, gamma, b) of the visible check: the ties at 128 and 2048, other constants, a small C.
KERNEL_CASES = ((64, 2, 1), (256, 2, 1), (128, 2, 1), (512, 2, 1), (1024, 2, 1), (2048, 2, 1), (6, 2, 1),
                (48, 1, 1), (100, 3, 2), (300, 2.5, 1), (1024, 1, 0), (4096, 2, 1))


# --------------------------------------------------------------------------------------------
# what the known mistakes compute: ECA
# --------------------------------------------------------------------------------------------
def eca_gate_variants(x: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, C, 1, 1) gates of the known mistakes, for the 1-D kernel ``weight`` (k,)."""
    b, c = x.shape[:2]
    k = weight.numel()
    w = weight.reshape(1, 1, k).to(x.dtype)
    y = x.mean((2, 3)).reshape(b, 1, c)
    pad = (k - 1) // 2

    def gate(v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(v).reshape(b, c, 1, 1)

    centred = F.conv1d(y, w, padding=pad)
    return {
        "padding_shift": gate(F.conv1d(F.pad(y, (k - 1, 0)), w)),  # all the padding on one side
        "padding_shift_right": gate(F.conv1d(F.pad(y, (0, k - 1)), w)),
        "circular_padding": gate(F.conv1d(F.pad(y, (pad, pad), mode="circular"), w)),  # timm's CecaModule
        "flipped_kernel": gate(F.conv1d(y, w.flip(-1), padding=pad)),
        "max_pool": gate(F.conv1d(x.amax((2, 3)).reshape(b, 1, c), w, padding=pad)),
        "missing_sigmoid": centred.reshape(b, c, 1, 1),
        "softmax_gate": torch.softmax(centred, dim=-1).reshape(b, c, 1, 1),
        "batch_mean": torch.sigmoid(F.conv1d(x.mean((0, 2, 3)).reshape(1, 1, c), w, padding=pad)).reshape(1, c, 1, 1)
        .expand(b, c, 1, 1),
    }


# --------------------------------------------------------------------------------------------
# what the known mistakes compute: Coordinate Attention
# --------------------------------------------------------------------------------------------
def ca_variants(m: CoordinateAttention, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(g_h, g_w) of the known mistakes, from the reference's layers (eval mode)."""
    h, w = x.shape[2:]

    def run(z_h, z_w, *, act=m.act, bn=True, gate=torch.sigmoid, swap_convs=False, eps=None, split_wh=False):
        f = m.conv1(torch.cat([z_h, z_w], dim=2))
        if eps is not None:
            f = F.batch_norm(f, m.bn1.running_mean, m.bn1.running_var, m.bn1.weight, m.bn1.bias, False, 0.0, eps)
        elif bn:
            f = m.bn1(f)
        f = act(f)
        if split_wh:  # the first W positions taken as the columns, the last H as the rows (trial t78)
            f_w, f_h = torch.split(f, [w, h], dim=2)
        else:
            f_h, f_w = torch.split(f, [h, w], dim=2)
        f_w = f_w.transpose(2, 3)
        conv_h, conv_w = (m.conv_w, m.conv_h) if swap_convs else (m.conv_h, m.conv_w)
        a_h, a_w = conv_h(f_h), conv_w(f_w)
        return gate(a_h), gate(a_w)

    z_h, z_w = x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
    # pooled over the other axis: the W column means first (as "z_h"), then the H row means
    crossed = (x.mean(2, keepdim=True).transpose(2, 3), x.mean(3, keepdim=True))
    out = {
        "activation": run(z_h, z_w, act=torch.relu),
        "hard_sigmoid_gate": run(z_h, z_w, gate=lambda v: F.relu6(v + 3) / 6),
        "missing_sigmoid": run(z_h, z_w, gate=lambda v: v),
        "max_pool": run(x.amax(3, keepdim=True), x.amax(2, keepdim=True).transpose(2, 3)),
        "missing_bn": run(z_h, z_w, bn=False),
        "convs_swapped": run(z_h, z_w, swap_convs=True),
        "activation_silu": run(z_h, z_w, act=F.silu),  # the README's tip (trial t78)
        "bn_eps": run(z_h, z_w, eps=1e-3),  # Keras' / TF's BatchNormalization default (trial t78)
    }
    if h != w:
        out["split_order"] = run(z_h, z_w, split_wh=True)
    if h != w:
        out["swapped_pool"] = run(*crossed)
    return out


def _ca_reference(channels: int, reduction: int, seed: int) -> CoordinateAttention:
    """The reference in float64 with weights and BN statistics large enough that every mistake shows."""
    m = CoordinateAttention(channels, reduction).double()
    state = m.state_dict()
    for i, (name, value) in enumerate(sorted(state.items())):
        if name.endswith("num_batches_tracked"):
            continue
        noise = seeded_randn(*value.shape, seed=seed + i)
        if name.endswith("running_var"):
            state[name] = 0.5 + noise.abs()
        elif name.endswith("bn1.weight"):
            state[name] = 1.0 + 0.3 * noise
        elif name.endswith("weight"):
            state[name] = noise * (1.5 / math.sqrt(value[0].numel()))
        else:
            state[name] = 0.4 * noise
    m.load_state_dict(state)
    return m.eval()


# --------------------------------------------------------------------------------------------
# parameter counts
# --------------------------------------------------------------------------------------------
def count_variants(channels: int) -> dict[str, dict[str, int]]:
    """Wrong counts of SE (r = 16), ECA (psi) and CA (r = 32, floor 8), each by its key."""
    c = channels
    se_hidden = c // 16
    k = adaptive_kernel_size(c)
    m = max(8, c // 32)
    no_floor = max(1, c // 32)
    return {
        "se": {"missing_bias": 2 * c * se_hidden},
        "eca": {"fixed_kernel": 3, "per_channel_kernel": c * k},
        "ca": {"bn_not_counted": 3 * c * m + m + 2 * c, "buffers_counted": 3 * c * m + 5 * m + 2 * c,
               "min_hidden": 3 * c * no_floor + 3 * no_floor + 2 * c, "one_gate_conv": 2 * c * m + 3 * m + c,
               "missing_bias": 3 * c * m + 2 * m},
    }


def reference_counts(channels: int) -> dict[str, int]:
    from course_lib.reference.se import SqueezeExcitation

    return {"se": count_parameters(SqueezeExcitation(channels, 16)),
            "eca": count_parameters(EfficientChannelAttention(channels)),
            "ca": count_parameters(CoordinateAttention(channels))}


COUNT_CHANNELS = (256, 64, 1024, 2048, 48, 300)


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
def build_expected() -> dict[str, Any]:
    kernel = {
        "cases": torch.tensor([[c, g, b] for c, g, b in KERNEL_CASES], dtype=torch.float64),
        "k": torch.tensor([adaptive_kernel_size(c, g, b) for c, g, b in KERNEL_CASES]),
        "diagnoses": {name: torch.tensor([kernel_variants(c, g, b)[name] for c, g, b in KERNEL_CASES])
                      for name in kernel_variants(64, 2, 1)},
    }

    # ECA: C = 24 with an explicit k = 5 (values), adaptive builds for the counts
    c, k = 24, 5
    weight = seeded_randn(k, seed=801) * 1.5
    x = (seeded_randn(2, c, 7, 5, seed=802) + 1.5 * seeded_randn(2, c, 1, 1, seed=803)).float()
    upstream = seeded_randn(2, c, 7, 5, seed=804).float()
    eca = EfficientChannelAttention(c, k).double()
    with torch.no_grad():
        eca.conv.weight.copy_(weight.reshape(1, 1, k))
    xd = x.double().requires_grad_(True)
    out = eca(xd)
    (grad_x,) = torch.autograd.grad((out * upstream.double()).sum(), xd)
    with torch.no_grad():
        gate = eca.attention(xd)
        gate_variants = eca_gate_variants(xd.detach(), weight)
        # the float64 gate of the kernel the check loads: the stored float32 weights, widened
        eca64 = EfficientChannelAttention(c, k).double()
        eca64.conv.weight.copy_(weight.float().double().reshape(1, 1, k))
        gate64 = eca64.attention(x.double())
    adaptive = [(ch, adaptive_kernel_size(ch)) for ch in (128, 256, 40)] + [(64, adaptive_kernel_size(64, 1, 1))]

    # directional pooling and Coordinate Attention: C = 48, r = 4 (M = 12 > the floor 8), H != W
    cc, r = 48, 4
    ca = _ca_reference(cc, r, seed=820)
    xc = (seeded_randn(2, cc, 7, 5, seed=830) + seeded_randn(2, cc, 1, 5, seed=831)
          + seeded_randn(2, cc, 7, 1, seed=832)).float()
    upstream_c = seeded_randn(2, cc, 7, 5, seed=833).float()
    xcd = xc.double().requires_grad_(True)
    out_c = ca(xcd)
    (grad_xc,) = torch.autograd.grad((out_c * upstream_c.double()).sum(), xcd)
    with torch.no_grad():
        g_h, g_w = ca.gates(xcd)
        variants = ca_variants(ca, xcd.detach())
    weights = {k_: v.float() for k_, v in ca.state_dict().items() if not k_.endswith("num_batches_tracked")}

    xp = seeded_randn(2, 6, 7, 5, seed=840).float()
    counts = [{"channels": ch, "counts": reference_counts(ch), "wrong": count_variants(ch)} for ch in COUNT_CHANNELS]

    return {
        "kernel": kernel,
        "eca": {"channels": c, "kernel_size": k, "weight": weight.float(), "x": x, "upstream": upstream,
                "gate": gate.float(), "gate64": gate64, "out": out.detach().float(),
                "grad_x": grad_x.float(),
                "gate_diagnoses": {n: v.float() for n, v in gate_variants.items()},
                "out_gate_added": (xd + gate).detach().float(),
                "adaptive": torch.tensor(adaptive)},
        "pool": {"x": xp, "z_h": xp.double().mean(3, keepdim=True).float(),
                 "z_w": xp.double().mean(2, keepdim=True).transpose(2, 3).float()},
        "ca": {"channels": cc, "reduction": r, "weights": weights, "x": xc, "upstream": upstream_c,
               "g_h": g_h.float(), "g_w": g_w.float(), "out": out_c.detach().float(), "grad_x": grad_xc.float(),
               "diagnoses": {n: (a.float(), b_.float()) for n, (a, b_) in variants.items()},
               "out_residual": (xcd + xcd * g_h * g_w).detach().float(),
               "out_one_gate": (xcd * g_h).detach().float()},
        "counts": counts,
    }


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
@exercise("adaptive_kernel_size (hidden)", budget_s=5)
def hidden_adaptive_kernel_size(fn: Callable[..., Any]) -> None:
    """Random channel counts and constants against the reference rule."""
    rng = random.Random(8)
    for _ in range(40):
        c = rng.choice([rng.randint(1, 64), rng.randint(65, 5000), 2 ** rng.randint(0, 14)])
        gamma, b = rng.choice([(2, 1), (2, 1), (1, 0), (3, 1), (1.5, 2), (2, 0.5)])
        want = adaptive_kernel_size(c, gamma, b)
        shown = f"adaptive_kernel_size({c}, gamma={gamma}, b={b})"
        got = expect_int(call(fn, c, gamma=gamma, b=b, doing=shown), what=shown)
        if got != want:
            wrong = {n: v for n, v in kernel_variants(c, gamma, b).items() if v != want}
            named = next((n for n, v in wrong.items() if v == got), None)
            advice = visible.KERNEL_ADVICE.get(named, "t = floor((log2 C + b) / gamma), then t + 1 when t is even.")
            raise CheckFailure(f"{shown} returned {got}; expected {want}.\n  Likely mistake: {advice}",
                               mistake=visible.KERNEL_MISTAKE.get(named, "kernel_size"))
    passed()


def _copy_eca(module, reference, *, what: str) -> None:
    visible.load_eca_kernel(module, reference.conv.weight.detach().reshape(-1), what=what)


@exercise("EfficientChannelAttention (hidden)", budget_s=20)
def hidden_eca(cls: type) -> None:
    """Random C (adaptive and fixed k) vs the reference with its kernel copied; float64, channels_last,
    gradients, CUDA."""
    rng = random.Random(81)
    for trial in range(5):
        c = rng.choice([3, 8, 24, 64, 100, 128, 256, 300])
        k = rng.choice([None, 1, 3, 5, 7]) if trial else None
        ref = EfficientChannelAttention(c, k)
        label = f"EfficientChannelAttention({c}" + (f", kernel_size={k})" if k else ")")
        module = build(cls, c, kernel_size=k) if k else build(cls, c)
        visible.expect_eca_parameters(module, c, ref.kernel_size, what=label, adaptive=k is None)
        with torch.no_grad():
            ref.conv.weight.copy_(seeded_randn(ref.kernel_size, seed=850 + trial).reshape(1, 1, -1))
        _copy_eca(module, ref, what=label)
        x = seeded_randn(rng.randint(1, 3), c, rng.randint(1, 8), rng.randint(1, 8), seed=860 + trial,
                         dtype=torch.float32)
        x = x + seeded_randn(x.shape[0], c, 1, 1, seed=870 + trial, dtype=torch.float32)
        module.eval()
        with torch.no_grad():
            for dtype, fmt in ((torch.float32, torch.contiguous_format), (torch.float64, torch.contiguous_format),
                               (torch.float32, torch.channels_last)):
                xi = x.to(dtype).contiguous(memory_format=fmt)
                m, r = module.to(dtype), ref.to(dtype)
                what = f"{label} on a {dtype} input" + (" (channels_last)" if fmt == torch.channels_last else "")
                gate = visible.call_eca(m.attention, xi, doing=f"{what}: attention(x)")
                expect_follows(gate, dtype=dtype, doing=f"{what}: attention(x)")
                rtol, atol = tolerances(dtype)
                expect_close(gate, r.attention(xi), what=f"{what}: attention(x)", rtol=rtol, atol=atol,
                             diagnoses=[(visible.ECA_ADVICE[n][0], v, visible.ECA_ADVICE[n][1]) for n, v in
                                        eca_gate_variants(xi, r.conv.weight.reshape(-1)).items()])
                expect_close(visible.call_eca(m, xi, doing=f"{what}: forward(x)"), r(xi), what=f"{what}: forward(x)",
                             rtol=rtol, atol=atol)
            module.float(), ref.float()

    # gradients in float64 against the reference's
    c = 40
    ref = EfficientChannelAttention(c).double()
    module = build(cls, c).double()
    _copy_eca(module, ref, what=f"EfficientChannelAttention({c})")
    x = seeded_randn(2, c, 5, 3, seed=880)
    up = seeded_randn(2, c, 5, 3, seed=881)
    xs, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = call(module, xs, doing=f"EfficientChannelAttention({c})(x) in float64")
    call(lambda: (out * up).sum().backward(), doing="backward")
    (ref(xr) * up).sum().backward()
    expect(xs.grad is not None and all(p.grad is not None for p in module.parameters()),
           "no gradient reached x or the kernel: keep every step in the autograd graph.", mistake="no_grad")
    expect_close(xs.grad, xr.grad, what="the gradient with respect to x", rtol=1e-9, atol=1e-11,
                 fallback=("no_grad", "part of the computation is cut from the graph."))
    grad_w = next(p for p in module.parameters()).grad.reshape(-1)
    expect_close(grad_w, ref.conv.weight.grad.reshape(-1), what="the gradient of the kernel", rtol=1e-9, atol=1e-11)

    if torch.cuda.is_available():
        ref, module = EfficientChannelAttention(c).cuda(), build(cls, c).cuda()
        _copy_eca(module, ref, what=f"EfficientChannelAttention({c}) on CUDA")
        xg = x.float().cuda()
        with torch.no_grad():
            got = visible.call_eca(module, xg, doing="forward(x) on CUDA")
            expect_follows(got, dtype=torch.float32, device="cuda", doing="forward(x) on CUDA")
            expect_close(got, ref(xg), what=f"EfficientChannelAttention({c})(x) on CUDA")
    passed()


@exercise("directional_pool (hidden)", budget_s=5)
def hidden_directional_pool(fn: Callable[..., Any]) -> None:
    """Random shapes, float64, channels_last."""
    rng = random.Random(82)
    for trial in range(4):
        b, c, h, w = rng.randint(1, 3), rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
        x = seeded_randn(b, c, h, w, seed=890 + trial)
        if trial == 1:
            x = x.float()
        if trial == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        visible.expect_pools(fn, x, what=f"directional_pool(x) with x of shape {tuple(x.shape)}")
    passed()


@exercise("CoordinateAttention (hidden)", budget_s=20)
def hidden_coordinate_attention(cls: type) -> None:
    """Random C, r, H, W vs the reference with its weights and BN statistics copied; float64,
    channels_last, gradients, CUDA."""
    rng = random.Random(83)
    for trial in range(4):
        c, r = rng.choice([(16, 32), (64, 8), (48, 4), (300, 32), (24, 2)])
        h, w = rng.randint(1, 9), rng.randint(1, 9)
        ref = _ca_reference(c, r, seed=900 + 20 * trial).float()
        label = f"CoordinateAttention({c}, reduction={r})"
        module = build(cls, c, reduction=r)
        visible.expect_ca_parameters(module, c, r, what=label)
        visible.load_ca(module, {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")},
                        what=label)
        module.eval()
        x = seeded_randn(rng.randint(1, 3), c, h, w, seed=960 + trial, dtype=torch.float32)
        with torch.no_grad():
            for dtype, fmt in ((torch.float32, torch.contiguous_format), (torch.float64, torch.contiguous_format),
                               (torch.float32, torch.channels_last)):
                xi = x.to(dtype).contiguous(memory_format=fmt)
                m, rf = module.to(dtype), ref.to(dtype)
                what = f"{label} on a {dtype} {tuple(x.shape)} input" + (
                    " (channels_last)" if fmt == torch.channels_last else "")
                want_h, want_w = rf.gates(xi)
                visible.expect_gates(m, xi, want_h, want_w, what=what, diagnoses=ca_variants(rf, xi))
                got = visible.call_ca(m, xi, doing=f"{what}: forward(x)")
                expect_follows(got, dtype=dtype, doing=f"{what}: forward(x)")
                expect_close(got, rf(xi), what=f"{what}: forward(x)", rtol=tolerances(dtype)[0],
                             atol=tolerances(dtype)[1])
            module.float(), ref.float()

    # training mode on the loaded weights: the output and bn1's running statistics after one forward
    ref = _ca_reference(24, 2, seed=985).float().double()  # float32-exact weights
    module = build(cls, 24, reduction=2)
    visible.load_ca(module, {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")},
                    what="CoordinateAttention(24, reduction=2)")
    expect_training_step(module, ref, seeded_randn(3, 24, 6, 4, seed=986), what="CoordinateAttention(24, reduction=2)",
                         call=visible.call_ca)

    # gradients (float64, eval mode) reach x and every parameter, and equal the reference's for x
    ref = _ca_reference(32, 8, seed=990)
    module = build(cls, 32, reduction=8).double()
    visible.load_ca(module, {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")},
                    what="CoordinateAttention(32, reduction=8)")
    module.eval()
    x = seeded_randn(2, 32, 6, 4, seed=991)
    up = seeded_randn(2, 32, 6, 4, seed=992)
    xs, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = call(module, xs, doing="CoordinateAttention(32, reduction=8)(x) in float64")
    call(lambda: (out * up).sum().backward(), doing="backward")
    (ref(xr) * up).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None]
    expect(xs.grad is not None and not missing, f"no gradient reached {missing or 'x'}: keep every step in the graph.",
           mistake="no_grad")
    expect_close(xs.grad, xr.grad, what="the gradient with respect to x", rtol=1e-9, atol=1e-11,
                 fallback=("no_grad", "part of the computation is cut from the graph."))

    if torch.cuda.is_available():
        ref = _ca_reference(32, 8, seed=995).float().cuda()
        module = build(cls, 32, reduction=8).cuda()
        visible.load_ca(module, {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")},
                        what="CoordinateAttention(32, reduction=8) on CUDA")
        module.eval()
        xg = x.float().cuda()
        with torch.no_grad():
            got = visible.call_ca(module, xg, doing="forward(x) on CUDA")
            expect_follows(got, dtype=torch.float32, device="cuda", doing="forward(x) on CUDA")
            expect_close(got, ref(xg), what="CoordinateAttention(32, reduction=8)(x) on CUDA")
    passed()


@exercise("attention_parameters (hidden)", budget_s=5)
def hidden_attention_parameters(fn: Callable[..., Any]) -> None:
    """Other channel counts against the reference modules' parameter counts."""
    rng = random.Random(84)
    for c in [rng.randint(16, 4000) for _ in range(5)] + [288, 512]:
        visible.expect_counts(fn, c, reference_counts(c), count_variants(c))
    passed()
