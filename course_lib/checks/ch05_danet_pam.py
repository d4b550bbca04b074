"""Visible checks of chapter 05: DANet's position attention module (PAM).

The notebook's test cells call:

    check_pam_attention(PositionAttention)   # attention(x): the (B, N, N) map, rows sum to 1
    check_pam_forward(PositionAttention)     # forward(x): gamma * out + x, gamma starting at 0
    check_pam_einops(pam_einops)             # the contraction as a function of q, k, v
    check_q_pam_params(q_pam_params)         # conceptual questions (course_lib.checks.questions)
    check_q_zero_gamma_grads(q_zero_gamma_grads)
    check_q_map_mib(q_map_mib)
    check_q_equivariance(q_equivariance)

Weights are loaded BY NAME (the notebook asks the student to keep the official names ``query_conv``,
``key_conv``, ``value_conv`` and ``gamma``), so official DANet weights load 1:1. The value checks force
``gamma = 1``: with the zero initialisation a wrong attention branch would be invisible. A separate check
asserts that a fresh module's gamma is 0.

Inputs have B, C and N all different (3, 16, 35) and H != W, so a swapped axis cannot hide. Each value check
runs twice, as the notebook states: in float32, and in float64 on the same numbers, where the result must be
float64 (a ``.float()`` anywhere is named) and agree to float64 precision (a float32 step inside is named). Nothing here
imports the reference module ``course_lib.reference.danet``: expected values come from
``checks/expected/ch05_danet_pam.pt`` (built by ``checks/hidden/ch05_danet_pam.py``).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .questions import Question, define_question_checks
from .toolkit import (
    CheckFailure,
    build,
    call_with_hints,
    close_named,
    check_pam_structure,
    define_mistake,
    exercise,
    expect,
    expect_block_forward,
    expect_close,
    expect_defaults,
    expect_function_contract,
    expect_informative_defaults,
    expect_layouts,
    expect_no_upcast,
    expect_device_free,
    expect_finite,
    expect_follows,
    expect_gradients,
    expect_method_gradients,
    expect_position_map,
    expect_rows_sum_to_one,
    expect_shape,
    expected,
    fmt_shape,
    hw_diagnoses,
    is_close,
    load_pam_weights,
    named,
    passed,
    realistic_input,
    seeded_randn,
)

CHAPTER = "ch05_danet_pam"

MODIFIES_INPUT = "modifies_input"
ZERO_GAMMA_GRADIENT = define_mistake(
    "zero_gamma_gradient", "a parameter is said to get a gradient through gamma * out while gamma = 0")
MEMORY_UNITS = define_mistake("memory_units", "a memory figure in another unit (MB, GiB) where MiB (2**20 bytes) is "
                                              "asked")
OUTPUT_STRIDE = define_mistake(
    "output_stride", "the size of the image, or another output stride's feature map, used where the feature map's is meant")
MAP_SIZE = define_mistake("map_size", "the attention map counted as N numbers instead of N x N")
BYTES_PER_NUMBER = define_mistake(
    "bytes_per_number", "a float32 map's numbers counted with another number of bytes each than 4 (none, or 8)")
QK_FULL_WIDTH = define_mistake(
    "qk_full_width", "the query and key convolutions counted with C output channels where they have C' = C / r")
CONV_BIAS_COUNT = define_mistake(
    "conv_bias_count", "a convolution's biases counted other than one per output channel")
EQUIVARIANCE = define_mistake("equivariance", "a wrong statement about how PAM treats a permutation of the pixels")
INVARIANCE = define_mistake(
    "invariance", "PAM's output said not to change when the pixels are shuffled (invariance taken for equivariance)")

QUERY_VIEW = define_mistake(
    "query_view", "the queries reshaped (view/reshape) from (B, C', N) to (B, N, C') instead of transposed")
OUT_NOT_PERMUTED = define_mistake(
    "out_not_permuted", "a (B, N, C) result reshaped straight to (B, C, H, W) without moving the channels first")
KEY_AS_QUERY = define_mistake(
    "key_as_query", "the queries computed with key_conv (or the keys with query_conv): the energy is k^T k")
SIGMOID_MAP = define_mistake(
    "sigmoid_map", "a sigmoid (each entry on its own) where Eq. (1) has a softmax over each query's row")
GAMMA_ON_RESIDUAL = define_mistake(
    "gamma_on_residual", "gamma multiplies the residual too (gamma * (out + x)), so a new module returns 0, not x")
DETACHED_MAP = define_mistake(
    "detached_map", "the map is cut from the autograd graph (.detach(), .data, torch.no_grad()) in forward")
HIDDEN_WIDTH = define_mistake("hidden_width", "the hidden width rounded up (ceil(C / r)) where the paper's C' is C // r")
EINSUM_RESIDUAL = define_mistake(
    "einsum_residual", "the values added back to the weighted sum (out + v) where only the sum is asked")
RESIDUAL_PRODUCT = define_mistake(
    "residual_product", "the attention's output multiplied with the input (gamma * out * x) where Eq. (2) adds them")
NO_VALUE_CONV = define_mistake(
    "no_value_conv", "the map mixes the input x itself where Eq. (2) mixes the values D = value_conv(x)")
VALUE_RESIDUAL = define_mistake(
    "value_residual", "the values D added back (gamma * out + value_conv(x)) where Eq. (2) adds the input A")
GAMMA_UNUSED = define_mistake(
    "gamma_unused", "gamma is created but forward does not use it (out + x): Eq. (2)'s alpha never scales the output")

KEY_VIEW = define_mistake(
    "key_view", "the keys reshaped (view/reshape) from (B, C', H, W) to (B, N, C') and transposed, which scrambles them")
QK_RELU = define_mistake(
    "qk_relu", "a ReLU on the queries and keys (the paper's v3 text) where the official code has the 1x1 convolutions "
               "alone")
DOUBLE_SOFTMAX = define_mistake("double_softmax", "the softmax applied twice to the map where Eq. (1) applies it once")
COSINE_ENERGY = define_mistake(
    "cosine_energy", "the queries and keys normalised to unit length (a cosine similarity) where Eq. (1) has the plain "
                     "dot product")
GAMMA_ON_INPUT = define_mistake(
    "gamma_on_input", "gamma scales the input (out + gamma * x) where Eq. (2)'s alpha scales the attention's output")
MISSING_SOFTMAX = define_mistake(
    "missing_softmax", "the energy used as the map without the softmax of Eq. (1)")

_call = call_with_hints  # PAM's crashes are named by the generic hints (in-place input, NameError)
# PAM's layout check and loaders are shared with chapter 06 through the toolkit (check_pam_structure,
# load_pam_weights, pam_parameter_count, realistic_input); the words of its advice are this chapter's (ADVICE_PAM).


#: The chapter's words for each stored wrong result (label -> (mistake id, advice)): the mistake named, its fix left
#: to the student. Exercise 1 speaks of matrices, exercise 2 of einsum's indices.
ADVICE_PAM = {
    "softmax_dim1": ("softmax_dim", "the softmax runs over dim 1, the queries, so each COLUMN of the map sums to 1. "
                                    "Eq. (1) normalises each query's row, over the keys."),
    "softmax_dim0": ("softmax_dim", "the softmax runs over dim 0, the batch: each entry is normalised against the same "
                                    "entry of the other images (nn.Softmax() without a dim picks dim 0 for a 3-D "
                                    "tensor)."),
    "softmax_all": ("softmax_dim", "the softmax runs over all N*N pairs of an image at once; Eq. (1) gives each query "
                                   "its own distribution over the N keys."),
    "scaled": ("scaled", "the energy is divided by sqrt(C'): the Transformer's scaled dot product. DANet's paper and "
                         "official code use the plain dot product q_j . k_i."),
    "qk_swapped": ("qk_swapped", "query and key play each other's role: row j of the energy must hold q_j . k_i, the "
                                 "query of position j against every key. In forward the same output also comes from "
                                 "two mistakes that combine: a softmax over the queries AND the values mixed with the "
                                 "map's columns."),
    "missing_transpose": ("missing_transpose",
                          "the values are mixed with the map's COLUMNS: position j receives sum_i s[i, j] v_i, where "
                          "Eq. (2) asks for sum_i s[j, i] v_i (§2, 'Why a transpose?'; DANet issue #64 asks the "
                          "same)."),
    "missing_residual": ("missing_residual", "forward returns gamma * out without the input; Eq. (2) adds A back."),
}
ADVICE_EINSUM = {
    "softmax_dim1": ("softmax_dim", "the softmax runs over the query index j, so for each key the weights over the "
                                    "queries sum to 1. softmax_i in the text runs over the KEY index i, for each "
                                    "fixed j."),
    "softmax_dim0": ("softmax_dim", "the softmax runs over the batch index b; softmax_i runs over the key index i."),
    "softmax_all": ("softmax_dim", "the softmax runs over both position indices at once; softmax_i runs over the key "
                                   "index i alone, for each fixed j."),
    "scaled": ("scaled", "the energy is divided by sqrt(C'): the Transformer's scaled dot product. e_{b,j,i} is the "
                         "plain sum over c."),
    "qk_swapped": ("qk_swapped", "q and k play each other's role: e_{b,j,i} pairs query position j (an index of q) "
                                 "with key position i (an index of k). The same output also comes from two mistakes "
                                 "that combine: a softmax over the query index AND the second sum taken over the "
                                 "other index of s."),
    "missing_transpose": ("missing_transpose",
                          "the second sum runs over the wrong index of s: out_{b,c,j} sums s_{b,j,i} v_{b,c,i} over "
                          "i, the index shared by s's last axis and v. With the indices of s exchanged, each output "
                          "mixes the values with a column of s, which does not sum to 1."),
}


ADVICE = ADVICE_PAM  # label -> (mistake id, advice), as every chapter names it; the tensors are in checks/expected/
MAP_ADVICE = {"columns": ADVICE_PAM["softmax_dim1"][1], "batch": ADVICE_PAM["softmax_dim0"][1],
              "all": ADVICE_PAM["softmax_all"][1]}


def _stored_projections(data: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, C', N), k (B, C', N) and v (B, C, N) of the stored input under the stored weights, in float64."""
    x, w = data["x"].double(), data["weights"]
    q, k, v = (F.conv2d(x, w[f"{name}.weight"].double(), w[f"{name}.bias"].double()).flatten(2)
               for name in ("query_conv", "key_conv", "value_conv"))
    return q, k, v


