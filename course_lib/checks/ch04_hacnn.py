"""Visible checks of chapter 04: HA-CNN's harmonious attention (soft spatial-channel and hard regional).

The notebook's test cells call:

    check_spatial_attention(SpatialAttention)     channel mean, 3x3 stride-2 ConvBlock, resize, 1x1 ConvBlock
    check_channel_attention(ChannelAttention)     squeeze, two 1x1 ConvBlocks
    check_soft_attention(SoftAttention)           sigmoid(ConvBlock(S * C)), applied as x * M
    check_soft_map_interval(soft_map_interval)    the interval the soft map lives in
    check_hard_attention_theta(HardAttention)     the zero-weight / stripe-bias init and theta = tanh(fc(GAP(x)))
    check_hard_attention_crops(HardAttention)     the affine matrices and the affine_grid / grid_sample crops
    check_q_fixed_entries(q_fixed_entries)        conceptual questions (answers stored as salted hashes; the plain
    check_q_spatial_params(q_spatial_params)      answers live in hidden/ch04_hacnn.py)
    check_q_initial_centre(q_initial_centre)

These modules hold many parameters of the same shape (every ConvBlock on one channel has four of shape (1,)),
so weights cannot be matched by shape: the notebook gives each ``__init__`` and the checks load weights by the
attribute names it uses (those of torchreid's ``hacnn.py``). BatchNorm: the checks call ``module.eval()`` and
write stored running statistics into every BatchNorm, so the expected values depend only on the input and the
weights. Values come from ``checks/expected/ch04_hacnn.pt``; nothing here imports ``course_lib.reference.hacnn``.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
import numbers
import warnings
from typing import Any, Callable

import torch
from torch import nn

from .questions import Question, define_question_checks
from .toolkit import (
    CheckFailure,
    build,
    call_with_hints,
    close_named,
    define_mistake,
    exercise,
    expect,
    expect_defaults,
    expect_informative_defaults,
    expect_normalisation_modes,
    expect_device_free,
    expect_follows,
    expect_method_gradients,
    expect_module_gradients,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    is_close,
    load_by_name,
    passed,
)

CHAPTER = "ch04_hacnn"

DEPRECATED_UPSAMPLE = define_mistake("deprecated_upsample", "F.upsample (deprecated) instead of F.interpolate")
ALIGN_CORNERS = define_mistake(
    "align_corners", "align_corners is missing or has the wrong value (bilinear resize: True; affine_grid/grid_sample: False)")
UPSAMPLE_MODE = define_mistake("upsample_mode", "the resize or sampling uses another mode than bilinear")
MISSING_SCALING_CONV = define_mistake("missing_scaling_conv", "the 1x1 'scaling' ConvBlock after the resize is missing")
SCALING_BEFORE_RESIZE = define_mistake(
    "scaling_before_resize", "the 1x1 'scaling' ConvBlock runs on the small map, before the resize instead of after it")
EXTRA_SIGMOID = define_mistake("extra_sigmoid", "a sigmoid where this step has none (HA-CNN's sigmoid comes once, at the end)")
CHANNEL_POOL = define_mistake("channel_pool", "the channels are pooled with max or sum where HA-CNN averages them")
MAX_SQUEEZE = define_mistake("max_squeeze", "the squeeze takes the maximum over H and W where the paper averages")
SUM_SQUEEZE = define_mistake("sum_squeeze", "the squeeze sums over H and W where the paper averages")
KEEPDIM = "keepdim"
SUM_NOT_PRODUCT = define_mistake("sum_not_product", "S + C where HA-CNN multiplies the spatial and channel maps")
MISSING_CONV = define_mistake("missing_conv", "the 1x1 ConvBlock between S x C and the sigmoid is missing")
SIGMOID_ORDER = define_mistake("sigmoid_order", "the sigmoid is applied before the ConvBlock instead of after it")
GATE_ADDED = define_mistake("gate_added", "the gate is added to x where it should multiply it")
SUBMODULE = define_mistake("submodule", "a submodule (SpatialAttention or ChannelAttention) gives wrong values")
SIGMOID_RANGE = define_mistake("sigmoid_range", "the soft map's range taken as the sigmoid's (0, 1)")
TANH_PLACEMENT = define_mistake("tanh_placement", "tanh missing, or applied before the fc bias is added")
THETA_ORDER = define_mistake("theta_order", "(t_x, t_y) swapped or laid out wrongly")
FC_INIT = define_mistake("fc_init", "the fc is not zero-weight with the stripe-centre bias")
NUM_REGIONS = define_mistake("num_regions_ignored", "num_regions is ignored (a hard-coded 4 or 0.25)")
THETA_FIRST = define_mistake("theta_first", "theta (attention) is wrong, so everything built on it is too")
THETA_RESHAPE = define_mistake("theta_reshape", "the fc's 2R outputs are reshaped to (B, 2, R) and transposed, "
                                                "which pairs the wrong entries")
SIGMOID_EACH = define_mistake("sigmoid_each_map", "a sigmoid on S and on C, multiplied, where (H4) squashes once, "
                                                "after the ConvBlock")
SIGMOID_THETA = define_mistake("sigmoid_not_tanh", "theta squashed with a sigmoid where (H5) uses a tanh")
STRIPE_EDGE = define_mistake("stripe_edge", "the initial bias puts each stripe at the top edge of its band, not at "
                                            "its centre")
IMAGE_PAIRING = define_mistake("image_pairing", "the images repeated in another order than the matrices, so an "
                                                "image is sampled with another image's regions")
PADDING_MODE = define_mistake("padding_mode", "grid_sample pads with another mode than zeros")
OUTPUT_LAYOUT = define_mistake("output_layout", "the (B*R) batch of crops is unflattened in the wrong order")
SQUEEZE_ORDER = define_mistake("squeeze_order", "the ConvBlocks run on the full map and their output is averaged, "
                                                "where (H3) averages first")
CHANNEL_MISSING_CONV = define_mistake("channel_missing_conv", "ChannelAttention skips conv2, the ConvBlock back to C "
                                                              "channels")
SOFT_INPUT = define_mistake("soft_input", "SoftAttention feeds x (or a gated x) where (H4) has S x C alone, or gives "
                                          "a submodule another input than x")
TANH_GATE = define_mistake("tanh_gate", "a tanh where the soft map's last step is a sigmoid")
STRIPE_CENTRES = define_mistake("stripe_centres", "the initial t_y values are not the centres of R bands that tile "
                                                  "the height")
CONVBLOCK_ORDER = define_mistake("convblock_order", "ChannelAttention runs its two ConvBlocks in the wrong order "
                                 "(conv2 before conv1)")
RESIZE_ORDER = define_mistake("resize_order", "SpatialAttention resizes before the stride-2 ConvBlock, so the map "
                              "ends at half the input's size")
SOFT_RESIDUAL = define_mistake("soft_residual", "SoftAttention's forward adds x back (x + x * M) where (H4) returns "
                               "the re-weighted features alone")
STRIPE_SCALE = define_mistake("stripe_scale", "the fixed scale is not [[1, 0], [0, 1/R]] (full width, 1/R of the height)")

#: What each stored wrong result means: label -> (mistake id, advice).
ADVICE: dict[str, tuple[str, str]] = {
    # SpatialAttention
    "align_corners_false": (ALIGN_CORNERS,
                            "the bilinear resize uses align_corners=False (the default when you leave it out). "
                            "HA-CNN's code uses align_corners=True: pass it explicitly."),
    "nearest": (UPSAMPLE_MODE, "the resize uses mode='nearest'; HA-CNN resizes bilinearly (mode='bilinear')."),
    "bicubic": (UPSAMPLE_MODE, "the resize uses mode='bicubic'; HA-CNN resizes bilinearly (mode='bilinear')."),
    "no_scaling_conv": (MISSING_SCALING_CONV,
                        "the map skips conv2, the 1x1 'scaling' ConvBlock after the resize."),
    "scaling_before_resize": (SCALING_BEFORE_RESIZE,
                              "conv2 runs on the stride-2 map and its result is resized. (H2) resizes first and "
                              "applies the 1x1 'scaling' ConvBlock to the full-size map; its ReLU does not commute "
                              "with the bilinear resize, so the order changes the values."),
    "spatial_sigmoid": (EXTRA_SIGMOID,
                        "the spatial map ends with a sigmoid. S is the output of conv2 (a ConvBlock, ending in "
                        "ReLU); the sigmoid comes later, once, in SoftAttention."),
    "channel_max": (CHANNEL_POOL, "the channels are pooled with max; (H2) averages them."),
    "channel_sum": (CHANNEL_POOL, "the channels are summed; (H2) averages them (divide by C)."),
    "upsample_crop": ("odd_size",
                      "you upsample by 2 and crop back to (H, W). On odd sizes the x2 grid does not line up with "
                      "the input's: the map shifts by up to half a pixel. (H2) resizes to the input's own size in "
                      "one step."),
    # ChannelAttention
    "squeeze_max": (MAX_SQUEEZE, "the squeeze takes the max over H and W; (H3) averages."),
    "squeeze_sum": (SUM_SQUEEZE, "the squeeze sums over H and W; (H3) averages."),
    "squeeze_hh": ("divisor", "the sum over H and W is divided by H * H; the mean over the H x W pixels divides "
                              "by H * W."),
    "squeeze_ww": ("divisor", "the sum over H and W is divided by W * W; the mean over the H x W pixels divides "
                              "by H * W."),
    "channel_sigmoid": (EXTRA_SIGMOID,
                        "the channel map ends with a sigmoid. C is the output of conv2 (a ConvBlock); the sigmoid "
                        "comes once, in SoftAttention."),
    "channel_train_bn": ("bn_forced_train",
                         "the values are those of the ConvBlocks in training mode (BatchNorm with the batch's "
                         "statistics), although the check put the module in eval mode: let the module's mode "
                         "decide (no .train() inside a method)."),
    "channel_pool_last": (SQUEEZE_ORDER,
                          "the ConvBlocks run on the full (B, C, H, W) map and their output is averaged. (H3) "
                          "averages first and applies the ConvBlocks to the (B, C, 1, 1) descriptor; BatchNorm and "
                          "ReLU do not commute with the mean, so the order changes the values."),
    # SoftAttention
    "soft_times_x": (SOFT_INPUT, "the ConvBlock receives x * S * C; in (H4) it receives S x C alone, and x is "
                                 "re-weighted by the finished map in forward."),
    "soft_tanh": (TANH_GATE, "the last step is a tanh; (H4) ends with a sigmoid."),
    "soft_sigmoid_each": (SIGMOID_EACH, "S and C each get a sigmoid and are multiplied. (H4) has one sigmoid, "
                                        "at the very end: S x C goes through the 1x1 ConvBlock first."),
    "soft_no_sigmoid": ("missing_sigmoid", "M has no sigmoid; (H4) ends with one."),
    "soft_sum": (SUM_NOT_PRODUCT, "S and C are added; HA-CNN multiplies them (S * C broadcasts to (B, C, H, W))."),
    "soft_no_conv": (MISSING_CONV, "the 1x1 ConvBlock self.conv is skipped; (H4) mixes S x C through it before "
                                   "the sigmoid."),
    "soft_sigmoid_first": (SIGMOID_ORDER, "the sigmoid is applied before the ConvBlock; (H4) applies it last."),
    "soft_returns_map": ("returns_map", "forward returns the map M; it should return x * M."),
    "soft_added": (GATE_ADDED, "forward adds the map (x + M); (H4) re-weights the features with it."),
    # HardAttention
    "theta_raw": (TANH_PLACEMENT,
                  "the initial centres are exactly the bias values: the tanh is missing, or the bias is added "
                  "after it. Look at where the bias sits in (H5)."),
    "theta_no_tanh": (TANH_PLACEMENT, "theta has no tanh; (H5) has one."),
    "theta_bias_after": (TANH_PLACEMENT, "the bias is added after the tanh; in (H5) the fc's own bias is inside it."),
    "theta_swapped": (THETA_ORDER,
                      "t_x and t_y are swapped: per region the fc gives (t_x, t_y), x first; the stripes move "
                      "vertically, so the nonzero initial values belong in t_y, entry 1 of each pair."),
    "theta_layout": (THETA_ORDER,
                     "the bias lists all t_x first, then all t_y; the fc's 2R outputs are R pairs (t_x, t_y): "
                     "[0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75] for R = 4."),
    "theta_reshape": (THETA_RESHAPE,
                      "the fc output is reshaped as (B, 2, R) and transposed; its 2R entries are R consecutive "
                      "pairs (t_x, t_y). Your bias values are right; the reshape mixes the regions."),
    "theta_zero": (FC_INIT,
                   "every region starts at the centre (theta = 0): the fc bias must start at t_y = (2i+1)/R - 1 "
                   "for region i."),
    "theta_sigmoid": (SIGMOID_THETA, "theta is squashed with a sigmoid, into (0, 1): the stripes could only move "
                                     "over the lower half of the map. (H5) uses a tanh, into (-1, 1)."),
    "theta_edge": (STRIPE_EDGE, "region i starts at 2i/R - 1, the top edge of its band: the R stripes then sit "
                                "half a band too high. The bias holds each band's centre."),
    "theta_i_over_r": (STRIPE_CENTRES,
                       "region i starts at t_y = i/R: the stripes cover only the lower half of the map. Normalised "
                       "coordinates run from -1 (top) to 1 (bottom); the bias holds the centre of each of R bands "
                       "that tile that range, as §9 gives it."),
    "theta_linspace": (STRIPE_CENTRES,
                       "the t_y values run from -1 to 1 included: the first and last stripes are centred on the "
                       "map's edges, half outside it. The bias holds the centre of each of R bands that tile the "
                       "height, as §9 gives it."),
    "channel_global_mean": ("pool_axis",
                            "every channel gets the same descriptor value: the average ran over the channels too "
                            "(the whole feature map), not over H and W alone as in (H3)."),
    "soft_residual": (SOFT_RESIDUAL, "forward adds x to the re-weighted features (x + x * M): a residual that (H4) "
                                     "does not have."),
    "theta_tx_equals_ty": (THETA_ORDER, "the initial t_x equals t_y: each stripe starts shifted sideways as well as "
                                        "down. The stripes move only vertically at the start: t_x starts at 0."),
    "crops_repeat": (IMAGE_PAIRING, "image b is sampled with the regions of another image: the images are "
                                    "repeated in one order (all images, then again) and the matrices come in "
                                    "another (all regions of image 0, then of image 1, ...)."),
    "crops_border": (PADDING_MODE, "grid_sample pads with the border values; the stripes read zeros outside the "
                                   "map (padding_mode='zeros', as §9 says)."),
    "crops_reflection": (PADDING_MODE, "grid_sample pads by reflecting the map at its border; the stripes read "
                                       "zeros outside the map (padding_mode='zeros', as §9 says)."),
    "crops_size_swapped": ("hw_swapped", "the size given to affine_grid lists the crop's width before its height: "
                                         "the grid is laid out (W, H), so transposing the crops afterwards does not "
                                         "give the (H, W) stripe back. affine_grid takes (N, C, H, W)."),
    "crops_unflatten": (OUTPUT_LAYOUT, "the crops come out of grid_sample as a batch ordered (image, region); "
                                       "they are unflattened as if it were ordered (region, image)."),
    "theta_max_pool": (MAX_SQUEEZE, "theta is computed from the max over H and W; HA-CNN uses the mean (GAP)."),
    "affine_vertical": (STRIPE_SCALE,
                        "the scale is [[1/R, 0], [0, 1]]: vertical stripes. HA-CNN's regions are horizontal "
                        "stripes: full width (scale 1 on x), 1/R of the height (scale 1/R on y)."),
    "affine_identity": (STRIPE_SCALE, "the scale is the identity: each 'region' is the whole map shifted, where "
                                      "(H6) takes 1/R of the height."),
    "affine_big": (STRIPE_SCALE, "the scale is R where it should be 1/R: the sampling grid spans 1/R of the input."),
    "affine_swapped": (THETA_ORDER, "the translation column is (t_y, t_x); it is (t_x, t_y): x first."),
    "affine_ty_twice": (THETA_ORDER, "t_y appears in both rows of the translation column; row 0 is the x row "
                                     "of (H6), and its translation is t_x."),
    "affine_quarter": (NUM_REGIONS, "the scale is a fixed 0.25 (torchreid's, for 4 regions): num_regions is "
                                    "ignored."),
    "crops_align_true": (ALIGN_CORNERS,
                         "affine_grid/grid_sample use align_corners=True; HA-CNN's crops use False (pass it "
                         "explicitly to both)."),
    "crops_nearest": (UPSAMPLE_MODE, "grid_sample uses mode='nearest'; the spatial transformer samples bilinearly."),
}

HINTS = (
    ("Expected 3D (unbatched) or 4D (batched) input to conv2d", KEEPDIM,
     "a reduction dropped the dimensions it reduced: the ConvBlocks need a 4-D (B, C, H, W) tensor."),
    ("expected input", "pool_axis",
     "a ConvBlock got the wrong number of channels: the average ran over another axis than the equation's, or "
     "dropped it."),
)

_call = functools.partial(call_with_hints, hints=HINTS)
_close = functools.partial(close_named, advice=ADVICE)
_unchanged = functools.partial(expect_unchanged, advice="x *= m, x.mul_(m), ...")


def call_recording(fn: Callable, *args: Any, doing: str, **kwargs: Any) -> tuple[Any, list[str]]:
    """Call student code and return (result, the warning messages it raised); the warnings are printed too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _call(fn, *args, doing=doing, **kwargs)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    for message in messages:
        print(f"note: your code raised {message}")
    return result, messages


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor], *, what: str) -> None:
    """load_by_name, with a hint that the names come from the notebook's __init__."""
    try:
        load_by_name(module, weights, what=what)
    except CheckFailure as failure:
        raise CheckFailure(
            f"{failure.args[0]}\n  The checks load weights by the attribute names of the given __init__ "
            "(torchreid's names): keep them.",
            mistake=failure.mistake,
        ) from None


