"""Hidden checks of chapter 06 (DANet CAM) and the builder of its stored expected values.

At grading time the student's module (gamma set to a nonzero value) must match the reference module on
random shapes, in float32 and float64, with channels_last inputs, with the same input gradient, and its
dtype and device must follow the input.
"""
from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange

from course_lib.checks.toolkit import (
    DEVICES,
    CheckFailure,
    build,
    exercise,
    expect,
    expect_follows,
    fmt_shape,
    is_close,
    seeded_randn,
)
from course_lib.checks.toolkit import call
from course_lib.checks.ch05_danet_pam import _check_structure, load_pam_weights
from course_lib.checks.ch05_danet_pam import _close as _pam_close
from course_lib.checks.ch06_danet_cam import _close, _gamma_one, _rows_sum_to_one, dual_cases
from course_lib.hidden import ch05_danet_pam as pam_hidden
from course_lib.reference.danet import ChannelAttention as Reference
from course_lib.reference.danet import DualAttention
from course_lib.checks.questions import expect_plain

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
_N, _C, _CQ = (768 // 8) ** 2, 512, 512 // 8  # the DANet head at a 768 px crop, output stride 8
ANSWERS = {
    "q_official_form": ("choice", "b", {"options": "abcd"}),
    "q_diagonal": ("choices", "bc", {"options": "abcd"}),
    "q_symmetric": ("choices", "ac", {"options": "abcd"}),
    # PAM: energy N^2 C' + weighted sum N^2 C; CAM: energy C^2 N + weighted sum C^2 N
    "q_cost_ratio": ("float", (_N * _N * _CQ + _N * _N * _C) / (2 * _C * _C * _N), {"digits": 3}),
}

def _energy(x: torch.Tensor) -> torch.Tensor:
    a = rearrange(x, "b c h w -> b c (h w)")
    return a @ a.transpose(1, 2)


def _affinity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energies a b^T of two different feature maps: not symmetric, unlike CAM's a a^T."""
    return rearrange(x, "b c h w -> b c (h w)") @ rearrange(y, "b c h w -> b (h w) c")


def map_mistakes(x: torch.Tensor, variant: str) -> dict[str, torch.Tensor]:
    e = _energy(x)
    b, c, _ = e.shape
    other = "official" if variant == "paper" else "paper"
    signed = e if variant == "paper" else -e
    return {
        other: (e if other == "paper" else -e).softmax(-1),
        "softmax_dim1": signed.softmax(1),
        "softmax_all": signed.reshape(b, c * c).softmax(-1).reshape(b, c, c),
        "scaled": (signed / (x.shape[2] * x.shape[3]) ** 0.5).softmax(-1),
    }


def out_mistakes(x: torch.Tensor, variant: str, gamma: float = 1.0) -> dict[str, torch.Tensor]:
    h, w = x.shape[-2:]
    a = rearrange(x, "b c h w -> b c (h w)")
    # softmax over dim 1 gives the transposed map, the same output as "extra_transpose" (the attention
    # check names it first); it is left out here so that the forward diagnosis is unambiguous
    found = {label: m @ a for label, m in map_mistakes(x, variant).items() if label != "softmax_dim1"}
    right = Reference(variant=variant).double()._map(x)
    found["extra_transpose"] = right.transpose(1, 2) @ a
    found = {k: gamma * rearrange(v, "b c (h w) -> b c h w", h=h) + x for k, v in found.items()}
    found["missing_residual"] = gamma * rearrange(right @ a, "b c (h w) -> b c h w", h=h)
    return found


def _ref(variant: str, gamma: float = 1.0) -> Reference:
    module = Reference(variant=variant).double()
    with torch.no_grad():
        module.gamma.fill_(gamma)
    return module


def build_expected() -> dict:
    x = (0.3 * seeded_randn(2, 5, 3, 7, seed=601)).float()
    data = {}
    for variant in ("paper", "official"):
        ref = _ref(variant)
        xg = x.double().clone().requires_grad_(True)
        y = ref(xg)
        y.square().sum().backward()
        data[variant] = {
            "x": x, "a": ref.attention(x.double()).detach(), "y": y.detach(), "x_grad": xg.grad,
            "a_diagnoses": map_mistakes(x.double(), variant),
            "y_diagnoses": out_mistakes(x.double(), variant),
        }
    # not a a^T: a symmetric energy would hide an argmax over the wrong axis
    energy = _affinity(seeded_randn(2, 6, 4, 5, seed=611), seeded_randn(2, 6, 4, 5, seed=612))
    data["most"] = {"energy": energy, "paper": energy.argmax(-1), "official": energy.argmin(-1),
                    "paper_dim1": energy.argmax(1), "official_dim1": energy.argmin(1)}
    data["blog_pam"] = _blog_pam_case(seeded_randn(2, 16, 5, 7, seed=621).float(), seed=630)
    data["dual"] = {"x": seeded_randn(2, 6, 5, 3, seed=641)}
    return data


def _blog_pam_case(x: torch.Tensor, *, seed: int, gamma: float = 1.0) -> dict:
    """The reference PAM (reduction 8, the blog's fixed C // 8) on x: weights, output, known mistakes."""
    ref = pam_hidden.reference(x.shape[1], 8, seed=seed, gamma=gamma)
    x64 = x.double()
    with torch.no_grad():
        q, k, v = pam_hidden._qkv(ref, x64)
        h = x.shape[2]
        diagnoses = {label: gamma * rearrange(o, "b c (h w) -> b c h w", h=h) + x64
                     for label, o in pam_hidden.out_mistakes(q, k, v).items()}
        y = ref(x64)
        diagnoses["missing_residual"] = y - x64
    return {"x": x, "weights": pam_hidden.weights_of(ref), "y": y, "diagnoses": diagnoses}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    for trial in range(n):
        b, c, h, w = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 4), (2, 10), (1, 8), (1, 8)))
        yield trial, b, c, h, w


