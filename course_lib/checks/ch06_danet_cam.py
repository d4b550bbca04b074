"""Visible checks of chapter 06: DANet's channel attention module (CAM).

The notebook's test cells call:

    check_cam(ChannelAttention)            # variant="paper": Eq. (3)-(4)
    check_cam_official(ChannelAttention)   # variant="official": softmax(max - energy), and bad variants
    check_most_attended(most_attended)     # which channel each row of the map favours
    check_blog_cam(BlogCAM)                # the seed post's CAM_Module, made to run

CAM's energy a a^T is symmetric, so a softmax over the wrong dim gives exactly the transpose of the right
map: the checks test the rows of the map AND the output. gamma is forced to 1 before any value check (with
its zero initialisation every forward equals x), and a separate check asserts it starts at 0.

Nothing here imports ``course_lib.danet``: expected values come from ``checks/expected/ch06_danet_cam.pt``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ._core import (
    CheckFailure,
    build,
    call,
    count_parameters,
    define_mistake,
    expect,
    expect_close,
    expect_shape,
    expected,
    exercise,
    fmt_shape,
    is_close,
    passed,
)

CHAPTER = "ch06_danet_cam"

EXTRA_TRANSPOSE = define_mistake(
    "extra_transpose", "the map is transposed in CAM's bmm (out = attention @ a needs no transpose)")
BAD_VARIANT = define_mistake("bad_variant", "an unknown variant is accepted instead of raising ValueError")

ADVICE: dict[str, tuple[str, str]] = {
    "softmax_dim1": ("softmax_dim",
                     "the softmax runs over dim 1, so each COLUMN sums to 1. The energy a a^T is symmetric, so this "
                     "is exactly the transpose of the right map. Eq. (3) normalises row j over i: dim=-1."),
    "softmax_all": ("softmax_dim", "the softmax runs over all C*C entries at once; each row j gets its own "
                                   "softmax over i: softmax(energy, dim=-1)."),
    "official": ("cam_variant",
                 "this is the official code's softmax(max - energy) = softmax(-energy), which favours DISSIMILAR "
                 "channels; the paper's Eq. (3) is softmax(energy)."),
    "paper": ("cam_variant",
              "this is the paper's softmax(energy). The official code (and the blog's copy) computes "
              "softmax(max_i(energy) - energy): keep the max - energy line."),
    "scaled": ("scaled", "the energy is divided by sqrt(N); neither the paper nor the official code scales it."),
    "extra_transpose": (EXTRA_TRANSPOSE,
                        "out = attention^T @ a. Unlike PAM, CAM's bmm needs no transpose: out = attention @ a, "
                        "(B, C, C) @ (B, C, N) -> (B, C, N): row j mixes the channel maps with row j's weights. (A softmax "
                        "over dim 1 gives the same transposed map: the energy is symmetric.)"),
    "missing_residual": ("missing_residual", "forward returns gamma * out without + x. Eq. (4): E = beta * out + A."),
    "swapped": ("cam_variant", "you returned the other variant's choice: the paper's map favours the most SIMILAR "
                               "channel (largest energy), the official one the most DISSIMILAR (smallest energy)."),
}


def _close(actual: Any, target: torch.Tensor, *, what: str, diagnoses: dict[str, torch.Tensor]) -> None:
    if isinstance(actual, torch.Tensor) and actual.shape == target.shape and not is_close(actual, target):
        for label, wrong in diagnoses.items():
            if is_close(actual, wrong):
                mistake, advice = ADVICE[label]
                raise CheckFailure(f"{what} has the wrong values.\n  Likely mistake: {advice}", mistake=mistake)
    expect_close(actual, target, what=what)


def _rows_sum_to_one(a: torch.Tensor, *, what: str) -> None:
    rows = a.detach().double().sum(-1)
    if torch.allclose(rows, torch.ones_like(rows), atol=1e-4):
        passed()
        return
    cols = a.detach().double().sum(-2)
    if torch.allclose(cols, torch.ones_like(cols), atol=1e-4):
        raise CheckFailure(f"{what}: its columns sum to 1, not its rows.\n  Likely mistake: "
                           f"{ADVICE['softmax_dim1'][1]}", mistake="softmax_dim")
    raise CheckFailure(f"{what}: each row should sum to 1 (softmax over the last dim); row sums range "
                       f"{rows.min().item():.4g} .. {rows.max().item():.4g}.", mistake="softmax_dim")


def _gamma_one(module: nn.Module, *, what: str) -> None:
    """Check CAM's only parameter, gamma: a learnable scalar starting at 0; then set it to 1."""
    gamma = getattr(module, "gamma", None)
    if not isinstance(gamma, nn.Parameter):
        raise CheckFailure(f"{what}.gamma should be a learnable nn.Parameter (the paper's beta), got "
                           f"{type(gamma).__name__}. Keep the name gamma.", mistake="no_scale_param")
    expect(gamma.numel() == 1, f"{what}.gamma should hold one number, got shape {fmt_shape(gamma.shape)}.",
           mistake="parameters")
    expect(bool(torch.all(gamma.detach() == 0)),
           f"a new {what} has gamma = {gamma.detach().reshape(-1).tolist()}; the paper initialises beta to 0 "
           "(nn.Parameter(torch.zeros(1))), so the block starts as the identity.", mistake="gamma_init")
    n = count_parameters(module)
    expect(n == 1, f"{what} has {n} parameters; CAM has exactly one, gamma. The paper computes the channel "
                   "affinities on the features themselves, with no convolutions (no query/key/value).",
           mistake="param_count")
    with torch.no_grad():
        gamma.fill_(1.0)


