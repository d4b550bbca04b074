"""Visible checks of chapter 00, the shapes primer.

The notebook's test cells call ``check_channel_descriptor(channel_descriptor)``, ``check_apply_gate(...)``,
``check_row_softmax(...)``, ``check_pairwise_scores(...)`` and ``check_flatten_pixels(...)``, and for the
conceptual questions ``check_q_broadcast``, ``check_q_softmax_dim``, ``check_q_bmm_shape`` and
``check_q_conv_params``. Inputs are
chosen so that B, C, H, W (and N, M, D) all differ, except in the one case built to show how broadcasting
can silently go wrong. Expected results are stored in ``checks/expected/ch00_shapes.pt``.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import torch
from einops import rearrange

from .toolkit import (
    CheckFailure,
    call_on_copies,
    define_mistake,
    exercise,
    expect,
    expect_close,
    expect_finite,
    expect_function_contract,
    expect_gradients,
    expect_layouts,
    expect_shape,
    expected,
    fmt_shape,
    is_close,
    seeded_randn,
)
from .questions import Question, define_question_checks

CHAPTER = "ch00_shapes"
KEEPDIM = "keepdim"
MAX_FOR_MEAN = define_mistake("max_for_mean", "a max where a mean is asked for (or the reverse)")
GATE_BROADCAST = define_mistake("gate_broadcast", "a (B, C) gate broadcast against (H, W) instead of (B, C)")
RESHAPE_NOT_PERMUTE = define_mistake(
    "reshape_not_permute", "reshape/view to (B, N, C) without first moving channels last: values land in the wrong place")
PIXEL_ORDER = define_mistake("pixel_order", "pixels flattened column by column (w h) instead of row by row (h w)")
MODIFIES_INPUT = "modifies_input"
DIVISOR = "divisor"
GATE_LAYOUT = "gate_layout"
EINOPS_AXES = define_mistake("einops_axes", "the einops pattern names the input's axes in another order than (b c h w)")
BATCH_MEAN = "batch_mean"
LEFT_ALIGNED = define_mistake("left_aligned", "broadcasting taken to line shapes up from the left")
SILENT_BROADCAST = define_mistake("silent_broadcast", "the case where broadcasting runs without error but is wrong, missed")
SIZE_ONE_MIDDLE = define_mistake("size_one_middle", "a gate with one trailing size-1 dim taken to broadcast like (B, C, 1, 1)")
TRANSPOSE_SIDE = define_mistake("transpose_side", "the transpose put on the wrong operand: Q K^T where Q^T K is asked")
BATCH_DROPPED = define_mistake("batch_dropped", "the batch dimension left out of a batched product's shape")
KERNEL_IGNORED = define_mistake("kernel_ignored", "a k x k convolution counted as if it were 1 x 1")
MEDIAN_FOR_MEAN = define_mistake("median_for_mean", "a median over the pixels where their mean is asked for")
SUM_FOR_MEAN = define_mistake("sum_for_mean", "a sum over the pixels where their mean is asked for")
GATE_SQUASHED = define_mistake("gate_squashed", "the given gate passed through a sigmoid (or another squashing) first")
GATE_RESIDUAL = define_mistake("gate_residual", "x added back to the gated features (x + x * gate)")
SHIFT_NOT_ROW_CONSTANT = define_mistake(
    "shift_not_row_constant", "the number subtracted before exp varies along a row (a max over another dim)")
GATE_TRANSPOSED = define_mistake("gate_transposed", "the (B, C) gate transposed (gate.T) before it gets its size-1 dims")
GLOBAL_SHIFT = define_mistake(
    "global_shift", "one number for the whole tensor (its overall max) subtracted before exp: far rows underflow to 0/0")
SIGMOID_ROWS = define_mistake("sigmoid_rows", "a sigmoid (each score on its own) where a softmax over each row is asked")
LOG_SOFTMAX = define_mistake("log_softmax", "log_softmax (log-weights, negative) returned where the weights are asked")
NO_EXP = define_mistake("no_exp", "the scores divided by their row sum without exp: weights that can be negative")
SCORES_SOFTMAXED = define_mistake("scores_softmaxed", "a softmax applied to the scores, where the raw dot products are asked")
CHANNELS_FIRST_PIXELS = define_mistake(
    "channels_first_pixels", "the pixels flattened but left channels-first, (B, C, H*W), where (B, H*W, C) is asked")
T_ALL_DIMS = define_mistake("t_all_dims", "`.T` on a 3-D tensor, which reverses all its dims, batch included")
ELEMENTWISE_SCORES = define_mistake(
    "elementwise_scores", "an elementwise product (q * k) where every query meets every key")
SCORES_SCALED = define_mistake("scores_scaled", "the dot products scaled (by 1/sqrt(D)) where plain ones are asked")
RESHAPE_FOR_TRANSPOSE = define_mistake(
    "reshape_for_transpose", "a reshape/view to the transposed shape where a transpose is needed")
POOL_AXIS = "pool_axis"
CONTRADICTORY_STATEMENTS = define_mistake(
    "contradictory_statements", "a set holding two statements about the same product that cannot both be true")
MISMATCH_BROADCAST = define_mistake(
    "mismatch_broadcast", "two sizes that differ, neither of them 1, taken to broadcast without an error")
ONE_BASED_DIM = define_mistake("one_based_dim", "dims counted from 1 where PyTorch numbers them from 0")
OPERAND_SHAPE = define_mistake("operand_shape", "the shape of a product's operands given for the product's shape")
PRODUCT_DIMS = define_mistake(
    "product_dims", "a batched matrix product given one dim short: each product of two matrices is a matrix")
CONV_BIAS_COUNT = define_mistake(
    "conv_bias_count", "a convolution's biases counted other than one per output channel")


def inputs() -> dict[str, tuple[torch.Tensor, ...]]:
    """The fixed inputs of the visible checks (also used to build the stored expected values)."""
    return {
        "channel_descriptor": (seeded_randn(2, 3, 5, 7, seed=1),),
        "apply_gate": (seeded_randn(2, 3, 5, 7, seed=2), torch.rand(2, 3, generator=torch.Generator().manual_seed(3),
                                                                     dtype=torch.float64)),
        "row_softmax": (seeded_randn(2, 4, 6, seed=4),),
        "pairwise_scores": (seeded_randn(2, 3, 4, seed=5), seeded_randn(2, 5, 4, seed=6)),
        "flatten_pixels": (seeded_randn(2, 3, 4, 5, seed=7),),
    }


def call_safely(fn: Callable, name: str, args: tuple) -> Any:
    """Call the student's function on copies and complain if it changed its inputs in place."""
    shapes = ", ".join(f"a tensor of shape {fmt_shape(a.shape)}" for a in args)
    return call_on_copies(fn, args, doing=f"{name}({shapes})")


