"""Visible checks of chapter 02, CBAM.

    check_channel_attention(ChannelAttention)    M_c: one shared MLP on the average- and max-pooled descriptors
    check_spatial_attention(SpatialAttention)    M_s: a k x k conv on [mean; max] over the channels
    check_cbam(CBAM)                             channel gate, then spatial gate on the refined features
    check_q_spatial_params(q_spatial_params)     question: the spatial gate's parameters (paper form, k = 7)
    check_q_gate_order(q_gate_order)             question: what the spatial gate sees when the channel gate is first
    check_q_cbam_params(q_cbam_params)           question: one CBAM block's parameters (paper form)

They compare with values stored in ``checks/expected/ch02_cbam.pt`` (built from the reference module by
``hidden/ch02_cbam.py``) and never import the reference module. Known mistakes are named from the outputs they
produce, computed when the expected values were built.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from .toolkit import (
    CheckFailure,
    build,
    call_with_hints,
    define_mistake,
    exercise,
    expect,
    expect_close_or_name,
    expect_defaults,
    expect_informative_defaults,
    expect_device_free,
    expect_follows,
    expect_module_gradients,
    expect_shape,
    expected,
    fmt_shape,
    forward_keeps_input,
    load_by_shape,
)
from .questions import Question, define_question_checks

__all__ = ["check_cbam", "check_channel_attention", "check_spatial_attention", "check_q_spatial_params",
           "check_q_gate_order", "check_q_cbam_params"]

CHAPTER = "ch02_cbam"

define_mistake("cbam_order", "CBAM applies the spatial gate before the channel gate")
define_mistake("spatial_on_input", "CBAM computes the spatial map on x instead of on F' = M_c(x) * x")
define_mistake("cbam_residual", "CBAM adds a residual (+ x or + F') that Eq. (1) does not have")
define_mistake("spatial_applied_to_input", "CBAM multiplies the spatial map with x instead of with F'")
define_mistake("official_batch_norm", "the official gate's BatchNorm counted in the paper's spatial gate")
define_mistake("official_mlp_bias", "the official code's MLP biases counted in the paper's block")
define_mistake("gates_commute", "the two gates taken to commute (order does not matter)")
define_mistake("kernel_ignored", "a k x k convolution counted as if it were 1 x 1")
define_mistake("sigmoid_per_descriptor", "CBAM's channel gate: a sigmoid on each descriptor's MLP output, then "
                                         "summed or averaged, where Eq. (2) sums before one sigmoid")
define_mistake("sum_pool", "CBAM's spatial gate: the channels summed where Eq. (3) averages them")
define_mistake("spatial_counted_twice", "the spatial gate's convolution counted twice")
define_mistake("gate_residual", "x added back to the gated features (x + x * gate)")
define_mistake("min_pool", "CBAM's channel gate: a minimum over H and W where Eq. (2) takes the maximum")
define_mistake("conv_padding_mode", "CBAM's spatial gate: its convolution pads with reflected or repeated values "
                                    "where nn.Conv2d's default pads with zeros")
define_mistake("split_conv", "CBAM's spatial gate written as two one-map convolutions summed: the same function as "
                             "the stub's one convolution over two stacked maps, but the checks load one (1, 2, k, k) "
                             "kernel")
define_mistake("channel_gate_twice", "CBAM applies the channel gate a second time after the spatial gate")
define_mistake("gates_summed", "CBAM adds the two gated outputs (M_c(x) * x + M_s(x) * x) where Eq. (1) chains them")
define_mistake("gate_applied_twice", "CBAM applies one of its gates twice where Eq. (1) applies each once")
define_mistake("spatial_gate_missing", "CBAM returns F' = M_c(x) * x: the spatial gate is never applied")
define_mistake("bam_like", "CBAM's maps added inside one sigmoid with x * (1 + ...), as BAM combines them, where "
               "Eq. (1) multiplies by each map in turn")
define_mistake("branch_combination", "the channel gate combines its two descriptors otherwise than Eq. (2): "
               "summed before the MLP, averaged or multiplied")
define_mistake("std_pool", "a standard deviation over the channels where Eq. (3) takes their maximum")
define_mistake("max_indices", "the positions of the maximum (argmax indices) where Eq. (3) takes its values")
define_mistake("relu_before_sigmoid", "a ReLU between the convolution and the sigmoid that Eq. (3) does not have")
define_mistake("gated_max_fixed", "a per-channel gate taken to keep, at each pixel, the channel that is largest there")
define_mistake("mlp_one_layer", "the shared MLP counted as one layer (W_0 or W_1 only)")

ADVICE = {
    "single_pool:avg": "only the average-pooled descriptor goes through the MLP; Eq. (2) adds "
                       "MLP(AvgPool(F)) + MLP(MaxPool(F)) before the sigmoid.",
    "single_pool:max": "only the max-pooled descriptor goes through the MLP; Eq. (2) adds "
                       "MLP(AvgPool(F)) + MLP(MaxPool(F)) before the sigmoid.",
    "missing_sigmoid": "the gate has no sigmoid: the map must lie in (0, 1).",
    "softmax_gate": "a softmax where the paper uses a sigmoid: each gate value is decided on its own, "
                    "not shared out among the others.",
    "relu_after_last": "a ReLU after the MLP's second layer: the ReLU belongs between W_0 and W_1 only.",
    "missing_relu": "the MLP has no ReLU: Eq. (2)'s W_0 is followed by a ReLU before W_1, so the two layers do "
                    "not collapse into one linear map.",
    "sigmoid_per_descriptor:sum": "each descriptor gets its own sigmoid and the two gates are added (values up to "
                                  "2). Eq. (2) adds the two MLP outputs and applies ONE sigmoid to the sum.",
    "sigmoid_per_descriptor:mean": "each descriptor gets its own sigmoid and the two gates are averaged. Eq. (2) "
                                   "adds the two MLP outputs and applies ONE sigmoid to the sum.",
    "single_pool:avg_twice": "the average-pooled descriptor goes through the MLP twice; the second term of Eq. (2) "
                             "is the max-pooled descriptor.",
    "single_pool:max_twice": "the max-pooled descriptor goes through the MLP twice; the first term of Eq. (2) "
                             "is the average-pooled descriptor.",
    "min_pool": "the second descriptor is the minimum of each channel over H and W; Eq. (2)'s MaxPool takes the "
                "maximum.",
    "pool_axis:global_max": "the max-pooled descriptor is one number for the whole image, repeated for every "
                            "channel: the maximum ran over the channel axis too. Eq. (2) takes one maximum per "
                            "channel, over H and W only.",
    "conv_padding_mode:reflect": "the convolution pads with reflected values (padding_mode='reflect'); the paper's "
                                 "convolution, like nn.Conv2d's default, pads with zeros.",
    "conv_padding_mode:replicate": "the convolution pads by repeating the border (padding_mode='replicate'); the "
                                   "paper's convolution, like nn.Conv2d's default, pads with zeros.",
    "conv_padding_mode:circular": "the convolution pads circularly (padding_mode='circular'); the paper's "
                                  "convolution, like nn.Conv2d's default, pads with zeros.",
    "channel_gate_twice": "the channel gate runs a second time, on the output of the spatial gate. Eq. (1) applies "
                          "each gate once.",
    "gate_applied_twice:channel": "the channel gate runs twice in a row (M_c applied to its own output) and the "
                                  "spatial gate never. Eq. (1) applies each gate once.",
    "gate_applied_twice:spatial": "the spatial gate runs twice in a row on F'. Eq. (1) applies each gate once.",
    "spatial_gate_missing": "the output equals F' = M_c(x) * x: the spatial gate of Eq. (1) never runs.",
    "cbam_residual:refined": "the output is F' + F'': the channel-refined features are added back to the result. "
                             "Eq. (1) returns F'' alone.",
    "bam_like": "the two maps are added and squashed together, x * (1 + sigmoid(M_c + M_s)), as BAM combines its "
                "branches. CBAM's Eq. (1) multiplies by each map in turn, the spatial one computed from F'.",
    "branch_combination:sum_first": "the two descriptors are added before the MLP. Eq. (2) sends each through "
                                    "the shared MLP on its own and adds the two results.",
    "branch_combination:mean": "the two MLP outputs are averaged. Eq. (2) adds them.",
    "branch_combination:product": "the two MLP outputs are multiplied. Eq. (2) adds them.",
    "sum_pool:squeeze": "the first descriptor sums over H and W; Eq. (2)'s AvgPool is their mean (the sum is H x W "
                        "times larger, which saturates the sigmoid).",
    "std_pool": "the second stacked map is the standard deviation over the channels; Eq. (3)'s MaxPool is their "
                "maximum.",
    "max_indices": "the second stacked map holds the indices of the largest channel (what torch.max(x, 1) returns "
                   "second), not the largest values; Eq. (3)'s MaxPool is the values.",
    "relu_before_sigmoid": "the convolution's output goes through a ReLU before the sigmoid, so no weight can fall "
                           "below 0.5. Eq. (3) has the sigmoid alone.",
    "gates_summed": "the two gated tensors are added, each computed from x. Eq. (1) chains the gates: the second "
                    "one works on the first one's output.",
    "sum_pool": "the first stacked map is the sum over the channels; Eq. (3)'s AvgPool is their mean (the sum is "
                "C times larger, which saturates the sigmoid).",
    "softmax_gate:positions": "a softmax over the pixels where the paper uses a sigmoid: each pixel's weight is "
                              "decided on its own, not shared out among the pixels.",
    "softmax_gate:rows": "a softmax along one spatial axis where the paper uses a sigmoid: each pixel's weight is "
                         "decided on its own, not shared out along a row.",
    "pool_order": "the pooled maps are stacked as [max; mean]; Eq. (3) stacks [AvgPool; MaxPool] = "
                  "[mean over C; max over C]. With given weights the order matters: conv input channel 0 "
                  "sees the mean.",
    "cbam_order": "the spatial gate runs first; Eq. (1) is F' = M_c(F) * F, then F'' = M_s(F') * F'.",
    "spatial_on_input": "the spatial map is computed on x, so both gates run side by side on the input "
                        "(x * M_c(x) * M_s(x)). CBAM is sequential: Eq. (1) computes the spatial map on the "
                        "channel-refined F' = M_c(x) * x.",
    "returns_map": "forward returns the map; it should return the reweighted features x * map.",
    "cbam_residual": "a residual is added inside CBAM (F' = x + M_c(x) * x). Eq. (1) has none: the ResNet block "
                     "around CBAM adds the identity, not CBAM itself.",
    "cbam_residual:outer": "x is added to the output (F'' + x). Eq. (1) returns F'' alone: the ResNet block around "
                           "CBAM adds the identity, not CBAM itself.",
    "spatial_applied_to_input": "the spatial map M_s(F') multiplies x; Eq. (1) multiplies it with F', the "
                                "channel-refined features: F'' = M_s(F') * F'.",
}

HINTS = (
    ("to have 2 channels, but got", "pool_axis",
     "the spatial gate's convolution did not receive two stacked maps. Eq. (3) pools over the channels, which "
     "leaves one map per pooling at every pixel; here a pooling kept more than one channel, or ran over "
     "another axis."),
    ("channels, but got 1 channels instead", "pool_axis",
     "the channel gate pooled over the channel axis; Eq. (2) pools over H and W, one value per channel."),
    ("input to conv2d, but got input of size", "pool_axis",
     "a pooled tensor lost a dimension (the reduction dropped its axes) or was pooled over the wrong axes."),
    ("The expanded size of the tensor", "pool_axis",
     "a pooled tensor could not be expanded to the shape asked: a pooling ran over another axis than the "
     "equation's, so the axis that should have size 1 has not. Eq. (2) pools over H and W, Eq. (3) over the "
     "channels."),
)

#: Chapter 02 accepts a layer that keeps its bias (the official code's nn.Linear layers have one): the checks set
#: every bias to zero, which gives the paper's bias-free function. The notebook says so in exercise 1 and in §6 and
#: §8; tests/test_ch02_cbam.py holds the text and these checks to the same policy.
ACCEPT_BIASES = True


def _two_dims(p: torch.Tensor) -> tuple[int, ...]:
    """(o, i) for a Linear weight and a 1x1 conv weight alike."""
    return tuple(p.shape[:2]) if p.dim() == 4 and tuple(p.shape[2:]) == (1, 1) else tuple(p.shape)


def mlp_roles(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"W_0 weight (C' x C)": weights["mlp.0.weight"], "W_1 weight (C x C')": weights["mlp.2.weight"]}


def load_channel_weights(module: torch.nn.Module, channels: int, reduction: int,
                         weights: dict[str, torch.Tensor], *, what: str) -> None:
    """Load W_0, W_1 by shape; name an ignored reduction and two separate MLPs."""
    hidden = channels // reduction
    shapes = [_two_dims(p) for p in module.parameters()]
    if channels // 16 != hidden and (channels // 16, channels) in shapes and (hidden, channels) not in shapes:
        raise CheckFailure(
            f"{what}: the MLP's hidden layer has channels // 16 = {channels // 16} units; with "
            f"reduction={reduction} it should have channels // reduction = {hidden}.\n  Likely mistake: the "
            "`reduction` argument is ignored (a hard-coded // 16, as in the blog copy).",
            mistake="reduction_ignored")
    load_by_shape(module, mlp_roles(weights), what=what, duplicate_mistake="separate_mlps",
                  duplicate_hint="two MLPs, one for each pooled descriptor. Eq. (2) sends both through "
                                 "the SAME MLP (shared weights W_0, W_1).",
                  accept_extra_biases=ACCEPT_BIASES)


def load_spatial_weights(module: torch.nn.Module, weight: torch.Tensor, *, what: str) -> None:
    k = weight.shape[-1]
    one_map = [name for name, p in module.named_parameters() if p.dim() == 4 and tuple(p.shape) == (1, 1, k, k)]
    if len(one_map) == 2:
        raise CheckFailure(f"{what}: the gate holds two one-map convolutions ({', '.join(one_map)}), one for each "
                           "pooled map, whose outputs you presumably add. That computes the same as one convolution "
                           "over the two stacked maps, but the stub asks for that one k x k convolution and the "
                           "checks load the paper's single (1, 2, k, k) kernel into it: write the gate in that form.",
                           mistake="split_conv")
    for name, p in module.named_parameters():
        if p.dim() == 4 and tuple(p.shape) == (1, 1, k, k):
            raise CheckFailure(f"{what}: the conv {name} has one input map {fmt_shape(p.shape)}; Eq. (3) "
                               "convolves two stacked maps, [mean; max] over the channels: the convolution takes 2 input maps.",
                               mistake="single_pool")
        if p.dim() == 4 and p.shape[:2] == (1, 2) and tuple(p.shape[2:]) != (k, k):
            raise CheckFailure(f"{what}: the conv {name} has kernel {tuple(p.shape[2:])}; expected "
                               f"kernel_size = {k}.", mistake="kernel_size")
    load_by_shape(module, {"conv weight (1, 2, k, k)": weight}, what=what, accept_extra_biases=ACCEPT_BIASES)


def _keeps_one_map(gate: Any, b: int) -> bool:
    return isinstance(gate, torch.Tensor) and gate.dim() == 4 and tuple(gate.shape[:2]) == (b, 1)


def _spatial_shape_hint(gate: Any, b: int, k: int) -> str:
    """The spatial map's shape hint: names a padding that does not keep H and W, never prints the padding."""
    if _keeps_one_map(gate, b):
        return (f"one map per image, but not H x W: with kernel_size={k} the convolution's padding does not keep H "
                "and W. Work the padding out from kernel_size (a fixed number fits one kernel size only).")
    return "one weight per pixel: (B, 1, H, W)."


