"""Visible checks of chapter 06: DANet's channel attention module (CAM).

The notebook's test cells call:

    check_cam(ChannelAttention)            # variant="paper": Eq. (3)-(4)
    check_cam_official(ChannelAttention)   # variant="official": softmax(max - energy), and bad variants
    check_most_attended(most_attended)     # which channel each row of the map favours
    check_blog_pam(PAM_Module)             # the seed post's PAM_Module, made to run
    check_blog_cam(CAM_Module)             # the seed post's CAM_Module, made to run
    check_dual_attention(dual_attention)   # PAM and CAM side by side, the residual counted once
    check_q_official_form(q_official_form) # conceptual questions (course_lib.checks.questions)
    check_q_diagonal(q_diagonal)
    check_q_symmetric(q_symmetric)
    check_q_cost_ratio(q_cost_ratio)

CAM's energy a a^T is symmetric, so a softmax over the wrong dim gives exactly the transpose of the right
map: the checks test the rows of the map AND the output. A separate check asserts that gamma starts at 0; the
values are then compared with gamma set to 1 (with its zero initialisation every forward equals x), and the output
again at gamma = 0.37 and 0, so that gamma must scale the attended features alone (Eq. (4)).

Nothing here imports ``course_lib.reference.danet``: expected values come from ``checks/expected/ch06_danet_cam.pt``.
"""
from __future__ import annotations

import copy
import dis
import functools
import math
from typing import Callable

import torch
from torch import nn

from .toolkit import (
    HW_SWAPPED,
    QK_SWAPPED,
    build,
    call,
    call_with_hints,
    check_pam_structure,
    CheckFailure,
    close_named,
    count_parameters,
    define_mistake,
    exercise,
    expect,
    expect_block_forward,
    expect_close,
    expect_device_free,
    expect_follows,
    expect_function_contract,
    expect_gradients,
    expect_rows_sum_to_one,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    is_close,
    load_pam_weights,
    passed,
    realistic_input,
    returned_the_map,
)
from .questions import Question, define_question_checks

CHAPTER = "ch06_danet_cam"

EXTRA_TRANSPOSE = define_mistake(
    "extra_transpose", "the map is transposed in CAM's bmm (out = attention @ a needs no transpose)")
BAD_VARIANT = define_mistake("bad_variant", "an unknown variant is accepted instead of raising ValueError")
RESIDUAL_TWICE = define_mistake("residual_twice", "two branches that each add x are summed, so x is counted twice")
RESIDUAL_COUNT = define_mistake("residual_count", "x counted three times, or not at all, in the sum of two branches "
                                                "that each add x")
ARGMAX_AXIS = define_mistake("argmax_axis", "the argmax (or argmin) runs over dim 1 of the map instead of each row, "
                                            "dim -1")
OFFICIAL_FORM = define_mistake("official_form", "a wrong reading of what softmax(max - energy) computes")
DIAGONAL = define_mistake("diagonal", "a wrong claim about when a channel's energy with itself is the largest of its row")
SYMMETRIC = define_mistake("symmetric", "a wrong claim about what the symmetry of CAM's energy implies")
COST_RATIO = define_mistake("cost_ratio", "a multiply-add count of PAM or CAM that leaves out a product or inverts "
                                          "the ratio")
SEQUENTIAL = define_mistake("sequential", "the branches run one after the other where they should run side by side")
GAMMA_UNUSED = define_mistake("gamma_unused", "forward never multiplies by gamma (Eq. (4)'s beta), so it cannot learn")
BRANCHES_AVERAGED = define_mistake("branches_averaged", "the two branches are averaged where DANet sums them")
LEFTOVER_GLOBAL = define_mistake(
    "leftover_global", "forward reads a global variable of the notebook where a local name was misspelt")
GAMMA_PLACEMENT = define_mistake(
    "gamma_placement", "gamma (Eq. (4)'s beta) scales the wrong term, or multiplies where Eq. (4) adds")
