"""Hidden checks of chapter 05 (DANet PAM) and the builder of its stored expected values.

At grading time the student's module gets the reference module's weights (by the official names) with
gamma forced nonzero, and must match it on random shapes, in float32 and float64, with channels_last
inputs, with the same gradients; its dtype and device must follow the input. ``build_expected()`` makes
the values the visible checks compare against, and the results known mistakes give.
"""
from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange

from course_lib.checks.toolkit import (
    DEVICES,
    build,
    exercise,
    expect,
    expect_close,
    expect_follows,
    float32_exact,
    fmt_shape,
    seeded_picker,
    seeded_randn,
)
from course_lib.checks.questions import expect_plain
from course_lib.checks.ch05_danet_pam import _call, _check_structure, _close, _rows_sum_to_one, load_pam_weights
from course_lib.reference.danet import PositionAttention as Reference

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    "q_pam_params": ("int", 2 * (512 * 64 + 64) + 512 * 512 + 512 + 1, {}),
    "q_zero_gamma_grads": ("choices", "d", {"options": "abcd"}),
    "q_map_mib": ("float", (768 // 8) ** 4 * 4 / 2**20, {"digits": 3}),
    "q_equivariance": ("choices", "ab", {"options": "abcd"}),
}

def reference(channels: int, reduction: int, seed: int, gamma: float = 1.0) -> Reference:
    module = Reference(channels, reduction).double()
    with torch.no_grad():
        for i, (name, p) in enumerate(module.named_parameters()):
            if name == "gamma":
                p.fill_(gamma)
            else:
                p.copy_(float32_exact(seeded_randn(*p.shape, seed=seed + i) * (0.8 if p.dim() > 1 else 0.3)))
    return module


def weights_of(module: Reference) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


# --------------------------------------------------------------------------------------------
# what the known mistakes compute
# --------------------------------------------------------------------------------------------
def _qkv(module: Reference, x: torch.Tensor):
    q = rearrange(module.query_conv(x), "b c h w -> b (h w) c")
    k = rearrange(module.key_conv(x), "b c h w -> b c (h w)")
    v = rearrange(module.value_conv(x), "b c h w -> b c (h w)")
    return q, k, v


def map_mistakes(q: torch.Tensor, k: torch.Tensor) -> dict[str, torch.Tensor]:
    """q (B, N, C'), k (B, C', N) -> the (B, N, N) maps of the known mistakes."""
    energy = q @ k
    b, n, _ = energy.shape
    return {
        "softmax_dim1": energy.softmax(dim=1),
        "softmax_dim0": energy.softmax(dim=0),
        "softmax_all": energy.reshape(b, n * n).softmax(-1).reshape(b, n, n),
        "scaled": (energy / q.shape[-1] ** 0.5).softmax(-1),
        "qk_swapped": energy.transpose(1, 2).softmax(-1),
    }


def out_mistakes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
    """q (B, N, C'), k (B, C', N), v (B, C, N) -> the (B, C, N) outputs (before gamma) of the mistakes."""
    right = (q @ k).softmax(-1)
    found = {label: v @ a.transpose(1, 2) for label, a in map_mistakes(q, k).items()}
    found["missing_transpose"] = v @ right
    return found


def build_expected() -> dict:
    x = seeded_randn(3, 16, 5, 7, seed=501).float()
    ref = reference(16, 8, seed=510)
    ref4 = reference(16, 4, seed=520)
    with torch.no_grad():
        q, k, v = _qkv(ref, x.double())
        attention = {
            "channels": 16, "x": x, "weights": weights_of(ref),
            "a": ref.attention(x.double()), "diagnoses": map_mistakes(q, k),
            "r4": {"channels": 16, "weights": weights_of(ref4), "a": ref4.attention(x.double())},
        }
    xf = seeded_randn(2, 16, 7, 3, seed=531).float()
    fref = reference(16, 8, seed=540)
    with torch.no_grad():
        q, k, v = _qkv(fref, xf.double())
        h, w = xf.shape[-2:]
        diagnoses = {label: rearrange(o, "b c (h w) -> b c h w", h=h) + xf.double()
                     for label, o in out_mistakes(q, k, v).items()}
        y = fref(xf.double())
        diagnoses["missing_residual"] = y - xf.double()
    probe = seeded_randn(*xf.shape, seed=532)
    xg = xf.double().clone().requires_grad_(True)
    (fref(xg) * probe).sum().backward()
    forward = {"channels": 16, "x": xf, "weights": weights_of(fref), "y": y.detach(), "diagnoses": diagnoses,
               "probe": probe.float(), "gamma_grad": fref.gamma.grad.detach().clone()}

    def einops_case(b, cq, c, h, w, seed):
        qq = seeded_randn(b, cq, h, w, seed=seed).float()
        kk = seeded_randn(b, cq, h, w, seed=seed + 1).float()
        vv = seeded_randn(b, c, h, w, seed=seed + 2).float()
        q3, k3 = rearrange(qq.double(), "b c h w -> b (h w) c"), rearrange(kk.double(), "b c h w -> b c (h w)")
        v3 = rearrange(vv.double(), "b c h w -> b c (h w)")
        right = v3 @ (q3 @ k3).softmax(-1).transpose(1, 2)
        diag = {label: rearrange(o, "b c (h w) -> b c h w", h=h) for label, o in out_mistakes(q3, k3, v3).items()}
        return qq, kk, vv, rearrange(right, "b c (h w) -> b c h w", h=h), diag

    q1, k1, v1, o1, d1 = einops_case(3, 2, 5, 4, 6, 551)
    q2, k2, v2, o2, _ = einops_case(2, 3, 7, 5, 3, 561)
    einops = {"q": q1, "k": k1, "v": v1, "out": o1, "diagnoses": d1, "q2": q2, "k2": k2, "v2": v2, "out2": o2}
    return {"attention": attention, "forward": forward, "einops": einops}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, n: int = 3):
    pick = seeded_picker(seed)
    for trial in range(n):
        reduction = (8, 4, 2)[trial % 3]
        yield trial, pick(1, 3), reduction * pick(1, 3), reduction, pick(1, 7), pick(1, 7)