def _gate_check(gate: Any, want: torch.Tensor, diagnoses: dict[str, torch.Tensor], *, what: str) -> None:
    named = [(k.split(":")[0], v, ADVICE[k]) for k, v in diagnoses.items()]
    # strictly outside [0, 1]: a float32 sigmoid of a large input rounds to exactly 1.0 (or 0.0), which is no sign
    # of a missing sigmoid
    outside = isinstance(gate, torch.Tensor) and bool(((gate < 0) | (gate > 1)).any())
    expect_close_or_name(
        gate, want, what=what, diagnoses=named,
        fallback=("missing_sigmoid", "some values lie outside (0, 1): the last step is a sigmoid.") if outside
        else ("values", "compare each step with the equations and the shape table."))


def _forward_check(module, x, want, gate_shape, *, what, diagnoses=()):
    out = forward_keeps_input(module, x, doing=f"{what}(x)", hints=HINTS)
    is_map = isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(gate_shape) != tuple(x.shape)
    expect_shape(out, x.shape, what=f"{what}(x)", mistake="returns_map" if is_map else "shape",
                 hint=ADVICE["returns_map"] if is_map else "forward returns x * map, the shape of x.")
    residual = ("gate_residual", want + x, "forward adds x back to the gated features (x + x * map); the gate has "
                "no residual: the ResNet block around it adds the identity.")
    expect_close_or_name(out, want, what=f"{what}(x)", diagnoses=[*diagnoses, residual],
                         fallback=("values", "attention(x) passed, so the difference lies in how forward applies "
                                             "the map to x."))