def _query_view_map(data: dict) -> torch.Tensor:
    """The map when the queries (B, C', N) are reshaped to (B, N, C') instead of transposed."""
    q, k, _ = _stored_projections(data)
    b, c, n = q.shape
    return (q.reshape(b, n, c) @ k).softmax(-1)


def _query_view_forward(data: dict) -> torch.Tensor:
    """forward(x) with gamma = 1 when the queries are reshaped instead of transposed."""
    _, _, v = _stored_projections(data)
    x = data["x"].double()
    out = v @ _query_view_map(data).transpose(1, 2)
    return float(data["weights"]["gamma"].reshape(())) * out.reshape(x.shape) + x


def _key_as_query_map(data: dict) -> torch.Tensor:
    """The map when key_conv gives the queries too: softmax(k^T k) over each row."""
    _, k, _ = _stored_projections(data)
    return (k.transpose(1, 2) @ k).softmax(-1)


def _forward_with(data: dict, a: torch.Tensor) -> torch.Tensor:
    """forward(x) with gamma = 1 for the map ``a`` (B, N, N) in place of the right one."""
    _, _, v = _stored_projections(data)
    x = data["x"].double()
    return float(data["weights"]["gamma"].reshape(())) * (v @ a.transpose(1, 2)).reshape(x.shape) + x