def _check_module(make: Callable[[], torch.nn.Module], variant: str, *, what: str, with_attention: bool) -> None:
    for trial, b, c, h, w in _trials(6000 + len(variant) + 7 * with_attention):
        gamma = 1.0 - 0.25 * trial
        ref = _ref(variant, gamma)
        x64 = 0.5 * seeded_randn(b, c, h, w, seed=6100 + trial)
        xr = x64.clone().requires_grad_(True)
        target = ref(xr)
        target.square().sum().backward()
        diagnoses = out_mistakes(x64, variant, gamma)
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                module = make()
                _gamma_one(module, what=what)
                with torch.no_grad():
                    module.gamma.fill_(gamma)
                module = module.to(device=device, dtype=dtype)
                for layout in ("contiguous", "channels_last"):
                    x = x64.to(device=device, dtype=dtype)
                    x = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x.clone()
                    doing = f"{what}(x) with x of shape {fmt_shape(x.shape)}, {dtype}, {layout}, on {device}"
                    if with_attention:
                        a = call(module.attention, x, doing=doing.replace("(x)", ".attention(x)", 1))
                        if isinstance(a, torch.Tensor) and a.shape == (b, c, c):
                            _rows_sum_to_one(a.cpu(), what=doing)
                        _close(a.cpu() if isinstance(a, torch.Tensor) else a, ref.attention(x64), what=doing,
                               diagnoses=map_mistakes(x64, variant) if dtype == torch.float64 else {})
                    xg = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
                    y = call(module, xg, doing=doing)
                    expect_follows(y, dtype=dtype, device=x.device, doing=doing)
                    _close(y.detach().cpu(), target.detach(), what=doing,
                           diagnoses=diagnoses if dtype == torch.float64 else {})
                    if dtype == torch.float64:
                        expect(is_close(y.detach().cpu(), target.detach(), rtol=1e-9, atol=1e-11),
                               f"{doing}: the values match only to float32 precision; a hard-coded .float() or "
                               "torch.float32?", mistake="dtype")
                        call(lambda: y.square().sum().backward(), doing=f"backward through {doing}")
                        expect(xg.grad is not None and is_close(xg.grad.cpu(), xr.grad),
                               f"{doing}: the gradient with respect to x differs from the reference.",
                               mistake="no_grad")