def _float64(module, x, gate64, out64, *, what):
    """The module in float64 on the same input: float64 results, equal to the reference at float64 precision
    (the notebook says float64 inputs are graded; a .float() inside fails here as float32_inside or dtype)."""
    twin = copy.deepcopy(module).double()
    for run, target, label in ((twin.attention, gate64, "attention(x)"), (twin, out64, "forward(x)")):
        doing = f"{what}.double(): {label} in float64"
        result = call_with_hints(run, x.double(), doing=doing, hints=HINTS)
        expect_follows(result, dtype=torch.float64, doing=doing)
        expect_close_or_name(result, target, what=f"{what}.double(): {label} in float64")


def _gradients(module, x, upstream, grad_want, *, what):
    expect_module_gradients(module, x, what=what, upstream=upstream, grad_x=grad_want, weights_only=True)


@exercise("ChannelAttention", budget_s=10)
def check_channel_attention(cls: type) -> None:
    """ChannelAttention(channels, reduction=16): attention(x) (B, C, 1, 1), forward(x) = x * M_c."""
    data = expected(CHAPTER)["channel"]
    c, r = int(data["channels"]), int(data["reduction"])
    what = f"ChannelAttention({c}, reduction={r})"
    module = build(cls, c, reduction=r)
    load_channel_weights(module, c, r, data["weights"], what=what)
    default = build(cls, c)
    shapes = {_two_dims(p) for p in default.parameters()}
    expect((c // 16, c) in shapes, f"ChannelAttention({c}) (default reduction=16) should have a hidden layer of "
           f"{c} // 16 = {c // 16} units; yours has parameters {sorted(shapes)}.", mistake="param_count")
    module.eval()
    x = data["x"].clone()
    gate = call_with_hints(module.attention, x, doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}",
                           hints=HINTS)
    expect_shape(gate, (x.shape[0], c, 1, 1), what=f"{what}.attention(x)",
                 hint="one weight per channel, kept as (B, C, 1, 1) so that x * M_c broadcasts.")
    _gate_check(gate, data["gate"], data["gate_diagnoses"], what=f"{what}.attention(x)")
    _forward_check(module, x, data["out"], gate.shape, what=what)
    _float64(module, x, data["gate64"], data["out64"], what=what)
    _gradients(module, data["x"], data["upstream"], data["grad_x"], what=what)
    expect_device_free(module, x, what=what)