GAMMA_TWICE = define_mistake("gamma_twice", "a branch's contribution is weighted by its gamma a second time")
OFFICIAL_MAX_AXIS = define_mistake(
    "official_max_axis", "the official form's maximum is taken over dim 1 (per column) instead of per row")
BAD_VARIANT_MESSAGE = define_mistake(
    "bad_variant_message", "the ValueError for an unknown variant does not name the allowed values and the received one")

ADVICE: dict[str, tuple[str, str]] = {
    "softmax_dim1": ("softmax_dim",
                     "the softmax runs over dim 1, so each COLUMN sums to 1. The energy a a^T is symmetric, so this "
                     "is exactly the transpose of the right map. Eq. (3) normalises each row j over i."),
    "softmax_all": ("softmax_dim", "the softmax runs over all C*C entries at once; Eq. (3) gives each row j its "
                                   "own softmax over i."),
    "official": ("cam_variant",
                 "this is the official code's softmax(max - energy), the line of §2; the paper's Eq. (3) is "
                 "softmax(energy)."),
    "paper": ("cam_variant",
              "this is the paper's softmax(energy). The official code (and the blog's copy) computes "
              "softmax(max_i(energy) - energy): keep the max - energy line."),
    "scaled": ("scaled", "the energy is divided by sqrt(N); neither the paper nor the official code scales it."),
    "extra_transpose": (EXTRA_TRANSPOSE,
                        "the map is transposed before it weights the channel maps (PAM's habit). In CAM the map "
                        "and a are both indexed by channels (§1): row j of the output mixes the rows of a with "
                        "the weights of row j of the map. (A softmax over dim 1 gives the same transposed map: the "
                        "energy is symmetric.)"),
    "missing_residual": ("missing_residual", "forward returns gamma * out without + x. Eq. (4): E = beta * out + A."),
    "residual_twice": (RESIDUAL_TWICE,
                       "the sum counts the input twice: each module already returns gamma * out + x, and the "
                       "block adds each branch's contribution to x only once."),
    "residual_thrice": (RESIDUAL_COUNT,
                        "x is added to the two branches, which already hold it: each module returns gamma * out + "
                        "x, so the sum counts the input three times where the block has it once."),
    "residual_dropped": (RESIDUAL_COUNT,
                         "x is taken away once for each branch: each module returns gamma * out + x, and the block "
                         "keeps the input once (a new block is the identity)."),
    "sequential": (SEQUENTIAL,
                   "one module is applied to the other's output (cam(pam(x)) or pam(cam(x))). DANet runs the two "
                   "branches in parallel on the same features and sums them (Sec. 3.4)."),
    "averaged": (BRANCHES_AVERAGED, "the two branches are averaged. DANet sums them (Sec. 3.4), and halving "
                                    "also halves the residual x."),
    "pam_only": ("values", "only the position branch reaches the output; add the channel branch."),
    "cam_only": ("values", "only the channel branch reaches the output; add the position branch."),
    "argmax_axis": (ARGMAX_AXIS, "the argmax (or argmin) runs down each column. Row j of the energy holds "
                                 "channel j's affinities to every channel i, and the question is about rows."),
    "scaled_sqrt_c": ("scaled", "the energy is divided by sqrt(C) (the Transformer's 1/sqrt(d)); neither the paper "
                                "nor the official code scales it."),
    "gamma_in_softmax": (GAMMA_PLACEMENT, "gamma scales the energy inside the softmax, so it changes the attention "
                                          "map itself. Eq. (4) scales the attended features, after the weighted "
                                          "sum, and adds the input."),
    "out_wh_transposed": (HW_SWAPPED, "the (B, C, N) result is reshaped as (B, C, W, H) and then transposed: N is "
                                      "laid out row by row (H rows of W), so that reshape scrambles the positions "
                                      "and no transpose brings them back."),
    "gamma_ignored": (GAMMA_UNUSED, "forward returns the same output whatever gamma holds: Eq. (4) scales the "
                                    "attended features by beta (gamma), and a gamma that never enters the output "
                                    "can never learn."),
    "gamma_on_sum": (GAMMA_PLACEMENT, "gamma multiplies the sum out + x. Eq. (4) scales only the attended "
                                      "features: with beta = 0 a new module must return its input unchanged."),
    "gamma_on_input": (GAMMA_PLACEMENT, "gamma multiplies the input instead of the attended features. Eq. (4) "
                                        "scales the attended features by beta and adds A as it is."),
    "out_times_input": (GAMMA_PLACEMENT, "the attended features multiply the input. Eq. (4) ADDS the scaled "
                                         "attended features to A (a residual sum)."),
    "official_max_dim1": (OFFICIAL_MAX_AXIS, "the maximum of the official form is taken over dim 1, so entry (j, i) "
                                             "gets the maximum of another row. The official line subtracts each "
                                             "entry from the maximum of ITS row j (§2)."),
    "gamma_twice": (GAMMA_TWICE, "each branch's contribution is scaled by its gamma again. pam(x) and cam(x) "
                                 "already return x + gamma * (attended features): the block combines what they "
                                 "return, with no weight of its own."),
    "swapped": ("cam_variant", "you returned the other variant's choice: the paper's map and the official one favour "
                               "different channels (question 2 says which)."),
}