def protections(fn: Callable, name: str, args: tuple, want: torch.Tensor) -> None:
    """What every exercise's contract states, a plain function's too: no CPU constant meets the input (the device
    watch), float64 in and out at float64 accuracy, the input left alone, and the same result for a 4-D input
    laid out channels_last or as a non-contiguous view."""
    shapes = ", ".join(f"a tensor of shape {fmt_shape(a.shape)}" for a in args)
    expect_function_contract(fn, args, what=f"{name}({shapes})", target64=want)
    if any(a.dim() == 4 for a in args):
        expect_layouts(fn, args, what=f"{name}({shapes})")


def gradients(fn: Callable, name: str, args: tuple, names: tuple[str, ...]) -> None:
    """The result carries gradients to every input (small float64 copies of the check's inputs)."""
    expect_gradients(fn, args, doing=name, names=names)


def _stored(name: str) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    data = expected(CHAPTER)[name]
    return tuple(data["inputs"]), data["output"]


@exercise("channel_descriptor", budget_s=5)
def check_channel_descriptor(fn: Callable) -> None:
    (x,), want = _stored("channel_descriptor")
    got = call_safely(fn, "channel_descriptor", (x,))
    b, c, h, w = x.shape
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, c):
        raise CheckFailure(f"channel_descriptor returned shape {fmt_shape(got.shape)}; it should be "
                           f"{fmt_shape(want.shape)}. keepdim=True keeps the two reduced dims as size 1, so the "
                           "result still broadcasts against x.", mistake=KEEPDIM)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (1, c, 1, 1):
        raise CheckFailure(f"channel_descriptor returned shape {fmt_shape(got.shape)}: the mean also ran over the "
                           "batch (dim 0), so every image gets the same descriptor. One number per (image, channel) "
                           "means reducing over H and W only (dims 2 and 3).", mistake=BATCH_MEAN)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, 1, h, w):
        raise CheckFailure(f"channel_descriptor returned shape {fmt_shape(got.shape)}: you averaged over the wrong "
                           "dims. One number per (image, channel) means reducing over H and W (dims 2 and 3).",
                           mistake="pool_axis")
    reduced = _reduced_dims(got, x.shape)
    if reduced is not None and reduced != (2, 3):
        names = ", ".join(f"{d} ({'BCHW'[d]})" for d in reduced)
        raise CheckFailure(f"channel_descriptor returned shape {fmt_shape(got.shape)}, expected "
                           f"{fmt_shape(want.shape)}: that is the shape of a reduction over dims {names}.\n  Likely "
                           "mistake: the mean ran over the wrong dims. One number per (image, channel) averages each "
                           "channel's own pixels.", mistake=POOL_AXIS)
    _same_dtype(got, x, "channel_descriptor(x)")
    total = x.sum((2, 3), keepdim=True)
    expect_close(got, want, what="channel_descriptor(x)", diagnoses=[
        (RESHAPE_NOT_PERMUTE, x.reshape(b, h * w, c).mean(1)[:, :, None, None],
         "x was reshaped to (B, H*W, C) and averaged over dim 1: a reshape keeps the memory order, channels first, so "
         "the numbers averaged together are not one channel's pixels (§6)."),
        (MAX_FOR_MEAN, x.amax((2, 3), keepdim=True), "these are the maxima over H and W; the descriptor is the mean."),
        (MEDIAN_FOR_MEAN, x.flatten(2).median(-1).values[:, :, None, None],
         "these are the medians over H and W (the middle pixel of each channel); the descriptor is the mean."),
        (SUM_FOR_MEAN, total, "these are the sums over H and W, one per (image, channel); the descriptor of "
                              "Eq. (2) is their mean."),
        (BATCH_MEAN, x.mean((0, 2, 3), keepdim=True).expand(b, c, 1, 1),
         "every image got the same descriptor: the mean also ran over the batch (dim 0). One number per "
         "(image, channel) averages each image's own H x W pixels."),
        (DIVISOR, total / (h * h), f"the sum over H and W is divided by H * H = {h * h}; a mean over the "
                                   f"{h} x {w} pixels divides by H * W = {h * w}."),
        (DIVISOR, total / (w * w), f"the sum over H and W is divided by W * W = {w * w}; a mean over the "
                                   f"{h} x {w} pixels divides by H * W = {h * w}."),
    ])
    gradients(fn, "channel_descriptor(x)", (x,), ("x",))
    protections(fn, "channel_descriptor", (x,), want)


