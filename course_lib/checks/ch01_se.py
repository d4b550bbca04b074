"""Visible checks of chapter 01, Squeeze-and-Excitation.

    check_se(SqueezeExcitation)                       the block: parameters, gate, output (float32 and
                                                      float64), gradients
    check_se_parameter_count(se_parameter_count)      one block's parameters, for several C and r
    check_seresnet50_extra_parameters(fn)             the parameters SE adds to ResNet-50, for several r
    check_q_w1_shape(q_w1_shape)                      question: the shape of W1's weight as a 1x1 conv
    check_q_softmax_scale(q_softmax_scale)            question: what a softmax gate does to the features
    check_q_stage_params(q_stage_params)              question: SE's parameters in one ResNet-50 stage

They compare with values stored in ``checks/expected/ch01_se.pt`` (built from the reference module by
``hidden/ch01_se.py``) and never import the reference module. Known mistakes are named from the outputs
they produce, which were computed when the expected values were built. ``check_se`` runs the block twice, as
the notebook states: in float32, and on float64 copies of the same numbers, where the result must be float64
(a ``.float()`` is named ``dtype``) and agree to float64 precision (a float32 step inside is named).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import copy
import math
import random

import torch

from .toolkit import (
    CheckFailure,
    build,
    call,
    call_with_hints,
    count_parameters,
    define_mistake,
    exercise,
    expect,
    expect_close_or_name,
    expect_device_free,
    expect_follows,
    expect_int,
    expect_module_gradients,
    expect_shape,
    expected,
    fmt_shape,
    forward_keeps_input,
    load_by_shape,
    passed,
)
from .questions import Question, define_question_checks

__all__ = ["check_se", "check_se_parameter_count", "check_seresnet50_extra_parameters",
           "check_q_w1_shape", "check_q_softmax_scale", "check_q_stage_params"]

CHAPTER = "ch01_se"

define_mistake("max_squeeze", "the squeeze takes the maximum over H and W where the paper averages")
define_mistake("gate_added", "the gate is added to x where it should multiply it")
define_mistake("se_per_stage", "one SE block per stage where SE-ResNet has one in every bottleneck block")
define_mistake("bottleneck_width", "the bottleneck's inner width (64, 128, ...) where SE sees 4x that")
define_mistake("hidden_width", "the hidden width rounded up (ceil(C / r)) where the paper's C' is C // r")
define_mistake("weight_transposed", "a weight shape given as (in, out) where PyTorch stores (out, in, ...)")
define_mistake("linear_weight_shape", "an nn.Linear's 2-D weight shape given where a 1x1 convolution's is asked")
define_mistake("activation_shape", "the shape of the hidden activation given where the weight's is asked")
define_mistake("sigmoid_value", "the sigmoid's value at equal logits given where a softmax's is asked")
define_mistake("softmax_size_one", "a softmax over an axis of size 1, which returns 1 everywhere")
define_mistake("softmax_inverse", "the number of channels given where the weight each one gets is asked")
define_mistake("gate_residual", "x added back to the recalibrated features (x + x * s) where Eq. (4) has x * s only")
define_mistake("sigmoid_hidden", "a sigmoid between the two layers where Eq. (3) has the ReLU delta")
define_mistake("sum_squeeze", "the squeeze sums over H and W where Eq. (2) averages (divides by H W)")
define_mistake("hard_sigmoid", "F.hardsigmoid (a piecewise-linear approximation) where Eq. (3) has the logistic sigmoid")
define_mistake("extra_layer", "a layer with parameters (BatchNorm, a third Linear, ...) that Eq. (3) does not have")
define_mistake("channels_ignored", "a width fixed in the code (512, 256, ...) where the block must follow `channels`")
define_mistake("floor_late", "C / r rounded after the multiplications (int() of a float total, 2 C^2 // r) where C' = C // r "
                              "is rounded first")
define_mistake("bias_count", "the biases counted with one width for both layers (2 C' or 2 C) where each layer has one "
                              "per output unit")
define_mistake("whole_network", "the whole network's count (ResNet-50 plus SE) where the parameters SE adds are asked")
define_mistake("block_count", "a stage counted with another number of bottleneck blocks than ResNet-50's 3, 4, 6, 3")
define_mistake("lookup_table", "counts looked up for the checked arguments instead of computed for any argument")
define_mistake("kernel_axes", "a 2-D convolution's weight given with one kernel axis (nn.Conv1d's shape) where it has two")
define_mistake("hidden_width_count", "a hidden width C' other than C // r")
define_mistake("stage_index", "another stage counted than the one asked (the ResNet paper's conv3_x for the third stage)")
define_mistake("hidden_is_bottleneck", "the bottleneck's inner width (C / 4) taken as the SE block's hidden width C / r")
define_mistake("divisible_width", "the hidden width rounded to a multiple of 8 (timm's make_divisible) where C' = C // r")
define_mistake("tanh_hidden", "a tanh between the two layers where Eq. (3) has the ReLU delta")
define_mistake("std_squeeze", "the squeeze takes the standard deviation over H and W where Eq. (2) averages")
define_mistake("double_sigmoid", "the sigmoid applied twice (to the gate again) where Eq. (3) applies it once")
define_mistake("first_image_gate", "the gate of the first image applied to every image of the batch")

#: ResNet-50's stages as (bottleneck blocks, output channels): the architecture, public knowledge
_STAGES = ((3, 256), (4, 512), (6, 1024), (3, 2048))
#: a width whose C / r has a fraction above one half: floor, and round or ceil, give different C'
_ROUNDING_PROBE = (48, 5)
#: a reduction that divides none of ResNet-50's widths: C' floored, rounded, or not rounded at all give other counts
_RESNET_ROUNDING_PROBE = 24
#: the block counts of the deeper ResNets, for a count that took them instead of ResNet-50's
_DEEPER_RESNETS = {"ResNet-101": ((3, 256), (4, 512), (23, 1024), (3, 2048)),
                   "ResNet-152": ((3, 256), (8, 512), (36, 1024), (3, 2048))}

#: Advice for each mistake the stored diagnoses can name (shared with the hidden checks).
ADVICE = {
    "missing_sigmoid": "the gate has no sigmoid: s = sigmoid(W2 relu(W1 z)) must lie in (0, 1).",
    "softmax_gate": "a softmax where the paper uses a sigmoid: Eq. (3) ends with sigma, applied to each of "
                    "the C entries separately.",
    "softmax_one": "every gate value is 1: a softmax over a dimension of size 1 (dim=-1 on a (B, C, 1, 1) "
                   "tensor) returns 1 everywhere. SE's gate is a sigmoid, one value per channel.",
    "relu_after_last": "a ReLU after the second layer: the ReLU belongs between W1 and W2 only; after W2 "
                       "it pushes every gate to >= 0.5.",
    "missing_relu": "no ReLU between the two layers: s = sigmoid(W2 relu(W1 z)), Eq. (3).",
    "max_squeeze": "the squeeze takes the max over H and W; Eq. (2) is the mean "
                   "(x.mean((2, 3), keepdim=True) or nn.AdaptiveAvgPool2d(1)).",
    "gate_added": "forward adds the gate (x + s); Eq. (4) multiplies: x * s.",
    "gate_layout": "the (B, C) gate is transposed before it is reshaped to (B, C, 1, 1), so the numbers of "
                   "different images and channels get mixed. Reshape it as it is: s.view(B, C, 1, 1) or "
                   "rearrange(s, 'b c -> b c 1 1').",
    "batch_mean": "the squeeze also averages over the batch (dim 0), so every image gets the same gate. Eq. (2) "
                  "averages each image's channel over its own H x W: x.mean((2, 3), keepdim=True).",
    "returns_map": "forward returns the gate; it should return the recalibrated features x * s.",
    "sigmoid_hidden": "a sigmoid between the two layers: Eq. (3) has delta, the ReLU, after W1, and sigma after W2 "
                      "only.",
    "sum_squeeze": "the squeeze sums over H and W: Eq. (2) divides the sum by H x W, one mean per channel.",
    "hard_sigmoid": "F.hardsigmoid is a piecewise-linear stand-in (MobileNetV3's); Eq. (3)'s sigma is the "
                    "logistic sigmoid 1 / (1 + e^-t).",
    "tanh_hidden": "a tanh between the two layers: Eq. (3) has delta, the ReLU, after W1.",
    "std_squeeze": "the squeeze takes the standard deviation over H and W: Eq. (2) is the mean of each channel.",
    "double_sigmoid": "the sigmoid is applied twice, so every gate lies in (0.5, 0.73): Eq. (3) applies sigma once, "
                      "and forward uses the gate as attention(x) returns it.",
    "first_image_gate": "every image gets the gate of the first image of the batch: each image has its own gate, "
                        "one value per channel, from its own squeeze.",
    "gate_residual": "forward adds x back to the recalibrated features (x + x * s, a residual). Eq. (4) is the "
                     "rescaling alone; in SE-ResNet the residual is the bottleneck block's, outside the SE block.",
}


# --------------------------------------------------------------------------------------------
# the mechanism's parameters and errors
# --------------------------------------------------------------------------------------------
#: (text in the error, mistake id, advice) for errors an SE block typically raises.
SE_ERROR_HINTS: Sequence[tuple[str, str, str]] = (
    ("input to conv2d, but got input of size", "keepdim",
     "the squeezed tensor lost its 1 x 1 spatial dimensions before a 1x1 convolution: average with "
     "x.mean((2, 3), keepdim=True) so that z has shape (B, C, 1, 1)."),
    ("channels, but got 1 channels instead", "pool_axis",
     "the squeeze averaged over the channel axis (dim 1), leaving one channel; Eq. (2) averages over "
     "H and W (dims 2 and 3), one value per channel."),
    ("must match the size of tensor b", "shape",
     "a tensor of the wrong shape is multiplied with x. A (B, C) gate does not broadcast against a (B, C, H, W) "
     "tensor: broadcasting lines axes up from the right, so the C gates would meet the W axis. Give the gate "
     "two axes of size 1 for H and W, (B, C, 1, 1), before multiplying."),
)



def call_se(fn: Callable[..., Any], *args: Any, doing: str) -> Any:
    """``call`` with the hints for errors an SE block typically raises."""
    return call_with_hints(fn, *args, doing=doing, hints=SE_ERROR_HINTS)


def se_count(channels: int, hidden: int, *, biases: tuple[bool, bool] = (True, True)) -> int:
    """Parameters of an SE MLP C -> hidden -> C with the given biases."""
    return 2 * channels * hidden + (hidden if biases[0] else 0) + (channels if biases[1] else 0)


def check_se_parameters(module: torch.nn.Module, channels: int, reduction: int, *, what: str,
                        default: bool = False) -> None:
    """The parameter count 2 C C' + C' + C, naming the usual departures from it."""
    hidden = channels // reduction
    got = count_parameters(module)
    want = se_count(channels, hidden)
    if got == want:
        passed()
        return
    shapes = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in module.named_parameters()) or "none"
    intro = (f"{what} has {got} parameters, not the count of two layers C -> C' -> C with biases "
             f"(C = {channels}, C' = floor(C / r) = {hidden}).\n  yours: {shapes}")
    for rounded in (math.ceil(channels / reduction), round(channels / reduction)):
        if rounded != hidden and got in {se_count(channels, rounded, biases=b) for b in ((True, True), (False, False))}:
            raise CheckFailure(
                intro + f"\n  Likely mistake: the hidden width is rounded up or to the nearest int ({channels} / "
                f"{reduction} -> {rounded}); C' is C / r rounded DOWN, as the text defines it.",
                mistake="hidden_width",
            )
    if channels // 16 != hidden and got in {se_count(channels, channels // 16, biases=b)
                                            for b in ((True, True), (False, False))}:
        raise CheckFailure(
            intro + f"\n  Likely mistake: the hidden layer has C // 16 = {channels // 16} units whatever "
            f"`reduction` is; use channels // reduction = {hidden}.",
            mistake="reduction_ignored",
        )
    if got in {se_count(channels, hidden, biases=b) for b in ((False, False), (True, False), (False, True))}:
        raise CheckFailure(
            intro + "\n  Likely mistake: a layer without bias. This exercise follows the official SE model "
                    "(Caffe), whose two 1x1 convolutions have biases: keep nn.Linear's default bias=True "
                    "(or pass bias=True to nn.Conv2d). Popular copies drop them (bias=False).",
            mistake="missing_bias",
        )
    multiples = {max(8, int(channels / reduction + 4) // 8 * 8), max(8, channels // reduction // 8 * 8),
                 max(8, math.ceil(channels / reduction / 8) * 8)}
    multiples |= {m + 8 for m in multiples if m < 0.9 * channels / reduction}
    if got in {se_count(channels, m, biases=b) for m in multiples - {hidden} for b in ((True, True), (False, False))}:
        raise CheckFailure(
            intro + "\n  Likely mistake: the hidden width is rounded to a multiple of 8 (as timm's make_divisible "
                    "does, §9); this block's C' is C // r.", mistake="divisible_width")
    if default:
        for r in (2, 4, 8, 32):
            if got == se_count(channels, channels // r):
                raise CheckFailure(
                    intro + "\n  Likely mistake: the default of `reduction` in __init__ is not the paper's r = 16 "
                            "(the stub's signature).", mistake="default_args")
    for width in (64, 128, 256, 512, 1024, 2048):
        if width != channels and got in {se_count(width, width // reduction), se_count(width, width // 16)}:
            raise CheckFailure(
                intro + f"\n  Likely mistake: the layers are {width} channels wide whatever `channels` is: a width "
                        "written into the code; build them from `channels`.", mistake="channels_ignored")
    matrices = sorted(tuple(q for q in p.shape if q != 1) for p in module.parameters() if p.dim() >= 2)
    if matrices == sorted([(hidden, channels), (channels, hidden)]) and got > want:
        layers = {n.rpartition(".")[0] for n, p in module.named_parameters() if p.dim() >= 2}
        extra = [n for n, p in module.named_parameters() if p.dim() < 2 and n.rpartition(".")[0] not in layers]
        raise CheckFailure(
            intro + "\n  Likely mistake: W1 and W2 are right, and something else has parameters too"
            + (f" ({', '.join(extra)})" if extra and "" not in layers else "")
            + ": a layer Eq. (3) does not have (a BatchNorm, a second bias)?", mistake="extra_layer")
    raise CheckFailure(intro + "\n  Likely mistake: the layers should be W1: C -> C // r and W2: C // r -> C, "
                               "each with a bias, and nothing else with parameters.", mistake="param_count")


def build_se(cls: type, channels: int, reduction: int | None = None) -> torch.nn.Module:
    """``build`` that names a float hidden width (C / r instead of C // r) where PyTorch's error does not."""
    args, kwargs = (channels,), ({} if reduction is None else {"reduction": reduction})
    try:
        return build(cls, *args, **kwargs)
    except CheckFailure as failure:
        text = str(failure)
        if "type float" in text or ("float" in text and "int" in text):
            shown = f"{getattr(cls, '__name__', cls)}({channels}" + ("" if reduction is None
                                                                     else f", reduction={reduction}") + ")"
            raise CheckFailure(
                f"{shown} raised a TypeError: a layer was given a float where a number of channels (an int) is "
                f"expected.\n  Likely mistake: the hidden width computed as C / r, a float ({channels} / "
                f"{reduction or 16} = {channels / (reduction or 16)}); the width is an int, C // r.",
                mistake="float_count") from None
        raise


def role_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored SE weights under the roles the messages name."""
    return {
        "W1 weight (C' x C)": weights["fc1.weight"],
        "W1 bias": weights["fc1.bias"],
        "W2 weight (C x C')": weights["fc2.weight"],
        "W2 bias": weights["fc2.bias"],
    }


_GATE_VARIANTS = {
    "sigmoid_hidden": {"hidden": torch.sigmoid},
    "sum_squeeze": {"squeeze": lambda x: x.sum((2, 3), keepdim=True)},
    "hard_sigmoid": {"last": torch.nn.functional.hardsigmoid},
    "tanh_hidden": {"hidden": torch.tanh},
    "std_squeeze": {"squeeze": lambda x: x.std((2, 3), keepdim=True)},
    "double_sigmoid": {"last": lambda t: torch.sigmoid(torch.sigmoid(t))},
}

#: normalisation layers: the SE block has none (with affine=False they have no parameters to count)
_NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm,
                torch.nn.LocalResponseNorm)


def _expect_no_norm_layer(module: torch.nn.Module, what: str) -> None:
    """Name a normalisation layer (BatchNorm, LayerNorm, ...) that Eq. (2)-(3) do not have."""
    norms = [f"{n} ({type(m).__name__})" for n, m in module.named_modules() if isinstance(m, _NORM_LAYERS)]
    if norms:
        raise CheckFailure(f"{what} contains a normalisation layer: {', '.join(norms)}.\n  Likely mistake: a layer "
                           "Eq. (2)-(3) do not have; the excitation is W1, the ReLU, W2 and the sigmoid, nothing "
                           "between them.", mistake="extra_layer")


def _gate_variant(data: dict, *, squeeze: Callable = lambda x: x.mean((2, 3), keepdim=True),
                  hidden: Callable = torch.relu, last: Callable = torch.sigmoid) -> torch.Tensor:
    """The gate of the stored block with one step replaced (float32, as the stored gate)."""
    w = {k: v.double() for k, v in data["weights"].items()}
    z = squeeze(data["x"].double())
    h = hidden(torch.nn.functional.conv2d(z, w["fc1.weight"], w["fc1.bias"]))
    return last(torch.nn.functional.conv2d(h, w["fc2.weight"], w["fc2.bias"])).float()


#: torchvision's resnet50 (weights of every version): the count §7 compares with
RESNET50_PARAMETERS = 25_557_032

# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------
@exercise("SqueezeExcitation", budget_s=10)
def check_se(cls: type) -> None:
    """SqueezeExcitation(channels, reduction=16): attention(x) (B, C, 1, 1), forward(x) = x * attention(x)."""
    data = expected(CHAPTER)["se"]
    c, r = int(data["channels"]), int(data["reduction"])
    name = f"SqueezeExcitation({c}, reduction={r})"

    module = build_se(cls, c, r)
    check_se_parameters(module, c, r, what=name)
    _expect_no_norm_layer(module, name)
    default = build_se(cls, c)
    check_se_parameters(default, c, 16, what=f"SqueezeExcitation({c}) (default reduction=16)", default=True)
    c_odd, r_odd = int(data["odd_channels"]), int(data["odd_reduction"])  # C / r is not an integer here
    check_se_parameters(build_se(cls, c_odd, r_odd), c_odd, r_odd,
                        what=f"SqueezeExcitation({c_odd}, reduction={r_odd})")
    c_up, r_up = _ROUNDING_PROBE  # C / r = 9.6: round() and ceil() give 10, floor gives 9
    check_se_parameters(build_se(cls, c_up, r_up), c_up, r_up, what=f"SqueezeExcitation({c_up}, reduction={r_up})")
    load_by_shape(module, role_weights(data["weights"]), what=name)
    module.eval()

    x = data["x"].clone()
    b, _, h, w = x.shape
    gate = call_se(module.attention, x, doing=f"{name}.attention(x) with x of shape {fmt_shape(x.shape)}")
    expect(torch.equal(x, data["x"]), f"{name}.attention(x) changed x in place; compute a new tensor.",
           mistake="inplace")
    if isinstance(gate, torch.Tensor) and b > 1 and tuple(gate.shape) == (1, c, 1, 1):
        raise CheckFailure(f"{name}.attention(x) returned shape (1, {c}, 1, 1) for a batch of {b} images.\n  "
                           f"Likely mistake: {ADVICE['batch_mean']}", mistake="batch_mean")
    expect_shape(gate, (b, c, 1, 1), what=f"{name}.attention(x)",
                 hint="the gate keeps a (B, C, 1, 1) shape so that x * s broadcasts over H and W: "
                      "use keepdim=True / 1x1 convolutions, or reshape the Linear output back "
                      "(rearrange(s, 'b c -> b c 1 1')).")
    diagnoses = [(k, v, ADVICE[k]) for k, v in data["gate_diagnoses"].items()]
    diagnoses.append(("softmax_gate", torch.ones_like(data["gate"]), ADVICE["softmax_one"]))
    diagnoses.append(("gate_layout", data["gate"].reshape(b, c).t().reshape(b, c, 1, 1), ADVICE["gate_layout"]))
    diagnoses += [(key, _gate_variant(data, **variant), ADVICE[key]) for key, variant in _GATE_VARIANTS.items()]
    diagnoses.append(("first_image_gate", data["gate"][:1].expand_as(data["gate"]), ADVICE["first_image_gate"]))
    if isinstance(gate, torch.Tensor) and tuple(gate.shape) == tuple(data["gate"].shape):
        low = gate.detach().double()
        twice = _gate_variant(data, **_GATE_VARIANTS["double_sigmoid"]).double()
        if (bool((low >= 0.5 - 1e-6).all()) and bool((low <= 1).all()) and bool((low < 1 - 1e-6).any())
                and bool((data["gate"] < 0.45).any()) and not torch.allclose(low, twice, atol=1e-4)):
            raise CheckFailure(
                f"{name}.attention(x) has the wrong values: every gate value is at least 0.5, so no logit that reaches "
                f"the sigmoid is negative.\n  Likely mistake: {ADVICE['relu_after_last']}", mistake="relu_after_last")
    outside = bool(((gate < 0) | (gate > 1)).any())
    expect_close_or_name(
        gate, data["gate"], what=f"{name}.attention(x)", diagnoses=diagnoses,
        fallback=("missing_sigmoid", "some gate values lie outside [0, 1]: the last step of Eq. (3) is a sigmoid.")
        if outside else ("values", "compare each step with Eq. (2)-(3), in their order."),
    )

    # float64 copies of the same numbers: the gate must come back in float64, at float64 precision
    twin = copy.deepcopy(module).double()
    gate64 = call_se(twin.attention, x.double(), doing=f"{name}.double().attention(x) in float64")
    expect_follows(gate64, dtype=torch.float64, doing=f"{name}.double().attention(x) in float64")
    expect_close_or_name(gate64, data["gate64"], what=f"{name}.double().attention(x) in float64",
                         diagnoses=diagnoses)

    out = forward_keeps_input(module, x, doing=f"{name}(x)", hints=SE_ERROR_HINTS)
    expect_device_free(module, x, what=name)
    expect_shape(out, x.shape, what=f"{name}(x)",
                 hint=ADVICE["returns_map"] if isinstance(out, torch.Tensor) and out.shape == gate.shape
                 else "forward(x) returns x * s, the shape of x.",
                 mistake="returns_map" if isinstance(out, torch.Tensor) and out.shape == gate.shape else "shape")
    residual = (data["x"].double() + data["out64"]).float()
    expect_close_or_name(out, data["out"], what=f"{name}(x)",
                         diagnoses=[("gate_added", data["out_gate_added"], ADVICE["gate_added"]),
                                    ("gate_residual", residual, ADVICE["gate_residual"]),
                                    ("double_sigmoid", data["x"] * torch.sigmoid(data["gate"]),
                                     ADVICE["double_sigmoid"]),
                                    ("first_image_gate", data["x"] * data["gate"][:1], ADVICE["first_image_gate"])],
                         fallback=("values", "compare forward with Eq. (4): the input, rescaled channel by channel by "
                                             "the gate, and nothing else."))
    out64 = call_se(twin, x.double(), doing=f"{name}.double()(x) in float64")
    expect_follows(out64, dtype=torch.float64, doing=f"{name}.double()(x) in float64")
    expect_close_or_name(out64, data["out64"], what=f"{name}.double()(x) in float64",
                         diagnoses=[("gate_added", data["out_gate_added"], ADVICE["gate_added"])])

    # gradients reach the input and every parameter, and equal the reference's
    expect_module_gradients(module, data["x"], what=name, upstream=data["upstream"], grad_x=data["grad_x"])


@exercise("se_parameter_count", budget_s=5)
def check_se_parameter_count(fn: Callable[..., Any]) -> None:
    """se_parameter_count(channels, reduction=16) against the reference module's counts."""
    cases = [(int(case["channels"]), int(case["reduction"]), int(case["count"]))
             for case in expected(CHAPTER)["parameter_count"]]
    c_up, r_up = _ROUNDING_PROBE
    cases.append((c_up, r_up, se_count(c_up, c_up // r_up)))
    # one more (C, r), drawn afresh on every run: a count that is computed passes it, a table of the counts above not
    draw = random.SystemRandom()
    r_new = draw.randint(2, 40)
    c_new = draw.randint(r_new, 999)
    cases.append((c_new, r_new, se_count(c_new, c_new // r_new)))
    for index, (c, r, want) in enumerate(cases):
        args = (c,) if r == 16 else (c, r)
        shown = f"se_parameter_count({c})" if r == 16 else f"se_parameter_count({c}, {r})"
        try:
            got = expect_int(call(fn, *args, doing=shown), what=shown)
        except CheckFailure as failure:
            if index < len(cases) - 1:
                raise
            raise CheckFailure(f"{failure}\n  Likely mistake: the checks' arguments answered from a table; "
                               "count from C and r, for any C and r.", mistake="lookup_table") from None
        if got == want:
            passed()
            continue
        h = c // r
        message = f"{shown} returned {got}, which is not the parameter count of SqueezeExcitation({c}, {r})."
        for rounded in (math.ceil(c / r), round(c / r)):
            if rounded != h and got in {se_count(c, rounded, biases=bb) for bb in ((True, True), (False, False))}:
                raise CheckFailure(message + f"\n  Likely mistake: the hidden width is rounded up or to the nearest "
                                             f"int ({c} / {r} -> {rounded}); C' is C / r rounded DOWN.",
                                   mistake="hidden_width")
        if got in {se_count(c, h, biases=bb) for bb in ((False, False), (True, False), (False, True))}:
            raise CheckFailure(message + "\n  Likely mistake: a bias is left out. W1 has C' biases and W2 has C "
                                         "(the official model's 1x1 convolutions have biases).",
                               mistake="missing_bias")
        if h != c // 16 and got in {se_count(c, c // 16), se_count(c, c // 16, biases=(False, False))}:
            raise CheckFailure(message + "\n  Likely mistake: 16 is used whatever `reduction` is.",
                               mistake="reduction_ignored")
        if r == 16 and got in {se_count(c, c // d) for d in (2, 4, 8, 32) if c // d != h}:
            raise CheckFailure(message + "\n  Likely mistake: the default of `reduction` is not the paper's r = 16 "
                                         "(the stub's signature).", mistake="default_args")
        if got in {int(2 * c * (c / r) + c / r + c), 2 * c * c // r + h + c} - {want}:
            raise CheckFailure(message + "\n  Likely mistake: C / r is rounded after it has been multiplied. C' is "
                                         "a number of units, a whole number before anything is counted with it.",
                               mistake="floor_late")
        if got == 2 * c * h + 2 * h:
            raise CheckFailure(message + "\n  Likely mistake: the biases. A layer has one bias per OUTPUT unit: "
                                         "which widths do W1 and W2 output?", mistake="bias_count")
        raise CheckFailure(message + "\n  Likely mistake: W1 is C' x C, W2 is C x C', plus one bias per output unit.",
                           mistake="param_count")


@exercise("seresnet50_extra_parameters", budget_s=5)
def check_seresnet50_extra_parameters(fn: Callable[..., Any]) -> None:
    """The parameters SE blocks add to ResNet-50, for r = 16 and two other reductions."""
    data = expected(CHAPTER)["seresnet50"]
    for r, want in zip(data["reductions"].tolist(), data["extra"].tolist()):
        shown = "seresnet50_extra_parameters()" if r == 16 else f"seresnet50_extra_parameters({r})"
        args = () if r == 16 else (r,)
        got = expect_int(call(fn, *args, doing=shown), what=shown)
        if got == want:
            passed()
            continue
        wrong = {k: v.tolist() for k, v in data["diagnoses"].items()}
        index = data["reductions"].tolist().index(r)
        message = f"{shown} returned {got:,}, which is not what SE blocks add to ResNet-50 at r = {r}."
        advice = {
            "missing_bias": "biases are left out: each of an SE block's two layers has one bias per output unit.",
            "se_per_stage": "one SE block per stage; SE-ResNet-50 puts one in every bottleneck block "
                            "(3 + 4 + 6 + 3 = 16 blocks).",
            "bottleneck_width": "the bottleneck's inner width was used (64, 128, 256, 512); SE recalibrates the "
                                "block's output, which has 4x as many channels (256, 512, 1024, 2048).",
            "reduction_ignored": "the result does not change with `reduction`: 16 (or the r = 16 answer) "
                                 "is hard-coded.",
        }
        for mistake_id, values in wrong.items():
            if got == values[index]:
                raise CheckFailure(message + f"\n  Likely mistake: {advice[mistake_id]}", mistake=mistake_id)
        if got == want + RESNET50_PARAMETERS:
            raise CheckFailure(message + "\n  Likely mistake: the whole network's count; the function returns only "
                                         "what the SE blocks add.", mistake="whole_network")
        if r == 16 and got in {sum(b * se_count(c, c // d) for b, c in _STAGES) for d in (2, 4, 8, 32)}:
            raise CheckFailure(message + "\n  Likely mistake: the default of `reduction` is not the paper's r = 16 "
                                         "(the stub's signature).", mistake="default_args")
        _name_resnet_count(got, r, message)
        if got in {want + sign * se_count(c, c // r) for sign in (1, -1) for _, c in _STAGES}:
            raise CheckFailure(message + "\n  Likely mistake: one stage has a block too many or too few: "
                                         "RESNET50_STAGES lists how many bottleneck blocks each stage has.",
                               mistake="block_count")
        raise CheckFailure(message + "\n  Likely mistake: SE-ResNet-50 has one SE block in every bottleneck block "
                                     "of every stage, each on that block's output width.", mistake="param_count")
    # a reduction where C / r is not a whole number for any stage, then one more drawn afresh on every run: a count
    # computed for any r passes both, a table of the three above not
    _resnet_probe(fn, _RESNET_ROUNDING_PROBE)
    _resnet_probe(fn, random.SystemRandom().choice([r for r in range(2, 65) if r not in (8, 16, 24, 32)]))


def _resnet_count(stages: Sequence[tuple[int, int]], hidden: Callable[[int], int]) -> int:
    """What SE blocks with hidden width ``hidden(C)`` add to a network with these (blocks, channels) stages."""
    return sum(blocks * se_count(c, hidden(c)) for blocks, c in stages)


def _name_resnet_count(got: int, r: int, message: str) -> None:
    """Raise the named failure for a count of seresnet50_extra_parameters(r) that a known mistake gives."""
    want = _resnet_count(_STAGES, lambda c: c // r)
    late = {int(sum(b * (2 * c * (c / r) + c / r + c) for b, c in _STAGES)),
            sum(b * (2 * c * c // r + c // r + c) for b, c in _STAGES),
            sum(b * int(2 * c * (c / r) + c / r + c) for b, c in _STAGES)} - {want}
    if got in late:
        raise CheckFailure(message + "\n  Likely mistake: C / r is rounded after it has been multiplied (or not at "
                                     "all). C' is a number of units, a whole number before anything is counted with "
                                     "it.", mistake="floor_late")
    for rounded in (math.ceil, round):
        if got == _resnet_count(_STAGES, lambda c: rounded(c / r)) != want:
            raise CheckFailure(message + "\n  Likely mistake: the hidden width is rounded up or to the nearest int; "
                                         "C' is C / r rounded DOWN.", mistake="hidden_width")
    for network, stages in _DEEPER_RESNETS.items():
        if got == _resnet_count(stages, lambda c: c // r):
            counts = ", ".join(str(blocks) for blocks, _ in stages)
            raise CheckFailure(message + f"\n  Likely mistake: the stages have the block counts of {network} "
                                         f"({counts}); the exercise counts ResNet-50, whose stages RESNET50_STAGES "
                                         "lists.", mistake="block_count")


def _resnet_probe(fn: Callable[..., Any], r: int) -> None:
    """seresnet50_extra_parameters(r) for a reduction the stored values do not hold."""
    want = _resnet_count(_STAGES, lambda c: c // r)
    shown = f"seresnet50_extra_parameters({r})"
    try:
        result = call(fn, r, doing=shown)
    except CheckFailure as failure:
        raise CheckFailure(f"{failure}\n  Likely mistake: the checks' reductions answered from a table; count from "
                           "the stages and r, for any r.", mistake="lookup_table") from None
    got = expect_int(result, what=shown)
    if got == want:
        passed()
        return
    message = f"{shown} returned {got:,}, which is not what SE blocks add to ResNet-50 at r = {r}."
    _name_resnet_count(got, r, message)
    raise CheckFailure(message + "\n  Likely mistake: a result that does not follow `reduction` for every r (a table, "
                                 "or a count fixed for a few values).", mistake="lookup_table")


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch01_se.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
W1_SHAPE = Question(
    "q_w1_shape", "shape", key="4c9f116c1359c076e120",
    doc="The shape of W1's weight in SqueezeExcitation(512, 16) built from 1x1 convolutions.",
    wrong={
        "5f525fb01c2a5940619d": (
            "weight_transposed", "That is (in, out); a layer's weight is stored with the OUTPUT channels first: "
                                 "row k of the matrix holds the weights of output channel k."),
        "5b821ee95203f611311b": (
            "linear_weight_shape", "That is the weight of an nn.Linear; a convolution's weight also has the "
                                   "two axes of its kernel window."),
        "caf78eef869bd9cfc1d6": (
            "activation_shape", "That is the shape of what W1 computes, one hidden vector per image; the "
                                "weight is shared by the whole batch, so B is not part of it."),
        "71ee41a9152c4fe0c4d1": (
            "kernel_size", "The layer is a 1x1 convolution applied to the squeezed (B, C, 1, 1) tensor; its "
                           "kernel does not span the image."),
        "cef7f572f52f34eb392f": (
            "weight_transposed", "That is (in, out), and an nn.Linear's 2-D shape at that: a layer's weight is stored "
                                 "with the OUTPUT channels first, and a convolution's also has the axes of its kernel "
                                 "window."),
        "e3eb2af753ae0908cc37": (
            "kernel_axes", "That is the weight of a 1-D convolution (nn.Conv1d). An nn.Conv2d's kernel window has a "
                           "height and a width, each an axis of the weight."),
        "1de97600c233fe17ada4": (
            "hidden_width_count", "The weight's layout is right; its number of output channels is not this block's "
                                  "C' (§2 defines C' from C and r)."),
    },
    advice="Which widths does W1 connect (§2's shape table), and in which order does PyTorch list the axes of a "
           "convolution's weight? Its docs (nn.Conv2d, 'Variables') say.")

SOFTMAX_SCALE = Question(
    "q_softmax_scale", "float", key="b4a5db842d0c0739b574", digits=3,
    doc="The weight a softmax over C = 512 channels gives each channel when all the logits are equal.",
    wrong={
        "c430997671f00d316c57": (
            "sigmoid_value", "0.5 is the sigmoid of a zero logit, SE's gate; the question asks what a softmax "
                             "over the C channels gives."),
        "e5777fc53352393129d1": (
            "softmax_size_one", "1 is what a softmax over an axis of size 1 gives; this one runs over the "
                                "C = 512 channels."),
        "fbeefba6d87678d5bdb8": (
            "softmax_inverse", "512 is the number of channels; the question asks for the factor each "
                               "channel is multiplied by."),
    },
    advice="Write out the softmax of C logits that all have the same value and simplify it (give the number to 3 "
           "significant digits, or as a fraction such as 1 / 7).")

STAGE_PARAMS = Question(
    "q_stage_params", "int", key="0d9e5bd55a224fbec29f",
    doc="The parameters SE adds to ResNet-50's third stage (6 blocks of C = 1024, r = 16).",
    wrong={
        "6d0941ee2b470acf6855": (
            "missing_bias", "The biases are left out: each of the two layers has one bias per output unit."),
        "8094ce6ae4bed73f951e": (
            "missing_bias", "A bias is left out: each of the two layers has one bias per output unit."),
        "a535fb236c7ea62fc2ec": (
            "missing_bias", "A bias is left out: each of the two layers has one bias per output unit."),
        "e759edb945d12c727663": (
            "se_per_stage", "That is one SE block; SE-ResNet-50 puts one in each of the stage's 6 blocks."),
        "68ca49f0d9f45c5a2616": (
            "bottleneck_width", "256 is the bottleneck's inner width; SE recalibrates the block's output, "
                                "which has 1024 channels."),
        "4c449d944383311a2715": (
            "stage_index", "That is the stage of 4 blocks with 512 channels, the ResNet paper's conv3_x. The question "
                           "counts the four stages of bottleneck blocks §7 lists, and asks for the third of them."),
        "ab2d0979a1e9ad6c8004": (
            "hidden_is_bottleneck", "That gives each SE block 256 hidden units, the bottleneck's inner width (1024 / "
                                    "4). An SE block's hidden width comes from its own reduction r."),
        "2a0653264a72e1bc6cf3": (
            "block_count", "That counts 3 blocks; the third stage has the number of blocks §7 lists for it."),
        "167b23ffc0d65b2cd499": (
            "bias_count", "That gives both layers C biases. A layer has one bias per OUTPUT unit: which width does "
                          "each layer output?"),
    },
    advice="Every entry of every weight and bias of a block is one parameter, and every bottleneck block of the "
           "stage has its own SE block.")


define_question_checks(globals(), W1_SHAPE, SOFTMAX_SCALE, STAGE_PARAMS)
