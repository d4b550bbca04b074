"""Visible checks of chapter 03: CTDNet's Spatial Attention Module (SAM).

The notebook's test cells call:

    check_sam_attention(SpatialAttentionModule)   # attention(x): the (B, 1, H, W) map
    check_sam_forward(SpatialAttentionModule)     # forward(x): gate, then 3x3 conv + BN + ReLU
    check_sam_parameter_count(sam_parameter_count)
    check_swap_pool_order(swap_pool_order)
    check_q_stacked_shape(q_stacked_shape)        # the conceptual questions (answers stored as salted hashes)
    check_q_wide_window(q_wide_window)
    check_q_kernel_flip(q_kernel_flip)

How the checks treat BatchNorm. In training mode BatchNorm normalises with the statistics of the batch
it is given (and updates its running averages); in eval mode it uses the stored running mean and
variance. The value checks put the module in eval mode and write fixed running statistics into its
BatchNorm, so the expected output depends only on the input and the weights. One more check runs the
same module in training mode on the same batch: the result then uses the batch's own statistics, which
are deterministic too, so it can be compared as well.

Weights are loaded by role, not by name: the attention convolution is the (1, 2, 3, 3) weight, the
projection the (C_out, C_in, 3, 3) weight, the BatchNorm the one ``nn.BatchNorm2d`` with C_out features.

Nothing here imports the reference module ``course_lib.reference.ctdnet``: expected values are stored in
``checks/expected/ch03_ctdnet_sam.pt`` (built by ``checks/hidden/ch03_ctdnet_sam.py``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from .questions import Question, define_question_checks
from .toolkit import (
    CheckFailure,
    build,
    call_with_hints,
    close_named,
    count_parameters,
    define_mistake,
    exercise,
    expect,
    expect_close,
    expect_device_free,
    expect_int,
    expect_method_gradients,
    expect_module_gradients,
    expect_normalisation_modes,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    normalisation_explains,
    passed,
)

CHAPTER = "ch03_ctdnet_sam"

BN_IN_ATTENTION = define_mistake(
    "bn_in_attention", "a BatchNorm inside the attention path (official CBAM has one; CTDNet's SAM does not)")
MISSING_PROJECTION = define_mistake(
    "missing_projection", "forward returns the gated features without the 3x3 conv + BN + ReLU projection")
PROJECTION_ORDER = define_mistake("projection_order", "the projection's conv, BN and ReLU are in the wrong order")
GATE_NOT_APPLIED = define_mistake("gate_not_applied", "the projection is applied to x instead of x * A")
CONV_BIAS = define_mistake("conv_bias", "a convolution has a bias where the exercise asks for bias=False")
MISSING_BN = define_mistake("missing_bn", "the projection has no BatchNorm2d(out_channels)")
CHANNEL_SUM = define_mistake("channel_sum", "the channels are summed where their mean is asked for")
DEFAULT_OUT = define_mistake("default_out_channels", "out_channels does not default to 64")
FLIPPED_KERNEL = define_mistake("flipped_kernel", "the kernel is flipped spatially instead of swapping its input channels")
MODIFIES_INPUT = "modifies_input"
TUPLE_AS_TENSOR = define_mistake(
    "tuple_as_tensor", "x.max(dim) used as a tensor: with a dim it returns a named tuple (values, indices)")
BN_FORCED_EVAL = define_mistake("bn_forced_eval", "BatchNorm is forced into eval mode (running statistics in training)")

# What each stored wrong result means: label -> (mistake id, advice). The tensors themselves are stored in
# checks/expected/ch03_ctdnet_sam.pt under the same labels (built from the reference module).
ADVICE: dict[str, tuple[str, str]] = {
    "pool_order": ("pool_order",
                   "the pooled maps are stacked as [max; avg]. The SAM (like CBAM's paper) stacks the mean first, "
                   "then the max (S2). Official CBAM code uses [max; mean]; with given weights the order matters."),
    "missing_sigmoid": ("missing_sigmoid", "the map has no sigmoid: (S2) squashes the convolution's output "
                                           "into (0, 1), one gate value per pixel."),
    "softmax_gate": ("softmax_gate",
                     "a softmax over the H*W positions makes the map sum to 1 over the image; the SAM gates each "
                     "position independently with a sigmoid."),
    "channel_sum": (CHANNEL_SUM, "the channels are summed; the first pooled map of (S1) is their mean "
                                 "(the sum divided by C)."),
    "missing_relu": ("missing_relu", "the projection ends without its ReLU: (S4) ends with delta, the "
                                     "ReLU, after the BatchNorm."),
    "projection_order": (PROJECTION_ORDER,
                         "the ReLU comes before the BatchNorm; the projection is conv -> BN -> ReLU."),
    "gate_not_applied": (GATE_NOT_APPLIED,
                         "the projection convolves x itself; it should convolve the gated features x * A."),
    "flip_w": (FLIPPED_KERNEL,
               "the kernels were mirrored left-right (flip over the last dim). The pooled maps are the conv's "
               "input channels, dim 1 of the weight: those are what change places, not the kernels' pixels."),
    "flip_h": (FLIPPED_KERNEL,
               "the kernels were mirrored upside down (flip over dim 2). Swap the input channels (dim 1) instead."),
    "flip_hw": (FLIPPED_KERNEL,
                "the kernels were rotated by 180 degrees (flip over dims 2 and 3). Swap the input channels (dim 1) "
                "instead."),
    "unchanged": ("pool_order",
                  "the weight came back unchanged: its two input channels (dim 1) must change places."),
}


# Errors of student code that point to a chapter-specific mistake.
HINTS = (
    ("to have 2 channels", "pool_axis",
     "the attention conv expects the 2 pooled maps [avg; max] stacked on the channel axis, one channel each. "
     "(S1) pools over the channel axis (dim 1) and keeps every pixel; a pooled map keeps that axis with size 1."),
    ("torch.return_types.", TUPLE_AS_TENSOR,
     "x.max(dim=...) (like x.min, x.sort, x.topk with a dim) returns a named tuple (values, indices), not a tensor. "
     "Take its .values, or use the reduction that returns only the values: x.amax(dim=...)."),
)

_call = functools.partial(call_with_hints, hints=HINTS)
_close = functools.partial(close_named, advice=ADVICE)
_unchanged = functools.partial(expect_unchanged, advice="x *= a, x.mul_(a), relu_(x), ...")


# --------------------------------------------------------------------------------------------
# finding the layers by role
# --------------------------------------------------------------------------------------------
def _owner_of(module: nn.Module, param_name: str) -> nn.Module:
    owner = module
    for part in param_name.split(".")[:-1]:
        owner = getattr(owner, part)
    return owner


def sam_layers(module: nn.Module, in_channels: int, out_channels: int, *, what: str,
               need_projection: bool = True) -> dict[str, Any]:
    """Find the SAM's layers by role and report, with a named mistake, anything that does not fit.

    Returns ``{"att": the (1, 2, 3, 3) weight, "conv": the (C_out, C_in, 3, 3) weight, "bn": the BatchNorm}``
    (``conv``/``bn`` are None when ``need_projection`` is False and they are missing).
    """
    found: dict[str, Any] = {"att": None, "conv": None, "bn": None}
    listing = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in module.named_parameters()) or "none"
    norms = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for name, norm in norms:
        if norm.num_features in (1, 2):
            raise CheckFailure(
                f"{what} has a BatchNorm with {norm.num_features} feature(s) ({name}): a BatchNorm inside the "
                "attention path. Official CBAM normalises its 7x7 gate; CTDNet's SAM does not: the gate is "
                "sigmoid(conv3x3([avg; max])) with nothing in between.",
                mistake=BN_IN_ATTENTION,
            )
    for name, param in module.named_parameters():
        shape = tuple(param.shape)
        owner = _owner_of(module, name)
        if isinstance(owner, nn.modules.batchnorm._BatchNorm):
            continue
        if len(shape) == 4 and shape[:2] == (1, 2):
            if shape[2:] != (3, 3):
                raise CheckFailure(
                    f"{what}'s attention conv {name} has a {shape[2]}x{shape[3]} kernel; CTDNet's SAM uses 3x3 "
                    "(padding 1). The 7x7 kernel is CBAM's spatial gate.",
                    mistake="kernel_size",
                )
            found["att"] = param
        elif len(shape) == 4 and shape[:2] == (1, 1) and in_channels != 1:
            raise CheckFailure(
                f"{what} has an attention conv {name} of shape {fmt_shape(shape)}: it sees one pooled map. "
                "The SAM stacks two, [avg; max] over the channels, so the conv is Conv2d(2, 1, 3, padding=1).",
                mistake="single_pool",
            )
        elif len(shape) == 4 and shape[:2] == (out_channels, in_channels):
            if shape[2:] != (3, 3):
                raise CheckFailure(
                    f"{what}'s projection conv {name} has a {shape[2]}x{shape[3]} kernel; the SAM projects with "
                    "a 3x3 conv (padding 1).",
                    mistake="kernel_size",
                )
            found["conv"] = param
        elif len(shape) == 1 and isinstance(owner, nn.Conv2d) and name.endswith("bias"):
            if owner.in_channels == 2 and owner.out_channels == 1 or need_projection:
                raise CheckFailure(
                    f"{what}'s convolution {name.rsplit('.', 1)[0]} has a bias. Both SAM convolutions are built "
                    "with bias=False: the attention conv as in the official conv3x3 helper, and a bias before "
                    "BatchNorm would be cancelled by its mean subtraction anyway.",
                    mistake=CONV_BIAS,
                )
    if found["att"] is None:
        raise CheckFailure(
            f"{what} has no attention conv of shape (1, 2, 3, 3) = Conv2d(2, 1, 3, padding=1, bias=False).\n"
            f"  yours: {listing}",
            mistake="parameters",
        )
    if need_projection:
        if found["conv"] is None:
            raise CheckFailure(
                f"{what} has no projection conv of shape {fmt_shape((out_channels, in_channels, 3, 3))} = "
                f"Conv2d({in_channels}, {out_channels}, 3, padding=1, bias=False).\n  yours: {listing}",
                mistake="parameters",
            )
        projection_norms = [m for _, m in norms if m.num_features == out_channels]
        if len(projection_norms) != 1:
            raise CheckFailure(
                f"{what} should have one nn.BatchNorm2d({out_channels}) after the projection conv; found "
                f"{len(projection_norms)}.",
                mistake=MISSING_BN,
            )
        found["bn"] = projection_norms[0]
    passed()
    return found


def load_sam(module: nn.Module, layers: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
    """Copy stored weights (and BatchNorm running statistics) into the layers found by :func:`sam_layers`."""
    with torch.no_grad():
        layers["att"].copy_(weights["att"].to(layers["att"].dtype))
        if layers["conv"] is not None and "conv" in weights:
            layers["conv"].copy_(weights["conv"].to(layers["conv"].dtype))
        bn = layers["bn"]
        if bn is not None and "bn_weight" in weights:
            if bn.weight is None or bn.running_mean is None:
                raise CheckFailure(
                    "the projection's BatchNorm2d needs affine=True and track_running_stats=True (the defaults).",
                    mistake=MISSING_BN,
                )
            bn.weight.copy_(weights["bn_weight"])
            bn.bias.copy_(weights["bn_bias"])
            bn.running_mean.copy_(weights["bn_mean"])
            bn.running_var.copy_(weights["bn_var"])
            bn.eps = 1e-5


# --------------------------------------------------------------------------------------------
# the exercises
# --------------------------------------------------------------------------------------------
@exercise("SpatialAttentionModule.attention", budget_s=10)
def check_sam_attention(cls: type) -> None:
    """attention(x) = sigmoid(conv3x3([mean_c(x); max_c(x)])), of shape (B, 1, H, W)."""
    E = expected(CHAPTER)["attention"]
    c_in, c_out = E["in_channels"], E["out_channels"]
    module = build(cls, c_in, c_out)
    what = f"{cls.__name__}({c_in}, {c_out})"
    layers = sam_layers(module, c_in, c_out, what=what, need_projection=False)
    load_sam(module, layers, {"att": E["weight"]})
    module.eval()
    for x, target, diagnoses in ((E["x"], E["a"], E["diagnoses"]), (E["x2"], E["a2"], E["diagnoses2"])):
        b, _, h, w = x.shape
        x_in = x.clone()
        a = _call(module.attention, x_in, doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}")
        if isinstance(a, torch.Tensor) and tuple(a.shape) == (b, c_in, h, w):
            raise CheckFailure(
                f"attention(x) returned shape {fmt_shape(a.shape)}, the shape of x: the reweighted features. "
                f"attention(x) returns the map A itself, {fmt_shape((b, 1, h, w))}; forward applies it.",
                mistake="returns_features",
            )
        if isinstance(a, torch.Tensor) and a.dim() == 4 and tuple(a.shape[2:]) == (h - 2, w - 2):
            raise CheckFailure(
                f"attention(x) returned shape {fmt_shape(a.shape)}: the map lost a pixel on each side. The 3x3 "
                "attention conv needs padding=1 to keep H and W.",
                mistake="kernel_size",
            )
        expect_shape(a, (b, 1, h, w), what="attention(x)",
                     hint="follow the shape column of section 2's table step by step: the axis each pooling "
                          "removes, the one the concatenation grows, what the attention conv returns.")
        if a.dtype == x.dtype and torch.allclose(a.detach().double(), torch.ones_like(target), atol=1e-6):
            raise CheckFailure(
                "attention(x) is 1 everywhere. A softmax over the map's single channel (dim=1) always gives 1; "
                "the SAM's gate (S2) is a sigmoid of each pixel's logit on its own.",
                mistake="softmax_gate",
            )
        _close(
            a, target, what=f"attention(x) for x of shape {fmt_shape(x.shape)}", diagnoses=diagnoses,
            hint="compare each step with (S1)-(S2): the axis each map pools over, which map comes first, "
                 "the attention conv's padding, and what squashes its output.",
        )
        _unchanged(x, x_in, what="attention(x)")
    expect_method_gradients(module, "attention", E["x"], what=what, hints=HINTS)
    expect_device_free(module, E["x"], what=what, method="attention")


@exercise("SpatialAttentionModule.forward", budget_s=10)
def check_sam_forward(cls: type) -> None:
    """forward(x) = relu(bn(conv3x3(x * attention(x)))), of shape (B, out_channels, H, W)."""
    E = expected(CHAPTER)["forward"]
    c_in, c_out = E["in_channels"], E["out_channels"]
    module = build(cls, c_in, c_out)
    what = f"{cls.__name__}({c_in}, {c_out})"
    layers = sam_layers(module, c_in, c_out, what=what)
    count = count_parameters(module)
    by_hand = sam_count_by_hand(c_in, c_out)
    expect(
        count == by_hand,
        f"{what} has {count} parameters; by hand it has 2*9 (attention conv) + {c_in}*{c_out}*9 (projection "
        f"conv) + 2*{c_out} (BatchNorm weight and bias) = {by_hand}. Remove parameters the module does not use.",
        mistake="param_count",
    )
    load_sam(module, layers, E["weights"])
    module.eval()
    x = E["x"]
    b, _, h, w = x.shape
    x_in = x.clone()
    y = _call(module, x_in, doing=f"{what}(x) in eval mode with x of shape {fmt_shape(x.shape)}")
    _unchanged(x, x_in, what=f"{what}(x)")
    if isinstance(y, torch.Tensor) and tuple(y.shape) == (b, 1, h, w):
        raise CheckFailure(
            f"forward(x) returned shape {fmt_shape(y.shape)}: the attention map. forward applies the map and "
            f"projects, (S3)-(S4), to shape {fmt_shape((b, c_out, h, w))}.",
            mistake="returns_map",
        )
    if isinstance(y, torch.Tensor) and tuple(y.shape) == (b, c_in, h, w):
        raise CheckFailure(
            f"forward(x) returned shape {fmt_shape(y.shape)}: the gated features x * A. The SAM then projects "
            f"them with a 3x3 conv + BN + ReLU to out_channels={c_out}: {fmt_shape((b, c_out, h, w))}.",
            mistake=MISSING_PROJECTION,
        )
    expect_shape(y, (b, c_out, h, w), what="forward(x)")
    with normalisation_explains(module, x, what=what, hints=HINTS):
        _close(
            y, E["eval"], what="forward(x) in eval mode (BatchNorm with the stored running statistics)",
            diagnoses=E["diagnoses"],
            hint="compare the order of your steps with (S3)-(S4): what the projection convolves, and where "
                 "the BatchNorm and the ReLU come.",
        )
    expect_normalisation_modes(module, x, what=what, hints=HINTS)
    expect_device_free(module, x, what=what)
    module.train()
    y_train = _call(module, x.clone(), doing=f"{what}(x) in training mode")
    expect_close(
        y_train, E["train"], what="forward(x) in training mode (BatchNorm with the batch's own statistics)",
        diagnoses={BN_FORCED_EVAL: (E["eval"], "in training mode your BatchNorm still uses the stored running "
                                               "statistics: it is forced into eval mode (self.bn.eval() or "
                                               "training=False in forward). Let module.train()/module.eval() "
                                               "choose; nn.BatchNorm2d follows them.")},
        hint="in training mode BatchNorm normalises with the mean and variance of the batch; use nn.BatchNorm2d "
             "and let module.train()/module.eval() choose.",
    )
    # gradients reach the input and every parameter
    expect_module_gradients(module, x, what=what, hints=HINTS)
    # the default width
    default = build(cls, c_in)
    small = E["x_small"]
    y64 = _call(default.eval(), small, doing=f"{cls.__name__}({c_in})(x) with the default out_channels")
    if isinstance(y64, torch.Tensor) and y64.dim() == 4 and y64.shape[1] != 64:
        raise CheckFailure(
            f"{cls.__name__}({c_in}) gave {y64.shape[1]} output channels; out_channels defaults to 64 (CTDNet "
            "projects every path to 64 channels).",
            mistake=DEFAULT_OUT,
        )
    expect_shape(y64, (small.shape[0], 64, *small.shape[2:]), what=f"{cls.__name__}({c_in})(x)")


def sam_count_by_hand(c_in: int, c_out: int) -> int:
    """2*9 (attention conv) + c_in*c_out*9 (projection conv) + 2*c_out (BatchNorm weight and bias)."""
    return 2 * 9 + c_in * c_out * 9 + 2 * c_out


# Counts that typical slips give, each with what to tell the student.
_WRONG_COUNTS: tuple[tuple[Callable[[int, int], int], str], ...] = (
    (lambda i, o: sam_count_by_hand(i, o) + 1 + o,
     "you added a bias to each conv (1 + out_channels); both SAM convolutions have bias=False."),
    (lambda i, o: sam_count_by_hand(i, o) + 2 * o,
     "you counted BatchNorm's running mean and variance: they are buffers, not parameters (not trained)."),
    (lambda i, o: sam_count_by_hand(i, o) + 2 * o + 1,
     "you counted BatchNorm's buffers (running mean, variance, num_batches_tracked); only its weight and bias "
     "are parameters."),
    (lambda i, o: sam_count_by_hand(i, o) - 2 * o,
     "you left out the BatchNorm's weight and bias (2 per output channel)."),
    (lambda i, o: sam_count_by_hand(i, o) - 18,
     "you left out the attention conv: 2 input maps x 1 output x 3 x 3 = 18."),
    (lambda i, o: 2 * 49 + i * o * 9 + 2 * o,
     "you counted a 7x7 attention conv (CBAM's); the SAM's is 3x3: 2 * 9 = 18."),
    (lambda i, o: 2 * 49 + 2 + i * o * 9 + 2 * o,
     "you counted CBAM's gate (7x7 conv + BatchNorm(1)); the SAM's gate is a 3x3 conv without BatchNorm."),
    (lambda i, o: 2 * 3 + i * o * 3 + 2 * o,
     "a 3x3 kernel has 9 weights per input-output pair, not 3."),
    (lambda i, o: 2 + i * o + 2 * o,
     "you counted the convolutions as 1x1: each 3x3 kernel has 9 weights per input-output pair."),
)


@exercise("sam_parameter_count", budget_s=5)
def check_sam_parameter_count(fn: Callable) -> None:
    """sam_parameter_count(in_channels, out_channels) = 2*9 + in*out*9 + 2*out."""
    for c_in, c_out in ((128, 64), (12, 6), (3, 5), (64, 64)):
        right = sam_count_by_hand(c_in, c_out)
        got = expect_int(_call(fn, c_in, c_out, doing=f"sam_parameter_count({c_in}, {c_out})"),
                         what=f"sam_parameter_count({c_in}, {c_out})")
        if got != right:
            for wrong, advice in _WRONG_COUNTS:
                if wrong(c_in, c_out) == got:
                    raise CheckFailure(
                        f"sam_parameter_count({c_in}, {c_out}) returned {got}; expected {right}.\n"
                        f"  Likely mistake: {advice}",
                        mistake="param_count",
                    )
            raise CheckFailure(
                f"sam_parameter_count({c_in}, {c_out}) returned {got}; expected {right}. Count each layer: the "
                "attention conv (2 inputs, 1 output, 3x3, no bias), the projection conv (in -> out, 3x3, no "
                "bias), the BatchNorm (a weight and a bias per output channel; its running statistics are "
                "buffers, not parameters).",
                mistake="param_count",
            )
        passed()


@exercise("swap_pool_order", budget_s=5)
def check_swap_pool_order(fn: Callable) -> None:
    """swap_pool_order(w): the (1, 2, k, k) weight for the other order of the two pooled maps."""
    E = expected(CHAPTER)["swap"]
    for weight, target, diagnoses in zip(E["weights"], E["swapped"], E["diagnoses"]):
        given = weight.clone()
        got = _call(fn, given, doing=f"swap_pool_order(w) with w of shape {fmt_shape(weight.shape)}")
        if isinstance(got, torch.Tensor) and got.shape == weight.shape and not torch.equal(given, weight):
            raise CheckFailure(
                "swap_pool_order(w) changed w itself (an in-place assignment into w). Return a new tensor and "
                "leave the caller's weight alone.",
                mistake=MODIFIES_INPUT,
            )
        _close(
            got, target, what=f"swap_pool_order(w) for a {weight.shape[-2]}x{weight.shape[-1]} kernel",
            diagnoses=diagnoses,
            hint="the two input channels of the conv weight (dim 1) change places; the kernels themselves stay "
                 "as they are.",
        )
        # and the meaning: conv([max; avg], w) == conv([avg; max], swap(w))
        pooled = E["pooled"]  # (B, 2, H, W) = [avg; max]
        k = weight.shape[-1]
        lhs = torch.nn.functional.conv2d(pooled.flip(1), weight, padding=k // 2)
        rhs = torch.nn.functional.conv2d(pooled, got.detach().to(pooled.dtype), padding=k // 2)
        expect(torch.allclose(lhs, rhs, atol=1e-10),
               "conv2d([max; avg], w) should equal conv2d([avg; max], swap_pool_order(w))", mistake="values")


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch03_ctdnet_sam.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
define_mistake("pooled_features", "the features themselves are stacked where the two pooled maps are")
define_mistake("pooled_spatially", "pooling over H and W (a channel descriptor) where the SAM pools over the channels")
define_mistake("one_pooled_map", "the two pooled maps are merged into one where they are stacked as two channels")
define_mistake("window_one_conv", "the receptive field of one convolution where two 3x3 convolutions follow each other")
define_mistake("window_added", "receptive fields of stacked convolutions added (7 + 3) where they grow by k - 1")
define_mistake("window_multiplied", "receptive fields of stacked convolutions multiplied where they grow by k - 1")
define_mistake("flip_is_swap", "a spatial flip of the kernels taken for a swap of its input maps")

STACKED_SHAPE = Question(
    "q_stacked_shape", "shape", key="1b095223b695ad81d3e0",
    doc="The shape of [S_avg; S_max] for features of shape (2, 128, 44, 44).",
    wrong={
        "9c8aa7a3381dc5f9b383": (
            "pooled_features", "256 channels would be two copies of the 128-channel features. (S1) pools over the "
                               "channel axis first: each pooled map has a single channel."),
        "d9d5a2927b7fe22f16ff": (
            "pooled_spatially", "(B, 2, 1, 1) is what pooling over H and W gives, a descriptor per channel as in "
                                "SE. The SAM pools over the channels and keeps every pixel."),
        "16e87831a3c6a227b7f2": (
            "one_pooled_map", "that is the shape of one pooled map (and of the map M_sa). [S_avg; S_max] "
                              "concatenates the two along the channel axis."),
    },
    advice="Each pooled map of (S1) keeps the batch and every pixel and has one channel; (S2) concatenates the "
           "two along the channel axis.")

WIDE_WINDOW = Question(
    "q_wide_window", "int", key="d119e1469c608c25ad8f",
    doc="The side of the window of x that one pixel of forward(x) depends on, with a 7x7 gate and a 3x3 "
        "projection.",
    wrong={
        "f5149daec859741090c2": (
            "window_one_conv", "7 is the window of the 7x7 gate alone. forward(x) applies the 3x3 projection to "
                               "x * M_sa, and each of its 3x3 inputs has its own 7x7 window."),
        "6c1a9dbc2f229653b165": (
            "window_added", "two windows side by side share pixels: the projection's neighbours are one pixel "
                            "apart, so their 7x7 windows overlap."),
        "6c93ddffe1d4ad6cfbf2": (
            "window_multiplied", "windows of stacked convolutions grow, they do not multiply: each conv (stride 1) "
                                 "adds k - 1 pixels to the side."),
        "9c0feb53f409ed134c7e": (
            "kernel_size", "that is the window of the SAM with its 3x3 gate; this variant's gate is 7x7."),
    },
    advice="Start from one output pixel: the projection conv reads a 3x3 window of x * M_sa, and each of those "
           "pixels needs M_sa there, which now reads a 7x7 window of the pooled maps. How wide is the union?")

KERNEL_FLIP = Question(
    "q_kernel_flip", "choices", key="934b1a4bc867fb98d4f4", options="abcd",
    doc="Which statements about a left-right mirrored kernel hold for every weight and input.",
    wrong={
        "84245409632236141bd8": (
            "flip_is_swap", "a mirror of the kernels along a spatial axis and a swap of the two input maps are "
                            "different operations: the mirror reverses each 3x3 kernel and leaves it on the map it "
                            "reads. Test every statement, also those you left out, on a kernel and maps that are "
                            "not symmetric."),
        "28eacdf1b76c3b187948": (
            "flip_is_swap", "a mirror of the kernels along a spatial axis and a swap of the two input maps are "
                            "different operations: the mirror reverses each 3x3 kernel and leaves it on the map it "
                            "reads. Test each of your statements on a kernel and maps that are not symmetric."),
        "e875110410969af68e08": (
            "wrong_answer", "mirroring the kernels alone does not mirror the output. Write the cross-correlation "
                            "sum for one output pixel with the mirrored kernel and follow one bright pixel off the "
                            "centre: where does its response land, with and without mirroring the input too?"),
    },
    advice="Try a kernel that is not symmetric and an image with one bright pixel, and write the cross-"
           "correlation sum for one output pixel with the mirrored kernel: which input pixel meets which weight?")

define_question_checks(globals(), STACKED_SHAPE, WIDE_WINDOW, KERNEL_FLIP)

__all__ = [
    "KERNEL_FLIP",
    "STACKED_SHAPE",
    "WIDE_WINDOW",
    "check_q_kernel_flip",
    "check_q_stacked_shape",
    "check_q_wide_window",
    "check_sam_attention",
    "check_sam_forward",
    "check_sam_parameter_count",
    "check_swap_pool_order",
    "load_sam",
    "sam_count_by_hand",
    "sam_layers",
]