@exercise("SpatialAttention", budget_s=10)
def check_spatial_attention(cls: type) -> None:
    """SpatialAttention(kernel_size=7): attention(x) (B, 1, H, W), forward(x) = x * M_s."""
    data = expected(CHAPTER)["spatial"]
    k = int(data["kernel_size"])
    what = f"SpatialAttention(kernel_size={k})"
    module = build(cls, kernel_size=k)
    load_spatial_weights(module, data["weight"], what=what)
    small = build(cls, kernel_size=3)
    load_spatial_weights(small, data["weight3"], what="SpatialAttention(kernel_size=3)")
    default = build(cls)
    load_spatial_weights(default, data["weight"], what="SpatialAttention() (default kernel_size=7)")
    module.eval()
    x = data["x"].clone()
    b, _, h, w = x.shape
    gate = call_with_hints(module.attention, x, doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}",
                           hints=HINTS)
    expect_shape(gate, (b, 1, h, w), what=f"{what}.attention(x)",
                 mistake="kernel_size" if _keeps_one_map(gate, b) else "shape",
                 hint=_spatial_shape_hint(gate, b, k))
    _gate_check(gate, data["gate"], data["gate_diagnoses"], what=f"{what}.attention(x)")
    gate3 = call_with_hints(small.attention, x, doing="SpatialAttention(kernel_size=3).attention(x)", hints=HINTS)
    expect_shape(gate3, (b, 1, h, w), what="SpatialAttention(kernel_size=3).attention(x)",
                 hint=_spatial_shape_hint(gate3, b, 3), mistake="kernel_size")
    _gate_check(gate3, data["gate3"], {}, what="SpatialAttention(kernel_size=3).attention(x)")
    _forward_check(module, x, data["out"], gate.shape, what=what)
    _float64(module, x, data["gate64"], data["out64"], what=what)
    _gradients(module, data["x"], data["upstream"], data["grad_x"], what=what)
    expect_device_free(module, x, what=what)


