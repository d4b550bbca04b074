"""Visible checks of chapter 08, ECA and Coordinate Attention.

    check_adaptive_kernel_size(adaptive_kernel_size)      k = psi(C), Eq. (12), odd by adding 1 when even
    check_eca(EfficientChannelAttention)                  the 1-D convolution across channels
    check_directional_pool(directional_pool)              the row means z^h and the column means z^w
    check_coordinate_attention(CoordinateAttention)       shared transform, split, two gates, the product
    check_attention_parameters(attention_parameters)      SE, ECA and CA parameters from their ingredients

They compare with values stored in ``checks/expected/ch08_eca_coordatt.pt`` (built from the reference
modules by ``hidden/ch08_eca_coordatt.py``) and never import the reference modules. Known mistakes are
named from the outputs they produce, which were computed when the expected values were built.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping, Sequence

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
    expect_close,
    expect_follows,
    expect_device_free,
    expect_function_contract,
    expect_gradients,
    expect_informative_defaults,
    expect_int,
    expect_layouts,
    expect_normalisation_modes,
    expect_module_gradients,
    expect_shape,
    expected,
    fmt_shape,
    forward_keeps_input,
    is_close,
    load_by_name,
    normalisation_explains,
    passed,
)
from .questions import Question, define_question_checks

__all__ = ["check_adaptive_kernel_size", "check_eca", "check_directional_pool", "check_coordinate_attention",
           "check_attention_parameters"]

CHAPTER = "ch08_eca_coordatt"

for _id, _text in (
    ("nearest_odd_tie", "a tie of 'nearest odd' (t exactly even) resolved downwards; the course adds 1"),
    ("even_kernel", "an even kernel size: the rule's t is not made odd"),
    ("round_not_floor", "t is rounded (or rounded up) where the rule floors it"),
    ("log_base", "a natural (or base-10) logarithm where the rule takes log2"),
    ("constants_ignored", "gamma and b are fixed at 2 and 1 whatever is passed"),
    ("fixed_kernel", "a fixed k = 3 (the official code's default) where psi(C) is asked"),
    ("kernel_clamp", "k clamped to at least 3 (timm) where the rule gives 1"),
    ("kernel_ignored", "an explicit kernel_size is ignored"),
    ("padding_shift", "the zero padding sits on one side only: the gates are shifted along the channels"),
    ("circular_padding", "circular padding (timm's CecaModule) where ECA pads with zeros"),
    ("flipped_kernel", "the kernel is flipped (a true convolution) where Conv1d cross-correlates"),
    ("max_pool", "max pooling where the mechanism averages"),
    ("conv_over_space", "a C -> C convolution over the (trivial) spatial axis instead of a 1-channel one across channels"),
    ("per_channel_kernel", "one kernel per channel (ECA-NS, Eq. (7)) where ECA shares one kernel (Eq. (8))"),
    ("channel_axis", "the pooled vector is not laid out as one signal of length C, (B, 1, C)"),
    ("swapped_pool", "the row and column means are swapped (a mean over the wrong axis)"),
    ("not_transposed", "f^w (or z^w) is not transposed back to a row (B, ., 1, W)"),
    ("split_order", "f is split back in the wrong order or sizes ([W, H] for [H, W])"),
    ("gates_swapped", "gates(x) returns (g^w, g^h) instead of (g^h, g^w)"),
    ("activation", "ReLU (or none) where the official code uses h_swish"),
    ("hard_sigmoid_gate", "the official h_sigmoid where the gates use the sigmoid"),
    ("missing_bn", "the BatchNorm of the shared transform is missing or unused"),
    ("convs_swapped", "conv_h is applied to f^w and conv_w to f^h"),
    ("conv_reused", "one of conv_h and conv_w serves both gates; the other is left unused"),
    ("residual", "a residual x + x * g where CA's y = x * g^h * g^w has none"),
    ("one_gate", "forward applies only one of the two gates"),
    ("min_hidden", "the shared transform's width lacks the floor of 8: max(8, C // r)"),
    ("not_shared", "two transforms F_1, one per direction, where one is shared"),
    ("bn_not_counted", "the BatchNorm's two learnable vectors are not counted"),
    ("buffers_counted", "the BatchNorm's running statistics (buffers, not parameters) are counted"),
    ("one_gate_conv", "one gate convolution counted where CA has two (F_h and F_w)"),
    ("gate_added", "the gate is added to x where it should multiply it"),
    ("conv_padding", "the 1-D convolution's padding changes the length C of the channel signal"),
    ("activation_silu", "SiLU (the CA README's tip) where the official code, and the exercise, use h_swish"),
    ("bn_eps", "the BatchNorm's eps differs from BatchNorm2d's default (1e-5)"),
    ("width_round_up", "the shared transform's width rounds C / r up where the official code floors it (C // r)"),
    ("kernel_type", "the kernel size is returned as a tensor (or another non-int type) where the rule returns an int"),
    ("odd_down", "an even floor of t goes to the odd number below, which is farther from t than the one above"),
    ("b_misplaced", "b is added after the division by gamma: t = log2(C) / gamma + b"),
    ("default_args", "the signature's defaults differ from the rule's gamma = 2, b = 1"),
    ("b_sign", "b is subtracted where Eq. (12) adds it: t = (log2(C) - b) / gamma"),
    ("divides_by_b", "b is the divisor where Eq. (12) divides by gamma (a ZeroDivisionError at b = 0)"),
    ("sum_pool", "the channel summary is a sum over H and W where ECA's g averages"),
    ("sigmoid_order", "the sigmoid is applied before the 1-D convolution where Eq. (9) applies it after"),
    ("median_pool", "a median where the mechanism averages"),
    ("activation_order", "h_swish before bn1 where the shared transform is conv1, bn1, then h_swish"),
    ("se_bias_size", "SE's first bias counted with C entries where its first layer has C' = C // 16 outputs"),
    ("kernel_squared", "ECA's kernel counted as k * k weights where its 1-D kernel has k"),
    ("ca_vector_missing", "one vector of M entries is missing from the CA count (conv1's bias or one of bn1's two)"),
):
    define_mistake(_id, _text)

# --------------------------------------------------------------------------------------------
# exercise 1: the kernel size
# --------------------------------------------------------------------------------------------
#: wrong rule (as hidden.kernel_variants names it) -> mistake id
KERNEL_MISTAKE = {"banker_tie": "nearest_odd_tie", "ceil_not_floor": "round_not_floor"}
KERNEL_ADVICE = {
    "nearest_odd_tie": "a tie (t exactly even, e.g. C = 128 gives t = 4) went to the odd number below. 3 and 5 "
                       "are equally near 4, so 'nearest odd' does not decide; the paper's own listing (and "
                       "timm) floor t and add 1 when it is even, which sends a tie up.",
    "banker_tie": "C = 2048 (t = 6) gave 5: Python's round() sends a half to the even integer, so a formula built "
                  "on round((t - 1) / 2) resolves some ties down, where the course sends every tie up.",
    "even_kernel": "an even k came back: t is floored but never made odd. An even kernel cannot be centred on a "
                   "channel, so add 1 when t is even.",
    "round_not_floor": "t is rounded to the nearest integer (or up) before it is made odd: C = 64 gives t = 3.5, "
                       "which the rule floors to 3 (k = 3), not 4 (k = 5).",
    "ceil_not_floor": "t is rounded up before it is made odd; the rule floors it (int() of a positive number).",
    "log_base": "the logarithm has the wrong base: Eq. (12) uses log2 (C = 2^(gamma k - b), Eq. (11)).",
    "constants_ignored": "gamma and b are ignored (2 and 1 are hard-coded): use the arguments.",
    "fixed_kernel": "k = 3 whatever C is: that is what the official eca_layer does (its channel argument is "
                    "unused); the exercise asks for psi(C).",
    "kernel_clamp": "k was raised to 3 for a small C: timm clamps, the paper's rule does not. Apply the rule for "
                    "every C.",
    "odd_down": "when the floor of t is even, k went to the odd number below it. Compare the distances from t "
                "itself, not from its floor, to the two odd numbers around it.",
    "b_misplaced": "b is added after the division: Eq. (12) divides (log2 C + b) by gamma.",
    "b_sign": "b is subtracted: in Eq. (12) it is added to log2 C before the division by gamma (solve Eq. (11) "
              "for k again).",
    "divides_by_b": "the rule divides by b, which is 0 in this call: in Eq. (12) gamma is the divisor, and b is "
                    "added to log2 C.",
}
KERNEL_MISTAKE.update({k: k for k in KERNEL_ADVICE if k not in KERNEL_MISTAKE})


def _odd_up(t: float) -> int:
    """The course's rule on a given t: int() (the listing's floor of a positive t), then + 1 when even."""
    k = int(t)
    return k if k % 2 else k + 1


@exercise("adaptive_kernel_size", budget_s=5)
def check_adaptive_kernel_size(fn: Callable[..., Any]) -> None:
    """adaptive_kernel_size(channels, gamma=2, b=1): t = floor((log2 C + b) / gamma), k = t or t + 1, odd."""
    data = expected(CHAPTER)["kernel"]
    cases = [(int(c), float(g), float(b)) for c, g, b in data["cases"].tolist()]
    want = data["k"].tolist()
    got = []
    for c, g, b in cases:
        default = (g, b) == (2.0, 1.0)
        shown = f"adaptive_kernel_size({c})" if default else f"adaptive_kernel_size({c}, gamma={g:g}, b={b:g})"
        # trial t78 (r3): (log2 C + gamma) / b crashed at b = 0 with a bare ZeroDivisionError ("crash")
        hints = (("ZeroDivisionError", "divides_by_b", KERNEL_ADVICE["divides_by_b"]),) if b == 0 else ()
        value = (call_with_hints(fn, c, doing=shown, hints=hints) if default
                 else call_with_hints(fn, c, gamma=g, b=b, doing=shown, hints=hints))
        if isinstance(value, torch.Tensor):
            raise CheckFailure(f"{shown} returned a tensor, {value!r}; the function returns an int (a kernel size, "
                               "as nn.Conv1d's kernel_size takes it).", mistake="kernel_type")
        if isinstance(value, float) or type(value).__name__.startswith("float"):
            raise CheckFailure(f"{shown} returned {value!r}, a {type(value).__name__}; a kernel size is a number of "
                               "taps, and the function returns an int (as nn.Conv1d's kernel_size takes it), even "
                               "where the value is whole.", mistake="kernel_type")
        got.append(expect_int(value, what=shown))
    if got == want:
        passed()
        return
    wrong = [i for i, (a, w) in enumerate(zip(got, want)) if a != w]
    lines = "\n".join(f"    C = {cases[i][0]}, gamma = {cases[i][1]:g}, b = {cases[i][2]:g}: got {got[i]}, "
                      f"expected {want[i]}" for i in wrong[:4])
    message = f"{len(wrong)} of {len(cases)} kernel sizes are wrong:\n{lines}"
    if got == [_odd_up((math.log2(c) - b) / g) for c, g, b in cases]:  # checked first: it can look like log_base
        raise CheckFailure(message + f"\n  Likely mistake: {KERNEL_ADVICE['b_sign']}", mistake="b_sign")
    for name, values in data["diagnoses"].items():
        if values.tolist() == got:
            raise CheckFailure(message + f"\n  Likely mistake: {KERNEL_ADVICE[name]}", mistake=KERNEL_MISTAKE[name])
    defaults = [i for i, (_, g, b) in enumerate(cases) if (g, b) == (2.0, 1.0)]
    if set(wrong) <= set(defaults):
        raise CheckFailure(message + "\n  Likely mistake: only the calls without gamma and b are wrong, and every call "
                                     "that passes them is right: look at the defaults of the signature (Eq. (12) and "
                                     "the stub: gamma = 2, b = 1).", mistake="default_args")
    i = wrong[0]
    for name, values in data["diagnoses"].items():  # right elsewhere, one rule's slip at the first wrong case
        if values[i] == got[i]:
            raise CheckFailure(message + f"\n  Likely mistake: {KERNEL_ADVICE[name]}", mistake=KERNEL_MISTAKE[name])
    raise CheckFailure(message + "\n  Likely mistake: compare each step of yours with Eq. (12) and the rule above "
                                 "the exercise, on the cases listed.", mistake="kernel_size")


# --------------------------------------------------------------------------------------------
# exercise 2: ECA
# --------------------------------------------------------------------------------------------
#: label of a stored wrong gate -> (mistake id, advice)
ECA_ADVICE = {
    "padding_shift": ("padding_shift", "the gates are shifted along the channels: all k - 1 zeros of padding sit on "
                                       "one side. Pad (k - 1) / 2 zeros on each side, so channel c's window is "
                                       "centred on c."),
    "padding_shift_right": ("padding_shift", "the gates are shifted along the channels: all k - 1 zeros of padding "
                                             "sit on one side. Pad (k - 1) / 2 on each side."),
    "circular_padding": ("circular_padding", "the first and last channels see each other: the padding wraps around "
                                             "(timm's CecaModule does this on purpose). ECA pads with zeros."),
    "flipped_kernel": ("flipped_kernel", "the kernel runs backwards (weight j multiplies channel c - j, a textbook "
                                         "convolution). Eq. (8) and Conv1d pair weight j with channel c + j - (k - 1) / 2."),
    "max_pool": ("max_pool", "the channel summary is a maximum; g in Eq. (1) averages over H and W."),
    "missing_sigmoid": ("missing_sigmoid", "the gate has no sigmoid: Eq. (9) is sigma(C1D_k(y)), in (0, 1)."),
    "softmax_gate": ("softmax_gate", "a softmax makes the C gates share a total of 1; ECA, like SE, uses a sigmoid."),
    "batch_mean": ("batch_mean", "the average also runs over the batch, so every image gets the same gate."),
}

#: x.max(dim) / x.min(dim) return (values, indices): used as a tensor, PyTorch's error names torch.return_types
TUPLE_HINT = ("torch.return_types.", "tuple_as_tensor",
              "x.max(dim=...) (like x.min, x.sort, x.topk with a dim) returns a named tuple (values, indices), not a "
              "tensor; and the mechanism averages where a maximum is taken here.")
define_mistake("tuple_as_tensor", "x.max(dim) used as a tensor: with a dim it returns a named tuple (values, indices)")

ECA_HINTS: Sequence[tuple[str, str, str]] = (
    TUPLE_HINT,
    ("channels, but got", "channel_axis",
     "the 1-D convolution has a single input channel and slides along the channels: lay the pooled (B, C) out as "
     "(B, 1, C) (one signal of length C per image) before it."),
    ("is invalid for input of size", "conv_padding",
     "the convolution changed the length C of the channel signal: its padding does not keep the length."),
    ("must match the size of tensor", "conv_padding",
     "the gate does not have C entries: the convolution's padding does not keep the length C of the channel signal."),
)


def eca_order_diagnoses(x: torch.Tensor, weight: torch.Tensor, k: int) -> list[tuple[str, torch.Tensor, str]]:
    """Gates of two likely slips, from the loaded kernel: a sum for the mean, the sigmoid before the convolution."""
    b, c = x.shape[:2]

    def conv(y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv1d(y.reshape(b, 1, c), weight.reshape(1, 1, k).to(y.dtype),
                                          padding=(k - 1) // 2).reshape(b, c, 1, 1)

    y = x.mean((2, 3))
    return [("sum_pool", torch.sigmoid(conv(x.sum((2, 3)))),
             "the channel summary is the sum over H and W; g in Eq. (1) is their mean (it does not grow with the "
             "size of the map)."),
            ("sigmoid_order", conv(torch.sigmoid(y)),
             "the sigmoid runs before the convolution; Eq. (9) is sigma(C1D_k(y)): the convolution first."),
            ("sigmoid_order", torch.sigmoid(conv(torch.sigmoid(y))),
             "a sigmoid also runs before the convolution; Eq. (9) has one, sigma(C1D_k(y)), after it.")]


def call_eca(fn: Callable[..., Any], *args: Any, doing: str) -> Any:
    return call_with_hints(fn, *args, doing=doing, hints=ECA_HINTS)


def expect_eca_parameters(module: torch.nn.Module, channels: int, k: int, *, what: str, adaptive: bool,
                          psi: int | None = None) -> None:
    """One shared kernel of k weights, no bias; the usual departures named."""
    params = list(module.named_parameters())
    got = count_parameters(module)
    if got == k and len(params) == 1:
        passed()
        return
    shapes = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in params) or "none"
    intro = (f"{what} has {got} parameters ({shapes}); ECA has one kernel of k = {k} weights shared by all "
             "channels, and no bias.")
    if got == k + 1 and len(params) == 2:
        raise CheckFailure(intro + "\n  Likely mistake: the convolution has a bias (nn.Conv1d's default). Eq. (8) "
                                   "has none, nor has the official code: bias=False.", mistake="extra_parameter")
    if got in {channels * channels * k, channels * channels * k + channels}:
        raise CheckFailure(intro + "\n  Likely mistake: a convolution with C input and C output channels, sliding "
                                   "over the spatial axis. ECA's runs across the channels: one input channel, one "
                                   "output channel, the C channel values as its length.", mistake="conv_over_space")
    if got in {channels * k, channels * (k + 1)}:
        raise CheckFailure(intro + "\n  Likely mistake: one kernel per channel (ECA-NS, Eq. (7)). ECA shares the k "
                                   "weights across channels (Eq. (8)).", mistake="per_channel_kernel")
    if adaptive and got == 3 and k != 3:
        raise CheckFailure(intro + f"\n  Likely mistake: k = 3 whatever C is (the official code's default). With "
                                   f"kernel_size=None the module uses psi({channels}) = {k}.", mistake="fixed_kernel")
    if adaptive and got == k - 1:
        raise CheckFailure(intro + f"\n  Likely mistake: an even k = {got}: psi must add 1 to an even t.",
                           mistake="even_kernel")
    if not adaptive and psi is not None and got == psi:
        raise CheckFailure(intro + f"\n  Likely mistake: the explicit kernel_size={k} is ignored (psi(C) = {psi} "
                                   "was used). None means psi(C); an int is the kernel size.", mistake="kernel_ignored")
    raise CheckFailure(intro, mistake="param_count")


def load_eca_kernel(module: torch.nn.Module, weight: torch.Tensor, *, what: str) -> None:
    """Copy the k weights into the student's one parameter, whatever its layout ((1, 1, k), (1, 1, 1, k), (k,))."""
    params = [p for p in module.parameters() if p.numel() == weight.numel()]
    expect(len(params) == 1, f"{what}: no single parameter with {weight.numel()} entries to load the kernel into.",
           mistake="parameters")
    with torch.no_grad():
        params[0].copy_(weight.reshape(params[0].shape).to(params[0].dtype))
    passed()