# --------------------------------------------------------------------------------------------
# soft attention
# --------------------------------------------------------------------------------------------
@exercise("SpatialAttention", budget_s=10)
def check_spatial_attention(cls: type) -> None:
    """S(x) = ConvBlock_1x1(resize_to_(H, W)(ConvBlock_3x3,s2(mean_c(x)))), of shape (B, 1, H, W)."""
    E = expected(CHAPTER)["spatial"]
    module = build(cls)
    load_weights(module, E["weights"], what=cls.__name__)
    module.eval()
    notes: list[str] = []
    # odd sizes first: a fixed x2 upsample fails here
    x = E["x_odd"]
    b, _, h, w = x.shape
    x_in = x.clone()
    s, caught = call_recording(module.attention, x_in, doing=f"attention(x) with x of odd size {fmt_shape(x.shape)}")
    notes += caught
    if isinstance(s, torch.Tensor) and s.dim() == 4 and tuple(s.shape[2:]) == (2 * math.ceil(h / 2), 2 * math.ceil(w / 2)):
        raise CheckFailure(
            f"attention(x) for x of size {h}x{w} returned shape {fmt_shape(s.shape)}: the stride-2 conv gives "
            f"{math.ceil(h / 2)}x{math.ceil(w / 2)}, and a fixed x2 upsample gives {2 * math.ceil(h / 2)}x"
            f"{2 * math.ceil(w / 2)}, not {h}x{w}. torchreid's F.upsample(x, (2h, 2w)) only works for even sizes "
            "(its 160x64 inputs): resize to the input's own size, not by a fixed factor.",
            mistake="odd_size",
        )
    if isinstance(s, torch.Tensor) and s.dim() == 4 and tuple(s.shape[2:]) == (math.ceil(h / 2), math.ceil(w / 2)):
        raise CheckFailure(
            f"attention(x) for x of size {h}x{w} returned shape {fmt_shape(s.shape)}: half the input's size, the "
            "output of the stride-2 ConvBlock. The resize ran before conv1, so nothing brings the map back to "
            "(H, W): compare the order of the steps with (H2).", mistake=RESIZE_ORDER)
    expect_shape(s, (b, 1, h, w), what=f"attention(x) for x of size {h}x{w}",
                 hint="average over the channels with keepdim=True, then resize back to the input's (H, W).")
    _unchanged(x, x_in, what="attention(x)")
    x_even = E["x_even"]
    s_even, caught = call_recording(module.attention, x_even.clone(),
                                    doing=f"attention(x) with x of shape {fmt_shape(x_even.shape)}")
    notes += caught
    if any("upsample" in n and "deprecated" in n for n in notes):
        raise CheckFailure(
            "your code calls F.upsample (or upsample_bilinear), deprecated in favour of F.interpolate and kept only "
            "as an alias that warns.",
            mistake=DEPRECATED_UPSAMPLE,
        )
    hint = "compare each step with (H2) and the shape table of §2; S has no sigmoid."
    _close(s_even, E["s_even"], what=f"attention(x) for x of shape {fmt_shape(x_even.shape)}",
           diagnoses=E["diagnoses_even"], hint=hint)
    _close(s, E["s_odd"], what=f"attention(x) for x of odd size {fmt_shape(x.shape)}",
           diagnoses=E["diagnoses_odd"], hint=hint)
    out = _call(module, x.clone(), doing="forward(x)")
    _close(out, E["s_odd"], what="forward(x) (the same map as attention(x))", diagnoses={})
    expect_device_free(module, x, what=cls.__name__)
    expect_method_gradients(module, "attention", x, what=cls.__name__, hints=HINTS)