HINTS = (
    ("must match the size of tensor", HW_SWAPPED,
     "gamma * out could not be added to x: out does not have x's shape. The (B, C, N) product goes back to the "
     "input's (B, C, H, W) with H before W; a (B, C, W, H) reshape swaps the two sizes."),
)

_close = functools.partial(close_named, advice=ADVICE)

#: the repaired blog PAM's known mistakes (chapter 05's module, official layout), in words that name the mistake
BLOG_PAM_ADVICE: dict[str, tuple[str, str]] = {
    "softmax_dim1": ("softmax_dim", "the softmax runs over the queries, so each COLUMN sums to 1; PAM's Eq. (1) "
                                    "normalises each query's row over the keys."),
    "softmax_dim0": ("softmax_dim", "the softmax runs over the batch: each entry is normalised against the same entry "
                                    "of the other images (nn.Softmax without a dim picks dim 0 for a 3-D tensor)."),
    "softmax_all": ("softmax_dim", "the softmax runs over all N*N pairs of an image at once; each query gets its own "
                                   "distribution over the keys."),
    "scaled": ("scaled", "the energy is scaled (the Transformer's 1/sqrt(d)); DANet's paper and official code use the "
                         "plain dot product."),
    "qk_swapped": (QK_SWAPPED, "query and key play each other's role: row j of the energy should hold q_j . k_i. The "
                               "same output also comes from two mistakes together: the softmax over the other axis "
                               "and the weighted sum without its transpose."),
    "missing_transpose": ("missing_transpose", "the weighted sum uses the map without the transpose it needs: output "
                                               "position j collects the values with the weights of ROW j of the map "
                                               "(chapter 05; DANet issue #64 asks the same)."),
    "missing_residual": ("missing_residual", "forward returns gamma * out without the input added back (Eq. (2))."),
}
_pam_close = functools.partial(close_named, advice=BLOG_PAM_ADVICE)
_call = functools.partial(call_with_hints, hints=HINTS)