@exercise("ChannelAttention (paper, hidden)", budget_s=30)
def hidden_cam(cls: type) -> None:
    _check_module(lambda: build(cls), "paper", what=f"{cls.__name__}()", with_attention=True)


@exercise("ChannelAttention (official, hidden)", budget_s=30)
def hidden_cam_official(cls: type) -> None:
    _check_module(lambda: build(cls, variant="official"), "official",
                  what=f"{cls.__name__}(variant='official')", with_attention=True)


@exercise("most_attended (hidden)", budget_s=30)
def hidden_most_attended(fn: Callable) -> None:
    for trial, b, c, h, w in _trials(6200, n=4):
        energy = _affinity(seeded_randn(b, c, h, w, seed=6300 + trial), seeded_randn(b, c, h, w, seed=6350 + trial))
        for variant, want in (("paper", energy.argmax(-1)), ("official", energy.argmin(-1))):
            for dtype in (torch.float64, torch.float32):
                got = call(fn, energy.to(dtype), variant, doing=f"most_attended(energy {fmt_shape(energy.shape)}, "
                                                                 f"{variant!r}) in {dtype}")
                expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (b, c) and torch.equal(got.long(), want),
                       f"most_attended(energy {fmt_shape(energy.shape)}, {variant!r}) should be {want.tolist()}, got "
                       f"{got.tolist() if isinstance(got, torch.Tensor) else got!r}.",
                       mistake="cam_variant" if isinstance(got, torch.Tensor) and torch.equal(
                           got.long(), energy.argmin(-1) if variant == "paper" else energy.argmax(-1)) else "values")


@exercise("PAM_Module (the blog's, repaired; hidden)", budget_s=30)
def hidden_blog_pam(cls: type) -> None:
    for trial, b, c, h, w in _trials(6600):
        c = 8 * (1 + c % 3)  # the blog's C // 8 needs C >= 8
        case = _blog_pam_case(seeded_randn(b, c, h, w, seed=6700 + trial), seed=6800 + 10 * trial, gamma=0.75)
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                what = f"{cls.__name__}({c})"
                module = build(cls, c)
                _check_structure(module, c, 8, what=what)
                load_pam_weights(module, case["weights"], what=what)
                module = module.to(device=device, dtype=dtype)
                x = case["x"].to(device=device, dtype=dtype)
                doing = f"{what}(x) with x of shape {fmt_shape(x.shape)}, {dtype}, on {device}"
                y = call(module, x, doing=doing)
                expect_follows(y, dtype=dtype, device=x.device, doing=doing)
                _pam_close(y.detach().cpu(), case["y"], what=doing,
                           diagnoses=case["diagnoses"] if dtype == torch.float64 else {})