def _reduced_dims(got: Any, shape: torch.Size) -> tuple[int, ...] | None:
    """The dims a reduction of a tensor of ``shape`` ran over, read off the result's shape (kept as size 1, or
    dropped); None when the shape is no such reduction's. The check's sizes all differ, so the dims are unique."""
    if not isinstance(got, torch.Tensor):
        return None
    sizes = tuple(got.shape)
    if len(sizes) == len(shape):
        if all(s in (1, n) for s, n in zip(sizes, shape)):
            return tuple(d for d, (s, n) in enumerate(zip(sizes, shape)) if s == 1 != n)
        return None
    kept = [d for d, n in enumerate(shape) if n in sizes]
    if len(set(sizes)) == len(sizes) and tuple(shape[d] for d in kept) == sizes:
        return tuple(d for d in range(len(shape)) if d not in kept)
    return None


def _same_dtype(got: Any, x: torch.Tensor, what: str) -> None:
    """A float result in another dtype than the input's (.half(), .float()) is named before its values."""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and got.dtype != x.dtype:
        raise CheckFailure(f"{what} returned {got.dtype} for a {x.dtype} input: the result follows the input's dtype "
                           "(no .half(), .float() or a dtype= that forces one).", mistake="dtype")


def _name_transposed_gate(fn: Callable, failure: CheckFailure) -> None:
    """`x * gate.T[..., None, None]` raises where B != C: on a probe with B == C it runs, and shows the transpose."""
    x = seeded_randn(3, 3, 4, 5, seed=21)
    gate = torch.rand(3, 3, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    try:
        got = fn(x.clone(), gate.clone())
    except Exception:  # noqa: BLE001 - the probe only names the mistake; the original failure stands otherwise
        return
    if is_close(got, x * gate.t()[:, :, None, None]):
        raise CheckFailure(
            f"{failure}\n  Likely mistake: the gate was transposed, (B, C) -> (C, B), before it got its size-1 dims: "
            "with B = C it runs and scales channel c of image b by gate[c, b]. gate[b, c] belongs to image b, "
            "channel c: its two dims are already in x's order.", mistake=GATE_TRANSPOSED) from None


@exercise("apply_gate", budget_s=5)
def check_apply_gate(fn: Callable) -> None:
    (x, gate), want = _stored("apply_gate")
    try:
        got = call_safely(fn, "apply_gate", (x, gate))
    except CheckFailure as failure:
        if "must match the size of tensor" not in str(failure):
            raise
        _name_transposed_gate(fn, failure)
        raise CheckFailure(
            f"{failure}\n  Likely mistake: broadcasting aligns shapes from the right, so a (B, C) gate meets x's last "
            "two dims (H, W), not its (B, C): where x's H and W differ from B and C this raises, and where they "
            "match it scales the wrong entries (§3).",
            mistake=GATE_BROADCAST) from None
    b, c = gate.shape
    _layout = ("the gate's numbers were regrouped through a (C, B) shape (a transpose, or a reshape to (C, B)): "
               "gate[b, c] no longer reaches channel c of image b. The gate already comes as (B, C).")
    expect_close(got, want, what="apply_gate(x, gate)", diagnoses=[
        (GATE_LAYOUT, x * gate.t().reshape(b, c, 1, 1), _layout),
        (GATE_LAYOUT, x * gate.reshape(c, b).t()[:, :, None, None], _layout),
        ("values", x + gate[:, :, None, None], "the gate is added to x; a gate scales the features."),
        (GATE_SQUASHED, x * torch.sigmoid(gate)[:, :, None, None],
         "the gate went through a sigmoid first. Here the gate is given, already in (0, 1): its values scale x "
         "as they are."),
        (GATE_RESIDUAL, x + x * gate[:, :, None, None],
         "x is added back to the gated features (a residual). The exercise asks for the gated features only."),
    ])
    gradients(fn, "apply_gate(x, gate)", (x, gate), ("x", "gate"))
    protections(fn, "apply_gate", (x, gate), want)
    # The trap: B == H and C == W, so `x * gate` runs without an error and scales the wrong entries.
    x2, gate2 = seeded_randn(3, 4, 3, 4, seed=8), torch.rand(3, 4, generator=torch.Generator().manual_seed(9),
                                                              dtype=torch.float64)
    got2 = call_safely(fn, "apply_gate", (x2, gate2))
    expect_shape(got2, x2.shape, what="apply_gate on x of shape (3, 4, 3, 4)")
    if is_close(got2, x2 * gate2):
        raise CheckFailure(
            "apply_gate(x, gate) with x of shape (3, 4, 3, 4) and gate (3, 4) multiplied x by the gate broadcast over "
            "(H, W): broadcasting aligns shapes from the right, so a (B, C) gate lines up with the last two dims, "
            "and here they happen to have its sizes (§3).", mistake=GATE_BROADCAST)
    expect(bool(torch.allclose(got2[:, :, 1:2, :] / x2[:, :, 1:2, :], gate2[:, :, None, None].expand(3, 4, 1, 4))),
           "apply_gate on x of shape (3, 4, 3, 4) does not scale channel c of image b by gate[b, c]",
           mistake=GATE_BROADCAST)


def _name_global_shift(got: Any, scores: torch.Tensor) -> None:
    """exp(s - s.max()) keeps every exponent at most 0, yet a row far below the overall max underflows: 0 / 0."""
    if not isinstance(got, torch.Tensor) or got.shape != scores.shape or bool(torch.isfinite(got).all()):
        return
    e = (scores - scores.max()).exp()
    candidate = e / e.sum(-1, keepdim=True)
    if torch.equal(torch.isnan(got), torch.isnan(candidate)):
        rows = int(torch.isnan(got).any(-1).sum())
        raise CheckFailure(
            f"row_softmax(scores) for float32 scores up to {scores.abs().max().item():.0f} in size gives NaN in {rows} "
            "row(s).\n  Likely mistake: one number for the whole tensor (its largest score) was subtracted. No "
            "exponent overflows then, but in a row whose scores all lie far below that number every exp(...) "
            "underflows to 0, and the row becomes 0 / 0. The shift that protects a row has to be about that row.",
            mistake=GLOBAL_SHIFT)


#: the overflow named without the call that avoids it
ROW_OVERFLOW = ("exp(s) overflows once a score passes about 88 in float32 (710 in float64), and scores of real features "
                "reach the hundreds: inf / inf is NaN. Subtracting the same number from every score of a row leaves its "
                "weights unchanged: which number keeps every exponent at most 0?")


def _name_temperature(got: object, scores: torch.Tensor) -> None:
    """Name a softmax of the scores times a factor other than 1 (softmax(s / 2), softmax(s / T))."""
    if not (isinstance(got, torch.Tensor) and got.shape == scores.shape and bool((got > 0).all())):
        return
    logs = got.detach().double().log()
    dl = logs - logs.mean(-1, keepdim=True)
    ds = scores.double() - scores.double().mean(-1, keepdim=True)
    factor = float((dl * ds).sum() / (ds * ds).sum())
    if abs(factor - 1) > 1e-3 and factor > 0 and is_close(got, torch.softmax(scores.double() * factor, -1)):
        raise CheckFailure(
            f"row_softmax(scores) has the wrong values: they are the softmax of the scores multiplied by "
            f"{factor:.3g}.\n  Likely mistake: the scores were scaled before the softmax (a temperature, or a "
            "Transformer's 1/sqrt(D)); this function takes the scores as they are.", mistake=SCORES_SCALED)


@exercise("row_softmax", budget_s=5)
def check_row_softmax(fn: Callable) -> None:
    (scores,), want = _stored("row_softmax")
    try:
        got = call_safely(fn, "row_softmax", (scores,))
    except CheckFailure as failure:
        if "must match the size of tensor" not in str(failure):
            raise
        raise CheckFailure(
            f"{failure}\n  Likely mistake: a row sum that lost its reduced dim: summing (B, N, M) over the keys without "
            "keepdim leaves (B, N), which broadcasting lines up with the last two dims (N, M) of the exponentials. "
            "A reduction that must divide its own input keeps the reduced dim, with size 1.",
            mistake=KEEPDIM) from None
    expect_shape(got, want.shape, what="row_softmax(scores)")
    sums = got.sum(-1) if isinstance(got, torch.Tensor) else None
    if sums is not None and not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
        other = [d for d in (0, 1) if torch.allclose(got.sum(d), torch.ones_like(got.sum(d)), atol=1e-6)]
        hint = (f"your result sums to 1 along dim {other[0]}: that normalises over "
                f"{'the batch' if other[0] == 0 else 'the queries (each column)'}; each row (one query, all "
                "of its keys) should." if other else "softmax turns each row (one query, all of its keys) into "
                "weights that sum to 1.")
        for mistake, candidate, advice in (
                (SIGMOID_ROWS, torch.sigmoid(scores), "each score went through a sigmoid on its own: a sigmoid puts "
                                                      "every score in (0, 1) but does not make a row sum to 1."),
                (LOG_SOFTMAX, torch.log_softmax(scores, -1), "these are the logarithms of the weights (log_softmax): "
                                                             "negative numbers whose exponentials sum to 1."),
                ("softmax_dim", torch.softmax(scores.flatten(1), -1).view_as(scores),
                 "the whole (N, M) map of each image sums to 1: the softmax ran over all N * M scores at once; each "
                 "row (one query, all of its keys) should."),
                (NO_EXP, scores / scores.sum(-1, keepdim=True), "the scores were divided by their row sum without exp: "
                                                                "a negative score gives a negative weight, and a row "
                                                                "summing to about 0 explodes.")):
            if is_close(got, candidate):
                raise CheckFailure(f"the rows of row_softmax(scores) do not sum to 1.\n  Likely mistake: {advice}",
                                   mistake=mistake)
        raise CheckFailure(f"the rows of row_softmax(scores) do not sum to 1. Likely mistake: {hint}",
                           mistake="softmax_dim")
    shifted = (scores - scores.amax(1, keepdim=True)).exp()
    _name_temperature(got, scores)
    clipped = scores.clamp(min=0)
    expect_close(got, want, what="row_softmax(scores)", diagnoses=[
        (NO_EXP, clipped / clipped.sum(-1, keepdim=True),
         "the scores were clipped at 0 (a ReLU) and divided by their row sum, without exp: every negative score gets "
         "weight 0, and a row with no positive score has no weights at all."),
        (NO_EXP, scores / scores.sum(-1, keepdim=True),
         "the scores were divided by their row sum without exp: the rows sum to 1, but a negative score gives a "
         "negative weight, and a row whose scores sum to about 0 explodes."),
        (SCORES_SCALED, torch.softmax(scores / scores.shape[-1] ** 0.5, -1),
         "the scores were divided by sqrt(M) (or sqrt(D)) first, as a Transformer scales them; this function takes "
         "the scores as they are."),
        (SHIFT_NOT_ROW_CONSTANT, shifted / shifted.sum(-1, keepdim=True),
         "the number subtracted before exp differs from key to key within a row (a maximum over dim 1, the "
         "queries). Only a number that is the same for a whole row leaves that row's weights unchanged."),
    ], hint="each row (one query, all of its keys) becomes positive weights that sum to 1, as in the formula of §4.")
    # realistic magnitudes: attention scores of real features reach the hundreds
    big = 150 * scores.float()
    large = call_safely(fn, "row_softmax", (big,))
    _name_global_shift(large, big)
    expect_finite(large, what=f"row_softmax(scores) for float32 scores up to {big.abs().max().item():.0f} in size",
                  advice=ROW_OVERFLOW)
    gradients(fn, "row_softmax(scores)", (scores,), ("scores",))
    protections(fn, "row_softmax", (scores,), want)


@exercise("pairwise_scores", budget_s=5)
def check_pairwise_scores(fn: Callable) -> None:
    (q, k), want = _stored("pairwise_scores")
    try:
        got = call_safely(fn, "pairwise_scores", (q, k))
    except CheckFailure as failure:
        text = str(failure)
        if "must match the size of tensor" in text and "dimension 0" in text:
            raise CheckFailure(
                f"{text}\n  Likely mistake: `.T` on a 3-D tensor reverses ALL its dims, (B, M, D) -> (D, M, B), so the "
                "batch axis moves to the end and no longer meets q's. Only the last two dims are to be swapped.",
                mistake=T_ALL_DIMS) from None
        if "must match the size of tensor" in text:
            raise CheckFailure(
                f"{text}\n  Likely mistake: an elementwise product (q * k) pairs query i with key i only, and needs "
                "N = M. Entry [b, i, j] pairs EVERY query i with EVERY key j: a matrix product, which sums over D.",
                mistake=ELEMENTWISE_SCORES) from None
        raise
    b, n, d = q.shape
    m = k.shape[1]
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, m, n):
        raise CheckFailure(
            f"pairwise_scores(q, k) returned shape {fmt_shape(got.shape)}, the transpose of {fmt_shape(want.shape)}: "
            "entry [b, i, j] should be q[b, i] . k[b, j], with the queries on the rows.", mistake="missing_transpose")
    plain = q @ k.transpose(1, 2)
    expect_close(got, want, what="pairwise_scores(q, k)", diagnoses=[
        (SCORES_SCALED, plain / d ** 0.5, "the dot products are divided by sqrt(D), as a Transformer does; this "
                                          "exercise asks for the plain dot products."),
        (SCORES_SOFTMAXED, torch.softmax(plain, -1), "the dot products went through a softmax: this function returns "
                                                     "the scores themselves, before any normalisation (that is "
                                                     "row_softmax's job)."),
        (RESHAPE_FOR_TRANSPOSE, q @ k.reshape(b, d, m),
         "k was reshaped (view/reshape) to (B, D, M) instead of transposed: a reshape keeps the order of the numbers "
         "and only regroups them, so its columns are not the keys. §6 shows the same trap with pixels."),
    ], hint="entry [b, i, j] is the plain dot product of query i and key j of image b.")
    gradients(fn, "pairwise_scores(q, k)", (q, k), ("q", "k"))
    protections(fn, "pairwise_scores", (q, k), want)


