"""Visible checks of chapter 07: the non-local block (Wang et al., CVPR 2018) and GCNet's global context block.

The notebook's test cells call:

    check_nl_attention(NonLocalBlock)        # attention(x): the (B, N, N) map of Eqs. (1) and (3), rows sum to 1
    check_nl_forward(NonLocalBlock)          # forward(x): BN(W_z y) + x, Eq. (6), the identity at initialisation
    check_gc_context(GlobalContextBlock)     # attention(x) (B, 1, H, W) pooling weights, context(x) (B, C, 1, 1)
    check_gc_forward(GlobalContextBlock)     # forward(x): x + W_v2 ReLU(LN(W_v1 context)), the identity at init
    check_cosine_distance(mean_cosine_distance)   # GCNet's measure of query-independence
    check_gc_as_se(gc_state_from_se)         # the GC block's weights that make it SE's block, up to the LayerNorm
    check_q_nl_params(q_nl_params) ... check_q_logit_std(q_logit_std)   # conceptual questions

Weights are loaded BY NAME: the notebook asks for the non-local block's ``theta``, ``phi``, ``g``, ``w_z`` and
``bn`` (the names of the paper and of the course's trained network) and for the GC block's ``conv_mask`` (W_k),
``w_v1``, ``norm`` and ``w_v2`` (the paper's W_v1, LN, W_v2). A Linear layer may stand in for a 1x1 convolution
(same weight up to trailing 1s), and a LayerNorm or GroupNorm(1, C') for the norm (same numbers of weights).

Both blocks start as the identity, so their values are compared with nonzero stored weights (and a nonzero BN
scale); a fresh module is checked separately to be the identity. Inputs have B, C and N all different and
H != W. Nothing here imports the reference modules ``course_lib.reference.nonlocal_block`` / ``course_lib.reference.gcnet``:
expected values come from ``checks/expected/ch07_nonlocal_gcnet.pt`` (built by
``checks/hidden/ch07_nonlocal_gcnet.py``).
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping

import torch
from torch import nn

from .toolkit import (
    build,
    call_with_hints,
    CheckFailure,
    close_named,
    define_mistake,
    exercise,
    expect,
    expect_block_forward,
    expect_close,
    expect_defaults,
    expect_informative_defaults,
    expect_device_free,
    expect_finite,
    expect_finite_at_scale,
    expect_follows,
    expect_function_contract,
    expect_gradients,
    expect_layouts,
    expect_normalisation_modes,
    hw_diagnoses,
    named,
    expect_method_gradients,
    expect_module_gradients,
    expect_position_map,
    expect_rows_sum_to_one,
    expect_shape,
    expected,
    fmt_shape,
    load_by_name,
    QK_SWAPPED,
    seeded_randn,
)
from .questions import Question, define_question_checks

CHAPTER = "ch07_nonlocal_gcnet"

NOT_IDENTITY = define_mistake(
    "not_identity", "a new block is not the identity (W_z / the BN scale / the last conv not zero-initialised)")
MISSING_BOTTLENECK = define_mistake(
    "missing_bottleneck", "the embeddings or the transform keep all C channels: the C / r bottleneck is missing")
FUSION_MUL = define_mistake(
    "fusion_mul", "a multiplicative (SE-like, sigmoid) fusion where GCNet's paper block adds the context")
MISSING_NORM = define_mistake("missing_norm", "the normalisation layer (BatchNorm after W_z, LayerNorm in GC's "
                                              "transform) is missing or sits in the wrong place")
AVG_POOLING = define_mistake("avg_pooling", "a plain average over positions where the attention pooling is asked")
SCALE = 1e20
OVERFLOW = "overflow"
SCALE_ADVICE = ("at float32 entries near 1e20 the squares inside a norm overflow (float32 ends near 3.4e38): "
                "||v|| is inf, so v / ||v|| is a vector of zeros and every cosine comes out 0, every distance 1/2, "
                "whatever the vectors. The cosine does not change when a vector is scaled, so each vector can be "
                "brought to a safe size before any square is taken.")
ZERO_VECTOR_ID = "zero_vector"
ZERO_VECTOR = define_mistake(ZERO_VECTOR_ID, "an all-zero vector gives NaN (0 / 0) or a cosine other than 0 with the "
                                             "other vectors")
MAP_RESCALED = define_mistake("map_rescaled", "the map's rows are changed after the softmax: they no longer sum to 1 "
                                             "at the dtype's precision")
SIGMOID_POOLING = define_mistake("sigmoid_pooling", "GC's pooling weights are a sigmoid of each logit where a softmax "
                                                   "over the positions is asked")
LN_EPS = define_mistake("ln_eps", "the LayerNorm's eps differs from nn.LayerNorm's default (1e-5)")
DIAGONAL_PAIRS = define_mistake("diagonal_pairs", "the pairs i = j (a vector with itself) are counted in the mean")
SIMILARITY = define_mistake("similarity", "the cosine similarity where the cosine distance (1 - cos) / 2 is asked")
VECTOR_AXIS = define_mistake("vector_axis", "the cosine is taken along the wrong axis (positions instead of the "
                                            "vector's entries)")
DEAD_BRANCH = define_mistake(
    "dead_branch", "every layer of the branch starts at zero, so no gradient ever reaches the attention")
DOT_PRODUCT_FORM = define_mistake("dot_product_form", "the dot-product form f / N (Eq. (4)) where the embedded "
                                                      "Gaussian's softmax (Eq. (3)) is asked")
RESHAPE_NO_TRANSPOSE = define_mistake(
    "reshape_no_transpose", "y (B, N, C') is reshaped straight to (B, C', H, W) without moving the channels first")
NOT_UNIFORM = define_mistake("not_uniform", "W_k's weights leave the pooling logits different between positions")
BIAS_ONLY = define_mistake("bias_only", "W_k's bias is changed where a softmax ignores a shift common to all logits")
NORM_AFFINE = define_mistake("norm_affine", "the LayerNorm's scale and shift are not the identity map (1 and 0)")
SE_WEIGHTS_SWAPPED = define_mistake("se_weights_swapped", "SE's two layers go into the GC block's transform in the "
                                                          "wrong places (swapped or transposed)")
MODIFIES_INPUT = "modifies_input"
LN_UNBIASED = define_mistake("ln_unbiased", "a LayerNorm written with the unbiased variance (over n - 1)")
NORM_OVER_BATCH = define_mistake("norm_over_batch", "normalisation statistics taken over the wrong dimension (the "
                                                    "batch) where a LayerNorm takes one image's")
# trial t78 (r2): likely answers that got a generic message; their results are computed here from the stored
# weights (nl_variants, gc_variants, cosine_variants), not stored
PLAIN_GAUSSIAN = define_mistake("plain_gaussian", "the plain Gaussian of Eq. (2), e^{x_i . x_j}, where the embedded "
                                                  "Gaussian (Eq. (3)) compares theta(x_i) with phi(x_j)")
VALUES_THETA = define_mistake("values_theta", "the map weights theta(x_j) where Eq. (1) weights the values g(x_j)")
BN_EPS = define_mistake("bn_eps", "the BatchNorm's eps differs from BatchNorm2d's default (1e-5)")
LOG_SOFTMAX = define_mistake("log_softmax", "log_softmax where the map is the softmax itself")
CONTEXT_MEAN = define_mistake("context_mean", "GC's weighted positions averaged (divided by N, H or W) where the "
                                              "context is their sum")
SIGMOID_ADDED = define_mistake("sigmoid_added", "x + sigmoid(t): the transform is squashed before it is added")
COS_SIGN = define_mistake("cos_sign", "the cosine's sign is lost (abs, or a clamp at 0): opposite directions count "
                                      "as near")

# label -> (mistake id, advice); the tensors are stored in checks/expected/ch07_nonlocal_gcnet.pt
ADVICE: dict[str, tuple[str, str]] = {
    "softmax_dim1": ("softmax_dim",
                     "the map is normalised over dim 1, the queries i, so each COLUMN sums to 1. Eq. (3) divides by "
                     "C(x) = sum over the keys j: each query's row (the last dim) sums to 1."),
    "softmax_all": ("softmax_dim",
                    "one softmax over all N*N pairs of the image: each query i needs its own distribution over the "
                    "keys j."),
    "scaled": ("scaled",
               "theta^T phi is divided by sqrt(C'), the Transformer's (and the official Caffe2 code's) scaling. "
               "The paper's Eq. (3) has no scaling; this exercise asks for the paper's block."),
    "scaled_c": ("scaled",
                 "theta^T phi is divided by sqrt(C) (timm's NonLocalAttn scales by in_channels ** -0.5). The "
                 "paper's Eq. (3) has no scaling."),
    "qk_swapped": (QK_SWAPPED,
                   "row i holds phi(x_i) . theta(x_j): theta and phi play each other's role. f(x_i, x_j) = "
                   "theta(x_i)^T phi(x_j): the query side is theta."),
    "dot_product": (DOT_PRODUCT_FORM,
                    "the map is theta^T phi / N, the dot-product form of Eq. (4). The embedded Gaussian of Eq. (3) "
                    "exponentiates and normalises by the sum over j: a softmax."),
    "no_softmax": ("values", "the map is theta^T phi without any normalisation: Eq. (3) divides e^{f} by its sum "
                             "over the keys."),
    "map_transposed": ("missing_transpose",
                       "y_i is built from column i of the map (sum_j a[j, i] g_j), not from row i. With the values "
                       "as (B, N, C') the product is map @ values; with them as (B, C', N) it is values @ map^T."),
    "missing_residual": ("missing_residual", "forward returns BN(W_z y) without + x. Eq. (6): z = W_z y + x."),
    "reshape_no_transpose": (RESHAPE_NO_TRANSPOSE,
                             "y has one row per position, (B, N, C'). Reshaping it straight to (B, C', H, W) keeps "
                             "the memory order, so each 'channel map' is filled with numbers of several positions "
                             "and channels mixed. The positions must become the last axes: the channels have to "
                             "move in front of the positions before H and W are split off."),
    "no_bn": (MISSING_NORM, "there is no BatchNorm after W_z (Sec. 4.1: one BN right after the last 1x1 "
                            "convolution, the one that is W_z)."),
    "no_wz": ("parameters", "y goes to the BN (or the output) without W_z: Eq. (6) maps y back to C channels first."),
    # GCNet
    "alpha_softmax_w": ("softmax_dim", "the pooling weights are normalised along W only (each row of the image sums "
                                       "to 1). GCNet normalises over all N = H W positions of an image."),
    "alpha_softmax_h": ("softmax_dim", "the pooling weights are normalised along H only (each column sums to 1). "
                                       "GCNet normalises over all N = H W positions of an image."),
    "alpha_softmax_batch": ("softmax_dim", "the pooling weights are normalised across the batch (each position "
                                           "against the same position of the other images)."),
    "context_avg": (AVG_POOLING, "the context is the plain mean of x over the positions (SE's squeeze). GCNet weights "
                                 "each position j by alpha_j = softmax_j(W_k x_j)."),
    "context_unnormalised": ("softmax_dim", "the positions are weighted by exp(W_k x_j) or W_k x_j without "
                                           "dividing by the sum over positions: the weights must sum to 1."),
    "fuse_mul": (FUSION_MUL, "x * sigmoid(transform): the SE-like multiplicative fusion (timm's GlobalContext "
                             "default). The paper's GC block ADDS the transformed context to every position."),
    "fuse_mul_add": (FUSION_MUL, "both a sigmoid gate and the addition (the official code with both fusion types). "
                                 "The paper's GC block only adds."),
    "gc_missing_residual": ("missing_residual", "forward returns the transformed context broadcast to every "
                                                "position, without + x."),
    "gc_no_norm": (MISSING_NORM, "no LayerNorm between W_v1 and the ReLU: the paper's transform is W_v2 ReLU(LN(W_v1 "
                                 "c))."),
    "gc_relu_before_norm": (MISSING_NORM, "the ReLU comes before the LayerNorm; GCNet normalises W_v1 c first, then "
                                          "applies the ReLU."),
    "gc_no_relu": ("missing_relu", "no ReLU between the LayerNorm and W_v2."),
    "gc_ln_unbiased": (LN_UNBIASED, "the LayerNorm divides by the unbiased variance (the sum of squared deviations over "
                                    "n - 1). A LayerNorm uses the biased one, their mean (over n)."),
    "gc_ln_over_batch": (NORM_OVER_BATCH, "the LayerNorm's mean and variance run over the whole batch as well: each "
                                          "image's C' numbers are normalised with statistics of its own."),
    "gc_ln_batch_only": (NORM_OVER_BATCH, "the C' numbers are normalised across the batch (one mean and variance per "
                                          "channel over the images, a BatchNorm's statistics): a LayerNorm takes them "
                                          "over the C' numbers of one image."),
    "gc_ln_eps": (LN_EPS, "the LayerNorm's eps is 1e-6 (as in timm's LayerNorm2d, for one); the paper's code uses "
                          "nn.LayerNorm's default, 1e-5. It shows at the small variances of W_v1 c here."),
    "gc_context_avg": (AVG_POOLING, "forward pools x with a plain mean. The GC block pools with the attention weights "
                                    "alpha (and forward must use the same context as context(x))."),
    # the cosine distance
    "cos_diagonal": (DIAGONAL_PAIRS, "the mean includes the N pairs (i, i), whose distance is 0. GCNet averages over "
                                     "pairs of DIFFERENT positions, N (N - 1) ordered pairs."),
    "cos_similarity": (SIMILARITY, "that is the mean cosine similarity. The distance is (1 - cos) / 2: 0 for "
                                   "identical directions, 1 for opposite ones."),
    "cos_no_half": (SIMILARITY, "1 - cos without the division by 2. GCNet's distance is (1 - cos) / 2, in [0, 1]."),
    "cos_axis": (VECTOR_AXIS, "the vectors were normalised along dim 1 (the N positions) instead of the last dim "
                              "(the D entries of each vector v_i)."),
    "cos_batch": ("batch_mean", "the mean also runs over the images: each image gets its own number, (B,)."),
    # trial t78 (r2), computed by nl_variants / gc_variants / cosine_variants
    "plain_gaussian": (PLAIN_GAUSSIAN, "the map compares the inputs themselves, e^{x_i . x_j} (the plain Gaussian, "
                                       "Eq. (2)); the embedded Gaussian, Eq. (3), compares theta(x_i) with phi(x_j)."),
    "values_theta": (VALUES_THETA, "the map weights theta(x_j); Eq. (1) sums f(x_i, x_j) g(x_j): the values come "
                                   "from g."),
    "bn_eps": (BN_EPS, "the BatchNorm's eps is not BatchNorm2d's default 1e-5 (1e-3 is Keras' default, for one): it "
                       "shows with the small running variances loaded here."),
    "context_mean": (CONTEXT_MEAN, "the context is divided by the number of positions (a mean, or a sum along one "
                                   "axis and a mean along the other); the weights alpha already sum to 1, and GCNet's "
                                   "context is the plain sum sum_j alpha_j x_j."),
    "sigmoid_added": (SIGMOID_ADDED, "the transformed context goes through a sigmoid and is then added to x; the "
                                     "paper's block adds the transform itself (and a new block, whose transform is "
                                     "0, would then add 1/2 everywhere)."),
    "gc_scaled": ("scaled", "the pooling logits W_k x_j are divided by sqrt(C); GCNet's softmax takes them as they "
                            "are."),
    "cos_abs": (COS_SIGN, "the distance uses |cos|: a vector and its opposite come out at distance 0. GCNet's "
                          "(1 - cos) / 2 keeps the sign: opposite vectors are at distance 1."),
    "cos_clamped": (COS_SIGN, "the cosine is clamped to [0, 1]: every pair with a negative cosine comes out at "
                              "distance 1/2. The cosine runs from -1 to 1, the distance (1 - cos) / 2 from 0 to 1."),
    "cos_triu_diagonal": (DIAGONAL_PAIRS, "the pairs i <= j are averaged, so the N pairs (i, i) at distance 0 count; "
                                          "GCNet averages over pairs of DIFFERENT positions."),
    "cos_triu_doubled": (DIAGONAL_PAIRS, "the sum over the pairs counts the N pairs (i, i) (twice an upper triangle "
                                         "that keeps the diagonal); GCNet averages over pairs of DIFFERENT "
                                         "positions."),
    "cos_zero": (ZERO_VECTOR_ID, "each vector is divided by its norm (or its largest entry) with nothing to keep a "
                                 "zero divisor from giving 0 / 0. The exercise's contract: an all-zero vector has "
                                 "cosine 0 with every vector."),
}

_close = functools.partial(close_named, advice=ADVICE)


def nl_variants(weights: Mapping[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """forward(x) in eval mode, in float64, for three likely slips: the plain Gaussian, values from theta, BN eps."""
    fn = torch.nn.functional
    b, c, h, w = x.shape
    x = x.double()

    def conv(name: str, t: torch.Tensor) -> torch.Tensor:
        return fn.conv2d(t, weights[f"{name}.weight"], weights[f"{name}.bias"])

    def block(*, gaussian: bool = False, values: str = "g", eps: float = 1e-5) -> torch.Tensor:
        th, ph = conv("theta", x).flatten(2), conv("phi", x).flatten(2)
        logits = x.flatten(2).mT @ x.flatten(2) if gaussian else th.mT @ ph
        v = conv(values, x).flatten(2)
        y = (torch.softmax(logits, -1) @ v.mT).mT.reshape(b, -1, h, w)
        u = conv("w_z", y)
        return x + fn.batch_norm(u, weights["bn.running_mean"], weights["bn.running_var"], weights["bn.weight"],
                                 weights["bn.bias"], False, 0.0, eps)

    return {"plain_gaussian": block(gaussian=True), "values_theta": block(values="theta"),
            "bn_eps": block(eps=1e-3)}


def gc_variants(weights: Mapping[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """GC forward(x), in float64, with the logits scaled by C^-1/2 and with x + sigmoid(t)."""
    fn = torch.nn.functional
    b, c, h, w = x.shape
    x = x.double()

    def block(*, scale: float = 1.0, squash: bool = False) -> torch.Tensor:
        logits = fn.conv2d(x, weights["conv_mask.weight"], weights["conv_mask.bias"]) * scale
        alpha = torch.softmax(logits.flatten(2), -1).reshape(b, 1, h, w)
        t = fn.conv2d((x * alpha).sum((2, 3), keepdim=True), weights["channel_add_conv.0.weight"],
                      weights["channel_add_conv.0.bias"])
        t = fn.layer_norm(t, t.shape[1:], weights["channel_add_conv.1.weight"].reshape(t.shape[1:]),
                          weights["channel_add_conv.1.bias"].reshape(t.shape[1:]), 1e-5)
        t = fn.conv2d(torch.relu(t), weights["channel_add_conv.3.weight"], weights["channel_add_conv.3.bias"])
        return x + (torch.sigmoid(t) if squash else t)

    return {"gc_scaled": block(scale=c ** -0.5), "sigmoid_added": block(squash=True)}


def cosine_variants(v: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mean distance with |cos|, with cos clamped to [0, 1], over the pairs i <= j, and with the pairs i != j
    summed as twice the upper triangle, diagonal included."""
    u = torch.nn.functional.normalize(v.double(), dim=-1)
    cos = u @ u.mT
    n = v.shape[1]
    off = ~torch.eye(n, dtype=torch.bool)
    rows, cols = torch.triu_indices(n, n)
    return {"cos_abs": ((1 - cos.abs()) / 2)[:, off].mean(1), "cos_clamped": ((1 - cos.clamp(0, 1)) / 2)[:, off].mean(1),
            "cos_triu_diagonal": ((1 - cos) / 2)[:, rows, cols].mean(1),
            # trial t78 (r3): twice a triangle that keeps the diagonal, as the sum over the pairs i != j
            "cos_triu_doubled": (1 - (cos.sum((1, 2)) + cos.diagonal(dim1=1, dim2=2).sum(1)) / (n * (n - 1))) / 2}