@exercise("EfficientChannelAttention", budget_s=10)
def check_eca(cls: type) -> None:
    """EfficientChannelAttention(channels, kernel_size=None, *, gamma=2, b=1): attention(x) (B, C, 1, 1), forward x * gate."""
    data = expected(CHAPTER)["eca"]
    c, k = int(data["channels"]), int(data["kernel_size"])
    # the kernel size: adaptive by default, from gamma and b when given, an explicit int as it is
    for ch, want in data["adaptive"].tolist()[:3]:
        expect_eca_parameters(build(cls, ch), ch, want, what=f"EfficientChannelAttention({ch})", adaptive=True)
    ch, want = data["adaptive"].tolist()[3]
    module = build(cls, ch, gamma=1, b=1)
    if count_parameters(module) == 3:
        raise CheckFailure(f"EfficientChannelAttention({ch}, gamma=1, b=1) has a kernel of 3; psi({ch}) with gamma = 1, "
                           f"b = 1 is {want}.\n  Likely mistake: gamma and b are not passed on to the kernel-size rule.",
                           mistake="constants_ignored")
    expect_eca_parameters(module, ch, want, what=f"EfficientChannelAttention({ch}, gamma=1, b=1)", adaptive=True)
    name = f"EfficientChannelAttention({c}, kernel_size={k})"
    module = build(cls, c, kernel_size=k)
    expect_eca_parameters(module, c, k, what=name, adaptive=False, psi=3)
    load_eca_kernel(module, data["weight"], what=name)
    module.eval()

    x = data["x"].clone()
    b = x.shape[0]
    gate = call_eca(module.attention, x, doing=f"{name}.attention(x) with x of shape {fmt_shape(x.shape)}")
    expect(torch.equal(x, data["x"]), f"{name}.attention(x) changed x in place.", mistake="inplace")
    if isinstance(gate, torch.Tensor) and gate.dim() >= 2 and gate.numel() != b * c and gate.shape[0] == b and \
            gate.numel() // b in {c - k + 1, c + k - 1}:
        n = gate.numel() // b
        raise CheckFailure(f"{name}.attention(x) returned {fmt_shape(gate.shape)} for x of shape {fmt_shape(x.shape)}: "
                           f"{n} gates per image for C = {c} channels.\n  Likely mistake: the 1-D convolution's "
                           f"padding does not keep the signal's length: with k = {k} taps it "
                           + ("shortens it by k - 1." if n < c else "lengthens it by k - 1."), mistake="conv_padding")
    expect_shape(gate, (b, c, 1, 1), what=f"{name}.attention(x)",
                 hint="the gate is (B, C, 1, 1), one value per channel, so that x * gate broadcasts over H and W: "
                      "reshape the (B, 1, C) output of the convolution.")
    diagnoses = [(ECA_ADVICE[n][0], v, ECA_ADVICE[n][1]) for n, v in data["gate_diagnoses"].items()]
    diagnoses += eca_order_diagnoses(data["x"], data["weight"], k)
    expect_close(gate, data["gate"], what=f"{name}.attention(x)", diagnoses=diagnoses,
                 fallback=("values", "compare each step with Eqs. (1), (8) and (9): the mean over H and W, "
                                     "the k-tap convolution across the channels (zero padding, no bias), the sigmoid."))
    out = forward_keeps_input(module, x, doing=f"{name}(x)", hints=ECA_HINTS)
    expect_device_free(module, x, what=name)
    expect_shape(out, x.shape, what=f"{name}(x)", hint="forward(x) returns x * gate, the shape of x.",
                 mistake="returns_map" if isinstance(out, torch.Tensor) and out.shape == gate.shape else "shape")
    expect_close(out, data["out"], what=f"{name}(x)",
                 diagnoses=[("gate_added", data["out_gate_added"], "forward adds the gate; ECA multiplies: x * gate.")],
                 fallback=("values", "forward should return x * self.attention(x)."))
    expect_module_gradients(module, data["x"], what=name, upstream=data["upstream"], grad_x=data["grad_x"],
                            hints=ECA_HINTS)
    # float64 in, float64 out, at float64 precision: a float32 computation cast back to x's dtype shows here
    twin = copy.deepcopy(module).double()
    x64 = data["x"].double()
    doing = f"{name}.attention(x) with x in float64"
    gate64 = call_eca(twin.attention, x64, doing=doing)
    expect_follows(gate64, dtype=torch.float64, doing=doing)
    expect_close(gate64, data["gate64"], what=doing)


