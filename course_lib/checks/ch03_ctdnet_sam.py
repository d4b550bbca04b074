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

Each module check runs the module in float32, in float64 (compared at float64 precision), and on an input laid
out channels_last; the outputs must keep the input's dtype. The expected values are stored with the package
(``checks/expected/ch03_ctdnet_sam.pt``).
"""
from __future__ import annotations

import copy
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
    expect_follows,
    expect_int,
    expect_layouts,
    expect_method_gradients,
    expect_module_gradients,
    expect_normalisation_modes,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    is_close,
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
SIGMOID_BEFORE_CONV = define_mistake("sigmoid_before_conv", "the sigmoid is applied to the pooled maps, before the "
                                                            "attention conv")
GATE_RESIDUAL = define_mistake("gate_residual", "x added back to the gated features (x + x * gate)")
GATE_AFTER_PROJECTION = define_mistake("gate_after_projection", "the map multiplies the projection's output instead "
                                                                "of the features the projection convolves")
BATCH_MIXED = define_mistake("batch_mixed", "one image's result depends on the other images of the batch (a pooling, "
                                            "concatenation or reshape across the batch axis)")
POOLED_SPATIALLY = define_mistake("pooled_spatially", "pooling over H and W (a channel descriptor) where the SAM pools "
                                                      "over the channels")
ALIASED_SWAP = define_mistake("aliased_swap", "a swap through views of one tensor: one slice is overwritten before it "
                                              "is read, so both slices end up equal")
SWAP_AXES = define_mistake("swap_axes", "two axes of the weight exchanged (its shape changes) where two of its slices "
                                        "change places")
HARD_CODED_SIZE = define_mistake("hard_coded_size", "a size written into the code (7, 49) where the function must "
                                                    "work for any kernel size")
ATTENTION_IN_FORWARD = define_mistake("attention_in_forward", "forward's values are wrong because the map it applies "
                                                              "is wrong: the mistake is in (S1)-(S2)")

# What each stored wrong result means: label -> (mistake id, advice). The tensors themselves are stored in
# checks/expected/ch03_ctdnet_sam.pt under the same labels (built from the reference module).
LAYER_ORDER = define_mistake("layer_order", "for SpatialAttentionModule(2, 1), the projection conv created before the "
                                            "attention conv (both are (1, 2, 3, 3); the first is taken as the gate's)")
KERNEL_TRANSPOSED = define_mistake("kernel_transposed", "each kernel transposed (H and W exchanged) where the two "
                                                       "input maps' kernels are to be swapped")
NEGATED = define_mistake("negated", "the weights negated where they are to be moved")
SWAP_AND_FLIP = define_mistake("swap_and_flip", "the input maps swapped and each kernel also flipped or transposed")
POOL_STATISTIC = define_mistake("pool_statistic", "another statistic over the channels (std, min, max of |x|) where "
                                                  "(S1) takes the maximum")
define_mistake("hard_sigmoid", "F.hardsigmoid (a piecewise-linear approximation) where the logistic sigmoid is asked")
PADDING_MODE = define_mistake("conv_padding_mode", "a padding mode other than zeros (reflect, replicate, circular)")
BN_SETTINGS = define_mistake("bn_settings", "the projection's BatchNorm2d built with another eps or momentum than "
                                            "PyTorch's defaults")
CAPPED_RELU = define_mistake("capped_relu", "ReLU6 (or a clamp) where the projection ends with a plain ReLU")
LEAKY_RELU = define_mistake("leaky_activation", "an activation that lets negative values through (LeakyReLU, ELU, "
                                                "...) where the projection ends with a ReLU")
INVERTED_GATE = define_mistake("inverted_gate", "1 - sigmoid (the sigmoid of minus the logit) where (S2) has sigmoid")
LOG_SIGMOID = define_mistake("log_sigmoid", "F.logsigmoid (the log of the gate) where (S2) has the sigmoid")
NEGATIVE_STEP = define_mistake("negative_step", "a slice with a negative step (::-1), which numpy allows and torch "
                                                "refuses")
GATE_TWICE = define_mistake("gate_twice", "the map applied a second time, to the projection's output")

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
    "sigmoid_first": (SIGMOID_BEFORE_CONV,
                      "the sigmoid squashes the pooled maps and the attention conv comes after it, so the map is not "
                      "confined to (0, 1). Read (S2) from the inside out."),
    "gate_residual": (GATE_RESIDUAL,
                      "x is added back to the gated features (x * A + x, a residual). The SAM has no residual: "
                      "section 2 lists it among the things that are not there."),
    "gate_after_projection": (GATE_AFTER_PROJECTION,
                              "the map multiplies the projection's output. Compare with (S3)-(S4): what does the "
                              "projection convolve?"),
    "missing_relu": ("missing_relu", "the projection ends without its ReLU: (S4) ends with delta, the "
                                     "ReLU, after the BatchNorm."),
    "projection_order": (PROJECTION_ORDER,
                         "the ReLU comes before the BatchNorm; the projection is conv -> BN -> ReLU."),
    "gate_not_applied": (GATE_NOT_APPLIED,
                         "the projection convolves x itself; it should convolve the gated features x * A."),
    "flip_w": (FLIPPED_KERNEL, "each kernel was mirrored left-right: a flip along a spatial axis (dim 3), where the "
                               "exercise asks for the swap of section 7."),
    "flip_h": (FLIPPED_KERNEL, "each kernel was mirrored upside down: a flip along a spatial axis (dim 2), where the "
                               "exercise asks for the swap of section 7."),
    "flip_hw": (FLIPPED_KERNEL, "each kernel was rotated by 180 degrees (flipped along both spatial axes), where the "
                                "exercise asks for the swap of section 7."),
    "transpose_hw": (KERNEL_TRANSPOSED, "each kernel was transposed (its rows became its columns): a change inside "
                                        "each kernel, where the exercise asks for the swap of section 7."),
    "negated": (NEGATED, "the weights came back negated, every sign flipped; the identity of section 7 moves "
                         "weights, it does not change their values."),
    "swap_flip_w": (SWAP_AND_FLIP, "the two kernels changed places, and each was also mirrored left-right. The "
                                   "swap is right; the extra flip changes what each kernel computes."),
    "swap_flip_h": (SWAP_AND_FLIP, "the two kernels changed places, and each was also mirrored upside down. The "
                                   "swap is right; the extra flip changes what each kernel computes."),
    "swap_transposed": (SWAP_AND_FLIP, "the two kernels changed places, and each was also transposed. The swap is "
                                       "right; the extra transpose changes what each kernel computes."),
    "std_pool": (POOL_STATISTIC, "the second pooled map is a standard deviation over the channels; (S1) takes the "
                                 "maximum."),
    "min_pool": (POOL_STATISTIC, "the second pooled map is a minimum over the channels; (S1) takes the maximum."),
    "abs_max_pool": (POOL_STATISTIC, "the second pooled map is the maximum of |x| over the channels; (S1) takes the "
                                     "maximum of x itself, sign included."),
    "hard_sigmoid": ("hard_sigmoid", "F.hardsigmoid, a piecewise-linear approximation; (S2) has the logistic "
                                     "sigmoid."),
    "reflect_padding": (PADDING_MODE, "the attention conv pads by reflection (padding_mode='reflect'); the SAM's "
                                      "conv pads with zeros, nn.Conv2d's default."),
    "replicate_padding": (PADDING_MODE, "the attention conv pads by repeating the border (padding_mode="
                                        "'replicate'); the SAM's conv pads with zeros, nn.Conv2d's default."),
    "unchanged": ("pool_order",
                  "the weight came back with the same values: each kernel still reads the pooled map it read "
                  "before. (Flipping an axis of size 1 changes nothing.)"),
    "aliased_0": (ALIASED_SWAP,
                  "both input maps of the result hold the same kernel: one slice was overwritten before it was read "
                  "(a, b = b, a on two slices of one tensor assigns through views of that tensor)."),
    "aliased_1": (ALIASED_SWAP,
                  "both input maps of the result hold the same kernel: one slice was overwritten before it was read "
                  "(a, b = b, a on two slices of one tensor assigns through views of that tensor)."),
}


# Errors of student code that point to a chapter-specific mistake.
HINTS = (
    ("to have 2 channels", "pool_axis",
     "the attention conv receives a tensor whose channel axis is not the two stacked pooled maps. Compare the "
     "shape of each pooled map, and of their concatenation, with the shape column of section 2's table."),
    ("must match except in dimension", "pool_axis",
     "the two pooled maps have different shapes, so they cannot be concatenated: they were not pooled over the "
     "same axis. Compare the shape of each with the shape column of section 2's table (S1)."),
    ("step must be greater than zero", NEGATIVE_STEP,
     "a slice with a negative step (such as ::-1). numpy allows it; a torch tensor does not: its slices only "
     "step forwards."),
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
    # a BatchNorm over 1 or 2 channels sits in the attention path, unless it is the projection's own
    # (out_channels of 1 or 2): one BatchNorm with out_channels features is the projection's
    small = [(n, m) for n, m in norms if m.num_features in (1, 2)]
    own = [i for i, (_, m) in enumerate(small) if m.num_features == out_channels]
    if own:
        small.pop(own[-1])
    for name, norm in small:
        raise CheckFailure(
            f"{what} has a BatchNorm with {norm.num_features} feature(s) ({name}): a BatchNorm inside the "
            "attention path. Official CBAM normalises its 7x7 gate; CTDNet's SAM does not: the gate is "
            "sigmoid(conv3x3([avg; max])) with nothing in between.",
            mistake=BN_IN_ATTENTION,
        )
    same_shape = (out_channels, in_channels) == (1, 2)  # both convolutions are (1, 2, 3, 3): the first is the gate's
    for name, param in module.named_parameters():
        shape = tuple(param.shape)
        owner = _owner_of(module, name)
        if isinstance(owner, nn.modules.batchnorm._BatchNorm):
            continue
        if len(shape) == 4 and shape[:2] == (1, 2) and not (same_shape and found["att"] is not None):
            if shape[2:] != (3, 3):
                raise CheckFailure(
                    f"{what}'s attention conv {name} has a {shape[2]}x{shape[3]} kernel; CTDNet's SAM uses 3x3 "
                    "(padding 1). The 7x7 kernel is CBAM's spatial gate.",
                    mistake="kernel_size",
                )
            found["att"] = param
        elif len(shape) == 4 and shape[:2] == (1, 1) and (out_channels, in_channels) != (1, 1):
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
                    f"{what}'s convolution {name.rsplit('.', 1)[0]} has a bias. Section 4 builds both SAM "
                    "convolutions with bias=False.",
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
        found["bn"] = bn = projection_norms[0]
        if abs(bn.eps - 1e-5) > 1e-12 or bn.momentum is None or abs(bn.momentum - 0.1) > 1e-12:
            raise CheckFailure(
                f"{what}'s BatchNorm2d({out_channels}) has eps={bn.eps:g} and momentum={bn.momentum}, not the values "
                "nn.BatchNorm2d(out_channels) gives them. eps changes every normalised value (most where a channel's "
                "variance is small); momentum, how fast the running statistics follow the batches during training. "
                "Section 4 builds the BatchNorm with PyTorch's defaults.", mistake=BN_SETTINGS)
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
# what the map's values say about where it went wrong
# --------------------------------------------------------------------------------------------
def _explain_map(attention: Callable, x: torch.Tensor, a: torch.Tensor, *, what: str) -> None:
    """A map with wrong values: name a mistake that its shape of wrongness shows (raises), else return."""
    if x.shape[0] > 1:
        alone = _call(attention, x[:1].clone(), doing=f"{what} for the first image alone")
        if isinstance(alone, torch.Tensor) and alone.shape == a[:1].shape \
                and not torch.allclose(alone.detach().double(), a[:1].detach().double(), atol=1e-5):
            raise CheckFailure(
                f"{what}: the map of the first image changes when the other images of the batch are left out, so one "
                "image's gate depends on the others. Likely mistake: a pooling, a concatenation or a reshape that "
                "runs across the batch axis; each image's map is computed from that image alone.",
                mistake=BATCH_MIXED)
    inner = a.detach().double()[..., 1:-1, 1:-1]
    if inner.numel() and bool((inner.amax((-2, -1)) - inner.amin((-2, -1)) < 1e-9).all()):
        raise CheckFailure(
            f"{what}: away from the border, each image's map takes one single value, as if the pooled maps did "
            "not vary from pixel to pixel. Likely mistake: pooling over H and W (a descriptor per channel, as in "
            "SE) where (S1) pools over the channels and keeps every pixel.",
            mistake=POOLED_SPATIALLY)


def _map_slip(a: Any, target: torch.Tensor) -> tuple[str, str] | None:
    """A map whose values are a known function of the right map: (mistake, what it shows), else None."""
    if not isinstance(a, torch.Tensor) or a.shape != target.shape:
        return None
    if is_close(a, (1 - target).to(a.dtype)):
        return INVERTED_GATE, ("the map is 1 minus the right one: the sigmoid of minus the logit (1 - sigmoid). "
                               "(S2) gates with sigmoid itself, so a large logit opens the gate.")
    if is_close(a, target.log().to(a.dtype)):
        return LOG_SIGMOID, ("the map is the log of the right one, all values negative: F.logsigmoid where (S2) has "
                             "the sigmoid, values in (0, 1).")
    return None


def _same_in_float64(fn: Callable, x: torch.Tensor, target: torch.Tensor, *, what: str,
                     diagnoses: Any = None) -> None:
    """``fn`` (on a float64 copy of the module) applied to x in float64: float64 out, equal at float64 precision."""
    doing = f"{what} in float64"
    out = _call(fn, x.double(), doing=doing)
    expect_follows(out, dtype=torch.float64, doing=doing)
    _close(out, target, what=doing, diagnoses=diagnoses or {},
           hint="the float32 values were right, these are not: does something depend on the dtype?")


# --------------------------------------------------------------------------------------------
# the exercises
# --------------------------------------------------------------------------------------------
@exercise("SpatialAttentionModule.attention", budget_s=10)
def check_sam_attention(cls: type) -> None:
    """attention(x): the (B, 1, H, W) map of (S1)-(S2), in float32, float64 and channels_last."""
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
        expect_follows(a, dtype=x.dtype, doing=f"{what}.attention(x) with x in {x.dtype}")
        if torch.allclose(a.detach().double(), torch.ones_like(target), atol=1e-6):
            raise CheckFailure(
                "attention(x) is 1 everywhere. A softmax over the map's single channel (dim=1) always gives 1; "
                "the SAM's gate (S2) is a sigmoid of each pixel's logit on its own.",
                mistake="softmax_gate",
            )
        shown = f"attention(x) for x of shape {fmt_shape(x.shape)}"
        slip = _map_slip(a, target)
        if slip is not None:
            raise CheckFailure(f"{shown} has the wrong values.\n  Likely mistake: {slip[1]}", mistake=slip[0])
        if not is_close(a, target) and not any(is_close(a, wrong) for wrong in diagnoses.values()):
            _explain_map(module.attention, x, a, what=shown)
        _close(
            a, target, what=shown, diagnoses=diagnoses,
            hint="compare each step with (S1)-(S2): the axis each map pools over, which map comes first, "
                 "the attention conv's padding, and what squashes its output.",
        )
        _unchanged(x, x_in, what="attention(x)")
    # float64 at float64 precision, and the channels_last layout, as section 4 says
    twin = copy.deepcopy(module).double()
    _same_in_float64(twin.attention, E["x"], E["a"], what=f"{what}.attention(x)", diagnoses=E["diagnoses"])
    expect_layouts(module.attention, (E["x"],), what=f"{what}.attention(x)", hints=HINTS)
    expect_method_gradients(module, "attention", E["x"], what=what, hints=HINTS)
    expect_device_free(module, E["x"], what=what, method="attention")


def _forward_fallback(module: nn.Module, E: dict, *, what: str) -> None:
    """forward's values are wrong and no known mistake of (S3)-(S4) explains them: if the map it applies is wrong,
    say so (with the map's own diagnoses); else return and let the caller name the projection."""
    x = E["x"]
    a = _call(module.attention, x.clone(), doing=f"{what}.attention(x) inside forward's check")
    if not isinstance(a, torch.Tensor) or a.shape != E["a"].shape or is_close(a, E["a"]):
        return
    shown = "forward(x) has the wrong values because attention(x), the map it applies, has wrong values too"
    slip = _map_slip(a, E["a"])
    if slip is not None:
        raise CheckFailure(f"{shown}.\n  Likely mistake: {slip[1]}", mistake=slip[0])
    for label, wrong in E["attention_diagnoses"].items():
        if is_close(a, wrong):
            mistake, advice = ADVICE[label]
            raise CheckFailure(f"{shown}.\n  Likely mistake: {advice}", mistake=mistake)
    _explain_map(module.attention, x, a, what=shown)
    raise CheckFailure(f"{shown}.\n  Likely mistake: a step of (S1)-(S2): run the check of attention(x) above, "
                       "and compare each step of your attention(x) with (S1)-(S2).", mistake=ATTENTION_IN_FORWARD)


def _explain_projection(y: Any, E: dict, *, what: str) -> None:
    """forward's values are wrong, its map is right: name a slip of (S4)'s end that the values show (raises)."""
    target = E["eval"]
    if not isinstance(y, torch.Tensor) or y.shape != target.shape:
        return
    y = y.detach()  # in its own dtype: the tolerance follows it
    if bool((y < 0).any()) and is_close(y.clamp_min(0), target):
        raise CheckFailure(
            f"{what}(x) has negative values where the right output is 0, and the right values elsewhere.\n  Likely "
            "mistake: an activation that lets negative values through (LeakyReLU, ELU, ...); (S4) ends with delta, "
            "the ReLU, which maps every negative value to 0.", mistake=LEAKY_RELU)
    if is_close(y, target * E["a"]):
        raise CheckFailure(
            f"{what}(x) is the right output multiplied by the map A once more.\n  Likely mistake: the map applied "
            "a second time, to the projection's output; in (S3)-(S4) it gates the features once, before the "
            "projection.", mistake=GATE_TWICE)


def _expect_plain_relu(module: nn.Module, bn: nn.Module, x: torch.Tensor, target: torch.Tensor, *, what: str) -> None:
    """Outputs above 6: the BatchNorm's shift raised by 10 must raise every positive output by exactly 10."""
    twin = copy.deepcopy(module).eval()
    name = next(n for n, m in module.named_modules() if m is bn)
    with torch.no_grad():
        dict(twin.named_modules())[name].bias.add_(10.0)
        y = _call(twin, x.clone(), doing=f"{what}(x) in eval mode with the BatchNorm's bias raised by 10")
    positive = target > 0
    if not isinstance(y, torch.Tensor) or y.shape != target.shape:
        return
    got, want = y.detach()[positive], target[positive] + 10.0
    if is_close(got, want):
        passed()
        return
    if bool((got <= 6 + 1e-4).all()):
        raise CheckFailure(
            f"with the BatchNorm's bias raised by 10, every output of {what}(x) should be above 10 where it was "
            f"positive; yours stop at {float(got.max()):.4g}.\n  Likely mistake: ReLU6 (F.relu6, nn.ReLU6) or a "
            "clamp: the ReLU of (S4) has no upper limit.", mistake=CAPPED_RELU)
    raise CheckFailure(
        f"with the BatchNorm's bias raised by 10, {what}(x) should rise by exactly 10 wherever it was positive, and "
        "it does not.\n  Likely mistake: the activation at the end of (S4) differs from the ReLU for large values.",
        mistake="values")


@exercise("SpatialAttentionModule.forward", budget_s=10)
def check_sam_forward(cls: type) -> None:
    """forward(x): Y of (S3)-(S4), in eval and training mode, float32, float64 and channels_last, with gradients."""
    E = expected(CHAPTER)["forward"]
    c_in, c_out = E["in_channels"], E["out_channels"]
    module = build(cls, c_in, c_out)
    what = f"{cls.__name__}({c_in}, {c_out})"
    layers = sam_layers(module, c_in, c_out, what=what)
    count = count_parameters(module)
    expect(
        count == sam_count_by_hand(c_in, c_out),
        f"{what} has {count} parameters, more or fewer than the three layers of (S2) and (S4) hold. Remove "
        "parameters the module does not use (exercise 2 counts them).",
        mistake="param_count",
    )
    load_sam(module, layers, E["weights"])
    module.eval()
    x = E["x"]
    b, _, h, w = x.shape
    a = _call(module.attention, x.clone(), doing=f"{what}.attention(x) inside forward's check")
    if isinstance(a, torch.Tensor) and a.dim() == 4 and tuple(a.shape[2:]) != (h, w):
        raise CheckFailure(
            f"{what}.attention(x) returned shape {fmt_shape(a.shape)} for x of shape {fmt_shape(x.shape)}: the map "
            "lost pixels at the border, so forward cannot multiply x by it. The 3x3 attention conv needs padding=1 "
            "to keep H and W.", mistake="kernel_size")
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
    expect_follows(y, dtype=x.dtype, doing=f"{what}(x) with x in {x.dtype}")
    shown = "forward(x) in eval mode (BatchNorm with the stored running statistics)"
    if not is_close(y, E["eval"]) and not any(is_close(y, wrong) for wrong in E["diagnoses"].values()):
        _forward_fallback(module, E, what=what)
        _explain_projection(y, E, what=what)
    with normalisation_explains(module, x, what=what, hints=HINTS):
        _close(
            y, E["eval"], what=shown, diagnoses=E["diagnoses"],
            hint="the map forward applies is right (it matches attention(x)'s expected values), so compare what "
                 "happens after it with (S3)-(S4): what the projection convolves, and where the BatchNorm and the "
                 "ReLU come.",
        )
    _expect_plain_relu(module, layers["bn"], x, E["eval"], what=what)
    # float64 at float64 precision, and the channels_last layout, as section 4 says
    twin = copy.deepcopy(module).double()
    _same_in_float64(twin, x, E["eval"], what=f"{what}(x) in eval mode", diagnoses=E["diagnoses"])
    expect_layouts(module, (x,), what=f"{what}(x) in eval mode", hints=HINTS)
    # the gradient with respect to x, through the projection and through the gate (eval mode, float64)
    expect_module_gradients(copy.deepcopy(module).double().eval(), x.double(), what=what, hints=HINTS,
                            upstream=torch.linspace(-1, 1, E["eval"].numel(), dtype=torch.float64
                                                    ).reshape(E["eval"].shape),
                            grad_x=E["grad_x"])
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
    _check_two_to_one(cls)


def _check_two_to_one(cls: type) -> None:
    """SpatialAttentionModule(2, 1), whose two convolutions share the shape (1, 2, 3, 3): section 4's rule (the one
    created first is the attention conv) decides which stored weight goes where."""
    T = expected(CHAPTER)["tie"]
    what = f"{cls.__name__}(2, 1)"
    module = build(cls, 2, 1)
    load_sam(module, sam_layers(module, 2, 1, what=what), T["weights"])
    module.eval()
    x = T["x"]
    y = _call(module, x.clone(), doing=f"{what}(x) in eval mode with x of shape {fmt_shape(x.shape)}")
    expect_shape(y, T["eval"].shape, what=f"{what}(x)")
    expect(is_close(y, T["eval"]),
           f"{what}(x) has other values than the reference SAM with the same weights, though the module passed at "
           "(12, 6). Here both convolutions have the shape (1, 2, 3, 3), and the checks take the one your __init__ "
           "creates first as the attention convolution (section 4): yours seems to create the projection first.",
           mistake=LAYER_ORDER)


def sam_count_by_hand(c_in: int, c_out: int) -> int:
    """The trainable parameters of the SAM of exercise 1, which the checks compare with."""
    return 2 * 9 + c_in * c_out * 9 + 2 * c_out


# Counts that typical slips give, each with what to tell the student (a misconception, not the count).
_WRONG_COUNTS: tuple[tuple[Callable[[int, int], int], str], ...] = (
    (lambda i, o: sam_count_by_hand(i, o) + 1 + o,
     "a bias counted for the convolutions; exercise 1 builds both of them with bias=False."),
    (lambda i, o: sam_count_by_hand(i, o) + 2 * o,
     "BatchNorm's running mean and variance counted: they are buffers, not parameters (never trained)."),
    (lambda i, o: sam_count_by_hand(i, o) + 2 * o + 1,
     "BatchNorm's buffers counted (running mean, variance, num_batches_tracked); they are not parameters."),
    (lambda i, o: sam_count_by_hand(i, o) - 2 * o,
     "the BatchNorm left out: it has parameters of its own."),
    (lambda i, o: sam_count_by_hand(i, o) - 2 * o + 2 * i,
     "the BatchNorm counted over the input channels. It follows the projection conv: which channels does it "
     "normalise?"),
    (lambda i, o: sam_count_by_hand(i, o) - 18,
     "the attention conv left out: the gate is a layer with weights too."),
    (lambda i, o: sam_count_by_hand(i, o) - 9,
     "the attention conv counted with one input map: how many maps does (S2) stack?"),
    (lambda i, o: 2 * 49 + i * o * 9 + 2 * o,
     "a 7x7 attention conv counted (CBAM's kernel); the SAM's gate is 3x3."),
    (lambda i, o: 2 * 49 + 2 + i * o * 9 + 2 * o,
     "CBAM's gate counted (7x7 conv + BatchNorm(1)); the SAM's gate has neither."),
    (lambda i, o: 2 * 3 + i * o * 3 + 2 * o,
     "a 3x3 kernel counted as 3 weights per input-output pair."),
    (lambda i, o: 2 + i * o + 2 * o,
     "the convolutions counted as 1x1: a kernel has k x k weights per input-output pair."),
    (lambda i, o: 18 + i * o + 2 * o,
     "the projection conv counted as 1x1: (S4)'s projection has a 3x3 kernel."),
    (lambda i, o: sam_count_by_hand(i, o) - o,
     "the BatchNorm counted with one parameter per channel: it learns a scale and a shift for each."),
)

#: the sizes the check tries: in each, every slip above gives its own count (2 * in != 4 * out, so a BatchNorm
#: counted over the input channels is not mistaken for one whose buffers are counted)
COUNT_PROBES = ((128, 48), (12, 5), (3, 7), (40, 64))


@exercise("sam_parameter_count", budget_s=5)
def check_sam_parameter_count(fn: Callable) -> None:
    """sam_parameter_count(in_channels, out_channels): the trainable parameters of the module of exercise 1."""
    for c_in, c_out in COUNT_PROBES:
        right = sam_count_by_hand(c_in, c_out)
        got = expect_int(_call(fn, c_in, c_out, doing=f"sam_parameter_count({c_in}, {c_out})"),
                         what=f"sam_parameter_count({c_in}, {c_out})")
        if got != right:
            said = f"sam_parameter_count({c_in}, {c_out}) returned {got}, which is not the number of trainable " \
                   f"parameters of SpatialAttentionModule({c_in}, {c_out})."
            for wrong, advice in _WRONG_COUNTS:
                if wrong(c_in, c_out) == got:
                    raise CheckFailure(f"{said}\n  Likely mistake: {advice}", mistake="param_count")
            raise CheckFailure(
                f"{said} Count each of the three layers of exercise 1 from its shape, with the two facts listed "
                "above the exercise; the cell below the check compares your formula with a module of yours.",
                mistake="param_count",
            )
        passed()


@exercise("swap_pool_order", budget_s=5)
def check_swap_pool_order(fn: Callable) -> None:
    """swap_pool_order(w): the (1, 2, k, k) weight for the other order of the two pooled maps."""
    E = expected(CHAPTER)["swap"]
    for weight, target, diagnoses in zip(E["weights"], E["swapped"], E["diagnoses"]):
        k = weight.shape[-1]
        given = weight.clone()
        doing = f"swap_pool_order(w) with w of shape {fmt_shape(weight.shape)}"
        try:
            got = _call(fn, given, doing=doing)
        except CheckFailure as failure:
            other = next(w for w in E["weights"] if w.shape != weight.shape)
            try:
                fn(other.clone())
            except Exception:  # noqa: BLE001 - it fails on every size: report the first failure as it was
                raise failure from None
            raise CheckFailure(
                f"{failure.args[0]}\n  The same function runs on a weight of shape {fmt_shape(other.shape)}.\n  "
                f"Likely mistake: a size written into the code (such as {other.shape[-1]} or "
                f"{other.shape[-1] ** 2}); the function must work for any (1, 2, k, k) weight.",
                mistake=HARD_CODED_SIZE) from None
        if isinstance(got, torch.Tensor) and got.shape == weight.shape and not torch.equal(given, weight):
            raise CheckFailure(
                "swap_pool_order(w) changed w itself (an in-place assignment into w). Return a new tensor and "
                "leave the caller's weight alone.",
                mistake=MODIFIES_INPUT,
            )
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 1, k, k):
            raise CheckFailure(
                f"swap_pool_order(w) returned shape {fmt_shape(got.shape)} for a weight of shape "
                f"{fmt_shape(weight.shape)}: two axes of the weight changed places (a transpose or permute), so "
                "it now describes a convolution with another number of inputs and outputs. A conv weight for the "
                "same gate keeps its shape.",
                mistake=SWAP_AXES,
            )
        expect_follows(got, dtype=weight.dtype, doing=doing)
        _close(
            got, target, what=f"swap_pool_order(w) for a {k}x{k} kernel", diagnoses=diagnoses,
            hint="compare your result with the identity of section 7, entry by entry, on a small weight of your "
                 "own whose entries you can tell apart (torch.arange(18.).reshape(1, 2, 3, 3)).",
        )
        # and the meaning: conv([max; avg], w) == conv([avg; max], swap(w))
        pooled = E["pooled"]  # (B, 2, H, W) = [avg; max]
        lhs = torch.nn.functional.conv2d(pooled.flip(1), weight, padding=k // 2)
        rhs = torch.nn.functional.conv2d(pooled, got.detach().to(pooled.dtype), padding=k // 2)
        expect(torch.allclose(lhs, rhs, atol=1e-10),
               "conv2d([max; avg], w) should equal conv2d([avg; max], swap_pool_order(w))", mistake="values")


# --------------------------------------------------------------------------------------------
# conceptual questions: the keys of the answer and of known wrong answers are salted hashes (checks/questions.py)
# --------------------------------------------------------------------------------------------
define_mistake("pooled_features", "the features themselves are stacked where the two pooled maps are")
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
            "pooled_features", "256 channels would be two copies of the 128-channel features; [S_avg; S_max] "
                               "stacks what (S1) makes of them."),
        "d9d5a2927b7fe22f16ff": (
            "pooled_spatially", "that is what pooling over H and W would give, a descriptor per channel as in SE: "
                                "compare with the axis (S1) pools over."),
        "16e87831a3c6a227b7f2": (
            "one_pooled_map", "that is the shape of one pooled map (and of the map M_sa); [S_avg; S_max] holds "
                              "both pooled maps."),
    },
    advice="Go down the shape column of section 2's table from the input: which axis does each pooling of (S1) "
           "act on, what is left of that axis, and which axis does the concatenation of (S2) grow?")

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
            "window_multiplied", "windows of stacked convolutions do not multiply. Draw one row of pixels: the "
                                 "pixels the projection reads, and under each of them the window the gate reads "
                                 "there. How many pixels do they cover together?"),
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
            "extra_choice", "Write the cross-correlation sum for one output pixel with the mirrored kernel and "
                            "follow one bright pixel off the centre: where does its response land, with and without "
                            "mirroring the input too?"),
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