def expect_no_leftover_global(fn: Callable, *, what: str) -> None:
    """``fn`` reads no global tensor or number of the notebook: a misspelt local name falls back to a global of
    the same name (the blog's ``attetion`` / ``attention``, ``heigh`` / ``height``) and silently uses it."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname == "LOAD_GLOBAL"}
    for name in sorted(names):
        value = getattr(fn, "__globals__", {}).get(name)
        if isinstance(value, (torch.Tensor, int, float)) and not isinstance(value, bool):
            raise CheckFailure(
                f"{what} reads the global variable {name!r} of your notebook (a {type(value).__name__}): the name is "
                "never assigned inside the method, so Python looks it up among the notebook's globals.\n  Likely "
                "mistake: a local name is spelt one way where it is assigned and another where it is used (the "
                "blog's typos), and a global of the same name hides the error.", mistake=LEFTOVER_GLOBAL)
    passed()


def _rows_sum_to_one(a: torch.Tensor, *, what: str) -> None:
    expect_rows_sum_to_one(a, what=what, advice={"columns": ADVICE["softmax_dim1"][1], "mistake": "softmax_dim"})


def _gamma_sweep(module: nn.Module, x: torch.Tensor, y_at_one: torch.Tensor, *, what: str,
                 a_at_one: torch.Tensor | None = None) -> None:
    """gamma enters as Eq. (4) says: the output at gamma = 0.37 and at gamma = 0 (a new module: the identity), not
    only at the gamma = 1 of the value checks; gamma is 1 again afterwards."""
    attended = y_at_one - x.double()  # out, the attended features
    for g in (0.37, 0.0):
        with torch.no_grad():
            module.gamma.fill_(g)
        y = _call(module, x.clone(), doing=f"{what}(x) with gamma = {g}")
        wrong = {"gamma_ignored": y_at_one, "gamma_on_sum": g * y_at_one, "gamma_on_input": attended + g * x.double(),
                 "out_times_input": g * attended * x.double()}
        if a_at_one is not None:  # softmax(gamma * e): the log of the map is e up to a constant per row
            inside = torch.softmax(g * a_at_one.double().clamp_min(1e-300).log(), dim=-1)
            wrong["gamma_in_softmax"] = x.double() + (inside @ x.double().flatten(2)).reshape(x.shape)
        _close(y, x.double() + g * attended, what=f"{what}(x) with gamma = {g}", diagnoses=wrong)
    with torch.no_grad():
        module.gamma.fill_(1.0)


def _official_max_dim1(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The official form with its maximum over dim 1 (per column): a known mistake, computed from x."""
    a = x.double().flatten(2)
    energy = a @ a.transpose(1, 2)  # (B, C, N) @ (B, N, C) -> (B, C, C)
    return {"official_max_dim1": torch.softmax(energy.amax(1, keepdim=True) - energy, dim=-1)}


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
    scaled_c = torch.softmax(E["a"].double().clamp_min(1e-300).log() / math.sqrt(c), dim=-1)
    _close(a, E["a"], what="attention(x)",
           diagnoses=dict(E["a_diagnoses"]) | _official_max_dim1(x) | {"scaled_sqrt_c": scaled_c})
    y = expect_block_forward(module, x, what=what, returns="gamma * out + x", call=_call,
                             misread=lambda out, returns: returned_the_map(out, returns, square=False))
    attended = E["y"] - x.double()  # out, the attended features (gamma = 1)
    _close(y, E["y"], what="forward(x) with gamma = 1",
           diagnoses=dict(E["y_diagnoses"]) | {"out_times_input": attended * x.double(), "out_wh_transposed":
                                               x.double() + attended.reshape(b, c, w, h).transpose(-1, -2)})
    # float64 in, float64 out, at float64 precision (the stored values are float64)
    twin = copy.deepcopy(module).double()
    for run, target, diagnoses, label in ((twin.attention, E["a"], E["a_diagnoses"], "attention(x)"),
                                          (twin, E["y"], E["y_diagnoses"], "forward(x) with gamma = 1")):
        doing = f"{what}.double(): {label} in float64"
        result = call(run, x.double(), doing=doing)
        expect_follows(result, dtype=torch.float64, doing=doing)
        _close(result, target, what=f"{label} in float64", diagnoses=diagnoses)
    _gamma_sweep(module, x, E["y"], what=what, a_at_one=E["a"])
    xg = x.clone().requires_grad_(True)
    y = call(module, xg, doing=f"{what}(x) with x.requires_grad")
    call(lambda: y.square().sum().backward(), doing="backward through forward(x)")
    expect(module.gamma.grad is not None,
           "after backward no gradient reached gamma: forward does not use it. Eq. (4) scales the attended "
           "features by beta (gamma) before adding A; with gamma set to 1 the values looked right, but a gamma "
           "that never enters the output can never learn.", mistake=GAMMA_UNUSED)
    expect(xg.grad is not None, "after backward no gradient reached x.", mistake="no_grad")
    expect_close(xg.grad, E["x_grad"], what="the gradient with respect to x", mistake="no_grad")
    expect_device_free(module, x, what=what)
    # realistic features: energies a a^T in the thousands; a softmax written as exp / sum overflows
    big = realistic_input(channels=8, size=16)
    a_big = call(module.float().attention, big, doing=f"{what}.attention(x) on ReLU features of shape "
                                                      f"{fmt_shape(big.shape)} (float32)")
    _rows_sum_to_one(a_big, what=f"{what}.attention(x) on ReLU features of shape {fmt_shape(big.shape)} (float32)")


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
    except ValueError as err:
        text = str(err)
        named = ["'paper'" if "paper" in text else None, "'official'" if "official" in text else None,
                 "the received 'Official '" if "Official " in text else None]
        if None in named:
            raise CheckFailure(
                f"{cls.__name__}(variant='Official ') raised ValueError({text!r}). The error is right, but the "
                "message should let its reader fix the call: name the allowed values ('paper', 'official') and "
                "the value received (repr() shows its trailing space).", mistake=BAD_VARIANT_MESSAGE) from None
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
        was_float = isinstance(got, torch.Tensor) and got.is_floating_point()
        returned_dtype = got.dtype if isinstance(got, torch.Tensor) else None
        got = got.long() if isinstance(got, torch.Tensor) else got
        if not torch.equal(got, E[variant]):
            other = "official" if variant == "paper" else "paper"
            if torch.equal(got, E[other]):
                raise CheckFailure(f"most_attended(energy, {variant!r}) has the wrong indices.\n  Likely mistake: "
                                   f"{ADVICE['swapped'][1]}", mistake="cam_variant")
            shifted = energy if variant == "paper" else energy.amax(-1, keepdim=True) - energy
            if torch.equal(got, E[f"{variant}_dim1"]) or torch.equal(got, torch.softmax(shifted, -1).argmax(1)):
                raise CheckFailure(f"most_attended(energy, {variant!r}) has the wrong indices.\n  Likely mistake: "
                                   f"{ADVICE['argmax_axis'][1]}", mistake=ARGMAX_AXIS)
            if was_float:
                raise CheckFailure(f"most_attended(energy, {variant!r}) returned floating-point values "
                                   f"({returned_dtype}); it should return channel indices (an integer tensor, as "
                                   "argmax gives), not the map's or the energy's values.", mistake="values")
            wrong = int((got != E[variant]).sum())
            raise CheckFailure(f"most_attended(energy, {variant!r}) has the wrong index in {wrong} of its "
                               f"{got.numel()} rows.", mistake="values")
        passed()
        expect_function_contract(fn, (energy, variant), what=f"most_attended(energy, {variant!r})")