MAP_ADVICE = {"columns": ADVICE["softmax_dim1"][1], "all": ADVICE["softmax_all"][1]}
NL_NAMES = ("theta", "phi", "g", "w_z")
GC_NAMES = ("w_v1", "w_v2")
#: errors that the generic hints can only call a crash
HINTS = (
    ("running_mean should contain", MISSING_NORM,
     "the BatchNorm has a different number of channels than the tensor it normalises: the paper's BN sits right "
     "after W_z, on its C output channels."),
    ("normalized_shape", MISSING_NORM,
     "the LayerNorm's shape does not fit the tensor it normalises: it normalises the C' numbers of W_v1 c."),
)
_call = functools.partial(call_with_hints, hints=HINTS)


# --------------------------------------------------------------------------------------------
# structure and weights
# --------------------------------------------------------------------------------------------
def _weight(module: nn.Module, name: str, what: str, names_hint: str) -> torch.Tensor:
    layer = getattr(module, name, None)
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise CheckFailure(f"{what} has no {name} with a weight. Keep the names the notebook asks for: {names_hint}.",
                           mistake="parameters")
    return weight


def _in_out(weight: torch.Tensor) -> tuple[int, int]:
    return int(weight.shape[1]) if weight.dim() > 1 else 1, int(weight.shape[0])