@exercise("flatten_pixels", budget_s=5)
def check_flatten_pixels(fn: Callable) -> None:
    (x,), want = _stored("flatten_pixels")
    got = call_safely(fn, "flatten_pixels", (x,))
    b, c, h, w = x.shape
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, c * h, w) != tuple(want.shape):
        raise CheckFailure(
            f"flatten_pixels(x) returned shape {fmt_shape(got.shape)}, expected {fmt_shape(want.shape)}.\n  Likely "
            "mistake: the einops pattern names the input's axes in another order than the tensor has them (e.g. "
            "'b h w c -> ...' for a (B, C, H, W) input): the left side of a pattern names x's axes in x's own "
            "order.", mistake=EINOPS_AXES)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, c, h * w) != tuple(want.shape):
        raise CheckFailure(
            f"flatten_pixels(x) returned shape {fmt_shape(got.shape)}, expected {fmt_shape(want.shape)}.\n  Likely "
            "mistake: the pixels are flattened, but the result is still channels-first: each of its rows is one "
            "channel over all pixels, where each row should be one pixel's C-vector.", mistake=CHANNELS_FIRST_PIXELS)
    expect_close(got, want, what="flatten_pixels(x)", diagnoses={
        RESHAPE_NOT_PERMUTE: (x.reshape(b, h * w, c),
                              "x.view(B, H*W, C) (or reshape) keeps memory order, which is channels first: the "
                              "numbers end up in the wrong places even though the shape is right (§6)."),
        PIXEL_ORDER: (rearrange(x, "b c h w -> b (w h) c"),
                      "the pixels are numbered column by column; number them row by row, (h w), so pixel "
                      "(i, j) becomes n = i * W + j."),
    })
    gradients(fn, "flatten_pixels(x)", (x,), ("x",))
    protections(fn, "flatten_pixels", (x,), want)


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch00_shapes.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
def _softmax_dim_canonical(answer: Any) -> Any:
    """-1 and 2 name the same dim of a 3-D tensor (so do -2 and 1, -3 and 0)."""
    if isinstance(answer, bool):
        return answer
    try:
        value = operator.index(answer)
    except TypeError:
        return answer
    return value + 3 if -3 <= value < 0 else answer