@exercise("PAM_Module (the blog's, repaired)", budget_s=10)
def check_blog_pam(cls: type) -> None:
    E = expected(CHAPTER)["blog_pam"]
    c = E["x"].shape[1]
    what = f"{getattr(cls, '__name__', cls)}({c})"
    module = build(cls, c)
    check_pam_structure(module, c, 8, what=what, reduction_argument=False)
    gamma = getattr(module, "gamma", None)
    if isinstance(gamma, torch.Tensor):
        expect(bool(torch.all(gamma.detach() == 0)),
               f"a new {what} has gamma = {gamma.detach().reshape(-1).tolist()}; the blog's module (and the paper) "
               "start gamma at 0, so the block starts as the identity. The task is to change only what stops the "
               "module from running.", mistake="gamma_init")
    load_pam_weights(module, E["weights"], what=what)  # gamma = 1
    expect_no_leftover_global(getattr(cls, "forward", None), what=f"{what}.forward")
    x = E["x"]
    x_in = x.clone()
    y = call(module, x_in, doing=f"{what}(x) with x of shape {fmt_shape(x.shape)}")
    expect_unchanged(x, x_in, what=f"{what}(x)")
    expect_shape(y, x.shape, what=f"{what}(x)")
    _pam_close(y, E["y"], what=f"{what}(x) with gamma = 1", diagnoses=E["diagnoses"])
    expect_device_free(module, x, what=what)