# --------------------------------------------------------------------------------------------
# exercise 3: directional pooling
# --------------------------------------------------------------------------------------------
def expect_pools(fn: Callable[..., Any], x: torch.Tensor, *, what: str) -> None:
    """z^h (B, C, H, 1): the mean of each row; z^w (B, C, W, 1): the mean of each column, as a column."""
    b, c, h, w = x.shape
    before = x.clone()
    result = call_with_hints(fn, x, doing=what, hints=(TUPLE_HINT,))
    expect(torch.equal(before, x), f"{what} changed x in place.", mistake="modifies_input")
    expect(isinstance(result, (tuple, list)) and len(result) == 2,
           f"{what} should return two tensors (z_h, z_w); got {type(result).__name__}", mistake="shape")
    z_h, z_w = result
    for t, label in ((z_h, "z_h"), (z_w, "z_w")):
        if type(t).__module__ == "torch.return_types":
            raise CheckFailure(f"{what}: {label} is a torch.return_types.{type(t).__name__}, not a tensor.\n  Likely "
                               f"mistake: {TUPLE_HINT[2]}", mistake="tuple_as_tensor")
        expect(isinstance(t, torch.Tensor), f"{what}: {label} should be a tensor, got {type(t).__name__}",
               mistake="shape")
    row = x.mean(3, keepdim=True)  # (B, C, H, 1)
    col = x.mean(2, keepdim=True)  # (B, C, 1, W)
    shapes = (tuple(z_h.shape), tuple(z_w.shape))
    if shapes != ((b, c, h, 1), (b, c, w, 1)):
        head = (f"{what} returned shapes {fmt_shape(z_h.shape)} and {fmt_shape(z_w.shape)}; expected "
                f"z_h {fmt_shape((b, c, h, 1))} (one mean per row) and z_w {fmt_shape((b, c, w, 1))} (one mean per "
                "column, laid out as a column so that it can be concatenated below z_h).")
        if shapes in {((b, c, 1, w), (b, c, h, 1)), ((b, c, w, 1), (b, c, h, 1))} and h != w:
            raise CheckFailure(head + "\n  Likely mistake: the two means are swapped: z^h_c(h) averages row h over "
                                      "the width W (1 / W times the row's sum), so it has H entries.", mistake="swapped_pool")
        if shapes[0] == (b, c, h, 1) and shapes[1] == (b, c, 1, w):
            raise CheckFailure(head + "\n  Likely mistake: z_w is the right numbers in the row layout (B, C, 1, W); "
                                      "turn it into a column (B, C, W, 1).", mistake="not_transposed")
        raise CheckFailure(head, mistake="shape")
    rtol, atol = (1e-9, 1e-11) if x.dtype == torch.float64 else (1e-4, 1e-5)
    expect(z_h.dtype == x.dtype and z_w.dtype == x.dtype,
           f"{what} returned {z_h.dtype} / {z_w.dtype} for a {x.dtype} input.", mistake="dtype")
    maxes = (x.amax(3, keepdim=True), x.amax(2, keepdim=True).transpose(2, 3))
    expect_close(z_h, row, what=f"{what}: z_h", rtol=rtol, atol=atol,
                 diagnoses=[("max_pool", maxes[0], "z_h takes the maximum of each row; CA's pool is the mean."),
                            ("median_pool", x.median(3, keepdim=True).values,
                             "z_h takes the median of each row; CA's pool is the mean."),
                            ("divisor", x.sum(3, keepdim=True) / h,
                             "the row sum is divided by H; a row has W pixels (z^h_c(h) = 1 / W times the row's sum).")])
    expect_close(z_w, col.transpose(2, 3), what=f"{what}: z_w", rtol=rtol, atol=atol,
                 diagnoses=[("max_pool", maxes[1], "z_w takes the maximum of each column; CA's pool is the mean."),
                            ("median_pool", x.median(2, keepdim=True).values.transpose(2, 3),
                             "z_w takes the median of each column; CA's pool is the mean."),
                            ("divisor", x.sum(2, keepdim=True).transpose(2, 3) / w,
                             "the column sum is divided by W; a column has H pixels (z^w_c(w) = 1 / H times the column's sum).")])


