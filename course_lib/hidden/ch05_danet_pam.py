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

from course_lib.checks.toolkit import build, exercise, expect, seeded_picker, seeded_randn
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.ch05_danet_pam import ADVICE_EINSUM, _rows_sum_to_one
from course_lib.checks.ch05_danet_pam import ADVICE_PAM as ADVICE  # the mistakes named, their fixes not printed
from course_lib.hidden.toolkit import (
    Result,
    pam_forward_mistakes,
    pam_map_mistakes as map_mistakes,
    pam_out_mistakes as out_mistakes,
    pam_qkv as _qkv,
    pam_reference as reference,
    pam_student,
    pam_weights as weights_of,
    probe_loss,
    reference_backward,
    sweep,
)

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    "q_pam_params": ("int", 2 * (512 * 64 + 64) + 512 * 512 + 512 + 1, {}),
    "q_zero_gamma_grads": ("choices", "d", {"options": "abcd"}),
    "q_map_mib": ("float", (768 // 8) ** 4 * 4 / 2**20, {"digits": 3}),
    "q_equivariance": ("choices", "ab", {"options": "abcd"}),
}
define_hidden_question_checks(globals(), ANSWERS)


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
        y = fref(xf.double())
    diagnoses = pam_forward_mistakes(fref, xf.double(), y)  # gamma = 1
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


def _student(cls: type, ref) -> Callable:
    what = f"{cls.__name__}({ref.channels}, reduction={ref.reduction})"
    return lambda dtype, device: pam_student(cls, (ref.channels, ref.reduction), ref.reduction, weights_of(ref),
                                             what=what).to(device=device, dtype=dtype)


@exercise("PositionAttention.attention (hidden)", budget_s=30)
def hidden_pam_attention(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(5050):
        ref = reference(c, r, seed=5100 + 10 * trial, gamma=0.7)
        x64 = seeded_randn(b, c, h, w, seed=5200 + trial)
        with torch.no_grad():
            q, k, _ = _qkv(ref, x64)
            target = Result("attention", ref.attention(x64), map_mistakes(q, k), check=_rows_sum_to_one)
        sweep(_student(cls, ref), x64, [target], advice=ADVICE)


@exercise("PositionAttention.forward (hidden)", budget_s=30)
def hidden_pam_forward(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(5060):
        gamma = getattr(build(cls, c, r), "gamma", None)
        expect(isinstance(gamma, torch.Tensor) and bool(torch.all(gamma.detach() == 0)),
               f"a new {cls.__name__}({c}, {r}) should have gamma = 0 (nn.Parameter(torch.zeros(1))).",
               mistake="gamma_init")
        ref = reference(c, r, seed=5300 + 10 * trial, gamma=1.0 - 0.25 * trial)  # float32-exact values
        x64 = seeded_randn(b, c, h, w, seed=5400 + trial)
        y, gradients = reference_backward(ref, x64, probe_loss(seeded_randn(b, c, h, w, seed=5500 + trial)))
        sweep(_student(cls, ref), x64, [Result("forward", y, pam_forward_mistakes(ref, x64, y))], advice=ADVICE,
              gradients=gradients)


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
        sweep(lambda dtype, device: fn, (q, k, v), [Result("forward", target, diagnoses)], advice=ADVICE_EINSUM,
              layouts=["channels_last" if trial == 1 else "given"],
              doing="pam_einops(q {shapes[0]}, k, v {shapes[2]}), {dtype}, on {device}")