@exercise("CAM_Module (the blog's, repaired)", budget_s=10)
def check_blog_cam(cls: type) -> None:
    E = expected(CHAPTER)["official"]
    c = E["x"].shape[1]
    module = build(cls, c)
    _gamma_one(module, what=f"{cls.__name__}({c})")
    expect_no_leftover_global(getattr(cls, "forward", None), what=f"{cls.__name__}.forward")
    x = E["x"]
    x_in = x.clone()
    y = _call(module, x_in, doing=f"{cls.__name__}({c})(x) with x of shape {fmt_shape(x.shape)}")
    expect_unchanged(x, x_in, what=f"{cls.__name__}({c})(x)")
    expect_shape(y, x.shape, what=f"{cls.__name__}({c})(x)")
    _close(y, E["y"], what=f"{cls.__name__}({c})(x) with gamma = 1", diagnoses=E["y_diagnoses"])
    _gamma_sweep(module, x, E["y"], what=f"{cls.__name__}({c})")
    expect_device_free(module, x, what=f"{cls.__name__}({c})")


class ResidualBranch(nn.Module):
    """A stand-in for PAM or CAM in the dual-attention check: x + gamma * f(x), like both modules."""

    def __init__(self, gamma: float, kind: str) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.tensor([gamma], dtype=torch.float64))
        self.kind = kind
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.kind == "position":  # every position gets the mean over positions, per channel
            mixed = x.mean(dim=(2, 3), keepdim=True).expand_as(x).tanh()
        else:  # every channel gets the mean over channels, per position
            mixed = x.mean(dim=1, keepdim=True).expand_as(x).sin()
        return x + self.gamma * mixed


def dual_cases(x: torch.Tensor, alpha: float = 0.6, beta: float = 1.3):
    """(pam, cam, the right output, the outputs of the known mistakes) for the stand-in branches."""
    pam, cam = ResidualBranch(alpha, "position"), ResidualBranch(beta, "channel")
    with torch.no_grad():
        p, c = pam(x), cam(x)
        wrong = {"residual_twice": p + c, "sequential": cam(pam(x)), "sequential_2": pam(cam(x)),
                 "averaged": (p + c) / 2, "pam_only": p, "cam_only": c,
                 "gamma_twice": x + alpha * (p - x) + beta * (c - x)}
    return ResidualBranch(alpha, "position"), ResidualBranch(beta, "channel"), (p + c - x), wrong


