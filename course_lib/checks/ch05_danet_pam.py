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
from torch import nn

from .questions import Question, define_question_checks
from .toolkit import (
    build,
    call_with_hints,
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
    load_pam_weights,
    named,
    PAM_ADVICE,
    pam_close,
    realistic_input,
    seeded_randn,
)

CHAPTER = "ch05_danet_pam"

MODIFIES_INPUT = "modifies_input"
ZERO_GAMMA_GRADIENT = define_mistake(
    "zero_gamma_gradient", "a parameter is said to get a gradient through gamma * out while gamma = 0")
MEMORY_UNITS = define_mistake("memory_units", "a memory figure in MB (10**6 bytes) where MiB (2**20 bytes) is asked")
OUTPUT_STRIDE = define_mistake("output_stride", "the size of the image used where the feature map's is meant")
MAP_SIZE = define_mistake("map_size", "the attention map counted as N numbers instead of N x N")
EQUIVARIANCE = define_mistake("equivariance", "a wrong statement about how PAM treats a permutation of the pixels")
INVARIANCE = define_mistake(
    "invariance", "PAM's output said not to change when the pixels are shuffled (invariance taken for equivariance)")

_call = call_with_hints  # PAM's crashes are named by the generic hints (in-place input, NameError)
# PAM's advice, layout check and loaders are shared with chapter 06 through the toolkit (PAM_ADVICE, pam_close,
# check_pam_structure, load_pam_weights, pam_parameter_count, realistic_input).
ADVICE = PAM_ADVICE  # label -> (mistake id, advice), as every chapter names it; the tensors are in checks/expected/
MAP_ADVICE = {"columns": PAM_ADVICE["softmax_dim1"][1], "batch": PAM_ADVICE["softmax_dim0"][1],
              "all": PAM_ADVICE["softmax_all"][1]}


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
    _rows_sum_to_one(a, what="attention(x)")
    pam_close(a, E["a"], what="attention(x)", diagnoses=E["diagnoses"])
    # float64 in, float64 out, at float64 precision
    twin = copy.deepcopy(module).double()
    a64 = _in_float64(twin.attention, x, doing=f"{what}.double().attention(x)")
    pam_close(a64, E["a"], what="attention(x) in float64", diagnoses=E["diagnoses"])
    # the reduction argument is used
    module4, what4 = _loaded(cls, E["r4"], reduction=4)
    a4 = _call(module4.attention, E["x"].clone(), doing=f"{what4}.attention(x)")
    pam_close(a4, E["r4"]["a"], what=f"{what4}.attention(x)", diagnoses={})
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
    expect_close(y, E["y"], what="forward(x) with gamma = 1",
                 diagnoses=named(E["diagnoses"], PAM_ADVICE) + hw_diagnoses(E["y"], base=x.double()))
    # float64 in, float64 out, at float64 precision
    twin = copy.deepcopy(module).double()
    y64 = _in_float64(twin, x, doing=f"{what}.double()(x)")
    pam_close(y64, E["y"], what="forward(x) with gamma = 1 in float64", diagnoses=E["diagnoses"])
    # autograd reaches the input and every parameter
    xg = x.clone().requires_grad_(True)
    y = _call(module, xg, doing=f"{what}(x) with x.requires_grad")
    _call(lambda: (y * E["probe"]).sum().backward(), doing="backward through forward(x)")
    grads = {n: p.grad for n, p in module.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all()]
    expect(xg.grad is not None and not missing,
           f"after backward, no finite gradient reached {'x' if xg.grad is None else ', '.join(missing)}.",
           mistake="no_grad")
    expect_close(module.gamma.grad.reshape(()), E["gamma_grad"].reshape(()), what="the gradient of gamma")
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
    expect_shape(out, v.shape, what="pam_einops(q, k, v)",
                 hint="the output has the value's shape (B, C, H, W): for each position j, sum_i s[j, i] v[:, i].")
    pam_close(out, E["out"], what="pam_einops(q, k, v)", diagnoses=E["diagnoses"])
    out64 = _in_float64(fn, q, k, v, doing="pam_einops(q, k, v)")
    pam_close(out64, E["out"], what="pam_einops(q, k, v) in float64", diagnoses=E["diagnoses"])
    out2 = _call(fn, E["q2"].clone(), E["k2"].clone(), E["v2"].clone(), doing="pam_einops on a second input")
    pam_close(out2, E["out2"], what="pam_einops on a second input (other sizes)", diagnoses={})
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
Q_PAM_PARAMS = Question(
    "q_pam_params", "int", key="baee9d85ae380b0f8457",
    doc="The parameters of a PAM with C = 512 and reduction 8 (biases and gamma included).",
    wrong={
        "7919b174b04d0ff57cca": (
            "missing_bias", "That is the count without the biases: each 1x1 convolution also has one bias per "
                            "output channel (nn.Conv2d keeps bias=True, as the official code does)."),
        "d9b14f7e19682ed41a4a": ("param_count", "Close: gamma is a parameter too (one number)."),
        "d3b57f9f779ffbfca7d4": ("param_count", "That leaves out the three convolutions' biases and gamma."),
        "54a385fec452d2286ef4": (
            "param_count", "value_conv maps C to C channels (the values keep the input's width); only the query and "
                           "key convolutions reduce to C' = C / 8."),
    },
    advice="Count each 1x1 convolution as (input channels x output channels) weights plus one bias per output "
           "channel: query_conv and key_conv map C = 512 to C' = 512 // 8 channels, value_conv maps 512 to 512, "
           "and gamma is one number.")

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
    },
    advice="Feature side = crop side / output stride; N = side x side; the map has N x N entries of 4 bytes; "
           "1 MiB = 2**20 bytes.")