@exercise("ChannelAttention", budget_s=10)
def check_channel_attention(cls: type) -> None:
    """C(x) = ConvBlock_1x1(ConvBlock_1x1(GAP(x))), of shape (B, C, 1, 1)."""
    E = expected(CHAPTER)["channel"]
    channels, reduction = E["channels"], E["reduction"]
    module = build(cls, channels, reduction)
    load_weights(module, E["weights"], what=f"{cls.__name__}({channels}, {reduction})")
    module.eval()
    x = E["x"]
    x_in = x.clone()
    swapped = (f"expected input[{x.shape[0]}, {channels}, 1, 1] to have {channels // reduction} channels",
               CONVBLOCK_ORDER, "the (B, C, 1, 1) descriptor is right, but it reached a ConvBlock that expects "
               "C // reduction channels: the two ConvBlocks run in the wrong order; compare with (H3).")
    c = _call(module.attention, x_in, doing=f"attention(x) with x of shape {fmt_shape(x.shape)}",
              hints=(swapped, *HINTS))
    if isinstance(c, torch.Tensor) and tuple(c.shape) == (x.shape[0], channels // reduction, 1, 1):
        raise CheckFailure(f"attention(x) has shape {fmt_shape(c.shape)}: C // reduction channels, the width of "
                           "conv1's output. (H3) has a second ConvBlock, conv2, that maps back to C channels.",
                           mistake=CHANNEL_MISSING_CONV)
    expect_shape(c, (x.shape[0], channels, 1, 1), what="attention(x)",
                 hint="(B, C, 1, 1): the squeeze keeps the dimensions it averages over.")
    diagnoses = dict(E["diagnoses"])
    try:  # the mean over the whole map (channels too), through your own ConvBlocks with the stored weights
        with torch.no_grad():
            flat = x.mean((1, 2, 3), keepdim=True).expand(-1, channels, 1, 1)
            diagnoses["channel_global_mean"] = module.conv2(module.conv1(flat))
    except Exception:  # noqa: BLE001 - only a diagnosis: without it the message is the generic one
        pass
    _close(c, E["c"], what="attention(x)", diagnoses=diagnoses,
           hint="compare each step with (H3); C has no sigmoid.")
    _unchanged(x, x_in, what="attention(x)")
    expect(bool((c >= 0).all()), "C should be >= 0 (it ends in a ConvBlock's ReLU)", mistake="values")
    # float64 in, float64 out, at float64 precision (the stored values are float64), before the gradient check,
    # whose finite differences a float32 computation inside would fail for another reason
    twin = copy.deepcopy(module).double()
    doing = f"{cls.__name__}({channels}, {reduction}).double().attention(x) in float64"
    c64 = _call(twin.attention, x.double(), doing=doing)
    expect_follows(c64, dtype=torch.float64, doing=doing)
    _close(c64, E["c"], what=doing, diagnoses=E["diagnoses"])
    expect_device_free(module, x, what=f"{cls.__name__}({channels}, {reduction})")
    expect_method_gradients(module, "attention", x, what=f"{cls.__name__}({channels}, {reduction})", hints=HINTS)
    expect_informative_defaults(cls, (channels,), {"reduction": 16}, x, what=cls.__name__, method="attention",
                                layout=lambda channels, reduction: channels // reduction)


class _Fixed(nn.Module):
    """Stands in for a submodule: returns a stored map, whatever the input (used to test SoftAttention alone)."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return self.value.to(device=x.device, dtype=x.dtype)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


@exercise("SoftAttention", budget_s=10)
def check_soft_attention(cls: type) -> None:
    """M = sigmoid(ConvBlock_1x1(S * C)) in [0.5, 1); forward(x) = x * M."""
    E = expected(CHAPTER)["soft"]
    channels = E["channels"]
    x = E["x"]
    what = f"{cls.__name__}({channels})"
    # 1. SoftAttention on its own: S and C replaced by stored maps
    module = build(cls, channels)
    for name in ("spatial_attn", "channel_attn"):
        if not isinstance(getattr(module, name, None), nn.Module):
            raise CheckFailure(f"{what} should keep the submodule {name!r} of the given __init__.", mistake="parameters")
    module.spatial_attn = _Fixed(E["S"])
    module.channel_attn = _Fixed(E["C"])
    load_weights(module, E["conv_weights"], what=what)
    module.eval()
    x_in = x.clone()
    m = _call(module.attention, x_in, doing=f"attention(x) with x of shape {fmt_shape(x.shape)}")
    for name in ("spatial_attn", "channel_attn"):
        given = getattr(module, name).inputs
        if any(not (isinstance(t, torch.Tensor) and t.shape == x.shape and torch.equal(t, x_in)) for t in given):
            raise CheckFailure(f"attention(x) calls {name} on another tensor than x (the features already "
                               "re-weighted by the other map?). In (H4) S and C are both computed from x, side by "
                               "side.", mistake=SOFT_INPUT)
    expect_shape(m, tuple(x.shape), what="attention(x)",
                 hint="S (B, 1, H, W) * C (B, C, 1, 1) broadcasts to (B, C, H, W); the 1x1 ConvBlock keeps it.")
    _close(m, E["m"], what="attention(x) (with fixed S and C maps)", diagnoses=E["diagnoses"],
           hint="compare each step with (H4).")
    _unchanged(x, x_in, what="attention(x)")
    x_in = x.clone()
    y = _call(module, x_in, doing=f"forward(x) with x of shape {fmt_shape(x.shape)}")
    _unchanged(x, x_in, what="forward(x)")
    expect_shape(y, tuple(x.shape), what="forward(x)")
    _close(y, E["y"], what="forward(x)", diagnoses={"soft_returns_map": E["m"], "soft_added": E["x_plus_m"],
                                                    "soft_residual": x + E["y"]},
           hint="forward returns the features re-weighted by the map, X (.) M of (H4).")
    # 2. the whole module, with your SpatialAttention and ChannelAttention inside
    module = build(cls, channels)
    load_weights(module, E["all_weights"], what=what)
    module.eval()
    doing = "attention(x) with your own spatial_attn and channel_attn"
    try:
        m_full = _call(module.attention, x.clone(), doing=doing)
    except CheckFailure as failure:
        raise CheckFailure(f"{failure.args[0]}\n  SoftAttention itself works with fixed S and C maps, so the error "
                           "comes from spatial_attn or channel_attn: make check_spatial_attention and "
                           "check_channel_attention pass first.", mistake=SUBMODULE) from None
    if not is_close(m_full, E["m_full"]):
        got = fmt_shape(m_full.shape) if isinstance(m_full, torch.Tensor) else type(m_full).__name__
        raise CheckFailure(
            f"attention(x) combines S and C correctly (checked with fixed maps), but with your own spatial_attn "
            f"and channel_attn the result is wrong (shape {got}, expected {fmt_shape(E['m_full'].shape)}, or wrong "
            "values). If check_spatial_attention or check_channel_attention fails, fix that first; if both pass, "
            "compare how attention(x) calls spatial_attn and channel_attn with (H4).",
            mistake=SUBMODULE,
        )
    passed()
    # 3. gradients reach the input and every parameter; nothing stays behind on the CPU; each BatchNorm runs once
    expect_normalisation_modes(module, x, what=what, hints=HINTS)
    expect_device_free(module, x, what=what)
    module.train()
    expect_module_gradients(module, x, what=what, hints=HINTS)


#: the likely wrong pair (the sigmoid's own range), hashed as a pair (_pair_key)
_SIGMOID_RANGE_KEY = "51889ddf87d5d75827a5"


def _pair_key(low: float, high: float) -> str:
    return hashlib.sha256(f"cnn-attention-course/ch04/soft_map_interval|{low:g}|{high:g}".encode()).hexdigest()[:20]


#: each end of the interval is an exact number, so each is compared exactly (its float64 value, hashed): 0.999
#: for the upper end, or 0.5001 for the lower one, is another interval, not a rounding of the right one
_EXACT_ENDS = ("f06cb7836af79bd66920", "6ea8567480f69e8df8fc")


def _end_is(end: int, value: float) -> bool:
    text = f"cnn-attention-course/ch04/soft_map_interval/exact|{('low', 'high')[end]}|{float(value)!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:20] == _EXACT_ENDS[end]


def _real_number(value: Any) -> float | None:
    """A real number of any type (int, float, Fraction, numpy scalar, 0-d tensor) as a float; None otherwise."""
    if isinstance(value, torch.Tensor):
        ok = value.dim() == 0 and value.dtype != torch.bool and not value.is_complex()
        return float(value) if ok else None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


@exercise("soft_map_interval", budget_s=5)
def check_soft_map_interval(fn: Callable) -> None:
    """soft_map_interval() returns (low, high), the interval every value of the soft mask lies in."""
    got = _call(fn, doing="soft_map_interval()")
    ends = [_real_number(v) for v in got] if isinstance(got, (tuple, list)) and len(got) == 2 else [None]
    expect(None not in ends, f"soft_map_interval() should return a pair (low, high) of numbers, got {got!r}",
           mistake="values")
    low, high = ends
    if _pair_key(low, high) == _SIGMOID_RANGE_KEY:
        raise CheckFailure(
            f"soft_map_interval() returned ({low!r}, {high!r}), the range of a sigmoid on any real input"
            f"{'' if (low, high) == (0.0, 1.0) else ' (up to rounding)'}. Look at what the sigmoid "
            "in (H4) receives: can its input be any real number here?", mistake=SIGMOID_RANGE)
    expect(_end_is(0, low), f"soft_map_interval() returned low = {low!r}: not the smallest value the mask "
                                       "can take. Which inputs can the sigmoid receive here? The ends are exact "
                                       "numbers, compared exactly.", mistake=SIGMOID_RANGE)
    expect(_end_is(1, high), f"soft_map_interval() returned high = {high!r}: not the value the mask "
                                         "approaches for large inputs. The ends are exact numbers, compared "
                                         "exactly: a value close to an end is another interval.",
           mistake=SIGMOID_RANGE)


# --------------------------------------------------------------------------------------------
# hard attention
# --------------------------------------------------------------------------------------------
def _theta(module: nn.Module, x: torch.Tensor, regions: int, *, doing: str) -> torch.Tensor:
    theta = _call(module.attention, x, doing=doing)
    expect_shape(theta, (x.shape[0], regions, 2), what=doing,
                 hint="(B, R, 2): one (t_x, t_y) per region, (H5).")
    return theta


@exercise("HardAttention.attention", budget_s=10)
def check_hard_attention_theta(cls: type) -> None:
    """At init theta = tanh of the stripe-centre bias for every input; then theta = tanh(fc(GAP(x)))."""
    E = expected(CHAPTER)["hard"]
    channels = E["channels"]
    x = E["x"]
    for regions in (4, 3):
        init = E[f"init{regions}"]
        try:
            module = build(cls, channels, regions)
        except CheckFailure as failure:
            if regions == 3 and failure.mistake == "crash":
                raise CheckFailure(f"{failure.args[0]}\n  Likely mistake: the init must work for any num_regions: "
                                   "t_y = (2i + 1) / R - 1 for region i.", mistake=NUM_REGIONS) from None
            raise
        what = f"{cls.__name__}({channels}, num_regions={regions})"
        theta = _call(module.attention, x, doing=f"{what}.attention(x) at initialisation")
        if regions == 3 and isinstance(theta, torch.Tensor) and theta.shape != (x.shape[0], 3, 2):
            raise CheckFailure(f"{what}.attention(x) returned shape {fmt_shape(theta.shape)}; expected "
                               f"{fmt_shape((x.shape[0], 3, 2))}: is num_regions ignored somewhere?", mistake=NUM_REGIONS)
        expect_shape(theta, (x.shape[0], regions, 2), what=f"{what}.attention(x)",
                     hint="(B, R, 2): one (t_x, t_y) per region, (H5).")
        if not torch.allclose(theta.detach().double(), theta.detach()[:1].double().expand_as(theta), atol=1e-7):
            raise CheckFailure(
                f"{what}.attention(x) at initialisation depends on x. The fc weight starts at zero, so every input "
                "gets the same initial regions (the bias).",
                mistake=FC_INIT,
            )
        target = init.unsqueeze(0).expand(x.shape[0], -1, -1)
        diagnoses = {k: v.unsqueeze(0).expand(x.shape[0], -1, -1) for k, v in E[f"init{regions}_diagnoses"].items()}
        diagnoses["theta_tx_equals_ty"] = target[..., 1:].expand(-1, -1, 2)
        try:
            _close(theta, target, what=f"{what}.attention(x) at initialisation", diagnoses=diagnoses,
                   hint="compare with what §9 asks of reset_parameters, and with (H5).")
        except CheckFailure as failure:
            if regions == 3 and failure.mistake == "values":
                raise CheckFailure(f"{failure.args[0]}\n  Likely mistake: the bias must follow num_regions: "
                                   "t_y = (2i + 1) / R - 1 (for R = 3: -2/3, 0, 2/3).", mistake=NUM_REGIONS) from None
            raise
    # with given (nonzero) weights
    module = build(cls, channels)
    load_weights(module, E["fc"], what=cls.__name__)
    theta = _theta(module, x, 4, doing="attention(x) with the stored fc weights")
    _close(theta, E["theta"], what="attention(x) with the stored fc weights", diagnoses=E["theta_diagnoses"],
           hint="compare each step with (H5).")
    expect_method_gradients(module, "attention", x, what=cls.__name__, hints=HINTS)
    expect_device_free(module, x, what=cls.__name__, method="attention")


@exercise("HardAttention.forward", budget_s=10)
def check_hard_attention_crops(cls: type) -> None:
    """affine(x) = [[1, 0, t_x], [0, 1/R, t_y]] per region; forward(x) samples those stripes of x."""
    E = expected(CHAPTER)["hard"]
    channels = E["channels"]
    x = E["x"]
    b, c, h, w = x.shape
    for regions in (4, 3):
        module = build(cls, channels, regions)
        load_weights(module, E[f"fc{regions}" if regions != 4 else "fc"], what=cls.__name__)
        if regions == 4:
            theta = _call(module.attention, x.clone(), doing="attention(x)")
            if not is_close(theta, E["theta"]):
                raise CheckFailure(
                    "attention(x) (theta) gives wrong values, and the affine matrices and crops are built on it: "
                    "make check_hard_attention_theta pass first.",
                    mistake=THETA_FIRST,
                )
        what = f"{cls.__name__}({channels}, num_regions={regions}).affine(x)"
        affine = _call(module.affine, x.clone(), doing=what)
        expect_shape(affine, (b, regions, 2, 3), what=what,
                     hint="one 2x3 matrix of (H6) per image and region.")
        _close(affine, E[f"affine{regions}"], what=what, diagnoses=E[f"affine{regions}_diagnoses"],
               hint="compare with (H6): full width, 1/R of the height, shifted by theta.")
    module = build(cls, channels)
    load_weights(module, E["fc"], what=cls.__name__)
    regions = 4
    x_in = x.clone()
    crops, notes = call_recording(module, x_in, doing=f"forward(x) with x of shape {fmt_shape(x.shape)}")
    _unchanged(x, x_in, what="forward(x)")
    crop_h = max(1, round(h / regions))
    expect_shape(crops, (b, regions, c, crop_h, w), what="forward(x)",
                 hint=f"(B, R, C, h, w) with (h, w) = (round(H / R), W) = ({crop_h}, {w}) by default.")
    if any("align_corners" in n for n in notes):
        raise CheckFailure(
            "affine_grid or grid_sample was called without align_corners, and PyTorch warned that the default "
            "changed in 1.3; §9 says which value both calls take.",
            mistake=ALIGN_CORNERS,
        )
    _close(crops, E["crops"], what="forward(x)", diagnoses=E["crops_diagnoses"],
           hint="compare with §9: one item of the sampling batch per (image, region), bilinear, zeros outside "
                "the map.")
    small = _call(module, x.clone(), crop_size=(3, 5), doing="forward(x, crop_size=(3, 5))")
    expect_shape(small, (b, regions, c, 3, 5), what="forward(x, crop_size=(3, 5))")
    _close(small, E["crops_small"], what="forward(x, crop_size=(3, 5))", diagnoses={})
    # the fc learns through the sampling positions
    x_grad = x.clone().requires_grad_(True)
    out = _call(module, x_grad, doing="forward(x) with x.requires_grad=True")
    probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    _call(lambda: (out * probe).sum().backward(), doing="backward through forward(x)")
    weight = dict(module.named_parameters()).get("fc.weight")
    expect(weight is not None and weight.grad is not None and bool(weight.grad.abs().sum() > 0),
           "no gradient reached fc.weight through the crops: theta must stay in the graph (no .detach(), .item(), "
           "torch.tensor(theta...) or torch.no_grad()); the fc learns through grid_sample's sampling positions.",
           mistake="no_grad")
    expect(x_grad.grad is not None and bool(x_grad.grad.abs().sum() > 0), "no gradient reached x through the crops",
           mistake="no_grad")
    expect_device_free(module, x, what=cls.__name__)


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch04_hacnn.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
define_mistake("learnt_entries", "the learnt entries of an affine matrix named where the fixed ones are asked")
define_mistake("shear_entries", "the rotation/shear entries of a stripe's affine matrix judged the wrong way")
define_mistake("scale_entries", "the scale entries of a stripe's affine matrix judged the wrong way")
define_mistake("convblock_bias", "a ConvBlock's convolution counted without its bias")
define_mistake("convblock_bn", "a ConvBlock's BatchNorm left out of a parameter count")
define_mistake("bn_buffers", "BatchNorm's running statistics counted as parameters")
define_mistake("one_convblock", "one of the two ConvBlocks of the spatial branch left out")
define_mistake("bias_after_tanh", "the stripe bias read as the value after the tanh, where it is added before it")
define_mistake("kernel_ignored", "a k x k convolution counted as if it were 1 x 1")
define_mistake("rounding", "a number rounded to fewer significant digits than the question asks")
define_mistake("inverse_tanh", "the inverse tanh applied where the equation applies the tanh")
define_mistake("region_order", "the centre of another region, or the wrong sign")

_ABCDEF = "abcdef"
_PART_OF_SHAPE = ("Your set treats part of the stripe's shape as something the network learns. A stripe keeps its "
                  "width, its height and its orientation for every image: write its sampling point and mark every "
                  "entry that is the same constant for all images and regions.")
FIXED_ENTRIES = Question(
    "q_fixed_entries", "choices", key="076209811935380a5abd", options=_ABCDEF,
    doc="The fixed entries of a stripe's affine matrix (full width, 1/R of the height, no rotation or shear).",
    wrong={
        "32de4c73a9437f6fb8c2": (
            "learnt_entries", "Entries c and f are the translation, the two numbers the hard attention learns per "
                              "region; the question asks for the entries that never change."),
        "86d699e1fec982751646": ("shear_entries", _PART_OF_SHAPE),
        "7ff48faf177a980423c5": ("scale_entries", _PART_OF_SHAPE),
        "831b33302ca1800afa6a": (
            "learnt_entries", "If every entry were fixed the stripes could not move; HA-CNN learns their "
                              "position."),
    },
    advice="Write the sampling point (a x + b y + c, d x + e y + f) for a stripe that keeps its width, its height "
           "and its orientation: which entries set its size and orientation, and which its position?")

SPATIAL_PARAMS = Question(
    "q_spatial_params", "int", key="9b2a5b938e93e93514a5",
    doc="The trainable parameters of SpatialAttention().",
    wrong={
        "9b5c575595c30d5adcb4": (
            "convblock_bias", "The convolutions in ConvBlock are built with nn.Conv2d's default bias=True: they "
                              "have biases."),
        "f6e55b227c0b9a120276": ("convblock_bn", "Each ConvBlock also has a BatchNorm2d, whose affine parameters "
                                                 "are trained."),
        "ab212e2f6938e7fc019d": (
            "convblock_bn", "A ConvBlock holds more than its conv's kernel: look at the conv's bias and at the "
                            "BatchNorm's trained parameters."),
        "7691109bb23eb7c3d0f4": (
            "bn_buffers", "Running mean and variance are buffers, updated but not trained: not parameters."),
        "dd522e19a71116e46396": (
            "bn_buffers", "Running mean, running variance and num_batches_tracked are buffers, not parameters."),
        "00e4b701aac525b6b0c1": (
            "bn_buffers", "Check each ConvBlock tensor by tensor: the trained parameters are its nn.Parameters; a "
                          "BatchNorm's running statistics and its num_batches_tracked counter are buffers."),  # 18
        "eba6e0116260d0bfc38b": (
            "kernel_ignored", "The spatial branch's conv1 = ConvBlock(1, 1, 3) has a 3 x 3 kernel: its weight holds "
                              "k x k numbers per input and output map, not one."),  # 8
        "1a511b53a1c6d5fb631a": (
            "one_convblock", "That is conv1 alone; conv2, the 1x1 'scaling' ConvBlock, has parameters too."),
    },
    advice="Go through SpatialAttention's two ConvBlocks tensor by tensor, as the given code builds them (with "
           "nn.Conv2d's defaults), and count only what is trained.")

INITIAL_CENTRE = Question(
    "q_initial_centre", "float", key="58cb452a88161926a6a9", digits=3,
    doc="t_y of region 0 right after reset_parameters, for R = 4.",
    wrong={
        "27c533f7bb37fa37e959": (
            "bias_after_tanh", "That is region 0's bias value itself. t_y is what (H5) computes from it: follow "
                               "the bias through (H5)."),
        "69487d7c5f76e07c1d47": (
            "region_order", "That is the centre of another region: region 0 is the first pair of the bias, the top "
                            "stripe."),
        "6862f2a77f100f395df2": ("region_order", "That is the centre of another region: region 0 is the first pair "
                                                 "of the bias, the top stripe."),
        "47d2c803dcab0f1bd916": (
            "rounding", "Give 3 significant digits (or an expression such as math.tanh(...)): your number has "
                        "fewer."),  # -0.64
        "75f84fa58d64290d4163": (
            "inverse_tanh", "That applies the inverse of the tanh (atanh) to the bias; (H5) applies the tanh "
                            "itself."),  # atanh(-0.75)
        "d6bb72fc322cd55fb972": (
            "region_order", "That is another region's bias value: region 0 is the first pair of the bias, and the "
                            "question asks for its centre."),
    },
    advice="With a zero weight, fc(GAP(x)) is the bias for every input; find region 0's t_y entry of the bias and "
           "follow (H5).")

define_question_checks(globals(), FIXED_ENTRIES, SPATIAL_PARAMS, INITIAL_CENTRE)

__all__ = [
    "FIXED_ENTRIES",
    "INITIAL_CENTRE",
    "SPATIAL_PARAMS",
    "check_q_fixed_entries",
    "check_q_initial_centre",
    "check_q_spatial_params",
    "check_channel_attention",
    "check_hard_attention_crops",
    "check_hard_attention_theta",
    "check_soft_attention",
    "check_soft_map_interval",
    "check_spatial_attention",
]