@exercise("directional_pool", budget_s=5)
def check_directional_pool(fn: Callable[..., Any]) -> None:
    """directional_pool(x) -> (z_h (B, C, H, 1), z_w (B, C, W, 1)), CA's two pools (its coordinate information embedding)."""
    data = expected(CHAPTER)["pool"]
    x = data["x"].clone()
    expect_pools(fn, x, what=f"directional_pool(x) with x of shape {fmt_shape(x.shape)}")
    z_h, z_w = fn(x)
    expect_close(z_h, data["z_h"], what="z_h")
    expect_close(z_w, data["z_w"], what="z_w")
    # the protections of every exercise, this helper's own: the device watch, float64, its input's memory layouts
    x64 = data["x"].double()
    shown = f"directional_pool(x) with x of shape {fmt_shape(x.shape)}"
    expect_function_contract(fn, (x64,), what=shown, target64=x64.mean(3, keepdim=True))
    expect_layouts(fn, (x64,), what=shown)
    # CA trains through the pools: both means must stay in the autograd graph (named here, not first in CA's
    # check); after the float64 contract, which names a float32 computation inside before it shows as a gradient
    expect_gradients(lambda t: torch.cat(tuple(fn(t)), dim=2), (data["x"],), names=("x",),
                     doing="directional_pool(x) (z_h and z_w, concatenated)")