def _run_cam(module: nn.Module, E: dict, *, what: str) -> None:
    x = E["x"]
    b, c, h, w = x.shape
    a = call(module.attention, x.clone(), doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}")
    expect_shape(a, (b, c, c), what="attention(x)", hint="CAM's map is (B, C, C): a @ a^T with a = x as (B, C, N).")
    _rows_sum_to_one(a, what="attention(x)")
    _close(a, E["a"], what="attention(x)", diagnoses=E["a_diagnoses"])
    x_in = x.clone()
    y = call(module, x_in, doing=f"{what}(x) with x of shape {fmt_shape(x.shape)}")
    if isinstance(y, torch.Tensor) and y.dim() == 3:
        raise CheckFailure(f"forward(x) returned shape {fmt_shape(y.shape)}, the map; it should return "
                           "gamma * out + x of the input's shape.", mistake="returns_map")
    expect_shape(y, x.shape, what="forward(x)")
    expect(torch.equal(x_in, x), "forward(x) changed x in place; return gamma * out + x as a new tensor.",
           mistake="inplace")
    _close(y, E["y"], what="forward(x) with gamma = 1", diagnoses=E["y_diagnoses"])
    xg = x.clone().requires_grad_(True)
    y = call(module, xg, doing=f"{what}(x) with x.requires_grad")
    call(lambda: y.square().sum().backward(), doing="backward through forward(x)")
    expect(xg.grad is not None and module.gamma.grad is not None,
           "after backward no gradient reached x or gamma.", mistake="no_grad")
    expect_close(xg.grad, E["x_grad"], what="the gradient with respect to x", mistake="no_grad")


@exercise("ChannelAttention (paper)", budget_s=10)
def check_cam(cls: type) -> None:
    E = expected(CHAPTER)["paper"]
    module = build(cls)
    _gamma_one(module, what=f"{getattr(cls, '__name__', cls)}()")
    _run_cam(module, E, what=f"{cls.__name__}()")


@exercise("ChannelAttention (official)", budget_s=10)
def check_cam_official(cls: type) -> None:
    E = expected(CHAPTER)["official"]
    module = build(cls, variant="official")
    _gamma_one(module, what=f"{cls.__name__}(variant='official')")
    _run_cam(module, E, what=f"{cls.__name__}(variant='official')")
    try:
        cls(variant="Official ")
    except ValueError:
        passed()
    except Exception as err:  # noqa: BLE001
        raise CheckFailure(f"{cls.__name__}(variant='Official ') raised {type(err).__name__}: {err}; it should "
                           "raise ValueError naming the allowed values 'paper' and 'official'.",
                           mistake=BAD_VARIANT) from None
    else:
        raise CheckFailure(f"{cls.__name__}(variant='Official ') was accepted; raise ValueError naming the "
                           "allowed values ('paper', 'official') and the received one.", mistake=BAD_VARIANT)


@exercise("most_attended", budget_s=10)
def check_most_attended(fn: Callable) -> None:
    E = expected(CHAPTER)["most"]
    energy = E["energy"]
    for variant in ("paper", "official"):
        arg = energy.clone()
        got = call(fn, arg, variant, doing=f"most_attended(energy {fmt_shape(energy.shape)}, {variant!r})")
        expect(torch.equal(arg, energy), "most_attended changed its energy argument in place.", mistake="inplace")
        expect_shape(got, energy.shape[:2], what=f"most_attended(energy, {variant!r})",
                     hint="one channel index per row j: (B, C).")
        got = got.long() if isinstance(got, torch.Tensor) else got
        if not torch.equal(got, E[variant]):
            other = "official" if variant == "paper" else "paper"
            if torch.equal(got, E[other]):
                raise CheckFailure(f"most_attended(energy, {variant!r}) has the wrong indices.\n  Likely mistake: "
                                   f"{ADVICE['swapped'][1]}", mistake="cam_variant")
            raise CheckFailure(f"most_attended(energy, {variant!r}) should be {E[variant].tolist()}, got "
                               f"{got.tolist()}.", mistake="values")
        passed()


@exercise("BlogCAM", budget_s=10)
def check_blog_cam(cls: type) -> None:
    E = expected(CHAPTER)["official"]
    c = E["x"].shape[1]
    module = build(cls, c)
    _gamma_one(module, what=f"{cls.__name__}({c})")
    x = E["x"]
    y = call(module, x.clone(), doing=f"{cls.__name__}({c})(x) with x of shape {fmt_shape(x.shape)}")
    expect_shape(y, x.shape, what="BlogCAM forward(x)")
    _close(y, E["y"], what="BlogCAM forward(x) with gamma = 1",
           diagnoses={"paper": E["y_diagnoses"]["paper"], **{k: v for k, v in E["y_diagnoses"].items()
                                                              if k != "paper"}})