def _student(cls: type, ref: Reference, *, dtype: torch.dtype, device: str) -> torch.nn.Module:
    what = f"{cls.__name__}({ref.channels}, reduction={ref.reduction})"
    module = build(cls, ref.channels, ref.reduction)
    _check_structure(module, ref.channels, ref.reduction, what=what)
    load_pam_weights(module, weights_of(ref), what=what)
    return module.to(device=device, dtype=dtype)


def _inputs(x: torch.Tensor):
    yield "contiguous", x.clone()
    yield "channels_last", x.contiguous(memory_format=torch.channels_last)


@exercise("PositionAttention.attention (hidden)", budget_s=30)
def hidden_pam_attention(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(5050):
        ref = reference(c, r, seed=5100 + 10 * trial, gamma=0.7)
        x64 = seeded_randn(b, c, h, w, seed=5200 + trial)
        target = ref.attention(x64).detach()
        with torch.no_grad():
            q, k, _ = _qkv(ref, x64)
            diagnoses = map_mistakes(q, k)
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                module = _student(cls, ref, dtype=dtype, device=device)
                for layout, x in _inputs(x64.to(device=device, dtype=dtype)):
                    doing = f"attention(x) with x of shape {fmt_shape(x.shape)}, {dtype}, {layout}, on {device}"
                    a = _call(module.attention, x, doing=doing)
                    expect_follows(a, dtype=dtype, device=x.device, doing=doing)
                    if a.shape == target.shape:
                        _rows_sum_to_one(a.cpu(), what=doing)
                    _close(a.cpu(), target, what=doing, diagnoses=diagnoses if dtype == torch.float64 else {})


@exercise("PositionAttention.forward (hidden)", budget_s=30)
def hidden_pam_forward(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(5060):
        fresh = build(cls, c, r)
        gamma = getattr(fresh, "gamma", None)
        expect(isinstance(gamma, torch.Tensor) and bool(torch.all(gamma.detach() == 0)),
               f"a new {cls.__name__}({c}, {r}) should have gamma = 0 (nn.Parameter(torch.zeros(1))).",
               mistake="gamma_init")
        ref = reference(c, r, seed=5300 + 10 * trial, gamma=1.0 - 0.25 * trial)  # float32-exact values
        x64 = seeded_randn(b, c, h, w, seed=5400 + trial)
        probe = seeded_randn(b, c, h, w, seed=5500 + trial)
        xr = x64.clone().requires_grad_(True)
        target = ref(xr)
        (target * probe).sum().backward()
        x_grad = xr.grad
        param_grads = {name: p.grad.clone() for name, p in ref.named_parameters()}
        with torch.no_grad():
            q, k, v = _qkv(ref, x64)
            diagnoses = {label: rearrange(o, "b c (h w) -> b c h w", h=h) * ref.gamma + x64
                         for label, o in out_mistakes(q, k, v).items()}
            diagnoses["missing_residual"] = target - x64
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                module = _student(cls, ref, dtype=dtype, device=device)
                for layout, x in _inputs(x64.to(device=device, dtype=dtype)):
                    doing = f"forward(x) with x of shape {fmt_shape(x.shape)}, {dtype}, {layout}, on {device}"
                    xg = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
                    y = _call(module, xg, doing=doing)
                    expect_follows(y, dtype=dtype, device=x.device, doing=doing)
                    _close(y.detach().cpu(), target.detach(), what=doing,
                           diagnoses=diagnoses if dtype == torch.float64 else {})
                    if dtype != torch.float64:
                        continue
                    module.zero_grad()
                    _call(lambda: (y * probe.to(device)).sum().backward(), doing=f"backward through {doing}")
                    expect(xg.grad is not None, f"{doing}: no gradient reached x.", mistake="no_grad")
                    expect_close(xg.grad.cpu(), x_grad, what=f"the gradient with respect to x ({layout})",
                                 mistake="no_grad")
                    for name, p in module.named_parameters():
                        expect(p.grad is not None, f"{doing}: no gradient reached {name}.", mistake="no_grad")
                        expect_close(p.grad.cpu().reshape(param_grads[name].shape), param_grads[name],
                                     what=f"the gradient of {name}", mistake="no_grad")


@exercise("pam_einops (hidden)", budget_s=30)
def hidden_pam_einops(fn: Callable) -> None:
    g = torch.Generator().manual_seed(5070)
    for trial in range(4):
        b, cq, c, h, w = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in
                          ((1, 4), (1, 5), (1, 9), (1, 8), (1, 8)))
        q = seeded_randn(b, cq, h, w, seed=5600 + trial)
        k = seeded_randn(b, cq, h, w, seed=5700 + trial)
        v = seeded_randn(b, c, h, w, seed=5800 + trial)
        q3, k3 = rearrange(q, "b c h w -> b (h w) c"), rearrange(k, "b c h w -> b c (h w)")
        v3 = rearrange(v, "b c h w -> b c (h w)")
        target = rearrange(v3 @ (q3 @ k3).softmax(-1).transpose(1, 2), "b c (h w) -> b c h w", h=h)
        diagnoses = {label: rearrange(o, "b c (h w) -> b c h w", h=h) for label, o in out_mistakes(q3, k3, v3).items()}
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                args = [t.to(device=device, dtype=dtype) for t in (q, k, v)]
                if trial == 1:
                    args = [t.contiguous(memory_format=torch.channels_last) for t in args]
                doing = f"pam_einops(q {fmt_shape(q.shape)}, k, v {fmt_shape(v.shape)}), {dtype}, on {device}"
                out = _call(fn, *args, doing=doing)
                expect_follows(out, dtype=dtype, device=args[0].device, doing=doing)
                _close(out.cpu(), target, what=doing, diagnoses=diagnoses if dtype == torch.float64 else {})


def _hidden_question(qid: str, answer) -> None:
    kind, right, kw = ANSWERS[qid]
    expect_plain(qid, answer, right, kind=kind, **kw)


@exercise("q_pam_params (hidden)", budget_s=2)
def hidden_q_pam_params(answer) -> None:
    _hidden_question("q_pam_params", answer)


@exercise("q_zero_gamma_grads (hidden)", budget_s=2)
def hidden_q_zero_gamma_grads(answer) -> None:
    _hidden_question("q_zero_gamma_grads", answer)


@exercise("q_map_mib (hidden)", budget_s=2)
def hidden_q_map_mib(answer) -> None:
    _hidden_question("q_map_mib", answer)


@exercise("q_equivariance (hidden)", budget_s=2)
def hidden_q_equivariance(answer) -> None:
    _hidden_question("q_equivariance", answer)
