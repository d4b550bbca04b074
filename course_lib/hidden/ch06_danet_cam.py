"""Hidden checks of chapter 06 (DANet CAM) and the builder of its stored expected values.

At grading time the student's module (gamma set to a nonzero value) must match the reference module on
random shapes, in float32 and float64, with channels_last inputs, with the same input gradient, and its
dtype and device must follow the input.
"""
from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange

from course_lib.checks.toolkit import CheckFailure, build, call, exercise, expect, expect_follows, fmt_shape, \
    is_close, seeded_randn
from course_lib.checks.ch06_danet_cam import ADVICE, BLOG_PAM_ADVICE, _close, _gamma_one, _rows_sum_to_one, dual_cases
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.hidden.toolkit import Result, pam_forward_mistakes, pam_reference, pam_student, pam_weights, \
    reference_backward, sweep
from course_lib.reference.danet import ChannelAttention as Reference
from course_lib.reference.danet import DualAttention

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
_N, _C, _CQ = (768 // 8) ** 2, 512, 512 // 8  # the DANet head at a 768 px crop, output stride 8
ANSWERS = {
    "q_official_form": ("choice", "b", {"options": "abcd"}),
    "q_diagonal": ("choices", "bc", {"options": "abcd"}),
    "q_symmetric": ("choices", "ac", {"options": "abcd"}),
    # PAM: energy N^2 C' + weighted sum N^2 C; CAM: energy C^2 N + weighted sum C^2 N
    "q_cost_ratio": ("float", (_N * _N * _CQ + _N * _N * _C) / (2 * _C * _C * _N), {"digits": 3}),
}
define_hidden_question_checks(globals(), ANSWERS)


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
    maps = map_mistakes(x, variant)
    found = {label: m @ a for label, m in maps.items() if label != "softmax_dim1"}
    right = Reference(variant=variant).double()._map(x)
    found["extra_transpose"] = right.transpose(1, 2) @ a
    if variant == "official":  # the official line's m_j - e_ji is not symmetric: over dim 1 it is another map
        e = _energy(x)
        found["softmax_dim1"] = (e.amax(-1, keepdim=True) - e).softmax(1) @ a
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
    ref = pam_reference(x.shape[1], 8, seed=seed, gamma=gamma)
    with torch.no_grad():
        y = ref(x.double())
    return {"x": x, "weights": pam_weights(ref), "y": y, "diagnoses": pam_forward_mistakes(ref, x.double(), y)}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    for trial in range(n):
        b, c, h, w = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 4), (2, 10), (1, 8), (1, 8)))
        yield trial, b, c, h, w


def _student(make: Callable[[], torch.nn.Module], what: str, gamma: float) -> Callable:
    """The sweep's builder: the student's CAM, its one parameter checked, with gamma set."""
    def student(dtype: torch.dtype, device: str) -> torch.nn.Module:
        module = make()
        _gamma_one(module, what=what)
        with torch.no_grad():
            module.gamma.fill_(gamma)
        return module.to(device=device, dtype=dtype)
    return student


def _check_module(make: Callable[[], torch.nn.Module], variant: str, *, what: str) -> None:
    for trial, b, c, h, w in _trials(6007 + len(variant)):
        gamma = 1.0 - 0.25 * trial
        ref = _ref(variant, gamma)
        x64 = 0.5 * seeded_randn(b, c, h, w, seed=6100 + trial)
        y, gradients = reference_backward(ref, x64, lambda t: t.square().sum(), names={})
        with torch.no_grad():
            attention = Result("attention", ref.attention(x64), map_mistakes(x64, variant), check=_rows_sum_to_one,
                               follows=False, call=f"{what}.attention(x)", what=f"{what}(x)")
        forward = Result("forward", y, out_mistakes(x64, variant, gamma), call=f"{what}(x)")
        sweep(_student(make, what, gamma), x64, [attention, forward], advice=ADVICE, call=call, gradients=gradients)


@exercise("ChannelAttention (paper, hidden)", budget_s=30)
def hidden_cam(cls: type) -> None:
    _check_module(lambda: build(cls), "paper", what=f"{cls.__name__}()")


@exercise("ChannelAttention (official, hidden)", budget_s=30)
def hidden_cam_official(cls: type) -> None:
    _check_module(lambda: build(cls, variant="official"), "official", what=f"{cls.__name__}(variant='official')")


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


#: how the blog modules' checks (no memory layouts) show a case
_BLOG_DOING = "{call} with x of shape {shape}, {dtype}, on {device}"


@exercise("PAM_Module (the blog's, repaired; hidden)", budget_s=30)
def hidden_blog_pam(cls: type) -> None:
    for trial, b, c, h, w in _trials(6600):
        c = 8 * (1 + c % 3)  # the blog's C // 8 needs C >= 8
        case = _blog_pam_case(seeded_randn(b, c, h, w, seed=6700 + trial), seed=6800 + 10 * trial, gamma=0.75)
        what = f"{cls.__name__}({c})"
        sweep(lambda dtype, device: pam_student(cls, (c,), 8, case["weights"], what=what).to(device=device,
                                                                                             dtype=dtype),
              case["x"], [Result("forward", case["y"], case["diagnoses"], call=f"{what}(x)")], advice=BLOG_PAM_ADVICE,
              call=call, layouts=["given"], doing=_BLOG_DOING)


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
        pam = pam_reference(c, 8, seed=7000 + 10 * trial, gamma=0.5 + 0.25 * trial)
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
        ref = _ref("official", 0.75)
        x64 = 0.5 * seeded_randn(b, c, h, w, seed=6500 + trial)
        with torch.no_grad():
            target = Result("forward", ref(x64), out_mistakes(x64, "official", 0.75), call=f"{cls.__name__}({c})(x)")
        sweep(_student(lambda: build(cls, c), f"{cls.__name__}({c})", 0.75), x64, [target], advice=ADVICE, call=call,
              layouts=["given"], doing=_BLOG_DOING)