_MISMATCH = ("That set has x of shape (2, 3, 5, 7) times the (2, 3) gate run without an error, yet not scale channel c "
             "of image b. Line the two shapes up from the right: which sizes meet, and do they fit?")
_LEFT = ("That set lines the shapes up from the LEFT. Broadcasting lines them up from the right, dim by dim: redo each "
         "statement that way.")
BROADCAST = Question(
    "q_broadcast", "choices", key="4bb3a642d241561f45ea", options="abcde",
    doc="Which of the statements (a)-(e) about broadcasting a gate are true.",
    wrong={
        "a6ab1369b2bbd7a494dc": (LEFT_ALIGNED, _LEFT),
        "ccb1a30f98144cfdd223": (LEFT_ALIGNED, _LEFT),
        "3b4df6b090a39bd2ac94": (SILENT_BROADCAST, "That set takes 'it runs without an error' and 'it scales the right "
                                                   "entries' to go together. They do not always: line every pair of "
                                                   "shapes up from the right, then ask which entry of the gate meets "
                                                   "x[b, c, i, j]."),
        "324d39d451d5b9be3dfa": (SIZE_ONE_MIDDLE, "That set treats a gate with fewer dims than x as if its missing dims "
                                                  "were added where they are needed. They are always added on the "
                                                  "left: write each gate's shape out to 4 dims before lining it up."),
        "597e975b3fea8eb748b4": (CONTRADICTORY_STATEMENTS, "Two statements of that set are about the same product and "
                                                           "cannot both hold: a product that raises an error scales "
                                                           "nothing. Line that product's shapes up from the right and "
                                                           "decide which of the two happens."),
        "7c0535c9482ba6e00bef": (MISMATCH_BROADCAST, _MISMATCH),
        "2c7423d9cf9ab468e558": (MISMATCH_BROADCAST, _MISMATCH + " The set also misses a product that runs without an "
                                                                 "error and yet scales other entries than a gate "
                                                                 "should."),
    },
    advice="Line the two shapes up from the right, dim by dim: two sizes fit when they are equal or one of them is "
           "1, and a missing leading dim counts as 1. Then ask which entry of the gate each entry of x meets.")