class Replayed(torch.nn.Module):
    """A branch (PAM or CAM) that answers x with the output the reference module gave for it.

    The reference modules are not handed to the student's function: the grading sandbox fails a check in
    which the student's code runs reference code. Their outputs, computed beforehand, are.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
        super().__init__()
        self.x, self.y, self.name = x.detach().double(), y.detach().double(), name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and tuple(x.shape) == tuple(self.x.shape)
                and torch.allclose(x.detach().double(), self.x, rtol=1e-5, atol=1e-6)):
            raise CheckFailure(f"dual_attention called {self.name} on a tensor other than x "
                               f"({fmt_shape(getattr(x, 'shape', ()))} given). Both branches read x itself: they run "
                               "side by side, not one after the other.", mistake="sequential")
        return self.y.to(dtype=x.dtype, device=x.device, copy=True)


@exercise("dual_attention (hidden)", budget_s=30)
def hidden_dual_attention(fn: Callable) -> None:
    for trial, b, c, h, w in _trials(6900):
        c = 8 * (1 + c % 3)
        variant = ("paper", "official")[trial % 2]
        ref = DualAttention(c, cam_variant=variant).double()
        pam = pam_hidden.reference(c, 8, seed=7000 + 10 * trial, gamma=0.5 + 0.25 * trial)
        with torch.no_grad():
            ref.pam.load_state_dict(pam.state_dict())
            ref.cam.gamma.fill_(1.25 - 0.5 * trial)
        x64 = 0.5 * seeded_randn(b, c, h, w, seed=7100 + trial)
        with torch.no_grad():
            target = ref(x64)
            pam_out, cam_out = ref.pam(x64), ref.cam(x64)
        for dtype in (torch.float64, torch.float32):
            x = x64.to(dtype)
            doing = f"dual_attention(x, pam, cam) with x of shape {fmt_shape(x.shape)}, {dtype}, CAM {variant!r}"
            branches = Replayed(x64, pam_out, "pam"), Replayed(x64, cam_out, "cam")
            y = call(fn, x.clone(), *branches, doing=doing)
            expect_follows(y, dtype=dtype, doing=doing)
            _close(y.detach(), target, what=doing, diagnoses={})
    # the stand-in branches once more, on a random shape: the mistakes are named
    x = seeded_randn(3, 5, 4, 7, seed=7200)
    pam, cam, right, wrong = dual_cases(x, alpha=0.4, beta=0.9)
    y = call(fn, x.clone(), pam, cam, doing="dual_attention(x, pam, cam) on stand-in branches")
    diagnoses = {label: t for label, t in wrong.items() if label != "sequential_2"}
    if isinstance(y, torch.Tensor) and is_close(y, wrong["sequential_2"]):
        diagnoses["sequential"] = wrong["sequential_2"]
    _close(y, right, what="dual_attention(x, pam, cam) on stand-in branches", diagnoses=diagnoses)


@exercise("CAM_Module (the blog's, repaired; hidden)", budget_s=30)
def hidden_blog_cam(cls: type) -> None:
    # CAM_Module takes in_dim: build it with the channels of each trial
    for trial, b, c, h, w in _trials(6400):
        gamma = 0.75
        ref = _ref("official", gamma)
        x64 = 0.5 * seeded_randn(b, c, h, w, seed=6500 + trial)
        target = ref(x64)
        for device in DEVICES:
            for dtype in (torch.float64, torch.float32):
                module = build(cls, c)
                _gamma_one(module, what=f"{cls.__name__}({c})")
                with torch.no_grad():
                    module.gamma.fill_(gamma)
                module = module.to(device=device, dtype=dtype)
                x = x64.to(device=device, dtype=dtype)
                doing = f"{cls.__name__}({c})(x) with x of shape {fmt_shape(x.shape)}, {dtype}, on {device}"
                y = call(module, x, doing=doing)
                expect_follows(y, dtype=dtype, device=x.device, doing=doing)
                _close(y.detach().cpu(), target, what=doing,
                       diagnoses=out_mistakes(x64, "official", gamma) if dtype == torch.float64 else {})


def _hidden_question(qid: str, answer) -> None:
    kind, right, kw = ANSWERS[qid]
    expect_plain(qid, answer, right, kind=kind, **kw)


@exercise("q_official_form (hidden)", budget_s=2)
def hidden_q_official_form(answer) -> None:
    _hidden_question("q_official_form", answer)


@exercise("q_diagonal (hidden)", budget_s=2)
def hidden_q_diagonal(answer) -> None:
    _hidden_question("q_diagonal", answer)


@exercise("q_symmetric (hidden)", budget_s=2)
def hidden_q_symmetric(answer) -> None:
    _hidden_question("q_symmetric", answer)


@exercise("q_cost_ratio (hidden)", budget_s=2)
def hidden_q_cost_ratio(answer) -> None:
    _hidden_question("q_cost_ratio", answer)