@exercise("CBAM", budget_s=10)
def check_cbam(cls: type) -> None:
    """CBAM(channels, reduction=16, kernel_size=7): F'' = M_s(F') * F' with F' = M_c(x) * x."""
    data = expected(CHAPTER)["cbam"]
    c, r, k = int(data["channels"]), int(data["reduction"]), int(data["kernel_size"])
    what = f"CBAM({c}, reduction={r}, kernel_size={k})"
    module = build(cls, c, reduction=r, kernel_size=k)
    load_by_shape(module, mlp_roles(data["weights"]) | {"conv weight (1, 2, k, k)": data["weights"]["conv"]},
                  what=what, duplicate_mistake="separate_mlps", accept_extra_biases=ACCEPT_BIASES)
    module.eval()
    x = data["x"].clone()
    diagnoses = [(key.split(":")[0], value, ADVICE[key]) for key, value in data["diagnoses"].items()]
    out = forward_keeps_input(module, x, doing=f"{what}(x)", hints=HINTS)
    expect_shape(out, x.shape, what=f"{what}(x)", hint="CBAM returns the refined features F'', the shape of x.")
    expect_close_or_name(out, data["out"], what=f"{what}(x)", diagnoses=diagnoses,
                         fallback=("values", "compare each step with Eq. (1) and the shape table: "
                                             "F' = M_c(x) * x, F'' = M_s(F') * F'."))
    _gradients(module, data["x"], data["upstream"], data["grad_x"], what=what)
    expect_device_free(module, x, what=what)
    expect_informative_defaults(cls, (c,), {"reduction": 16, "kernel_size": 7}, data["x"], what="CBAM",
                                layout=lambda channels, reduction, kernel_size: (channels // reduction, kernel_size))


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch02_cbam.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
SPATIAL_PARAMS = Question(
    "q_spatial_params", "int", key="75d401fc85fc5f72cdbc",
    doc="Parameters of SpatialAttention(kernel_size=7) as Eq. (3) defines it.",
    wrong={
        "1011afb0775d857e2806": (
            "single_pool", "That is a 7 x 7 kernel on ONE map; Eq. (3) convolves two stacked maps, [mean; max]."),
        "b34f1a4612787558559a": (
            "extra_parameter", "The paper's f^{7x7} has no bias: count the kernel's weights only."),
        "8fca5b21665002d41da9": (
            "official_batch_norm", "That is the official gate, whose BatchNorm2d(1) adds a weight and a bias; "
                                   "the question asks for Eq. (3)."),
        "9b5c575595c30d5adcb4": (
            "kernel_ignored", "A 7 x 7 kernel has 7 * 7 weights per input map."),
    },
    advice="The convolution's weight has shape (out maps, in maps, k, k); count how many maps go in and come out.")

_POOLS_OVER_F = ("One statement of your set holds only if the spatial gate pooled over F itself. Which tensor does "
                 "Eq. (1) give it?")
_COMMUTE = ("Your set treats the two gates as if they commuted. Write both orders out: does the second gate pool "
            "over the same tensor in each?")
GATE_ORDER = Question(
    "q_gate_order", "choices", key="405b54b2acccf06c216f", options="abcde",
    doc="Which statements (a)-(e) about the order of CBAM's two gates are true.",
    wrong={
        "59455a38963ad04aaff9": (
            "spatial_on_input", "Your set describes the parallel arrangement, where both maps are computed "
                                "from F. Read Eq. (1) again: from which tensor does the spatial gate pool?"),
        "f78732ebb6a10f6fa296": (
            "gates_commute", "Your set treats the two gates as if they commuted. Write both orders out: does "
                             "the second gate pool over the same tensor in each?"),
        "091997df3921b26909f6": (
            "spatial_on_input", "One statement of your set holds only if the spatial gate pooled over F itself. "
                                "Which tensor does Eq. (1) give it?"),
        "ef9c420625b3d0563100": ("spatial_on_input", _POOLS_OVER_F),  # acd
        "f6196f2a5917d80b2ea2": ("spatial_on_input", _POOLS_OVER_F),  # ac
        "5a5c9e1d15e59019b04a": ("spatial_on_input", _POOLS_OVER_F),  # acde
        "933d444663ca2f74db98": ("gates_commute", _COMMUTE),  # abde
        "a1d8146bd4667deaf44e": ("gates_commute", _COMMUTE),  # abd
        "19743ca36adf999f9559": ("gates_commute", _COMMUTE),  # a
        "48fbb3069ec93381beae": (
            "gated_max_fixed", "Your set takes the channel gate to leave, at every pixel, the same channel on top. "
                               "It scales each channel by a weight of its own: can a channel that was the largest at "
                               "a pixel fall below another one?"),
        "ce923f845a53203dd429": (
            "spatial_on_input", "Write the spatial gate's mean over the channels of F' = M_c(F) * F as a sum over "
                                "the channels of F: what weight does each of them get?"),
    },
    advice="Write F' and F'' of Eq. (1) out, and ask from which tensor the spatial gate's two pooled maps are "
           "computed.")

CBAM_PARAMS = Question(
    "q_cbam_params", "int", key="75b05f66068331687b63",
    doc="Parameters of CBAM(256, reduction=16, kernel_size=7) as the paper defines it.",
    wrong={
        "778f7408f1470495c2d4": (
            "official_mlp_bias", "That counts the official code's MLP biases; the paper's Eq. (2) has none."),
        "bb4a78c17538416e8556": (
            "separate_mlps", "The MLP is SHARED by the two descriptors: its weights count once."),
        "ae5756eab5cb192c0dd1": (
            "param_count", "The spatial gate's convolution has parameters too."),
        "553fc558d21d9088bee9": (
            "spatial_counted_twice", "The spatial gate has one convolution, run once on the stacked maps; your "
                                     "count holds its weights twice."),
        "11458e395a9b8c24032d": (
            "official_mlp_bias", "That is the official block (MLP biases and the spatial BatchNorm); the "
                                 "question asks for the paper's form."),
        "0535b8139b2633db4dab": (
            "single_pool", "Your spatial convolution takes one map; Eq. (3) convolves two stacked maps."),
        "e4c8469435cd8b2bc615": (
            "mlp_one_layer", "Your MLP holds one weight matrix; the MLP of Eq. (2) has two layers, W_0 and W_1."),
        "1921ab0f885647e89aa5": (
            "extra_parameter", "The paper's spatial convolution f^{7x7} has no bias."),
        "ca776d85bba5b34bface": (
            "separate_mlps", "Your count is exactly twice the block's: a layer counts once, however often it runs."),
    },
    advice="Count, layer by layer, the tensors that Eqs. (2) and (3) learn in the paper's form, with the "
           "shape table of §2 at hand.")


define_question_checks(globals(), SPATIAL_PARAMS, GATE_ORDER, CBAM_PARAMS)