def _residual_diagnoses(data: dict) -> list[tuple[str, torch.Tensor, str]]:
    """forward(x) with gamma = 1 for three wrong ways of putting Eq. (2) together (the right map each time)."""
    q, k, v = _stored_projections(data)
    x = data["x"].double()
    a = (q.transpose(1, 2) @ k).softmax(-1)
    gamma = float(data["weights"]["gamma"].reshape(()))
    out = (v @ a.transpose(1, 2)).reshape(x.shape)
    out_x = (x.flatten(2) @ a.transpose(1, 2)).reshape(x.shape)
    return [(RESIDUAL_PRODUCT, gamma * out * x,
             "the attention's output is MULTIPLIED with the input. Eq. (2) adds the input back: E = alpha * out + A "
             "(chapter 00, §8, shows the same slip in a blog's code)."),
            (NO_VALUE_CONV, gamma * out_x + x,
             "the map mixes the input x itself. Eq. (2) mixes the values D, a third 1x1 convolution of A (C channels "
             "out), whose weights are the point of value_conv."),
            (VALUE_RESIDUAL, gamma * out + v.reshape(x.shape),
             "what is added back is value_conv(x). Eq. (2) adds the block's input A itself, as a residual.")]


def _out_not_permuted_forward(data: dict) -> torch.Tensor:
    """forward(x) with gamma = 1 when the (B, N, C) result s @ v^T is reshaped straight to (B, C, H, W)."""
    q, k, v = _stored_projections(data)
    x = data["x"].double()
    a = (q.transpose(1, 2) @ k).softmax(-1)
    out = (a @ v.transpose(1, 2)).reshape(x.shape)
    return float(data["weights"]["gamma"].reshape(())) * out + x