def check_nl_structure(module: nn.Module, channels: int, reduction: int, *, what: str) -> None:
    """theta, phi, g: C -> C // r with bias; w_z: C // r -> C with bias; bn: BatchNorm2d(C)."""
    names = "theta, phi, g (C -> C // reduction), w_z (C // reduction -> C) and bn (the BatchNorm after W_z)"
    hidden = channels // reduction
    for name in NL_NAMES:
        weight = _weight(module, name, what, names)
        c_in, c_out = _in_out(weight)
        want = (hidden, channels) if name == "w_z" else (channels, hidden)
        if (c_in, c_out) != want:
            no_bottleneck = (c_in, c_out) == (channels, channels)
            other = name != "w_z" and c_in == channels and c_out in {channels // 2, channels // 8} - {hidden}
            raise CheckFailure(
                f"{what}.{name} maps {c_in} -> {c_out} channels; expected {want[0]} -> {want[1]} "
                f"(C' = channels // reduction = {channels} // {reduction} = {hidden})."
                + (" All C channels are kept: the paper's theta, phi and g halve them (Sec. 3.3), and W_z maps "
                   "back to C." if no_bottleneck else "")
                + (" The reduction argument seems to be ignored (a hard-coded // 2 or // 8?)." if other else ""),
                mistake=MISSING_BOTTLENECK if no_bottleneck else "reduction_ignored" if other else "parameters")
        if getattr(getattr(module, name), "bias", None) is None:
            raise CheckFailure(f"{what}.{name} has no bias; the paper's 1x1 convolutions keep theirs "
                               "(nn.Conv2d's default bias=True).", mistake="missing_bias")
    bn = getattr(module, "bn", None)
    if bn is None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        raise CheckFailure(f"{what} has no layer named 'bn'. Keep the names the notebook asks for: {names}.",
                           mistake="parameters")
    if bn is None:
        raise CheckFailure(f"{what} has no BatchNorm: Sec. 4.1 puts one BN right after W_z (named bn).",
                           mistake=MISSING_NORM)
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise CheckFailure(f"{what}.bn should be a BatchNorm (nn.BatchNorm2d), got {type(bn).__name__}: Sec. 4.1 puts "
                           "one BN right after W_z.", mistake=MISSING_NORM)
    if bn.num_features != channels:
        raise CheckFailure(f"{what}.bn normalises {bn.num_features} channels; the BN sits right after W_z, on its "
                           f"{channels} output channels (not before it, on C' = {hidden}).", mistake=MISSING_NORM)
    if not bn.affine or bn.running_mean is None:
        raise CheckFailure(f"{what}.bn should have its scale and shift (affine=True) and running statistics "
                           "(track_running_stats=True), BatchNorm2d's defaults.", mistake=MISSING_NORM)


def load_nl_weights(module: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    load_by_name(module, weights, what=what)


def gc_names(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored GC weights (the reference's official names) under the names the notebook asks for."""
    rename = {"conv_mask.weight": "conv_mask.weight", "conv_mask.bias": "conv_mask.bias",
              "channel_add_conv.0.weight": "w_v1.weight", "channel_add_conv.0.bias": "w_v1.bias",
              "channel_add_conv.1.weight": "norm.weight", "channel_add_conv.1.bias": "norm.bias",
              "channel_add_conv.3.weight": "w_v2.weight", "channel_add_conv.3.bias": "w_v2.bias"}
    return {rename[k]: v for k, v in weights.items()}


def check_gc_structure(module: nn.Module, channels: int, reduction: int, *, what: str) -> None:
    names = "conv_mask (W_k: C -> 1), w_v1 (C -> C // reduction), norm (the LayerNorm) and w_v2 (C // reduction -> C)"
    hidden = channels // reduction
    mask = _weight(module, "conv_mask", what, names)
    if _in_out(mask) != (channels, 1):
        raise CheckFailure(f"{what}.conv_mask maps {_in_out(mask)[0]} -> {_in_out(mask)[1]} channels; W_k gives one "
                           f"logit per position: {channels} -> 1.", mistake="parameters")
    for name, want in (("w_v1", (channels, hidden)), ("w_v2", (hidden, channels))):
        c_in, c_out = _in_out(_weight(module, name, what, names))
        if (c_in, c_out) != want:
            no_bottleneck = c_in == c_out == channels
            other = name == "w_v1" and c_in == channels and c_out in {channels // 16, channels // 8, channels // 4} - {hidden}
            raise CheckFailure(
                f"{what}.{name} maps {c_in} -> {c_out} channels; expected {want[0]} -> {want[1]} "
                f"(C' = {channels} // {reduction} = {hidden})."
                + (" The transform is a bottleneck: W_v1 reduces to C' channels, W_v2 restores C." if no_bottleneck
                   else "") + (" The reduction argument seems to be ignored (hard-coded?)." if other else ""),
                mistake=MISSING_BOTTLENECK if no_bottleneck else "reduction_ignored" if other else "parameters")
        if getattr(getattr(module, name), "bias", None) is None:
            raise CheckFailure(f"{what}.{name} has no bias; the official transform's convolutions keep theirs.",
                               mistake="missing_bias")
    norm = getattr(module, "norm", None)
    if norm is None:
        raise CheckFailure(f"{what} has no layer named 'norm'. Keep the names the notebook asks for: {names}.",
                           mistake="parameters")
    weight = getattr(norm, "weight", None)
    if not isinstance(norm, (nn.LayerNorm, nn.GroupNorm)) or not isinstance(weight, torch.Tensor):
        raise CheckFailure(f"{what}.norm should be the transform's LayerNorm (with its scale and shift), got "
                           f"{type(norm).__name__}.", mistake=MISSING_NORM)
    if weight.numel() != hidden:
        raise CheckFailure(f"{what}.norm has {weight.numel()} scale weights; it normalises the C' = {hidden} numbers "
                           "of W_v1 c (one scale and one shift per channel).", mistake=MISSING_NORM)


def load_gc_weights(module: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    """By the notebook's names; the norm's weights by number (LayerNorm([C', 1, 1]) or (C')), and a bias-free
    conv_mask is accepted (a constant added to every logit does not change a softmax)."""
    weights = dict(weights)
    if getattr(module.conv_mask, "bias", None) is None:
        weights.pop("conv_mask.bias")
    norm = {k: weights.pop(k) for k in ("norm.weight", "norm.bias")}
    load_by_name(module, weights, what=what)
    with torch.no_grad():
        for key, tensor in norm.items():
            target = getattr(module.norm, key.split(".")[1], None)
            if not isinstance(target, torch.Tensor):
                raise CheckFailure(f"{what}.norm has no {key.split('.')[1]}: keep the LayerNorm's scale and shift "
                                   "(elementwise_affine=True, the default).", mistake=MISSING_NORM)
            target.copy_(tensor.reshape(target.shape).to(target.dtype))


def _nl(cls: type, data: dict, *, reduction: int = 2) -> tuple[nn.Module, str]:
    channels = data["channels"]
    what = f"{cls.__name__}({channels}" + (f", reduction={reduction})" if reduction != 2 else ")")
    module = build(cls, channels, reduction)
    check_nl_structure(module, channels, reduction, what=what)
    load_nl_weights(module, data["weights"], what=what)
    return module.eval(), what


def _gc(cls: type, data: dict, *, reduction: int) -> tuple[nn.Module, str]:
    channels = data["channels"]
    what = f"{cls.__name__}({channels}, reduction={reduction})"
    module = build(cls, channels, reduction)
    check_gc_structure(module, channels, reduction, what=what)
    load_gc_weights(module, gc_names(data["weights"]), what=what)
    return module.eval(), what


def realistic_input(channels: int = 32, size: int = 24, *, seed: int = 75) -> torch.Tensor:
    """ReLU features of realistic size: their embedded dot products reach the hundreds."""
    return (3 * torch.relu(seeded_randn(1, channels, size, size, seed=seed))).float()


NL_IDENTITY_ADVICE = (
    "Sec. 3.3-4.1: the block enters a network without changing it because its branch BN(W_z y) starts at 0: the BN's "
    "scale (bn.weight) is initialised to 0, and its shift is 0. A scale of 1 (BatchNorm's default) makes the branch "
    "a normalised copy of W_z y (AlexHex7/Non-local_pytorch #12, #18).")
GC_IDENTITY_ADVICE = (
    "the block is added to a network as x + transform(context); it leaves the network unchanged at first when the "
    "transform's LAST layer, W_v2, starts at zero (its weight and its bias).")


def _expect_identity(module: nn.Module, x: torch.Tensor, *, what: str, advice: str, half: bool = False) -> None:
    for mode in ("train", "eval"):
        module.train(mode == "train")
        with torch.no_grad():
            y = _call(module, x.clone(), doing=f"a new {what}(x) in {mode} mode")
        expect_shape(y, x.shape, what=f"a new {what}(x)")
        if torch.allclose(y, x, rtol=0, atol=1e-6):
            continue
        if torch.allclose(y, torch.zeros_like(y), rtol=0, atol=1e-6):
            raise CheckFailure(f"a new {what}(x) returns zeros ({mode} mode): the branch is zero at first, as it "
                               "should be, but the residual + x is missing.", mistake="missing_residual")
        if half and torch.allclose(y, x / 2, rtol=1e-5, atol=1e-6):
            raise CheckFailure(f"a new {what}(x) returns x / 2 ({mode} mode): x * sigmoid(0) is the multiplicative "
                               "fusion starting from a zero transform.\n  Likely mistake: "
                               + ADVICE["fuse_mul"][1], mistake=FUSION_MUL)
        largest = float((y - x).abs().max())
        raise CheckFailure(f"a new {what}(x) differs from x by up to {largest:.3g} ({mode} mode): the block should "
                           f"start as the identity.\n  Likely mistake: {advice}", mistake=NOT_IDENTITY)
    module.train()


def _expect_learns(module: nn.Module, x: torch.Tensor, probe: torch.Tensor, *, inner: str, what: str,
                   advice: str) -> None:
    """Two plain gradient steps from a new block: by the second, a gradient reaches the ``inner`` layer (W_z,
    W_v1). A block that zeroes every layer of its branch is the identity too, but it never learns."""
    module = module.double().train()
    params = dict(module.named_parameters())
    for step in (1, 2):
        module.zero_grad(set_to_none=True)
        y = _call(module, x.double().clone(), doing=f"a new {what}(x), training step {step}")
        _call(lambda: (y * probe.double()).sum().backward(), doing=f"backward through a new {what}(x)")
        if step == 1:
            with torch.no_grad():
                for p in params.values():
                    if p.grad is not None:
                        p -= 0.1 * p.grad
    grad = getattr(params.get(f"{inner}.weight"), "grad", None)
    expect(grad is not None and bool(grad.abs().max() > 0),
           f"a new {what}: after one gradient step, the second backward pass still gives {inner}.weight no gradient, "
           f"so the attention can never learn.\n  Likely mistake: {advice}", mistake=DEAD_BRANCH)


# --------------------------------------------------------------------------------------------
# the non-local block
# --------------------------------------------------------------------------------------------
@exercise("NonLocalBlock.attention", budget_s=10)
def check_nl_attention(cls: type) -> None:
    E = expected(CHAPTER)["nl_attention"]
    module, what = _nl(cls, E)
    x = E["x"]
    a = expect_position_map(module, x, what=what, call=_call,
                            returns="the block's output. attention(x) returns the map f(x_i, x_j) / C(x), (B, N, N); "
                                    "forward(x) uses it.",
                            hint="one row per query position i and one column per key position j: (B, N, N), N = H * W.")
    if isinstance(a, torch.Tensor) and torch.allclose(a.detach().double(), E["diagnoses"]["dot_product"], atol=1e-5):
        raise CheckFailure("attention(x) has the wrong values.\n  Likely mistake: " + ADVICE["dot_product"][1],
                           mistake=DOT_PRODUCT_FORM)
    if isinstance(a, torch.Tensor) and a.shape == E["a"].shape and \
            torch.allclose(a.detach().double(), E["a"].log(), rtol=1e-4, atol=1e-3):
        raise CheckFailure("attention(x) has the wrong values: its entries are negative, logarithms of the "
                           "weights.\n  Likely mistake: the map is log_softmax; Eq. (3)'s weights are the softmax "
                           "itself, each row summing to 1.", mistake=LOG_SOFTMAX)
    expect_rows_sum_to_one(a, what="attention(x)", advice=MAP_ADVICE)
    # expect_rows_sum_to_one allows 1e-4 for any map; a float32 softmax over N = 35 keys sums to 1 within 1e-6
    rows = a.detach().double().sum(-1)
    if float((rows - 1).abs().max()) > 1e-5:
        raise CheckFailure(f"attention(x): the rows sum to {rows.min().item():.7f} .. {rows.max().item():.7f}, not 1 "
                           f"(a float32 softmax's rows sum to 1 within about 1e-6).\n  Likely mistake: the map is "
                           "changed after its normalisation (scaled, shifted, or given a constant).",
                           mistake=MAP_RESCALED)
    xf = x.double().flatten(2)
    _close(a, E["a"], what="attention(x)",
           diagnoses={**E["diagnoses"], "plain_gaussian": torch.softmax(xf.mT @ xf, -1)})
    module3, what3 = _nl(cls, E["r3"], reduction=3)
    a3 = _call(module3.attention, x.clone(), doing=f"{what3}.attention(x)")
    _close(a3, E["r3"]["a"], what=f"{what3}.attention(x)", diagnoses={})
    # realistic features: e^{f} written by hand overflows here
    big = realistic_input()
    module32 = build(cls, big.shape[1])
    what32 = f"{cls.__name__}({big.shape[1]})"
    load_nl_weights(module32, realistic_weights(big.shape[1]), what=what32)
    a32 = _call(module32.float().eval().attention, big, doing=f"{what32}.attention(x) on ReLU features of shape "
                                                               f"{fmt_shape(big.shape)}")
    expect_finite(a32, what=f"{what32}.attention(x) on ReLU features of shape {fmt_shape(big.shape)} (float32)")
    expect_rows_sum_to_one(a32, what=f"{what32}.attention(x) on ReLU features", advice=MAP_ADVICE)
    expect_device_free(module, x, what=what, method="attention")
    # float64 at float64 precision before the gradients: a softmax computed in float32 and cast back is named here
    # (trial t78, r2: the gradient check blamed it on a cut graph)
    twin = build(cls, E["channels"], 2).double()
    load_nl_weights(twin, E["weights"], what=what)
    doing64 = f"{what}.attention(x) with the module and x in float64"
    a64 = _call(twin.eval().attention, x.double(), doing=doing64)
    expect_follows(a64, dtype=torch.float64, doing=doing64)
    expect_close(a64, E["a"], what=doing64)
    expect_method_gradients(module, "attention", x, what=what)


def realistic_weights(channels: int, reduction: int = 2, *, seed: int = 76) -> dict[str, torch.Tensor]:
    hidden = channels // reduction
    out = {}
    for i, name in enumerate(NL_NAMES):
        shape = (channels, hidden) if name == "w_z" else (hidden, channels)
        out[f"{name}.weight"] = 0.5 * seeded_randn(*shape, 1, 1, seed=seed + i)
        out[f"{name}.bias"] = torch.zeros(shape[0], dtype=torch.float64)
    return out


@exercise("NonLocalBlock.forward", budget_s=15)
def check_nl_forward(cls: type) -> None:
    E = expected(CHAPTER)["nl_forward"]
    channels = E["channels"]
    module, what = _nl(cls, E)  # BN scale, shift and running statistics nonzero; eval mode
    x = E["x"]
    y = expect_block_forward(module, x, what=what, returns="z = BN(W_z y) + x", call=_call)
    expect_normalisation_modes(module, x, what=what, hints=HINTS)
    expect_close(y, E["y"], what="forward(x) with trained-like BN statistics (eval mode)",
                 diagnoses=named({**E["diagnoses"], **nl_variants(E["weights"], x)}, ADVICE)
                 + hw_diagnoses(E["y"], base=x.double()))
    expect_module_gradients(module.double(), x.double(), what=what, upstream=E["probe"], grad_x=E["grad_x"],
                            hints=HINTS)
    module.float()
    expect_device_free(module, x, what=what)
    fresh = build(cls, channels)
    _expect_identity(fresh, E["x"], what=f"{cls.__name__}({channels})", advice=NL_IDENTITY_ADVICE)
    _expect_learns(fresh, E["x"], E["probe"], inner="w_z", what=f"{cls.__name__}({channels})",
                   advice="zero ONE layer at the end of the branch (the BN's scale, as the paper does, or W_z), not "
                          "both: with the BN scale and W_z both zero, W_z's gradient is multiplied by the BN scale and "
                          "the BN scale's by the normalised W_z y, and both stay 0 forever.")
    expect_informative_defaults(cls, (channels,), {"reduction": 2}, x, what=cls.__name__,
                                layout=lambda channels, reduction: channels // reduction)


# --------------------------------------------------------------------------------------------
# the global context block
# --------------------------------------------------------------------------------------------
@exercise("GlobalContextBlock.attention and .context", budget_s=10)
def check_gc_context(cls: type) -> None:
    E = expected(CHAPTER)["gc_context"]
    module, what = _gc(cls, E, reduction=E["reduction"])
    x = E["x"]
    b, c, h, w = x.shape
    alpha = _call(module.attention, x.clone(), doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}")
    expect_shape(alpha, (b, 1, h, w), what=f"attention(x) for x of shape {fmt_shape(x.shape)}",
                 hint="one weight per position of each image, (B, 1, H, W), as W_k's output.")
    expect_finite(alpha, what="attention(x)")
    sums = alpha.detach().double().sum((1, 2, 3))
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        for label in ("alpha_softmax_w", "alpha_softmax_h", "alpha_softmax_batch"):
            if torch.allclose(alpha.detach().double(), E["alpha_diagnoses"][label], atol=1e-6):
                raise CheckFailure(f"attention(x): each image's weights sum to {sums.min():.4g} .. {sums.max():.4g}, "
                                   f"not 1.\n  Likely mistake: {ADVICE[label][1]}", mistake=ADVICE[label][0])
        got = alpha.detach().double()
        if torch.allclose(got, torch.ones_like(got)):
            raise CheckFailure(f"attention(x): every weight is 1, so each image's weights sum to N = {h * w}, not 1."
                               "\n  Likely mistake: the softmax runs over an axis of length 1 (W_k's single output "
                               "channel); GCNet normalises over the N = H W positions of each image.",
                               mistake="softmax_dim")
        # a sigmoid of each logit: logit(alpha) = l_j, while log(softmax) = l_j - logsumexp(l): they differ by a
        # constant per image
        inside = got.clamp(1e-12, 1 - 1e-12)
        gap = (torch.log(inside / (1 - inside)) - torch.log(E["alpha"].double())).reshape(b, -1)
        if bool(((gap - gap.mean(1, keepdim=True)).abs() < 1e-3).all()):
            raise CheckFailure(f"attention(x): each image's weights sum to {sums.min():.4g} .. {sums.max():.4g}, not 1."
                               "\n  Likely mistake: each position's logit goes through a sigmoid, a gate of its own; "
                               "GCNet's pooling weights share one normalisation over the image's positions.",
                               mistake=SIGMOID_POOLING)
        raise CheckFailure(f"attention(x): the weights of each image should sum to 1 over its N = H W positions; "
                           f"they sum to {sums.min():.4g} .. {sums.max():.4g}.", mistake="softmax_dim")
    _close(alpha, E["alpha"], what="attention(x)", diagnoses={})
    ctx = _call(module.context, x.clone(), doing=f"{what}.context(x)")
    expect_shape(ctx, (b, c, 1, 1), what=f"context(x) for x of shape {fmt_shape(x.shape)}",
                 hint="one C-vector per image, (B, C, 1, 1): sum_j alpha_j x_j.")
    expect_close(ctx, E["context"], what="context(x)",
                 diagnoses=named(E["context_diagnoses"], ADVICE)
                 + [(CONTEXT_MEAN, E["context"] / n, ADVICE["context_mean"][1]) for n in (h * w, h, w)])
    big = realistic_input(E["channels"], 16)
    module.float()
    with torch.no_grad():
        module.conv_mask.weight.mul_(100.0)  # logits in the hundreds
    a_big = _call(module.attention, big, doing=f"{what}.attention(x) on ReLU features with large logits")
    expect_finite(a_big, what=f"{what}.attention(x) on features whose logits reach the hundreds (float32)")
    module2, what2 = _gc(cls, E["second"], reduction=E["second"]["reduction"])
    _close(_call(module2.context, E["second"]["x"].clone(), doing=f"{what2}.context(x)"), E["second"]["context"],
           what=f"{what2}.context(x) on a second input", diagnoses={})
    expect_device_free(module2, E["second"]["x"], what=what2, method="context")
    expect_method_gradients(module2, "context", E["second"]["x"], what=what2)


@exercise("GlobalContextBlock.forward", budget_s=10)
def check_gc_forward(cls: type) -> None:
    E = expected(CHAPTER)["gc_forward"]
    channels, reduction = E["channels"], E["reduction"]
    module, what = _gc(cls, E, reduction=reduction)
    x = E["x"]
    x_in = x.clone()
    y = _call(module, x_in, doing=f"{what}(x) with x of shape {fmt_shape(x.shape)}")
    b, c = x.shape[:2]
    if isinstance(y, torch.Tensor) and tuple(y.shape) == (b, c, 1, 1):
        raise CheckFailure(f"forward(x) returned {fmt_shape(y.shape)}: the transformed context alone.\n  Likely "
                           "mistake: the fusion adds it to every position of x: x + transform(context), "
                           "(B, C, H, W).", mistake="missing_residual")
    expect_shape(y, x.shape, what="forward(x)")
    expect(torch.equal(x_in, x), "forward(x) changed its input x in place (x += ...); return a new tensor.",
           mistake="inplace")
    _close(y, E["y"], what="forward(x) with nonzero weights",
           diagnoses={**E["diagnoses"], **gc_variants(E["weights"], x)})
    expect_module_gradients(module.double(), x.double(), what=what, upstream=E["probe"], grad_x=E["grad_x"],
                            hints=HINTS)
    module.float()
    expect_device_free(module, x, what=what)
    fresh = build(cls, channels, reduction)
    _expect_identity(fresh, E["x"], what=f"{cls.__name__}({channels}, reduction={reduction})", half=True,
                     advice=GC_IDENTITY_ADVICE)
    _expect_learns(fresh, E["x"], E["probe"], inner="w_v1", what=f"{cls.__name__}({channels}, reduction={reduction})",
                   advice="zero only the LAST layer, W_v2. With W_v1 zero as well, W_v2's gradient is multiplied by "
                          "ReLU(LN(W_v1 c)) = 0 and W_v1's by W_v2 = 0: only W_v2's bias ever moves.")
    expect_informative_defaults(cls, (channels,), {"reduction": 16}, seeded_randn(2, 32, 3, 5, seed=777).float(),
                                layout=lambda channels, reduction: channels // reduction,
                    what=cls.__name__)


# --------------------------------------------------------------------------------------------
# GCNet's measure
# --------------------------------------------------------------------------------------------
@exercise("mean_cosine_distance", budget_s=10)
def check_cosine_distance(fn: Callable) -> None:
    E = expected(CHAPTER)["cosine"]
    v = E["v"]
    v_in = v.clone()
    d = _call(fn, v_in, doing=f"mean_cosine_distance(v) with v of shape {fmt_shape(v.shape)}")
    expect(torch.equal(v_in, v), "mean_cosine_distance changed its input in place (v /= ...); compute new tensors.",
           mistake=MODIFIES_INPUT)
    if isinstance(d, torch.Tensor) and d.dim() == 0:
        raise CheckFailure(f"mean_cosine_distance returned one number for {v.shape[0]} images.\n  Likely mistake: "
                           + ADVICE["cos_batch"][1], mistake="batch_mean")
    expect_shape(d, (v.shape[0],), what="mean_cosine_distance(v)", hint="one number per image: (B,).")
    _close(d, E["d"], what="mean_cosine_distance(v)", diagnoses={**E["diagnoses"], **cosine_variants(v)})
    # identical vectors: distance 0; two opposite vectors: distance 1
    same = E["v"][:, :1].expand(-1, 6, -1).clone()
    expect_close(_call(fn, same, doing="mean_cosine_distance of copies of one vector"),
                 torch.zeros(v.shape[0], dtype=same.dtype), what="mean_cosine_distance of N copies of one vector",
                 hint="copies of one vector all point the same way: their distance is 0.")
    pair = torch.stack((E["v"][:, 0], -E["v"][:, 0]), 1)
    expect_close(_call(fn, pair, doing="mean_cosine_distance of a vector and its negative"),
                 torch.ones(v.shape[0], dtype=pair.dtype), what="mean_cosine_distance of v_1 and -v_1",
                 hint="opposite vectors have cos = -1, so (1 - cos) / 2 = 1.")
    # "right for large entries", where the direct form breaks: float32 entries near 1e20, whose squares overflow.
    # Finite first, then the values: the cosine ignores the vectors' lengths, so the distance of v * 1e20 is the
    # distance of v (computed in float64), up to the float32 rounding of the scaled entries
    expect_finite_at_scale(fn, E["v2"], what="mean_cosine_distance(v)", hints=HINTS)
    big = (E["v2"].double() * SCALE).float()
    at_scale = f"mean_cosine_distance(v) on float32 entries near {SCALE:.0e}"
    d_big = _call(fn, big.clone(), doing=at_scale)
    expect_follows(d_big, dtype=torch.float32, doing=at_scale)
    expect_close(d_big, E["d2"].float(), what=at_scale,
                 diagnoses=[(OVERFLOW, torch.full_like(E["d2"], 0.5).float(), SCALE_ADVICE)],
                 fallback=(OVERFLOW, SCALE_ADVICE))
    _close(_call(fn, E["v2"].clone(), doing="mean_cosine_distance on a second input"), E["d2"],
           what=f"mean_cosine_distance(v) for v of shape {fmt_shape(E['v2'].shape)}", diagnoses={})
    expect_gradients(fn, (E["v2"],), doing="mean_cosine_distance(v)", names=("v",))
    expect_function_contract(fn, (E["v2"],), what=f"mean_cosine_distance(v) for v of shape "
                                                  f"{fmt_shape(E['v2'].shape)}", target64=E["d2"], hints=HINTS)
    # last, so that the mistakes above are named first. An all-zero vector has no direction: the chapter's contract
    # counts its cosine with every vector as 0 (what F.normalize gives), and the trained features of section 7 hold
    # such vectors (post-ReLU zeros). Five copies of one vector and a zero vector: 20 pairs at distance 0, 10 pairs
    # at 1/2, a mean of 1/6
    zero = torch.cat((E["v"][:, :1].expand(-1, 5, -1), torch.zeros_like(E["v"][:, :1])), 1)
    doing = "mean_cosine_distance of five copies of one vector and an all-zero vector"
    d0 = _call(fn, zero.clone(), doing=doing)
    if isinstance(d0, torch.Tensor) and not bool(torch.isfinite(d0.detach()).all()):
        raise CheckFailure(f"{doing} returned {d0.detach().flatten()[0].item()}: a zero vector has norm 0, and 0 / 0 "
                           "is NaN. The chapter's features contain such vectors (a ReLU output that is 0 at every "
                           "channel of a position).\n  Likely mistake: " + ADVICE["cos_zero"][1],
                           mistake=ZERO_VECTOR)
    expect_close(d0, torch.full((v.shape[0],), 1 / 6, dtype=zero.dtype), what=doing,
                 hint="a zero vector's cosine with any vector counts as 0 (distance 1/2); copies of one vector are at "
                      "distance 0.", mistake=ZERO_VECTOR)


# --------------------------------------------------------------------------------------------
# GC and SE
# --------------------------------------------------------------------------------------------
ALIASES_ARGUMENT = define_mistake("aliases_argument", "a returned tensor is an argument, or a view of one, where new "
                                                     "tensors are asked: changing one changes the other")


def _storage(t: object) -> int:
    """The address of a tensor's memory (0 for anything else, or for no memory)."""
    return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) and t.numel() else 0


GC_STATE_NAMES = ("conv_mask.weight", "conv_mask.bias", "w_v1.weight", "w_v1.bias", "norm.weight", "norm.bias",
                  "w_v2.weight", "w_v2.bias")


def _squeezed_shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(n for n in t.shape if n != 1)


def _state_entry(state: Mapping, name: str, want: torch.Tensor, *, what: str) -> torch.Tensor:
    got = state[name]
    if not isinstance(got, torch.Tensor):
        raise CheckFailure(f"{what}[{name!r}] should be a tensor, got {type(got).__name__}.", mistake="shape")
    if _squeezed_shape(got) != _squeezed_shape(want):
        raise CheckFailure(f"{what}[{name!r}] has shape {fmt_shape(got.shape)}; the GC block's {name} has "
                           f"{fmt_shape(want.shape)} numbers (trailing 1s of a 1x1 convolution may be left out).",
                           mistake="shape")
    return got.detach().reshape(want.shape).to(want.dtype)


@exercise("gc_state_from_se", budget_s=10)
def check_gc_as_se(fn: Callable) -> None:
    """gc_state_from_se(state, w1, b1, w2, b2): from a GC block's parameters (notebook names), the parameters that
    make its transform SE's two layers and its attention pooling SE's plain mean, whatever the input."""
    E = expected(CHAPTER)["gc_as_se"]
    se, start = E["se"], E["state"]
    given = {k: v.clone() for k, v in se.items()}
    given_state = {k: v.clone() for k, v in start.items()}
    state = _call(fn, given_state, given["w1"], given["b1"], given["w2"], given["b2"],
                  doing=f"gc_state_from_se(state, w1, b1, w2, b2) with w1 of shape {fmt_shape(se['w1'].shape)}")
    changed = [k for k in se if not torch.equal(given[k], se[k])]
    changed += [k for k in start if k not in given_state or not torch.equal(given_state[k], start[k])]
    expect(not changed, f"gc_state_from_se changed its arguments in place ({', '.join(changed)}); return a new dict "
           "of new tensors and leave the given ones alone.", mistake=MODIFIES_INPUT)
    what = "gc_state_from_se(...)"
    if not isinstance(state, Mapping):
        raise CheckFailure(f"{what} should return a dict from parameter names to tensors, got "
                           f"{type(state).__name__}.", mistake="shape")
    missing = [n for n in GC_STATE_NAMES if n not in state]
    if missing:
        raise CheckFailure(f"{what} has no entry for {', '.join(missing)}. Return one tensor for every parameter of "
                           f"the GC block, under the names of exercise 2: {', '.join(GC_STATE_NAMES)}.",
                           mistake="parameters")
    # "a new dict of new tensors": no entry may share memory with an argument (a reshape or view of w1 does)
    given_memory = {_storage(t): label for label, t in [*given.items(), *given_state.items()] if _storage(t)}
    shared = [(name, given_memory[_storage(state[name])]) for name in GC_STATE_NAMES
              if isinstance(state[name], torch.Tensor) and _storage(state[name]) in given_memory]
    if shared:
        name, source = shared[0]
        raise CheckFailure(f"{what}[{name!r}] shares its memory with the argument {source!r} (it is that tensor, or "
                           "a view of it such as .reshape() or .view() may return): whoever later changes one changes "
                           "the other, e.g. an optimiser step on the GC block would rewrite the SE weights. The "
                           "docstring asks for new tensors.", mistake=ALIASES_ARGUMENT)
    shapes = start
    got = {n: _state_entry(state, n, shapes[n], what=what) for n in GC_STATE_NAMES}
    for name, tensor in got.items():
        expect_finite(tensor, what=f"{what}[{name!r}]")
    w1, b1, w2, b2 = (se[k].reshape(-1) for k in ("w1", "b1", "w2", "b2"))
    flat = {n: t.reshape(-1) for n, t in got.items()}
    if not torch.equal(flat["conv_mask.weight"], torch.zeros_like(flat["conv_mask.weight"])):
        if not torch.equal(flat["conv_mask.bias"], start["conv_mask.bias"].reshape(-1)) and torch.equal(
                flat["conv_mask.weight"], start["conv_mask.weight"].reshape(-1)):
            raise CheckFailure(
                f"{what}: W_k's weight is still the block's own, only its bias changed. A bias adds the same number "
                "to every position's logit, and a softmax over the positions does not see a shift shared by all "
                "its inputs: the pooling weights are exactly what they were.", mistake=BIAS_ONLY)
        raise CheckFailure(
            f"{what}: conv_mask.weight is not zero, so the logit W_k x_j still depends on x_j: for most inputs "
            "the positions get different weights, and the context is not SE's plain mean. For which weights is "
            "softmax_j(W_k x_j) the same at every position, for every x?", mistake=NOT_UNIFORM)
    if torch.equal(flat["w_v1.weight"], w2) or torch.equal(flat["w_v2.weight"], w1) or \
            (_squeezed_shape(shapes["w_v1.weight"]) == _squeezed_shape(se["w2"].mT) and
             torch.equal(got["w_v1.weight"].reshape(se["w2"].mT.shape), se["w2"].mT)):
        raise CheckFailure(f"{what}: SE's layers sit in the wrong places of the transform. W_v1 reduces C to C' as "
                           "SE's first layer does; W_v2 restores C as SE's second.", mistake=SE_WEIGHTS_SWAPPED)
    for name, want, role in (("w_v1.weight", w1, "SE's first weight"), ("w_v1.bias", b1, "SE's first bias"),
                             ("w_v2.weight", w2, "SE's second weight"), ("w_v2.bias", b2, "SE's second bias")):
        if flat[name].shape != want.shape or not torch.allclose(flat[name], want.to(flat[name].dtype), rtol=0,
                                                                  atol=1e-7):
            raise CheckFailure(f"{what}[{name!r}] is not {role}: the transform's two convolutions play SE's two "
                               "layers, each with its own weight and bias, in SE's (out, in) layout.",
                               mistake=SE_WEIGHTS_SWAPPED)
    ones, zeros = torch.ones_like(flat["norm.weight"]), torch.zeros_like(flat["norm.bias"])
    if not (torch.equal(flat["norm.weight"], ones) and torch.equal(flat["norm.bias"], zeros)):
        raise CheckFailure(f"{what}: the LayerNorm's scale and shift are not 1 and 0. SE has no norm between its "
                           "layers; the normalisation itself cannot be switched off by any weight, but its affine "
                           "map can be made to do nothing more.", mistake=NORM_AFFINE)
    expect(all(t.dtype == se["w1"].dtype for t in (state[n] for n in GC_STATE_NAMES)),
           f"{what}: every tensor should keep the dtype of SE's weights ({se['w1'].dtype}).", mistake="dtype")


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch07_nonlocal_gcnet.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
COST_RATIO = define_mistake("cost_ratio", "the ratio of the two blocks' costs counts the wrong products")
ZERO_INIT_GRADIENT = define_mistake(
    "zero_init_gradient", "a parameter is said to get (or not get) a gradient through a BN whose scale is 0")
MEMORY_UNITS = define_mistake("memory_units", "a memory figure in MB (10**6 bytes) where MiB (2**20 bytes) is asked")
MAP_SIZE = define_mistake("map_size", "the attention map's size counted with the wrong numbers of positions")
LOGIT_SCALE = define_mistake("logit_scale", "the spread of a dot product confused with its variance, or taken as 1")

Q_NL_PARAMS = Question(
    "q_nl_params", "int", key="c1c2ac75f457ccdcb5b6",
    doc="The learnable parameters of NonLocalBlock(256) (C' = 128, with its BatchNorm).",
    wrong={
        "7737da6760494c980f9f": (
            MISSING_NORM, "That leaves out the BatchNorm after W_z: it learns a scale and a shift per channel (its "
                          "running mean and variance are buffers, not parameters)."),
        "ccac443dc9269ecdaa40": (
            "param_count", "The BatchNorm's running mean and variance are buffers, not parameters: count only its "
                           "scale and shift."),
        "0af86511ec80891a28ba": (
            MISSING_BOTTLENECK, "theta, phi and g map C = 256 to C' = C / 2 = 128 channels, not to 256."),
        "38169020dc6eb424a699": (
            "missing_bias", "Each 1x1 convolution also has one bias per output channel, and the BN a scale and a "
                            "shift per channel."),
    },
    # trial t78 (r3): the advice listed every layer with its widths (close to a recipe); it now names what to count
    advice="Go through the layers of the block as section 2 defines it, Eq. (6) and its BatchNorm included: what "
           "does each one learn, at the question's widths?")

Q_COST_RATIO = Question(
    "q_cost_ratio", "int", key="df94a721cb7836b788cf",
    doc="How many times more multiply-adds the non-local block's two N x N products cost than GCNet's pooling "
        "product (56 x 56, C = 256).",
    wrong={
        "e99d2460dba899b92d8d": (
            COST_RATIO, "That is N^2, the number of entries of the map. Count multiply-adds: each of the N^2 entries "
                        "costs C' of them in theta^T phi, and again C' in the product with g."),
        "593c8d493715ad67cd6f": (
            COST_RATIO, "That counts one of the non-local block's two N x N products; both the map and the weighted "
                        "sum of g cost N^2 C' multiply-adds."),
        "f021497b1a688df17560": (COST_RATIO, "That takes C' = C. The bottleneck halves the channels: C' = 128."),
    },
    # trial t78 (r2): the advice listed every product's shape (a recipe); it now names what to count
    advice="Write each product as (a x b) @ (b x c), from the shapes of section 2 and of GCNet's attention "
           "pooling; it costs a b c multiply-adds. Which widths are the bottleneck's?")

Q_MAP_MIB = Question(
    "q_map_mib", "float", digits=3, key="74aea2244256be3be4ee",
    doc="The MiB of one image's float32 attention map at 56 x 56 with the paper's 2 x 2 subsampling.",
    wrong={
        "9db2c46e797f2d7665bf": (
            MAP_SIZE, "That is the full N x N map. With subsampling, the keys are max-pooled 2 x 2 (N' = N / 4) while "
                      "every query position stays: the map is N x N'."),
        "13e8c50981038218e215": (
            MAP_SIZE, "That pools the queries too. Only phi and g are pooled; theta keeps all N positions, so the "
                      "output keeps one row per position (video-nonlocal-net #79)."),
        "78da3e9cc9facd6d9b57": (
            MEMORY_UNITS, "That is in MB (10**6 bytes); the question asks MiB (2**20 bytes)."),
        "3b4bbf2163e10e4b6f7e": (
            MAP_SIZE, "That counts N numbers; the map holds one number per (query, key) pair."),
    },
    # trial t78 (r2): the advice listed every factor (a recipe); it now asks what the subsampling pools
    advice="Which side of the map does the subsampling shrink, and which does it keep? The map holds one float32 "
           "per (query, key) pair; a MiB is 2**20 bytes.")

Q_ZERO_INIT_GRADS = Question(
    "q_zero_init_grads", "choices", options="abcde", key="f0b0356ea1e824845c71",
    doc="Which parameters (a)-(e) of a new non-local block (BN scale 0) get a nonzero gradient.",
    wrong={
        "ec6b48ba5e2054217114": (
            ZERO_INIT_GRADIENT, "The scale multiplies the normalised W_z y, which is not zero: what is "
                                "dz / d(scale)?"),
        "dc0241e639857f04753a": (
            ZERO_INIT_GRADIENT, "W_z reaches the loss only through BN's scale: its gradient carries that factor, 0 at "
                                "initialisation."),
        "e8906ed3be71d80f091d": (
            ZERO_INIT_GRADIENT, "theta, phi, g and W_z all sit before the BN; every path from them to z is multiplied "
                                "by the BN scale, which is 0."),
    },
    advice="Write the branch as scale * normalise(W_z y) + shift and differentiate with respect to each parameter "
           "at scale = 0, shift = 0.")

Q_LOGIT_STD = Question(
    "q_logit_std", "float", digits=3, key="2e7e060057e5a329013f",
    doc="The standard deviation of q . k for 512-vectors with independent entries of mean 0 and variance 1.",
    wrong={
        "c9218234fdc017a7f3cc": (
            LOGIT_SCALE, "That is the VARIANCE of the dot product; the question asks its standard deviation."),
        "7de23a03d0b028b6b1f4": (
            LOGIT_SCALE, "Each term has variance 1, but the dot product sums 512 of them: variances add."),
        "54a0dc8e46364bf3f492": (
            LOGIT_SCALE, "That is the Transformer's factor 1 / sqrt(d) itself. The question asks the spread of the "
                         "unscaled dot product."),
    },
    advice="A dot product of two d-vectors is a sum of d products q_k k_k; each has mean 0 and variance 1 when the "
           "entries are independent N(0, 1). Variances of independent terms add.")

Q_WZ_TRAP = Question(
    "q_wz_trap", "choices", options="abcde", key="ee8b2365234a2be752b3",
    doc="Which statements (a)-(e) hold for a new non-local block with W_z zero under a BatchNorm at its defaults.",
    wrong={
        "ca804fb66d3b54ada0a2": (
            ZERO_INIT_GRADIENT, "Look at W_z's weight in the first backward pass: what does a training-mode BN's "
                                "backward do with an input whose batch variance is exactly 0?"),
        "acf3c255685840f064a6": (
            ZERO_INIT_GRADIENT, "In the paper's form the zero BN scale multiplies every path to W_z. Here the scale is "
                                "1: what stands between W_z and the loss now?"),
        "df671bba67027a9b46d4": (
            ZERO_INIT_GRADIENT, "The scale's gradient is the sum of the upstream gradient times the BN's normalised "
                                "input. What is the normalised input when W_z y is 0 everywhere?"),
        "cb64836a88c82734445b": (
            ZERO_INIT_GRADIENT, "W_z's bias adds one constant per channel to the BN's input. What does the BN's "
                                "mean subtraction do to such a constant, and so to its gradient?"),
        "fb6588ef94fffa74effb": (
            NOT_IDENTITY, "What does a BN return, in training and in eval mode, for an input that is 0 everywhere, "
                          "with shift 0 and fresh running statistics?"),
    },
    advice="Write the BN in training mode as scale * (u - mean(u)) / sqrt(var(u) + eps) + shift with u = W_z y, set "
           "u = 0, and differentiate with respect to W_z's weight and bias and the BN's scale.")

define_question_checks(globals(), Q_NL_PARAMS, Q_COST_RATIO, Q_MAP_MIB, Q_ZERO_INIT_GRADS, Q_LOGIT_STD, Q_WZ_TRAP)