# --------------------------------------------------------------------------------------------
# exercise 4: Coordinate Attention
# --------------------------------------------------------------------------------------------
CA_NAMES = ("conv1", "bn1", "conv_h", "conv_w")
CA_ADVICE = {
    "activation": "the shared transform's non-linearity is not h_swish: the official code (and this exercise) use "
                  "x * ReLU6(x + 3) / 6, which PyTorch has as a module.",
    "hard_sigmoid_gate": "the gates use the official code's h_sigmoid; its gates are plain sigmoids (h_sigmoid only "
                         "serves inside h_swish).",
    "missing_sigmoid": "the gates have no sigmoid: CA's gates are sigma(F_h(f^h)) and sigma(F_w(f^w)).",
    "max_pool": "the directional summaries are maxima; CA's pools average.",
    "missing_bn": "the BatchNorm bn1 is not applied: the shared transform F_1 in f = delta(F_1([z^h, z^w])) is conv1, then bn1, then delta.",
    "convs_swapped": "conv_h runs on the column part and conv_w on the row part: F_h makes g^h from f^h.",
    "swapped_pool": "the pooled rows and columns are swapped before the concatenation: z^h is the mean over W "
                    "(one value per row, H of them).",
    "activation_silu": "the non-linearity is SiLU, x * sigmoid(x): the README's tip names it, but the official code "
                       "(and this exercise) use its piecewise-linear stand-in, h_swish.",
    "bn_eps": "bn1's eps is not BatchNorm2d's default 1e-5 (1e-3 is Keras' default, for one): it shows with the "
              "small running variances loaded here.",
    "split_order": "f is split back in the wrong order: the first H positions along dim 2 are the rows (z^h was "
                   "concatenated first), the last W the columns.",
    "activation_order": "h_swish runs before bn1; the shared transform is conv1, then bn1, then the non-linearity.",
    "activation_hardsigmoid": "the shared transform's non-linearity is a hard sigmoid, ReLU6(x + 3) / 6; h_swish "
                              "multiplies x by it.",
    "activation_gelu": "the shared transform's non-linearity is GELU; the official code (and this exercise) use "
                       "h_swish.",
}
#: labels of CA_ADVICE that name a mistake under another id
CA_MISTAKE = {"activation_hardsigmoid": "activation", "activation_gelu": "activation"}