SOFTMAX_DIM = Question(
    "q_softmax_dim", "int", key="b11f752bb256434edcfd", prepare=_softmax_dim_canonical,
    doc="The dim of (B, N, M) scores a softmax runs over so that each query's row sums to 1.",
    wrong={
        "de8e5b353626c1aca7dd": ("softmax_dim", "Along that dim the entries that sum to 1 share a key and differ in "
                                                "the query: each COLUMN sums to 1. A query's row runs along the keys."),
        "2aa1c19b8225a5a4e5d3": ("softmax_dim", "Along that dim the entries that sum to 1 are the same (query, key) "
                                                "pair in different images of the batch."),
        "67f5e1ca4ab65a01180b": (ONE_BASED_DIM, "A (B, N, M) tensor has no dim 3: PyTorch numbers a tensor's dims from "
                                               "0, so its three dims are 0, 1 and 2."),
    },
    advice="A softmax along dim d makes the entries that differ only in their index along d sum to 1. The entries "
           "of one query's row differ only in the key index.")

BMM_SHAPE = Question(
    "q_bmm_shape", "shape", key="d344e00d8d7adea8a50f",
    doc="The shape of the batched products Q_b^T K_b for Q, K of shape (2, 35, 8).",
    wrong={
        "0828373510e5ed6d8146": (TRANSPOSE_SIDE, "That is the shape of Q K^T, one entry per pair of pixels. Here the "
                                                 "transpose is on the LEFT operand: write the shapes of Q_b^T and of "
                                                 "K_b before multiplying."),
        "98f185f0d4dde749a7e5": (BATCH_DROPPED, "bmm keeps the batch: one product per image, stacked."),
        "f8be99541924abe09269": ("missing_transpose", "That is the shape of Q^T alone; the product with K_b still has "
                                                      "to contract the axis the two operands share."),
        "6f51b59b865c39fe5704": (OPERAND_SHAPE, "That is the shape of Q and K themselves. A product has a shape of its "
                                                "own: write the shapes of Q_b^T and of K_b, then multiply."),
        "73be0f166ea0c55dbf94": (BATCH_DROPPED, "That is one product for the whole batch; bmm makes one product per "
                                                "image and stacks them."),
        "c16a758a969dad5b319a": (PRODUCT_DIMS, "That gives each image a vector. The product of two matrices is a "
                                               "matrix, with two dims of its own besides the batch."),
    },
    advice="Write the shape of each per-image operand (a transpose swaps a matrix's two dims): the inner sizes meet "
           "and vanish, the outer ones stay, and the batch size comes along in front.")