def _map_variants(data: dict) -> list[tuple[str, torch.Tensor, str]]:
    """Wrong maps (B, N, N) of the stored input, each with its mistake id and advice."""
    q, k, _ = _stored_projections(data)
    b, c, n = k.shape
    h, w = data["x"].shape[-2:]
    energy = q.transpose(1, 2) @ k
    k_view = k.reshape(b, c, h, w).reshape(b, n, c).transpose(1, 2)
    unit_q, unit_k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return [
        (KEY_AS_QUERY, (q.transpose(1, 2) @ q).softmax(-1),
         "the map matches softmax(q^T q): the same convolution gives the queries and the keys. Eq. (1) pairs each "
         "query from one projection with every key from the other."),
        (KEY_VIEW, (q.transpose(1, 2) @ k_view).softmax(-1),
         "the keys were reshaped (view/reshape) to (B, N, C') and then transposed: a reshape keeps the order of the "
         "numbers, so a 'key column' holds pieces of several channels of neighbouring positions (chapter 00, §6)."),
        (QK_RELU, (torch.relu(q).transpose(1, 2) @ torch.relu(k)).softmax(-1),
         "a ReLU on the queries and keys. The paper's v3 text has one (cell 1 says what the authors answered); the "
         "official code, which this chapter follows, has the 1x1 convolutions alone."),
        (DOUBLE_SOFTMAX, energy.softmax(-1).softmax(-1),
         "the softmax is applied twice (the rows of the map still sum to 1, but they are almost flat): Eq. (1) "
         "normalises the energy once."),
        (COSINE_ENERGY, (unit_q.transpose(1, 2) @ unit_k).softmax(-1),
         "the queries and keys are normalised to unit length (a cosine similarity): Eq. (1)'s energy is the plain "
         "dot product q_j . k_i."),
    ]


def _sigmoid_map(data: dict) -> torch.Tensor:
    q, k, _ = _stored_projections(data)
    return torch.sigmoid(q.transpose(1, 2) @ k)


_KEY_AS_QUERY_ADVICE = ("the map matches softmax(k^T k): the same convolution gives the queries and the keys. Eq. (1) "
                        "pairs each query from one projection with every key from the other.")
_SIGMOID_ADVICE = ("the map matches a sigmoid of the energy: each entry squashed on its own, so a row does not add up "
                   "to 1. Eq. (1) normalises each query's row over all keys together.")