def ca_activation_diagnoses(weights: Mapping[str, torch.Tensor], x: torch.Tensor
                            ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(g_h, g_w) of the loaded eval-mode block with the non-linearity changed or moved before bn1."""
    fn = torch.nn.functional
    h, w = x.shape[2:]
    z = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], dim=2)
    f = fn.conv2d(z, weights["conv1.weight"], weights["conv1.bias"])

    def bn(t: torch.Tensor) -> torch.Tensor:
        return fn.batch_norm(t, weights["bn1.running_mean"], weights["bn1.running_var"], weights["bn1.weight"],
                             weights["bn1.bias"], training=False, eps=1e-5)

    def gates(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_h, t_w = torch.split(t, [h, w], dim=2)
        return (torch.sigmoid(fn.conv2d(t_h, weights["conv_h.weight"], weights["conv_h.bias"])),
                torch.sigmoid(fn.conv2d(t_w.transpose(2, 3), weights["conv_w.weight"], weights["conv_w.bias"])))

    return {"activation_order": gates(bn(fn.hardswish(f))),
            "activation_hardsigmoid": gates(fn.hardsigmoid(bn(f))),
            "activation_gelu": gates(fn.gelu(bn(f)))}

CA_HINTS: Sequence[tuple[str, str, str]] = (
    TUPLE_HINT,
    ("Sizes of tensors must match except in dimension", "not_transposed",
     "the two summaries cannot be concatenated: z^h is (B, C, H, 1); z^w must be laid out the same way, "
     "(B, C, W, 1), before torch.cat along dim 2."),
    ("split_with_sizes expects split_sizes to sum exactly", "split_order",
     "f has H + W positions along dim 2: split it into [H, W]."),
    ("must match the size of tensor", "not_transposed",
     "g^h (B, C, H, 1) and g^w (B, C, 1, W) do not broadcast against x: is f^w transposed back to a row?"),
)


def call_ca(fn: Callable[..., Any], *args: Any, doing: str) -> Any:
    return call_with_hints(fn, *args, doing=doing, hints=CA_HINTS)


def ca_hidden(channels: int, reduction: int) -> int:
    return max(8, channels // reduction)


#: the channels at which the default reduction=32 is probed: C // r is above the floor of 8 for r near 32
#: (at C = 64 a default of 16 would give the same width, max(8, 4) = max(8, 2) = 8)
DEFAULT_PROBE = 512


def expect_ca_parameters(module: torch.nn.Module, channels: int, reduction: int, *, what: str) -> None:
    """3 C M + 3 M + 2 C parameters (three biased 1x1 convs and BN's weight and bias), under the official names."""
    m = ca_hidden(channels, reduction)
    c = channels
    got = count_parameters(module)
    want = 3 * c * m + 3 * m + 2 * c
    own = dict(module.named_parameters())
    shapes = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in own.items()) or "none"
    intro = (f"{what} has {got} parameters; expected {want} (M = max(8, C // r) = {m}: conv1 C -> M, bn1 on M, "
             f"conv_h and conv_w M -> C, the convolutions with biases).\n  yours: {shapes}")
    if got != want:
        no_floor = max(1, c // reduction)
        if no_floor != m and got in {3 * c * no_floor + 3 * no_floor + 2 * c, 3 * c * no_floor + 2 * no_floor}:
            raise CheckFailure(intro + f"\n  Likely mistake: the width is C // r = {no_floor}; the official code "
                                       "keeps at least 8 channels: max(8, C // r).", mistake="min_hidden")
        up = max(8, -(-c // reduction))
        if up != m and got == 3 * c * up + 3 * up + 2 * c:
            raise CheckFailure(intro + f"\n  Likely mistake: C / r = {c / reduction:g} is rounded up; the official "
                                       "code's width is an integer division.", mistake="width_round_up")
        if got == 3 * c * m + 2 * m:
            raise CheckFailure(intro + "\n  Likely mistake: the convolutions have no bias (timm's CoordAttn drops "
                                       "them); the official CoordAtt keeps nn.Conv2d's biases.", mistake="missing_bias")
        if got == want - 2 * m:
            raise CheckFailure(intro + "\n  Likely mistake: no BatchNorm after conv1 (bn1).", mistake="missing_bn")
        if got in {want + c * m + m, want + c * m + 3 * m}:
            raise CheckFailure(intro + "\n  Likely mistake: one conv1 per direction. F_1 is shared: the rows and "
                                       "columns are concatenated and go through the same conv1.",
                               mistake="not_shared")
        raise CheckFailure(intro, mistake="param_count")
    passed()
    missing = [n for n in CA_NAMES if not isinstance(getattr(module, n, None), torch.nn.Module)]
    expect(not missing, f"{what} has no submodule named {', '.join(missing)}: keep the official names conv1, bn1, "
                        "conv_h and conv_w (the checks and the trained weights load by these names).",
           mistake="parameters")


def load_ca(module: torch.nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    load_by_name(module, dict(weights), what=what)


def expect_gates(module: torch.nn.Module, x: torch.Tensor, want_h: torch.Tensor, want_w: torch.Tensor, *, what: str,
                 diagnoses: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """gates(x) returns (g^h (B, C, H, 1), g^w (B, C, 1, W)) with the right values; attention(x) their product."""
    b, c, h, w = x.shape
    result = call_ca(module.gates, x, doing=f"{what}: gates(x)")
    expect(isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result),
           f"{what}: gates(x) should return two tensors (g_h, g_w); got {type(result).__name__}", mistake="shape")
    g_h, g_w = result
    shapes = (tuple(g_h.shape), tuple(g_w.shape))
    if shapes != ((b, c, h, 1), (b, c, 1, w)):
        head = (f"{what}: gates(x) returned shapes {fmt_shape(g_h.shape)} and {fmt_shape(g_w.shape)} for x of shape "
                f"{fmt_shape(x.shape)}; expected g_h {fmt_shape((b, c, h, 1))} (one gate per row) and g_w "
                f"{fmt_shape((b, c, 1, w))} (one per column).")
        if shapes == ((b, c, h, 1), (b, c, w, 1)):
            raise CheckFailure(head + "\n  Likely mistake: f^w is still a column (B, M, W, 1): transpose it back to a "
                                      "row (B, M, 1, W) before conv_w.", mistake="not_transposed")
        if shapes == ((b, c, w, 1), (b, c, 1, h)):
            raise CheckFailure(head + "\n  Likely mistake: f is split in the wrong order: the first H positions along "
                                      "dim 2 are the rows (z^h was concatenated first), the last W the columns.",
                               mistake="split_order")
        if shapes == ((b, c, 1, w), (b, c, h, 1)):
            raise CheckFailure(head + "\n  Likely mistake: gates(x) returns (g_w, g_h); the order is (g_h, g_w).",
                               mistake="gates_swapped")
        raise CheckFailure(head, mistake="shape")
    passed()
    if "convs_swapped" in diagnoses:
        # trial t78 (r3): one conv for both gates matches the swapped pair on one gate only (conv_h on f^w, or
        # conv_w on f^h) and was named convs_swapped; the other gate is right
        sw_h, sw_w = diagnoses["convs_swapped"]
        if is_close(g_h, want_h) and is_close(g_w, sw_w):
            raise CheckFailure(f"{what}: g_h is right, but g_w is what conv_h makes of the column part: one "
                               "convolution serves both gates, and conv_w is left unused.", mistake="conv_reused")
        if is_close(g_w, want_w) and is_close(g_h, sw_h):
            raise CheckFailure(f"{what}: g_w is right, but g_h is what conv_w makes of the row part: one "
                               "convolution serves both gates, and conv_h is left unused.", mistake="conv_reused")
    advice = [(CA_MISTAKE.get(n, n), a, CA_ADVICE[n]) for n, (a, _) in diagnoses.items()]
    expect_close(g_h, want_h, what=f"{what}: g_h", diagnoses=advice,
                 fallback=("values", "compare g^h = sigma(F_h(f^h)) step by step: the shared transform, the split, conv_h and the sigmoid."))
    expect_close(g_w, want_w, what=f"{what}: g_w", diagnoses=[(CA_MISTAKE.get(n, n), b_, CA_ADVICE[n]) for n, (_, b_) in diagnoses.items()],
                 fallback=("values", "compare g^w = sigma(F_w(f^w)) step by step: is f^w turned back into a row before conv_w?"))
    att = call_ca(module.attention, x, doing=f"{what}: attention(x)")
    expect_close(att, want_h * want_w, what=f"{what}: attention(x)",
                 fallback=("values", "attention(x) is the product of the two gates, (B, C, H, 1) * (B, C, 1, W)."))
    return g_h, g_w


@exercise("CoordinateAttention", budget_s=10)
def check_coordinate_attention(cls: type) -> None:
    """CoordinateAttention(channels, reduction=32): gates(x), attention(x) = g^h g^w, forward(x) = x g^h g^w."""
    data = expected(CHAPTER)["ca"]
    c, r = int(data["channels"]), int(data["reduction"])
    expect_ca_parameters(build(cls, 64), 64, 32, what="CoordinateAttention(64) (default reduction=32)")
    name = f"CoordinateAttention({c}, reduction={r})"
    module = build(cls, c, reduction=r)
    expect_ca_parameters(module, c, r, what=name)
    load_ca(module, data["weights"], what=name)
    module.eval()
    x = data["x"].clone()
    with normalisation_explains(module, x, what=name, hints=CA_HINTS):
        expect_gates(module, x, data["g_h"], data["g_w"], what=name,
                     diagnoses={**data["diagnoses"], **ca_activation_diagnoses(data["weights"], data["x"])})
    expect(torch.equal(x, data["x"]), f"{name}.gates(x) changed x in place.", mistake="inplace")
    expect_normalisation_modes(module, x, what=name, hints=CA_HINTS)
    out = forward_keeps_input(module, x, doing=f"{name}(x)", hints=CA_HINTS)
    expect_device_free(module, x, what=name)
    expect_close(out, data["out"], what=f"{name}(x)",
                 diagnoses=[("residual", data["out_residual"], "forward adds x back: CA's output is y = x * g^h * g^w, "
                                                                "with no residual."),
                            ("one_gate", data["out_one_gate"], "forward applies g^h only: y = x * g^h * g^w."),
                            ("returns_map", data["g_h"] * data["g_w"],
                             "forward returns the map g^h * g^w; it should return x * g^h * g^w.")],
                 fallback=("values", "forward(x) returns CA's output, x * g^h * g^w."))
    expect_module_gradients(module, data["x"], what=name, upstream=data["upstream"], grad_x=data["grad_x"],
                            hints=CA_HINTS)
    expect_informative_defaults(cls, (DEFAULT_PROBE,), {"reduction": 32}, torch.randn(2, DEFAULT_PROBE, 3, 2),
                                layout=ca_hidden, what="CoordinateAttention")
    # a width where C / r is not an integer and above the floor of 8 (300 / 32 = 9.375): rounding up shows here
    expect_ca_parameters(build(cls, 300), 300, 32, what="CoordinateAttention(300)")


# --------------------------------------------------------------------------------------------
# exercise 5: parameters from their ingredients
# --------------------------------------------------------------------------------------------
COUNT_ADVICE = {
    ("se", "missing_bias"): "SE's two layers have biases (chapter 01): 2 C C' + C' + C.",
    ("eca", "fixed_kernel"): "ECA's kernel has psi(C) weights, not always 3.",
    ("eca", "per_channel_kernel"): "ECA shares one kernel across the channels (Eq. (8)): k parameters, not C k.",
    ("ca", "bn_not_counted"): "bn1 has two learnable vectors of M entries (its weight and bias).",
    ("ca", "buffers_counted"): "BatchNorm's running mean and variance are buffers, not parameters: count only "
                               "its weight and bias.",
    ("ca", "min_hidden"): "M = max(8, C // 32): the width never falls below 8.",
    ("ca", "one_gate_conv"): "CA has two gate convolutions, F_h and F_w, each M -> C with a bias.",
    ("ca", "missing_bias"): "the official code's three convolutions have biases (timm's do not).",
    ("se", "width_round_up"): "C / 16 is rounded up; SE's hidden width is an integer division (chapter 01).",
    ("ca", "width_round_up"): "C / 32 is rounded up; CA's width is an integer division, with the floor of 8.",
    ("se", "se_bias_size"): "SE's first bias has one entry per output of its first layer, C' = C // 16, not C.",
    ("eca", "kernel_squared"): "ECA's kernel is one-dimensional: k weights, not k * k.",
    ("ca", "ca_vector_missing"): "one vector of M entries is missing: conv1 has a bias, and bn1 has two learnable "
                                 "vectors (its weight and its bias).",
}


def derived_wrong_counts(channels: int, want: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Counts of likely slips that follow from C alone (the stored ones come from the expected file)."""
    c = channels
    s, m = c // 16, max(8, c // 32)
    s_up, m_up = -(-c // 16), max(8, -(-c // 32))
    k = int(want["eca"])
    return {"se": {"width_round_up": 2 * c * s_up + s_up + c, "se_bias_size": 2 * c * s + 2 * c},
            "eca": {"kernel_squared": k * k},
            "ca": {"width_round_up": 3 * c * m_up + 3 * m_up + 2 * c,
                   "ca_vector_missing": 3 * c * m + 2 * m + 2 * c}}


def expect_counts(fn: Callable[..., Any], channels: int, want: Mapping[str, int],
                  wrong: Mapping[str, Mapping[str, int]]) -> None:
    shown = f"attention_parameters({channels})"
    result = call(fn, channels, doing=shown)
    expect(isinstance(result, Mapping) and set(result) == {"se", "eca", "ca"},
           f"{shown} should return a dict with the keys 'se', 'eca', 'ca'; got "
           f"{sorted(result) if isinstance(result, Mapping) else type(result).__name__}", mistake="shape")
    for key in ("se", "eca", "ca"):
        got = expect_int(result[key], what=f"{shown}['{key}']")
        if got == int(want[key]):
            passed()
            continue
        message = f"{shown}['{key}'] is {got:,}; expected {int(want[key]):,}."
        for mistake, value in {**wrong[key], **derived_wrong_counts(channels, want)[key]}.items():
            if got == int(value) and int(value) != int(want[key]):
                raise CheckFailure(message + f"\n  Likely mistake: {COUNT_ADVICE[(key, mistake)]}", mistake=mistake)
        raise CheckFailure(message + "\n  Likely mistake: list each layer's weights and biases from the text above.",
                           mistake="param_count")


@exercise("attention_parameters", budget_s=5)
def check_attention_parameters(fn: Callable[..., Any]) -> None:
    """attention_parameters(C) = {'se': SE r = 16, 'eca': psi(C), 'ca': r = 32 with the floor 8}."""
    for case in expected(CHAPTER)["counts"]:
        expect_counts(fn, int(case["channels"]), case["counts"], case["wrong"])


# --------------------------------------------------------------------------------------------
# auto-graded questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch08_eca_coordatt.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
for _id, _text in (
    ("release_kernels", "the released checkpoint's per-stage kernels (the abstract's 80) where psi(C) is asked"),
    ("bottleneck_width", "the bottleneck's inner width (64, 128, ...) where the block's output width is asked"),
    ("per_stage", "one module per stage where there is one in every block"),
):
    define_mistake(_id, _text)

Q_ECA_RESNET50 = Question(
    "q_eca_resnet50_parameters", "int", key="dfad1a519016f7b59de9",
    doc="The parameters all the ECA modules of ECA-ResNet-50 add together (the adaptive k of Eq. (12)).",
    # trial t78 (r3): the advice gave the widths, the block counts and the order of the steps (the whole recipe)
    advice="Each module's k is psi of the width it sees (section 3): which width is that in each block, how many "
           "modules are there, and what does one of them learn?",
    wrong={
        "9debebae37b2425b18d0": ("release_kernels", "80 is the abstract's figure: the released ECA-ResNet-50 uses "
                                 "k = 3, 5, 5, 7 per stage (and k = 5 everywhere would give 80 too). Apply psi to "
                                 "each stage's width."),
        "2a99c790d583845509a9": ("fixed_kernel", "48 is 16 blocks with k = 3, the official code's default; the "
                                 "question asks for psi(C)."),
        "765b4669349b98489ed6": ("bottleneck_width", "74 applies psi to the bottleneck's inner widths (64, 128, 256, "
                                 "512); ECA, like SE, recalibrates the block's output, 4x as wide."),
        "0337f2caac21923dc52f": ("per_stage", "22 counts one module per stage; there is one in every block."),
    })

Q_WHY_NO_REDUCTION = Question(
    "q_why_no_reduction", "choices", key="225a6f4429f8391a9425", options="abcde",
    doc="Which statements (a)-(e) Table 2 supports.",
    advice="Read each statement against two rows of Table 2: which rows does it compare, and which way do their "
           "top-1 numbers go?")
# trial t78 (r3): no known wrong set has a hint of its own. A hint for the answer plus one statement named that
# statement (the rows to compare, or the parameter column), and the id of a subset ("some, not all") said it
# was one; either way the rest followed by elimination. Every wrong set now gets the advice above; a set one
# statement away is recorded as missing_choice / extra_choice, ids the message does not show.

Q_SHARED_SHAPE = Question(
    "q_shared_shape", "shape", key="296045b9fbfad9837c60",
    doc="The shape of f, the shared transform's output, for x of shape (2, 64, 12, 20) in CoordinateAttention(64).",
    # trial t78 (r2): the advice spelled f's shape out in words; it now points at the steps to follow
    advice="Follow x through the two pools, the concatenation and conv1 (section 5's equations): what does each "
           "step do to the channels, and to the rows and columns?",
    wrong={
        "a2a6501149da7babd1ab": ("min_hidden", "64 // 32 = 2, but the official width never falls below 8: "
                                 "M = max(8, C // r)."),
        "64ac14020d671adb4a37": ("shape", "F_1 reduces the channels from C to M = max(8, C // 32)."),
        "aaed911e62769aeef766": ("shape", "the rows and columns are concatenated (H + W positions), not "
                                 "multiplied (H x W)."),
        "e99aba4e3367f387ffb1": ("shape", "f is not an H x W map: look again at what the two pools keep of each "
                                 "axis before the concatenation."),
        "6346510a52ef1f4ea38d": ("min_hidden", "4 would be C // 16; CA's official r is 32, with a floor of 8."),
    })


QUESTIONS = {"eca_resnet50_parameters": Q_ECA_RESNET50, "why_no_reduction": Q_WHY_NO_REDUCTION,
             "shared_shape": Q_SHARED_SHAPE}
__all__ += define_question_checks(globals(), *QUESTIONS.values()) + ["QUESTIONS"]