@exercise("dual_attention", budget_s=10)
def check_dual_attention(fn: Callable) -> None:
    x = expected(CHAPTER)["dual"]["x"]
    pam, cam = ResidualBranch(0.0, "position"), ResidualBranch(0.0, "channel")
    y = call(fn, x.clone(), pam, cam, doing="dual_attention(x, pam, cam) with gamma = 0 in both branches")
    expect_shape(y, x.shape, what="dual_attention(x, pam, cam)")
    found = next((label for factor, label in ((2, "residual_twice"), (3, "residual_thrice"),
                                              (0, "residual_dropped")) if is_close(y, factor * x)), None)
    shown = {"residual_twice": "2 x", "residual_thrice": "3 x", "residual_dropped": "zeros"}
    expect(is_close(y, x), "with alpha = beta = 0 (a new DANet) dual_attention(x, pam, cam) should return x "
                           "unchanged: each branch is the identity at initialisation"
           + (f", but it returned {shown[found]}.\n  Likely mistake: {ADVICE[found][1]}" if found else "."),
           mistake=ADVICE[found][0] if found else "values")
    pam, cam, right, wrong = dual_cases(x)
    x_in = x.clone()
    y = call(fn, x_in, pam, cam, doing="dual_attention(x, pam, cam) with alpha = 0.6, beta = 1.3")
    expect(torch.equal(x_in, x), "dual_attention changed x in place; compute a new tensor.", mistake="inplace")
    diagnoses = {label: t for label, t in wrong.items() if label != "sequential_2"}
    if isinstance(y, torch.Tensor) and is_close(y, wrong["sequential_2"]):
        diagnoses["sequential"] = wrong["sequential_2"]
    _close(y, right, what="dual_attention(x, pam, cam) with alpha = 0.6, beta = 1.3", diagnoses=diagnoses)
    expect(pam.calls == 1 and cam.calls == 1,
           f"dual_attention called pam {pam.calls} and cam {cam.calls} times; once each is enough "
           "(each call of the real PAM builds an N x N map).", mistake="values")
    pam, cam, _, _ = dual_cases(x)
    expect_gradients(fn, (x, pam, cam), doing="dual_attention(x, pam, cam)", names=("x", "pam", "cam"),
                     grad_inputs=(0,))
    # a plain function's protections, as a module's: the device watch, float64 throughout
    pam, cam, right, _ = dual_cases(x)
    expect_function_contract(fn, (x, pam, cam), what="dual_attention(x, pam, cam)", target64=right)


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch06_danet_cam.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
_WORK_IT_OUT = "Write softmax(m_j - e_ji) as a fraction of exponentials and simplify."
Q_OFFICIAL_FORM = Question(
    "q_official_form", "choice", options="abcd", key="18ba803ba1846c0c124e",
    doc="What the official softmax(m_j - e_j.) equals, row by row (one letter).",
    wrong={
        "1d6a5f59b8d7791bae4f": (OFFICIAL_FORM, "(a) reads m - e as if it were e - m, the stabilising shift. "
                                                + _WORK_IT_OUT),
        "b283518af397b8f38b82": (
            OFFICIAL_FORM, "e - m is the stabilising shift; the official line is m - e. " + _WORK_IT_OUT),
        "716e80004cf04423c8e6": (
            OFFICIAL_FORM, "Any softmax's rows sum to 1, whatever its input. " + _WORK_IT_OUT),
    },
    advice=_WORK_IT_OUT)

_DIAGONAL_A = ("Your set takes e_jj = |A_j|^2 to be the largest entry of row j for any features. Cauchy-Schwarz "
               "bounds e_ji = A_j . A_i by |A_j| |A_i|: when can that bound lie above |A_j|^2?")
_DIAGONAL_D = ("Your set reads (d) as a fact about the official form alone. The official map's smallest weight sits "
               "at a row's largest energy (question 2): (d) stands or falls with a claim about the largest entry of "
               "every row.")
_DIAGONAL_SELF = ("Your set takes a channel to be always the most similar to itself. Write e_ji for a channel i that is "
                  "channel j scaled by a number larger than 1: which is larger, e_ji or e_jj?")
_DIAGONAL_NORMS = ("Your set doubts the case of equal norms. With |A_i| = |A_j|, what bound does Cauchy-Schwarz put "
                   "on e_ji = A_j . A_i?")
_DIAGONAL_ADVICE = ("Compare e_jj = |A_j|^2 with e_ji = A_j . A_i statement by statement, on small channel maps "
                    "of your own (two or three numbers each).")
Q_DIAGONAL = Question(
    "q_diagonal", "choices", options="abcd", key="85b642c7c7f44916b7db",
    doc="Which statements (a)-(d) about a channel's energy with itself are true.",
    wrong={
        "12bf5679aa102cd1e310": (DIAGONAL, _DIAGONAL_A),  # a
        "666d1b3907496d55c8a5": (DIAGONAL, _DIAGONAL_A),  # ab
        "05b86428738de7b92ec0": (DIAGONAL, _DIAGONAL_A),  # abc
        "fd01ceea9bd5802e7ea6": (DIAGONAL, _DIAGONAL_SELF),  # b
        "b4d554237f1b85c2820b": (DIAGONAL, _DIAGONAL_NORMS),  # c
        "a09dcc4abcfff70224aa": (DIAGONAL, _DIAGONAL_SELF + " " + _DIAGONAL_D),  # bd
        "4e1b9236943374323170": (DIAGONAL, _DIAGONAL_NORMS + " " + _DIAGONAL_D),  # cd
        "a45849ba8953077933c2": (DIAGONAL, _DIAGONAL_D),  # bcd
        "da0a3558bd5c57a78574": (DIAGONAL, _DIAGONAL_A + " " + _DIAGONAL_D),  # ad
    },
    advice=_DIAGONAL_ADVICE)