def _expect_floor_width(cls: type) -> None:
    """C' for a C that reduction does not divide (every size of the value checks divides evenly)."""
    channels, reduction = 20, 8
    module = build(cls, channels, reduction)
    weight = getattr(getattr(module, "query_conv", None), "weight", None)
    if isinstance(weight, torch.Tensor) and weight.shape[0] == -(-channels // reduction) != channels // reduction:
        raise CheckFailure(
            f"{cls.__name__}({channels}, reduction={reduction}).query_conv has {weight.shape[0]} output channels: "
            f"the width {channels} / {reduction} was rounded up.\n  Likely mistake: the official code's width is an "
            "integer division, which rounds down.", mistake=HIDDEN_WIDTH)
    passed()


_QUERY_VIEW_ADVICE = ("the queries were reshaped (view/reshape) from (B, C', N) to (B, N, C') instead of transposed: "
                      "a reshape keeps the order of the numbers, so a 'query row' holds pieces of several channels "
                      "of neighbouring positions (chapter 00, §6, shows the trap on pixels).")


def _layouts(method, x: torch.Tensor, *, what: str) -> None:
    """The same result for a channels_last input and a non-contiguous view of it as for a contiguous one."""
    expect_layouts(method, (x.clone(),), what=what)


def _rows_sum_to_one(a: torch.Tensor, *, what: str) -> None:
    expect_rows_sum_to_one(a, what=what, advice=MAP_ADVICE)


def _in_float64(fn: Callable, *args: torch.Tensor, doing: str) -> torch.Tensor:
    """``fn`` on float64 copies of ``args``: the result must be float64 too (compared strictly by the caller)."""
    doing = f"{doing} in float64"
    result = _call(fn, *(t.double().clone() for t in args), doing=doing)
    expect_follows(result, dtype=torch.float64, doing=doing)
    return result


def realistic_weights(channels: int = 64, reduction: int = 8, *, seed: int = 56) -> dict[str, torch.Tensor]:
    hidden = channels // reduction
    return {"query_conv.weight": 0.5 * seeded_randn(hidden, channels, 1, 1, seed=seed),
            "query_conv.bias": torch.zeros(hidden, dtype=torch.float64),
            "key_conv.weight": 0.5 * seeded_randn(hidden, channels, 1, 1, seed=seed + 1),
            "key_conv.bias": torch.zeros(hidden, dtype=torch.float64),
            "value_conv.weight": seeded_randn(channels, channels, 1, 1, seed=seed + 2) / channels,
            "value_conv.bias": torch.zeros(channels, dtype=torch.float64),
            "gamma": torch.ones(1, dtype=torch.float64)}


def _loaded(cls: type, data: dict, *, reduction: int = 8) -> tuple[nn.Module, str]:
    channels = data["channels"]
    what = f"{cls.__name__}({channels}" + (f", reduction={reduction})" if reduction != 8 else ")")
    module = build(cls, channels, reduction)  # the defaults are checked on their own (expect_defaults)
    check_pam_structure(module, channels, reduction, what=what)
    load_pam_weights(module, data["weights"], what=what)
    return module, what


@exercise("PositionAttention.attention", budget_s=10)
def check_pam_attention(cls: type) -> None:
    E = expected(CHAPTER)["attention"]
    module, what = _loaded(cls, E)
    x = E["x"]
    a = expect_position_map(module, x, what=what, call=_call,
                            returns="the reweighted features. attention(x) returns the map s of Eq. (1), (B, N, N); "
                                    "forward(x) applies it.",
                            hint="the map is (B, N, N) with N = H * W: query (B, N, C') @ key (B, C', N).")
    expect(not is_close(a, _sigmoid_map(E)), f"attention(x) has the wrong values.\n  Likely mistake: {_SIGMOID_ADVICE}",
           mistake=SIGMOID_MAP)
    _rows_sum_to_one(a, what="attention(x)")
    diagnoses = named(E["diagnoses"], ADVICE_PAM) + [(QUERY_VIEW, _query_view_map(E), _QUERY_VIEW_ADVICE),
                                                    (KEY_AS_QUERY, _key_as_query_map(E), _KEY_AS_QUERY_ADVICE)]
    diagnoses += _map_variants(E)
    expect_close(a, E["a"], what="attention(x)", diagnoses=diagnoses)
    # float64 in, float64 out, at float64 precision
    twin = copy.deepcopy(module).double()
    a64 = _in_float64(twin.attention, x, doing=f"{what}.double().attention(x)")
    expect_close(a64, E["a"], what="attention(x) in float64", diagnoses=diagnoses)
    # any memory layout, as the exercise states: channels_last and a non-contiguous view
    _layouts(module.attention, x, what=f"{what}.attention(x)")
    # the reduction argument is used, and C' rounds down where C / r is not whole
    _expect_floor_width(cls)
    module4, what4 = _loaded(cls, E["r4"], reduction=4)
    a4 = _call(module4.attention, E["x"].clone(), doing=f"{what4}.attention(x)")
    close_named(a4, E["r4"]["a"], what=f"{what4}.attention(x)", diagnoses={}, advice=ADVICE_PAM)
    # realistic features: a softmax written as exp / sum overflows here
    big = realistic_input()
    module64, what64 = build(cls, big.shape[1]), f"{cls.__name__}({big.shape[1]})"
    load_pam_weights(module64, realistic_weights(big.shape[1]), what=what64)
    a64 = _call(module64.float().attention, big, doing=f"{what64}.attention(x) on ReLU features of shape "
                                                       f"{fmt_shape(big.shape)}")
    expect_finite(a64, what=f"{what64}.attention(x) on ReLU features of shape {fmt_shape(big.shape)} (float32)")
    _rows_sum_to_one(a64, what=f"{what64}.attention(x) on ReLU features")
    expect_device_free(module, x, what=what, method="attention")
    expect_method_gradients(module, "attention", x, what=what)


@exercise("PositionAttention.forward", budget_s=10)
def check_pam_forward(cls: type) -> None:
    E = expected(CHAPTER)["forward"]
    channels = E["channels"]
    fresh = build(cls, channels)
    gamma = getattr(fresh, "gamma", None)
    if isinstance(gamma, torch.Tensor):
        expect(bool(torch.all(gamma.detach() == 0)),
               f"a new {cls.__name__}({channels}) has gamma = {gamma.detach().reshape(-1).tolist()}; the paper "
               "initialises it (alpha) to 0, so the block starts as the identity: nn.Parameter(torch.zeros(1)).",
               mistake="gamma_init")
    module, what = _loaded(cls, E)  # gamma = 1 in the stored weights
    x = E["x"]
    y = expect_block_forward(module, x, what=what, returns="gamma * out + x", call=_call)
    diagnoses = (named(E["diagnoses"], ADVICE_PAM) + hw_diagnoses(E["y"], base=x.double())
                 + [(QUERY_VIEW, _query_view_forward(E), _QUERY_VIEW_ADVICE),
                    (KEY_AS_QUERY, _forward_with(E, _key_as_query_map(E)), _KEY_AS_QUERY_ADVICE),
                    (SIGMOID_MAP, _forward_with(E, _sigmoid_map(E)), _SIGMOID_ADVICE),
                    (OUT_NOT_PERMUTED, _out_not_permuted_forward(E),
                     "the weighted sum, one C-vector per position (B, N, C), was reshaped straight to (B, C, H, W): a "
                     "reshape keeps the order of the numbers, so channels and positions get mixed (chapter 00, §6). "
                     "Bring the channels first before the reshape, or compute the product in the order that gives "
                     "(B, C, N).")]
                 + [(key, _forward_with(E, a), advice) for key, a, advice in _map_variants(E)]
                 + _residual_diagnoses(E))
    expect_close(y, E["y"], what="forward(x) with gamma = 1", diagnoses=diagnoses)
    # with gamma = 1, gamma * (out + x) is out + x: a new module (gamma = 0) tells them apart
    if isinstance(gamma, torch.Tensor) and isinstance(fresh, nn.Module):
        with torch.no_grad():
            y0 = _call(fresh, x.clone(), doing=f"a new {cls.__name__}({channels})(x)")
        expect(not (isinstance(y0, torch.Tensor) and y0.shape == x.shape and float(y0.abs().max()) == 0.0),
               f"a new {cls.__name__}({channels}) (gamma = 0) returns zeros, not x.\n  Likely mistake: gamma multiplies "
               "the residual too; in Eq. (2) alpha scales the attention's output alone, and A is added after.",
               mistake=GAMMA_ON_RESIDUAL)
    # float64 in, float64 out, at float64 precision
    twin = copy.deepcopy(module).double()
    y64 = _in_float64(twin, x, doing=f"{what}.double()(x)")
    expect_close(y64, E["y"], what="forward(x) with gamma = 1 in float64", diagnoses=diagnoses)
    # any memory layout, as the exercise states: channels_last and a non-contiguous view
    _layouts(module, x, what=f"{what}(x)")
    # autograd reaches the input and every parameter
    xg = x.clone().requires_grad_(True)
    y = _call(module, xg, doing=f"{what}(x) with x.requires_grad")
    _call(lambda: (y * E["probe"]).sum().backward(), doing="backward through forward(x)")
    grads = {n: p.grad for n, p in module.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all()]
    map_only = {n for n in grads if n.split(".")[0] in ("query_conv", "key_conv")}
    expect(xg.grad is None or not missing or set(missing) != map_only,
           f"after backward, no gradient reached {', '.join(missing)}, and every other parameter got one.\n  Likely "
           "mistake: the map was cut from the graph in forward (.detach(), .data, torch.no_grad()); the query and key "
           "convolutions reach the loss only through it.", mistake=DETACHED_MAP)
    gamma_grad = grads.get("gamma", 0)
    expect(not (xg.grad is not None and missing == ["gamma"] and gamma_grad is None),
           "after backward, gamma has no gradient while every other parameter has one: forward does not use gamma.\n"
           "  Likely mistake: out + x. In Eq. (2) alpha (gamma) scales the attention's output before A is added, "
           "and it is learned from 0.", mistake=GAMMA_UNUSED)
    expect(xg.grad is not None and not missing,
           f"after backward, no finite gradient reached {'x' if xg.grad is None else ', '.join(missing)}.",
           mistake="no_grad")
    gamma_on_input = (E["x"].double() * E["probe"].double()).sum()
    expect_close(module.gamma.grad.reshape(()), E["gamma_grad"].reshape(()), what="the gradient of gamma",
                 diagnoses=[(GAMMA_ON_INPUT, gamma_on_input.reshape(()),
                             "the gradient of gamma is that of gamma * x: gamma scales the input. In Eq. (2) alpha "
                             "scales the attention's output, and A is added as it is.")])
    expect_device_free(module, x, what=what)
    expect_informative_defaults(cls, (channels,), {"reduction": 8}, x, what=cls.__name__,
                                layout=lambda channels, reduction: channels // reduction)


@exercise("pam_einops", budget_s=10)
def check_pam_einops(fn: Callable) -> None:
    E = expected(CHAPTER)["einops"]
    q, k, v = E["q"], E["k"], E["v"]
    args = (q.clone(), k.clone(), v.clone())
    out = _call(fn, *args, doing=f"pam_einops(q {fmt_shape(q.shape)}, k {fmt_shape(k.shape)}, v {fmt_shape(v.shape)})")
    expect(all(torch.equal(a, b) for a, b in zip(args, (q, k, v))),
           "pam_einops changed one of its inputs in place; compute new tensors.", mistake=MODIFIES_INPUT)
    expect_no_upcast(out, q, what="pam_einops(q, k, v)")
    expect_shape(out, v.shape, what="pam_einops(q, k, v)",
                 hint="the output has the value's shape (B, C, H, W): for each position j, sum_i s[j, i] v[:, i].")
    b, c, h, w = v.shape
    target = E["out"]
    diagnoses = named(E["diagnoses"], ADVICE_EINSUM) + hw_diagnoses(target) + [
        (OUT_NOT_PERMUTED, rearrange(target, "b c h w -> b (h w) c").reshape(b, c, h, w),
         "the result, one C-vector per position (B, N, C), was reshaped straight to (B, C, H, W): a reshape keeps the "
         "order of the numbers, so channels and positions get mixed (chapter 00, §6). The output pattern of the "
         "second sum decides the order of the axes."),
        (MISSING_SOFTMAX, torch.einsum("bji,bci->bcj", torch.einsum("bcj,bci->bji", q.double().flatten(2),
                                                                     k.double().flatten(2)),
                                       v.double().flatten(2)).reshape(b, c, h, w),
         "the energy itself weighs the values: Eq. (1)'s softmax over the key index i, for each fixed j, is missing."),
        (EINSUM_RESIDUAL, target + v.double(),
         "the values are added to the weighted sum (out + v). pam_einops is Eq. (2)'s sum alone, before alpha and the "
         "residual: forward adds the input (not v) back."),
    ]
    expect_close(out, target, what="pam_einops(q, k, v)", diagnoses=diagnoses)
    out64 = _in_float64(fn, q, k, v, doing="pam_einops(q, k, v)")
    expect_close(out64, target, what="pam_einops(q, k, v) in float64", diagnoses=diagnoses)
    out2 = _call(fn, E["q2"].clone(), E["k2"].clone(), E["v2"].clone(), doing="pam_einops on a second input")
    close_named(out2, E["out2"], what="pam_einops on a second input (other sizes)", diagnoses={},
                advice=ADVICE_EINSUM)
    # realistic magnitudes (energies in the hundreds), then gradients to q, k and v
    big = [100 * t.float() for t in (E["q2"], E["k2"])] + [E["v2"].float()]
    large = _call(fn, *big, doing="pam_einops on queries and keys of realistic size (float32)")
    expect_finite(large, what=f"pam_einops(q, k, v) for float32 q and k up to {big[0].abs().max().item():.0f} in size")
    expect_gradients(fn, (E["q2"], E["k2"], E["v2"]), doing="pam_einops(q, k, v)", names=("q", "k", "v"))
    # a plain function's protections, as a module's: the device watch, float64 throughout, its inputs' layouts
    args64 = tuple(t.double() for t in (q, k, v))
    expect_function_contract(fn, args64, what="pam_einops(q, k, v)", target64=E["out"])
    expect_layouts(fn, args64, what="pam_einops(q, k, v)")


# --------------------------------------------------------------------------------------------
# conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch05_danet_pam.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
_EVERY_TENSOR = ("That count is short of some of the module's learnable tensors: list every one of them, as "
                 "named_parameters() would, with its size.")
Q_PAM_PARAMS = Question(
    "q_pam_params", "int", key="baee9d85ae380b0f8457",
    doc="The parameters of a PAM with C = 512 and reduction 8 (biases and gamma included).",
    wrong={
        "7919b174b04d0ff57cca": (
            "missing_bias", "That count leaves out the convolutions' biases (nn.Conv2d keeps bias=True, as the "
                            "official code does)."),
        "d9b14f7e19682ed41a4a": ("param_count", _EVERY_TENSOR),
        "d3b57f9f779ffbfca7d4": ("param_count", _EVERY_TENSOR),
        "54a385fec452d2286ef4": (
            "param_count", "value_conv maps C to C channels (the values keep the input's width); only the query and "
                           "key convolutions reduce to C' = C / 8."),
        "8a70ced732fc7770a912": (
            QK_FULL_WIDTH, "That gives the query and key convolutions the full width C, as the paper's text does. "
                           "This module follows the official code and its reduction (§2)."),
        "cc3e76ad18ffce963290": (
            CONV_BIAS_COUNT, "That gives the query and key convolutions C biases each. A convolution has one bias per "
                             "OUTPUT channel: how many channels do they output?"),
    },
    advice="Count the module's learnable tensors one by one, from the widths of §2 and the rule for a 1x1 "
           "convolution above the question.")

_GAMMA_FACTOR = "value_conv's output is multiplied by gamma too, like the map's."
Q_ZERO_GAMMA_GRADS = Question(
    "q_zero_gamma_grads", "choices", options="abcd", key="a6e952661a005e108ed6",
    doc="Which of a new PAM's parameters (a)-(d) get a non-zero gradient while gamma = 0.",
    wrong={
        "cd27401d6f7403b10d88": (
            ZERO_GAMMA_GRADIENT, "The convolutions reach the loss only through gamma * out, so their gradient is "
                                 "gamma times d out / d theta: zero while gamma = 0. Which factor is not multiplied "
                                 "by gamma?"),
        "2c83eab113f93655206f": (
            ZERO_GAMMA_GRADIENT, "Each convolution's gradient carries the factor gamma = 0. What is dE/d gamma?"),
        "f6c878b5ed1ab6fe4d95": (ZERO_GAMMA_GRADIENT, _GAMMA_FACTOR),
        "e697855c5c3cf99812f2": (ZERO_GAMMA_GRADIENT, _GAMMA_FACTOR),
    },
    advice="Write E = gamma * out(theta) + x and differentiate with respect to each parameter at gamma = 0.")

Q_MAP_MIB = Question(
    "q_map_mib", "float", digits=3, key="7fc10430feb623ccf1c4",
    doc="The MiB of one image's N x N float32 map (a 768 x 768 crop at output stride 8).",
    wrong={
        "b2724549885bb18e173d": (
            MEMORY_UNITS, "That is in MB (10**6 bytes); the question asks MiB (2**20 bytes)."),
        "95f2a1db7407d0161e35": (
            MAP_SIZE, "That is N numbers; the map holds one number per (query, key) pair: N x N."),
        "e9221f0da60a6916e10d": (
            OUTPUT_STRIDE, "That uses the crop's 768 x 768 pixels; PAM runs on the feature map, 8 times smaller on "
                           "each side."),
        "3f9a4cbf32fd3d91e29e": (
            BYTES_PER_NUMBER, "That counts the map's numbers (in units of 2**20), not its bytes: how many bytes does "
                              "one float32 take?"),
        "cc8cdeb8c06874010aaa": (
            BYTES_PER_NUMBER, "That counts 8 bytes per number (float64), or two copies of the map; the question asks "
                              "for one float32 copy."),
        "8835ecfa9dcc436fbc74": (
            OUTPUT_STRIDE, "That is the map at output stride 16 (a 48 x 48 grid); the setting above has another "
                           "output stride."),
        "59cb1bbad0333c5ac015": (
            MEMORY_UNITS, "That is in GiB (2**30 bytes); the question asks MiB (2**20 bytes)."),
    },
    advice="Which grid does PAM run on in that setting, how many numbers does its map hold for that grid, and how "
           "many bytes does a float32 take? A MiB is a binary unit.")

_POSITIONS_ALIKE = ("That set has PAM tell pixels apart by where they sit. Go through its steps (1x1 convolutions, "
                    "dot products, a softmax over all keys): which of them could know a pixel's position?")
_CONTRADICTION = ("Two statements of that set contradict each other for any input whose output differs between "
                  "positions: follow the residual, which feature is added at position j after the shuffle?")
Q_EQUIVARIANCE = Question(
    "q_equivariance", "choices", options="abcd", key="4969222017600858e230",
    doc="Which statements (a)-(d) about PAM and a permutation of the pixels hold.",
    wrong={
        "a470e3962bb8dd0aa55a": (
            EQUIVARIANCE, "A statement is missing: what happens to row j and column i of the map when query j and "
                          "key i both move?"),
        "f5358ac4366453f89cbf": (
            EQUIVARIANCE, "Follow the permutation one step further than the map: through out = V s^T and the "
                          "residual."),
        "90c1a4149ac004b8dc3e": (
            INVARIANCE, "That set takes 'PAM does not know where a pixel is' to mean 'the output ignores the "
                        "shuffle'. Follow the residual: which feature is added at position j after the shuffle?"),
        "bf6d84745eb81509c821": (INVARIANCE, _CONTRADICTION),
        "29064d0e3b0855e9239a": (INVARIANCE, _CONTRADICTION),
        "22b0af4b84fb6ffbe129": (
            INVARIANCE, "Follow the permutation from the map through out = V s^T and the residual: does the output "
                        "stay where it was, or move?"),
        "06bab55b0484a6278893": (
            INVARIANCE, "Test each statement on a shuffle of a small input's pixels: the map, the output, and "
                        "whether any step of PAM depends on where a pixel sits."),
        "cc8e6e89e1285a9fbfcd": (EQUIVARIANCE, _POSITIONS_ALIKE),
        "7465de0ab51a1fbab845": (EQUIVARIANCE, _POSITIONS_ALIKE),
    },
    advice="Follow a permutation through each step: 1x1 convolutions act on each position alone, the energy pairs "
           "every query with every key, the softmax runs over all keys.")

define_question_checks(globals(), Q_PAM_PARAMS, Q_ZERO_GAMMA_GRADS, Q_MAP_MIB, Q_EQUIVARIANCE)