CONV_PARAMS = Question(
    "q_conv_params", "int", key="63c93c5ab4f335e8fe60",
    doc="Parameters of a 3 x 3 convolution from 64 to 4 channels with bias.",
    wrong={
        "082ffc0b61f22beb3e38": (KERNEL_IGNORED, "That is a 1 x 1 convolution's count: a k x k kernel has a weight "
                                                 "at every position of its window, for every (output, input) channel "
                                                 "pair."),
        "e73dfe8fd6fb6343232d": ("missing_bias", "That counts the kernel's weights only; the layer in the question "
                                                 "has a bias as well."),
        "ddaef7ff3ab8093d1b2a": ("param_count", "That gives all the output channels one shared kernel; each output "
                                                "channel has a kernel of its own."),
        "06d0464d91c5914de502": (CONV_BIAS_COUNT, "That counts a bias at every position of the 3 x 3 window. Where in "
                                                  "the layer's computation is a bias added, and how often?"),
        "609343470e3fc5c5433d": (CONV_BIAS_COUNT, "That counts one bias per INPUT channel. To which channels is a bias "
                                                  "added?"),
    },
    advice="Every number in the layer's weight and bias tensors is one parameter: what are their shapes? §7's 1x1 "
           "example and PyTorch's nn.Conv2d docs ('Variables') list them.")

define_question_checks(globals(), BROADCAST, SOFTMAX_DIM, BMM_SHAPE, CONV_PARAMS)