_SYMMETRIC_B = ("A symmetric energy does not make its softmax symmetric: a softmax over the rows makes each row sum "
                "to 1, a softmax over the columns makes each column sum to 1, and a map with both properties is "
                "rare.")
_SYMMETRIC_D = ("Your set treats the maximum subtracted in the official form as one number for the whole map. Look at "
                "which row's maximum is subtracted from e_ji, and which from e_ij.")
_SYMMETRIC_ADVICE = "Write the column softmax of e as a row softmax of e^T, and use e = e^T."
Q_SYMMETRIC = Question(
    "q_symmetric", "choices", options="abcd", key="a66bf338752ed8fdc143",
    doc="Which statements (a)-(d) about CAM's symmetric energy are true.",
    wrong={
        "aad0ff8b09b14e9885f4": (
            SYMMETRIC, "Your set stops at the column softmax: follow that map one step further, into the "
                       "product with a."),  # a
        "25b7fe193a0ebe7cc769": (SYMMETRIC, _SYMMETRIC_ADVICE),  # c
        "acb31df8e9148d8be284": (SYMMETRIC, _SYMMETRIC_B),  # b
        "e885c5764e00ce3586ae": (SYMMETRIC, _SYMMETRIC_B),  # abc
        "4f716b60e3196c5bb32f": (SYMMETRIC, _SYMMETRIC_D),  # acd
        "81c2430aeb9b9a45bf20": (SYMMETRIC, _SYMMETRIC_D),  # ad
    },
    advice=_SYMMETRIC_ADVICE)

Q_COST_RATIO = Question(
    "q_cost_ratio", "float", digits=3, key="e742fdd1dd45037d92ad",
    doc="How many times more multiply-adds PAM's two products take than CAM's (the DANet head).",
    wrong={
        "8aec925f1386ad1ca943": (
            COST_RATIO, "That is the energies alone; each module also has its weighted sum (a second product)."),
        "85d6d0557d503297ea78": (
            COST_RATIO, "CAM has two products too: its energy a a^T and its weighted sum s a."),
        "fced2407d7138881be23": (
            COST_RATIO, "That is N^2 / C^2, the ratio of the maps' sizes (memory), not of the multiply-adds."),
        "cb08c45d1bb1263ca141": (COST_RATIO, "The ratio is inverted: PAM's cost over CAM's."),
        "d073d8f315b76bdde22a": (COST_RATIO, "PAM's energy is missing from its count: the map (N x N) is itself a product of the "
                             "queries and keys, and its cost grows with N^2 too."),
        "9aa5aff8e14245d32964": (COST_RATIO, "That takes N as the side of the feature map; N counts its positions "
                                             "(H x W)."),  # 0.105
        "be3e8139ac12cc2605fc": (COST_RATIO, "In your ratio the number of positions cancels out: one count has the "
                                             "wrong power of N. Which module's map is N x N, and which C x C?"),  # 1.125
        "c7a4f00771d9c53b4023": (COST_RATIO, "Your count gives PAM's energy twice its cost: it is a single product "
                                             "of the queries with the keys, whose shared size is C'."),  # 11.25
        "4f3b15ec768ed7331427": (COST_RATIO, "That compares one product of each module (the weighted sums, or PAM's weighted sum "
                              "with one of CAM's): each module has two products, and all four count."),
    },
    advice="A module's multiply-adds are those of its matrix products, an (a x b) @ (b x c) product costing a b c: "
           "ask which of N, C and C' each product's shapes involve.")

define_question_checks(globals(), Q_OFFICIAL_FORM, Q_DIAGONAL, Q_SYMMETRIC, Q_COST_RATIO)