_POSITIONS_ALIKE = ("(d): every step of PAM treats positions alike (1x1 convolutions, dot products, a softmax over "
                    "all keys); nothing in it knows where a pixel sits.")
Q_EQUIVARIANCE = Question(
    "q_equivariance", "choices", options="abcd", key="4969222017600858e230",
    doc="Which statements (a)-(d) about PAM and a permutation of the pixels hold.",
    wrong={
        "a470e3962bb8dd0aa55a": (
            EQUIVARIANCE, "A statement is missing: what happens to row j and column i of the map when query j and "
                          "key i both move?"),
        "f5358ac4366453f89cbf": (
            EQUIVARIANCE, "What does (a) imply for out = V s^T, and for the residual x?"),
        "90c1a4149ac004b8dc3e": (
            INVARIANCE, "The output moves with the input: E_j depends on A_j, and A_j has moved."),
        "bf6d84745eb81509c821": (
            INVARIANCE, "(b) and (c) cannot both hold unless the output is constant over positions."),
        "29064d0e3b0855e9239a": (
            INVARIANCE, "Of these, (c) is not true. Follow the residual: after the shuffle, position j of forward(Px) "
                        "adds the feature of the pixel that moved to j, not its old A_j. By (b), forward(Px) = "
                        "forward(x) would mean that shuffling forward(x) leaves it unchanged, which only an output "
                        "with the same value at every position does."),
        "22b0af4b84fb6ffbe129": (
            INVARIANCE, "What does (a) imply for out = V s^T and for the residual x: does the output stay where it "
                        "was (c), or move with the pixels?"),
        "06bab55b0484a6278893": (
            INVARIANCE, "(c): the output moves with the input, since E_j adds A_j and A_j has moved. (d): nothing in "
                        "PAM knows where a pixel sits."),
        "cc8e6e89e1285a9fbfcd": (EQUIVARIANCE, _POSITIONS_ALIKE),
        "7465de0ab51a1fbab845": (EQUIVARIANCE, _POSITIONS_ALIKE),
    },
    advice="Follow a permutation through each step: 1x1 convolutions act on each position alone, the energy pairs "
           "every query with every key, the softmax runs over all keys.")

define_question_checks(globals(), Q_PAM_PARAMS, Q_ZERO_GAMMA_GRADS, Q_MAP_MIB, Q_EQUIVARIANCE)
