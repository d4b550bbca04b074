"""Visible checks of chapter 09, the capstone: your module in a trained network, measured.

The notebook's test cells call:

    check_gate(ChannelSpatialGate)                        attention(x) and forward(x) on stored inputs
    check_gate_in_network(ChannelSpatialGate)             it fills CapstoneNet's slot and trains there
    check_gate_parameter_count(gate_parameter_count)      2 C C' + C' + C (channel gate) + C + 1 (spatial gate)
    check_judge_localisation(judge_localisation)          lift of the map, lift of the control, two verdicts
    check_paired_difference(paired_difference)            two networks on the same images: delta, wins, McNemar p

``ChannelSpatialGate(channels, reduction=4)`` is a channel gate (SE's squeeze and excitation) and a spatial
gate (a 1x1 convolution to one map, then a sigmoid), both computed from the same input and both applied:
``forward(x) = x * c * s``. Its weights are loaded by role (shape), so ``nn.Linear`` and 1x1 ``nn.Conv2d``
both pass. The expected values are stored in ``checks/expected/ch09_capstone.pt`` (built by
``checks/hidden/ch09_capstone.py``); the two measuring exercises are checked against
:mod:`course_lib.capstone`'s own helpers, recomputed on the spot, on cases whose answers differ.

Nothing here imports a reference module (``course_lib.reference.se``, ``cbam``, ...): this file ships to students.
"""
from __future__ import annotations

import copy
import functools
import inspect
import itertools
import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from .toolkit import (
    CheckFailure,
    build,
    call_with_hints,
    close_named,
    count_parameters,
    define_mistake,
    exercise,
    expect,
    expect_defaults,
    expect_informative_defaults,
    expect_device_free,
    expect_follows,
    expect_int,
    expect_layouts,
    expect_module_gradients,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    is_close,
    load_by_shape,
    passed,
)

__all__ = [
    "check_gate",
    "check_gate_in_network",
    "check_gate_parameter_count",
    "check_judge_localisation",
    "check_paired_difference",
    "gate_count_by_hand",
    "GivenMap",
]

CHAPTER = "ch09_capstone"

GATE_ORDER = define_mistake("gate_order", "attention(x) returns the two gates in the wrong order")
GATE_MISSING = define_mistake("gate_missing", "forward applies only one of the two gates")
SEQUENTIAL = define_mistake("sequential_gates",
                            "the spatial gate is computed from x * c (CBAM's order) where both gates see x")
MAX_SQUEEZE = define_mistake("max_squeeze", "the squeeze takes the maximum over H and W where SE averages")
NO_CONTROL = define_mistake("no_control", "the control map is the attention map again (control=True forgotten)")
WRONG_METRIC = define_mistake("wrong_metric", "another column of localisation() where the lift is asked")
WRONG_BASELINE = define_mistake("wrong_baseline", "a verdict compared against the wrong baseline")
UNITS = define_mistake("units", "a fraction where percentage points are asked (or the reverse)")
PAIRED_SIGN = define_mistake("paired_sign", "the difference taken as baseline minus variant")
WINS_SWAPPED = define_mistake("wins_swapped", "the images won by the variant and by the baseline are swapped")
ONE_SIDED = define_mistake("one_sided", "a one-sided p-value where the two-sided one is asked")
TAIL = define_mistake("tail_off_by_one", "the binomial tail leaves out the observed split, P(X < k)")
CONCORDANT = define_mistake("concordant_counted", "the images both networks agree on are counted as coin flips")
NORMAL = define_mistake("normal_approximation", "a normal approximation where the exact binomial tail is asked")
UNPAIRED = define_mistake("unpaired", "an unpaired test for two networks tested on the same images")
NOT_CAPPED = define_mistake("p_not_capped", "a two-sided p-value above 1 (2 P(X <= k) not capped at 1)")
HIDDEN_WIDTH = define_mistake("hidden_width", "the hidden width rounded up (ceil(C / r)) where the paper's C' is C // r")
BATCH_MIXED = define_mistake("batch_mixed", "one image's result depends on the other images of the batch (a pooling, "
                                            "concatenation or reshape across the batch axis)")
SIGMOID_HIDDEN = define_mistake("sigmoid_hidden", "a sigmoid between the two layers where Eq. (3) has the ReLU delta")
SUM_SQUEEZE = define_mistake("sum_squeeze", "the squeeze sums over H and W where Eq. (2) averages (divides by H W)")
SPATIAL_MEAN = define_mistake("spatial_channel_mean", "the spatial gate from the channel mean, without the learned "
                                                      "1x1 conv of (G2)")
BAM_RESIDUAL = define_mistake("bam_residual", "x * (1 + gate), BAM's combination, where the module multiplies by the "
                                              "gates alone")
LARGER_TAIL = define_mistake("larger_tail", "the binomial tail summed up to max(n_a, n_b) where k = min(n_a, n_b)")
NO_DISAGREEMENT = define_mistake("no_disagreement", "a p-value that is not a number (NaN) when the two networks never "
                                                    "disagree (m = 0)")
RELATIVE = define_mistake("relative_difference", "a relative change (divided by the baseline's accuracy) where the "
                                                 "difference in percentage points is asked")
BOOL_ARITHMETIC = define_mistake("bool_arithmetic", "bool tensors subtracted or negated with -, which PyTorch refuses")
P_ONE = define_mistake("p_one", "a p-value of 1 for a lopsided split: a tail summed past the observed split")
MID_P = define_mistake("mid_p", "a mid-p value (half of the observed split's probability left out) where the exact "
                                "two-sided p-value is asked")
ROUNDED = define_mistake("rounded_result", "a result rounded where the exact value is asked (rounding is for printing)")
ACCURACY_NOT_DIFFERENCE = define_mistake("accuracy_not_difference", "one network's accuracy where the difference of "
                                                                    "the two is asked")
TRAIN_MODE = define_mistake("train_mode", "the gate gives other values in training mode (a Dropout or another layer "
                                          "that acts only in training), where (G1)-(G3) are the same in both modes")
AVGMAX_SQUEEZE = define_mistake("avg_max_squeeze", "the channel gate from both the mean and the max over H and W "
                                                   "(CBAM's squeeze) where (G1) has the mean only")
HIDDEN_ACTIVATION = define_mistake("hidden_activation", "another activation (GELU, ...) between the two layers where "
                                                        "(G1) has the ReLU delta")
TANH_GATE = define_mistake("tanh_gate", "a tanh where the gate's last step is a sigmoid")
DEAD_UNITS = define_mistake("dead_units", "parameters in the graph whose gradient is exactly zero: every hidden unit "
                                          "after the ReLU is 0 on the batch")

#: What each stored wrong result means: label -> (mistake id, advice). The tensors are stored in
#: checks/expected/ch09_capstone.pt under the same labels (built by the hidden module).
ADVICE: dict[str, tuple[str, str]] = {
    "channel_missing_sigmoid": ("missing_sigmoid",
                                "the channel gate has no sigmoid: c = sigmoid(W2 relu(W1 z)) lies in (0, 1)."),
    "channel_relu_after_last": ("relu_after_last",
                                "a ReLU after W2: it belongs between W1 and W2 only; after W2 it pushes every "
                                "gate to >= 0.5."),
    "channel_missing_relu": ("missing_relu", "no ReLU between W1 and W2: c = sigmoid(W2 relu(W1 z))."),
    "channel_max_squeeze": (MAX_SQUEEZE,
                            "the squeeze takes the max over H and W; SE's squeeze is the mean, x.mean((2, 3))."),
    "channel_softmax": ("softmax_gate",
                        "a softmax over the channels makes the C weights share a total of 1; the channel gate is "
                        "a sigmoid, each weight in (0, 1) on its own."),
    "spatial_missing_sigmoid": ("missing_sigmoid",
                                "the spatial gate has no sigmoid: s = sigmoid(conv1x1(x)) lies in (0, 1)."),
    "spatial_softmax": ("softmax_gate",
                        "a softmax over the H*W positions makes the map sum to 1 over the image; the spatial gate "
                        "is an element-wise sigmoid, one independent value per position."),
    "spatial_sequential": (SEQUENTIAL,
                           "the spatial gate was computed from x * c. Here both gates look at the same input x "
                           "(in parallel); CBAM's sequential order is a different module."),
    "out_channel_only": (GATE_MISSING, "forward returns x * c: the spatial gate s is not applied."),
    "out_spatial_only": (GATE_MISSING, "forward returns x * s: the channel gate c is not applied."),
    "out_sequential": (SEQUENTIAL,
                       "forward computes the spatial gate from x * c; in (G3) both gates come from x itself."),
    "out_added": ("values", "forward adds the gates (x * (c + s)); (G3) multiplies them."),
    "channel_sigmoid_hidden": (SIGMOID_HIDDEN, "a sigmoid between W1 and W2, where (G1) has the ReLU delta."),
    "channel_sum_squeeze": (SUM_SQUEEZE, "the squeeze sums over H and W; (G1)'s z_k is a mean, the sum divided by "
                                         "H W."),
    "channel_batch_squeeze": (BATCH_MIXED, "the squeeze also averages over the batch (dim 0), so every image gets "
                                             "the same channel gate; z is one mean per image and channel."),
    "spatial_channel_mean": (SPATIAL_MEAN, "the spatial gate is the sigmoid of the channel mean, which ignores the "
                                           "learned weights w and b_s of (G2)."),
    "channel_avg_max": (AVGMAX_SQUEEZE, "the channel gate adds the MLP of the mean and the MLP of the max over H and W "
                                        "(CBAM's channel gate); (G1) squeezes with the mean alone."),
    "channel_gelu": (HIDDEN_ACTIVATION, "a GELU between W1 and W2, where (G1) has the ReLU delta."),
    "spatial_channel_mean_bias": (SPATIAL_MEAN, "the spatial gate is the sigmoid of the channel mean plus b_s: the "
                                                "mean gives every channel the same weight, where (G2) learns one "
                                                "weight per channel, w."),
    "spatial_tanh": (TANH_GATE, "the spatial gate is a tanh, with values in (-1, 1); (G2) ends with a sigmoid, "
                                "values in (0, 1)."),
    "out_bam": (BAM_RESIDUAL, "forward returns x * (1 + c * s), BAM's way of combining its branches; (G3) is a plain "
                              "product with no 1 added."),
}

#: Errors a gate typically raises, with the mistake they point to.
HINTS: Sequence[tuple[str, str, str]] = (
    ("channels, but got 1 channels instead", "pool_axis",
     "something averaged over the channel axis (dim 1), leaving one channel. The squeeze averages over H "
     "and W (dims 2 and 3); the spatial gate's 1x1 conv sees all C channels."),
    ("required positional argument", "default_args",
     "a call that leaves out an argument the stub's signature gives a default (reduction=4) failed: the "
     "signature lost that default."),
    ("with two bool tensors is not supported", "bool_arithmetic",
     "the inputs are bool tensors, and PyTorch does not subtract bool tensors (nor negate them with -)."),
)

_call = functools.partial(call_with_hints, hints=HINTS)

#: (C, r) of a second gate whose layers are checked: 22 / 4 = 5.5, so C // r, ceil and round disagree
ODD_WIDTH = (22, 4)
_close = functools.partial(close_named, advice=ADVICE)
_unchanged = functools.partial(expect_unchanged, advice="x *= c, x.mul_(c), ...")


# --------------------------------------------------------------------------------------------
# Exercise 1: the gate
# --------------------------------------------------------------------------------------------
def gate_count_by_hand(channels: int, reduction: int = 4) -> int:
    """2 C C' + C' + C (channel gate, biases included) + C + 1 (spatial 1x1 conv with bias), C' = C // r."""
    return _count_with_hidden(channels, channels // reduction)


def _count_with_hidden(channels: int, hidden: int) -> int:
    return 2 * channels * hidden + hidden + channels + channels + 1


def gate_roles(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored weights under the names the messages use."""
    return {
        "W1 weight (C' x C)": weights["fc1.weight"],
        "W1 bias (C')": weights["fc1.bias"],
        "W2 weight (C x C')": weights["fc2.weight"],
        "W2 bias (C)": weights["fc2.bias"],
        "spatial conv weight (1 x C)": weights["spatial.weight"],
        "spatial conv bias (1)": weights["spatial.bias"],
    }


#: the stored weights' keys under gate_roles' names
_ROLE_KEYS = {"W1 weight (C' x C)": "fc1.weight", "W1 bias (C')": "fc1.bias", "W2 weight (C x C')": "fc2.weight",
              "W2 bias (C)": "fc2.bias", "spatial conv weight (1 x C)": "spatial.weight",
              "spatial conv bias (1)": "spatial.bias"}


def _role_key(shape: Sequence[int]) -> tuple:
    """What a parameter can play: a vector (one axis longer than 1: (C,), (C, 1), (1, C), (1, C, 1, 1), ...) by its
    length; a matrix by its shape, a 1x1 conv weight (o, i, 1, 1) counting as the Linear weight (o, i)."""
    shape = tuple(int(s) for s in shape)
    if sum(s != 1 for s in shape) <= 1:
        return ("vector", math.prod(shape))
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return ("matrix",) + shape


def load_gate(module: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str,
              probe: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> dict[str, tuple[str, Any]]:
    """Copy the stored weights into the student's gate, each to the parameter whose shape can hold it.

    w of (G2) may be stored in any layout of its C numbers ((C,), (C, 1), (1, C), (1, C, 1, 1)), and b_s as (1,)
    or a scalar; when two parameters could each hold two roles (W2's bias and w are both C numbers), each way of
    loading them is tried on ``probe`` = (x, channel gate, spatial gate) and the one that reproduces it is kept.
    Returns state-dict key -> (the student's parameter name, parameter).
    """
    roles = {_ROLE_KEYS[r]: t for r, t in gate_roles(weights).items()}
    own = list(module.named_parameters())
    role_groups: dict[tuple, list[str]] = {}
    own_groups: dict[tuple, list[tuple[str, Any]]] = {}
    for key, tensor in roles.items():
        role_groups.setdefault(_role_key(tensor.shape), []).append(key)
    for name, param in own:
        own_groups.setdefault(_role_key(param.shape), []).append((name, param))
    if role_groups.keys() != own_groups.keys() or any(len(v) != len(own_groups[k]) for k, v in role_groups.items()):
        load_by_shape(module, gate_roles(weights), what=what)  # names what does not fit
        raise CheckFailure(f"{what}'s parameters do not match the layers of (G1) and (G2).", mistake="parameters")
    groups = [(keys, own_groups[k]) for k, keys in role_groups.items()]

    def assign(choice: Sequence[Sequence[int]]) -> dict[str, tuple[str, Any]]:
        placed = {}
        with torch.no_grad():
            for (keys, params), order in zip(groups, choice):
                for key, j in zip(keys, order):
                    name, param = params[j]
                    param.copy_(roles[key].reshape(param.shape).to(param.dtype))
                    placed[key] = (name, param)
        return placed

    choices = list(itertools.product(*(itertools.permutations(range(len(keys))) for keys, _ in groups)))
    best = choices[0]
    if len(choices) > 1 and probe is not None:
        x, want_c, want_s = probe
        errors = []
        was = module.training
        module.eval()
        for choice in choices:
            assign(choice)
            try:
                with torch.no_grad():
                    got = module.attention(x.clone())
                err = sum(float((g.detach().double() - t.double()).abs().max()) for g, t in zip(got, (want_c, want_s)))
            except Exception:  # noqa: BLE001 - a way of loading that the student's code cannot run is not it
                err = math.inf
            errors.append(err if math.isfinite(err) else math.inf)
        module.train(was)
        best = choices[min(range(len(choices)), key=errors.__getitem__)]
    placed = assign(best)
    passed()
    return placed


def check_gate_layers(module: nn.Module, channels: int, reduction: int, *, what: str) -> None:
    """The layers the exercise asks for, by count and shape, naming the usual departures."""
    hidden = channels // reduction
    listing = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in module.named_parameters()) or "none"
    for name, param in module.named_parameters():
        if param.dim() == 4 and tuple(param.shape[:2]) == (1, channels) and tuple(param.shape[2:]) != (1, 1):
            raise CheckFailure(
                f"{what}'s spatial conv {name} has a {param.shape[2]}x{param.shape[3]} kernel; the exercise asks "
                "for a 1x1 conv, nn.Conv2d(channels, 1, kernel_size=1): one weight per channel, no neighbours.",
                mistake="kernel_size",
            )
    got = count_parameters(module)
    want = gate_count_by_hand(channels, reduction)
    if got == want:
        passed()
        return
    # the message names the departure; it prints neither the expected count nor the formula (exercise 2 asks it)
    intro = (f"{what} has {got} trainable parameters, not the number (G1) and (G2) give for C = {channels}, "
             f"r = {reduction}.\n  yours: {listing}")
    rounded = {math.ceil(channels / reduction), round(channels / reduction)} - {hidden}
    for width in sorted(rounded):
        if got in {_count_with_hidden(channels, width), _count_with_hidden(channels, width) - width - channels - 1}:
            raise CheckFailure(intro + f"\n  Likely mistake: the hidden width is rounded up or to the nearest int "
                                       f"({channels} / {reduction} -> {width}); (G1)'s C' is C / r rounded down.",
                               mistake=HIDDEN_WIDTH)
    for ignored in {channels // 4, channels // 16} - {hidden}:
        if ignored >= 1 and got in {_count_with_hidden(channels, ignored),
                                    _count_with_hidden(channels, ignored) - ignored - channels - 1}:
            raise CheckFailure(intro + f"\n  Likely mistake: the hidden layer has {ignored} units whatever "
                                       "`reduction` is: the argument does not reach the layer sizes.",
                               mistake="reduction_ignored")
    if got in (want - 1, want - hidden - channels, want - hidden - channels - 1, want - hidden, want - channels):
        raise CheckFailure(intro + "\n  Likely mistake: a layer without bias. Every layer of (G1) and (G2) keeps "
                                   "its bias (nn.Linear's and nn.Conv2d's default bias=True).",
                           mistake="missing_bias")
    if got in (want - channels - 1, want - channels):
        raise CheckFailure(intro + "\n  Likely mistake: no layer holds the spatial gate's weights w and b_s of (G2); "
                                   "attention(x) computes s with them.",
                           mistake="parameters")
    raise CheckFailure(intro + "\n  Likely mistake: a layer of another shape, or one too many. Compare each of yours "
                               "with W1, W2 and w of (G1) and (G2); nothing else has parameters.",
                       mistake="param_count")


def _two_gates(result: Any, b: int, c: int, h: int, w: int, *, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """attention(x)'s result as (channel gate (B, C, 1, 1), spatial gate (B, 1, H, W)), or a named failure."""
    want = f"a tuple (channel_gate {fmt_shape((b, c, 1, 1))}, spatial_gate {fmt_shape((b, 1, h, w))})"
    if isinstance(result, torch.Tensor):
        shape = tuple(result.shape)
        if shape == (b, c, h, w):
            raise CheckFailure(f"{what} returned one tensor of shape {fmt_shape(shape)}, the shape of x: the "
                               f"gated features. attention(x) returns the two maps, {want}; forward applies them.",
                               mistake="returns_features")
        raise CheckFailure(f"{what} returned one tensor of shape {fmt_shape(shape)}; it should return {want}.",
                           mistake="shape")
    if not isinstance(result, (tuple, list)) or len(result) != 2 or \
            not all(isinstance(t, torch.Tensor) for t in result):
        raise CheckFailure(f"{what} returned {type(result).__name__}; it should return {want}.", mistake="shape")
    first, second = result
    if tuple(first.shape) == (b, 1, h, w) and tuple(second.shape) == (b, c, 1, 1):
        raise CheckFailure(f"{what} returned (spatial_gate, channel_gate); return them in the order "
                           "(channel_gate, spatial_gate).", mistake=GATE_ORDER)
    expect_shape(first, (b, c, 1, 1), what=f"{what}[0], the channel gate",
                 hint="squeeze with x.mean((2, 3)), run the MLP, and keep (B, C, 1, 1) so that it broadcasts "
                      "over H and W (rearrange(c, 'b c -> b c 1 1')).")
    expect_shape(second, (b, 1, h, w), what=f"{what}[1], the spatial gate",
                 hint="a 1x1 conv from C channels to 1 map keeps H and W: nn.Conv2d(channels, 1, kernel_size=1).")
    return first, second


@exercise("ChannelSpatialGate", budget_s=10)
def check_gate(cls: type) -> None:
    """ChannelSpatialGate(channels, reduction=4): attention(x) -> (c, s); forward(x) = x * c * s."""
    E = expected(CHAPTER)["gate"]
    c, r = int(E["channels"]), int(E["reduction"])
    name = f"{getattr(cls, '__name__', cls)}({c}, reduction={r})"
    module = build(cls, c, reduction=r)
    check_gate_layers(module, c, r, what=name)
    # a width where C // r, ceil(C / r) and round(C / r) differ (20 // 5 cannot tell them apart)
    odd_c, odd_r = ODD_WIDTH
    check_gate_layers(build(cls, odd_c, reduction=odd_r), odd_c, odd_r,
                      what=f"{getattr(cls, '__name__', cls)}({odd_c}, reduction={odd_r})")
    x = E["x"]
    load_gate(module, E["weights"], what=name, probe=(x, E["channel"], E["spatial"]))
    module.eval()

    b, _, h, w = x.shape
    x_in = x.clone()
    doing = f"{name}.attention(x) with x of shape {fmt_shape(x.shape)}"
    result = _call(module.attention, x_in, doing=doing)
    _unchanged(x, x_in, what=f"{name}.attention(x)")
    channel, spatial = _two_gates(result, b, c, h, w, what=f"{name}.attention(x)")
    _close(channel, E["channel"], what="the channel gate c", diagnoses=E["channel_diagnoses"],
           hint="c = sigmoid(W2 relu(W1 z)) with z = x.mean((2, 3)), Eq. (G1).")
    _close(spatial, E["spatial"], what="the spatial gate s", diagnoses=E["spatial_diagnoses"],
           hint="s = sigmoid(conv1x1(x)), Eq. (G2): a weighted sum over the channels at each position, plus a bias.")

    x_in = x.clone()
    out = _call(module, x_in, doing=f"{name}(x)")
    _unchanged(x, x_in, what=f"{name}(x)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) in {(b, c, 1, 1), (b, 1, h, w)}:
        raise CheckFailure(f"{name}(x) returned shape {fmt_shape(out.shape)}, a gate. forward(x) applies both gates "
                           f"and returns x * c * s, the shape of x {fmt_shape(x.shape)}.", mistake="returns_map")
    if isinstance(out, (tuple, list)):
        raise CheckFailure(f"{name}(x) returned a {type(out).__name__}; forward(x) returns one tensor, x * c * s.",
                           mistake="returns_map")
    _close(out, E["out"], what=f"{name}(x)", diagnoses=E["out_diagnoses"],
           hint="forward(x) = x * c * s, Eq. (G3), with (c, s) = self.attention(x).")
    expect_informative_defaults(cls, (c,), {"reduction": 4}, E["x"], what=getattr(cls, "__name__", "the gate"),
                                layout=lambda channels, reduction: channels // reduction)

    # float64 at float64 precision, and the channels_last layout, as the rules of exercise 1 say
    twin = copy.deepcopy(module).double()
    x64 = x.double()
    doing = f"{name}.attention(x) with x in float64"
    channel, spatial = _two_gates(_call(twin.attention, x64.clone(), doing=doing), b, c, h, w, what=doing)
    expect_follows(channel, dtype=torch.float64, doing=f"{doing}: the channel gate")
    expect_follows(spatial, dtype=torch.float64, doing=f"{doing}: the spatial gate")
    _close(channel, E["channel"], what="the channel gate c in float64", diagnoses=E["channel_diagnoses"])
    _close(spatial, E["spatial"], what="the spatial gate s in float64", diagnoses=E["spatial_diagnoses"])
    doing = f"{name}(x) with x in float64"
    out = _call(twin, x64.clone(), doing=doing)
    expect_follows(out, dtype=torch.float64, doing=doing)
    _close(out, E["out"], what=doing, diagnoses=E["out_diagnoses"])
    expect_layouts(module.attention, (x,), what=f"{name}.attention(x)", hints=HINTS)
    expect_layouts(module, (x,), what=f"{name}(x)", hints=HINTS)

    expect_module_gradients(module, x, what=name, upstream=E["upstream"], grad_x=E["grad_x"], hints=HINTS)
    expect_device_free(module, x, what=name)
    expect_same_in_training(module, x, E["channel"], E["spatial"], E["out"], what=name)


def expect_same_in_training(module: nn.Module, x: torch.Tensor, channel: torch.Tensor, spatial: torch.Tensor,
                            out: torch.Tensor, *, what: str) -> None:
    """In training mode (as CapstoneNet trains it) the gate gives the values it gives in eval mode."""
    twin = copy.deepcopy(module).train()
    for _ in range(2):  # a random layer is seldom right twice
        with torch.no_grad():
            result = _call(twin.attention, x.clone(), doing=f"{what}.attention(x) in training mode")
            y = _call(twin, x.clone(), doing=f"{what}(x) in training mode")
        gates = result if isinstance(result, (tuple, list)) and len(result) == 2 else (None, None)
        for got, want, shown in ((gates[0], channel, "the channel gate c"), (gates[1], spatial, "the spatial gate s"),
                                 (y, out, f"{what}(x)")):
            if isinstance(got, torch.Tensor) and got.shape == want.shape and not is_close(got, want.to(got.dtype)):
                raise CheckFailure(
                    f"in training mode (module.train(), as CapstoneNet trains it) {shown} differs from the value it "
                    "has in eval mode, which is right.\n  Likely mistake: a layer that acts only in training "
                    "(nn.Dropout, F.dropout, a BatchNorm, ...); nothing in (G1)-(G3) depends on the mode.",
                    mistake=TRAIN_MODE)
    passed()


@exercise("ChannelSpatialGate in CapstoneNet", budget_s=10)
def check_gate_in_network(cls: type) -> None:
    """The gate fills CapstoneNet's slot: logits come out, gradients reach the gate, the helpers find its maps."""
    from course_lib.capstone import CapstoneNet, attention_outputs

    E = expected(CHAPTER)["network"]
    images, labels = E["images"], E["labels"]
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckFailure(f"expected an nn.Module subclass, got {cls!r}", mistake="not_module")
    for widths in ((16, 32, 48), (8, 12, 20)):
        net = _call(CapstoneNet, cls, widths=widths,
                    doing=f"CapstoneNet({cls.__name__}, widths={widths}) (the slot calls {cls.__name__}({widths[-1]}))")
        net.train()
        try:
            logits = _call(net, images, doing=f"CapstoneNet({cls.__name__}, widths={widths})(images)")
        except CheckFailure as failure:
            if "the attention slot must map" in str(failure):
                raise CheckFailure(f"{failure}\n  Likely mistake: forward(x) returns the gated features x * c * s, "
                                   "of the shape of x; a gate or a map does not fit the slot.",
                                   mistake="returns_map") from None
            raise
        expect_shape(logits, (len(images), 10), what="the network's logits")
        loss = torch.nn.functional.cross_entropy(logits, labels)
        _call(loss.backward, doing="backward through the network")
        cut = [n for n, p in net.attention.named_parameters() if p.grad is None]
        expect(not cut,
               f"inside CapstoneNet no gradient reached these parameters of your gate: {', '.join(cut)}. "
               "They would never train: keep the gates in the autograd graph.", mistake="no_grad")
        zero = [n for n, p in net.attention.named_parameters() if not bool(p.grad.abs().sum() > 0)]
        if zero:
            slot = widths[-1]
            given = _signature_default(cls, "reduction")
            if given is not None and given != 4 and slot // given != slot // 4:
                raise CheckFailure(
                    f"inside CapstoneNet the gradient of these parameters of your gate is exactly zero: "
                    f"{', '.join(zero)}. The slot builds {cls.__name__}({slot}) with the default reduction, and "
                    f"yours is {given!r}, not the stub's 4: its {slot // given} hidden unit(s) are all inactive "
                    "(the ReLU gives 0) on this batch, so nothing reaches W1 and W2.", mistake="default_args")
            raise CheckFailure(
                f"inside CapstoneNet the gradient of these parameters of your gate is exactly zero: {', '.join(zero)}. "
                "They are in the autograd graph, but no signal passes: every hidden unit after the ReLU is 0 for "
                "every image of the batch (too few units, or a bias that pushes them all below 0).",
                mistake=DEAD_UNITS)
        passed()
        found = _call(attention_outputs, net, images, doing="course_lib.capstone.attention_outputs(net, images)")
        expect("channel" in found and "spatial" in found,
               "course_lib.capstone finds the maps by their shapes: attention(features) must return a (B, C, 1, 1) "
               f"channel gate and a (B, 1, H, W) spatial gate; it found {sorted(found) or 'none'}.",
               mistake="shape")


def _signature_default(cls: type, name: str) -> Any:
    """The default of ``cls``'s argument ``name``, or None when it has none (or the signature is unreadable)."""
    try:
        param = inspect.signature(cls).parameters.get(name)
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


# --------------------------------------------------------------------------------------------
# Exercise 2: the parameter count
# --------------------------------------------------------------------------------------------
@exercise("gate_parameter_count", budget_s=5)
def check_gate_parameter_count(fn: Callable[..., Any]) -> None:
    """gate_parameter_count(channels, reduction=4) = 2 C C' + C' + C + C + 1 with C' = C // r."""
    for case in expected(CHAPTER)["parameter_count"]:
        c, r, want = int(case["channels"]), int(case["reduction"]), int(case["count"])
        args = (c,) if r == 4 else (c, r)
        shown = f"gate_parameter_count({', '.join(str(a) for a in args)})"
        got = expect_int(_call(fn, *args, doing=shown), what=shown)
        if got == want:
            passed()
            continue
        h = c // r
        # names the departure; prints neither the expected count nor the formula
        message = f"{shown} returned {got}, not the number of trainable parameters of ChannelSpatialGate({c}, {r})."
        rounded = sorted({math.ceil(c / r), round(c / r)} - {h})
        if any(got == _count_with_hidden(c, k) for k in rounded) or \
                got in {math.floor(_count_with_hidden(c, c / r)), round(_count_with_hidden(c, c / r))}:
            raise CheckFailure(message + f"\n  Likely mistake: the hidden width is not rounded down ({c} / {r} = "
                                         f"{c / r:g}); (G1)'s C' is C / r rounded down.", mistake=HIDDEN_WIDTH)
        ignored = [k for k in {c // 4, c // 16} - {h} if k >= 1 and got == _count_with_hidden(c, k)]
        if ignored:
            raise CheckFailure(message + f"\n  Likely mistake: the hidden width is {ignored[0]} whatever `reduction` "
                                         "is (a hard-coded // 4 or // 16).", mistake="reduction_ignored")
        if got in (want - 1, want - h - c, want - h - c - 1, want - h, want - c):
            raise CheckFailure(message + "\n  Likely mistake: a bias is left out; every layer of (G1) and (G2) has "
                                         "one bias per output.", mistake="missing_bias")
        if got in (want - c - 1, want - c):
            raise CheckFailure(message + "\n  Likely mistake: the spatial gate (G2) is left out.",
                               mistake="param_count")
        if got == want + 8 * c:
            raise CheckFailure(message + "\n  Likely mistake: the spatial conv counted with a 3x3 kernel; (G2) is a "
                                         "1x1 convolution, one weight per channel.", mistake="kernel_size")
        if got == want - c * h:
            raise CheckFailure(message + "\n  Likely mistake: one weight matrix of the MLP is left out; (G1) has two, "
                                         "W1 and W2.", mistake="param_count")
        raise CheckFailure(message + "\n  Likely mistake: compare each layer you counted with the shapes of W1, W2 "
                                     "and w in (G1) and (G2), and their biases.", mistake="param_count")


# --------------------------------------------------------------------------------------------
# Exercise 4: judging a localisation claim
# --------------------------------------------------------------------------------------------
class GivenMap(nn.Module):
    """A slot module whose spatial map is given: ``maps`` (N, 1, h, w), one per image, in order.

    ``attention(f)`` returns the first B maps for a batch of B; ``forward(f) = f * attention(f)``.
    It lets a check know in advance whether a map finds the digit.
    """

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("maps", maps)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps[: x.shape[0]].to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


_KEYS = ("lift", "control_lift", "finds_digit", "beats_control")


def control_as_map(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The control map (the channel mean of |features| entering the slot), (N, 1, h, w): given as the attention
    map, its lift ties with the control's, and 'above the control' is False."""
    with torch.no_grad():
        return net.features(images).abs().mean(1, keepdim=True).float()


def truth_of_localisation(model: nn.Module, images: torch.Tensor, boxes: torch.Tensor) -> dict[str, Any]:
    """What judge_localisation should return, from course_lib.capstone's helpers (and what slips give)."""
    from course_lib.capstone import localisation, spatial_maps

    att = localisation(spatial_maps(model, images), boxes)
    ctrl = localisation(spatial_maps(model, images, control=True), boxes)
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1.0,
            "beats_control": att["lift"] > ctrl["lift"], "att": att, "ctrl": ctrl}


def _as_float(value: Any, *, what: str) -> float:
    import numpy as np

    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckFailure(f"{what} should be a number, got {value!r} ({type(value).__name__}).", mistake="values")
    return float(value)


def _as_bool(value: Any, *, what: str) -> bool:
    import numpy as np

    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise CheckFailure(f"{what} should be True or False, got {value!r} ({type(value).__name__}).", mistake="values")


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _expect_keys(answer: Any, keys: Sequence[str], *, what: str) -> None:
    """A function's answer is a dict with these keys (more are allowed)."""
    if not isinstance(answer, Mapping):
        raise CheckFailure(f"{what} returned {type(answer).__name__}; it should return a dict with the keys "
                           f"{', '.join(keys)}.", mistake="values")
    missing = [k for k in keys if k not in answer]
    expect(not missing, f"{what} returned a dict without {', '.join(missing)}; expected the keys {', '.join(keys)}.",
           mistake="values")


def grade_judgement(answer: Any, truth: Mapping[str, Any], *, what: str) -> None:
    """Compare judge_localisation's answer with the truth, naming the mistake a wrong answer matches."""
    _expect_keys(answer, _KEYS, what=what)
    att, ctrl = truth["att"], truth["ctrl"]
    lift = _as_float(answer["lift"], what=f"{what}: 'lift'")
    control = _as_float(answer["control_lift"], what=f"{what}: 'control_lift'")
    if not _same(lift, truth["lift"]):
        for key in ("mass_in_box", "pointing_hit", "box_area"):
            if _same(lift, att[key]):
                raise CheckFailure(
                    f"{what}: 'lift' = {lift:.4f} is the map's {key}; the lift is localisation(...)['lift'] = "
                    f"{truth['lift']:.4f}: mass in box divided by the box's area, so that 1 means 'no better than a "
                    "map blind to the digit'.", mistake=WRONG_METRIC)
        if _same(lift, ctrl["lift"]):
            raise CheckFailure(f"{what}: 'lift' = {lift:.4f} is the control's lift: spatial_maps(model, images) "
                               "(without control=True) gives the attention map.", mistake=NO_CONTROL)
        raise CheckFailure(f"{what}: 'lift' = {lift:.4f}; expected {truth['lift']:.4f}, "
                           "localisation(spatial_maps(model, images), boxes)['lift'].", mistake="values")
    passed()
    if not _same(control, truth["control_lift"]):
        if _same(control, truth["lift"]):
            raise CheckFailure(
                f"{what}: 'control_lift' equals the attention map's lift ({control:.4f}). The control is "
                "spatial_maps(model, images, control=True): the channel mean of |features| entering the slot, "
                f"with no attention involved; its lift here is {truth['control_lift']:.4f}.", mistake=NO_CONTROL)
        for key in ("mass_in_box", "pointing_hit", "box_area"):
            if _same(control, ctrl[key]):
                raise CheckFailure(f"{what}: 'control_lift' = {control:.4f} is the control's {key}; use its lift "
                                   f"({truth['control_lift']:.4f}).", mistake=WRONG_METRIC)
        raise CheckFailure(f"{what}: 'control_lift' = {control:.4f}; expected {truth['control_lift']:.4f}.",
                           mistake="values")
    passed()
    finds = _as_bool(answer["finds_digit"], what=f"{what}: 'finds_digit'")
    if finds != truth["finds_digit"]:
        if finds == (att["pointing_hit"] > 0.5) or finds == (att["pointing_hit"] >= 0.5):
            raise CheckFailure(
                f"{what}: 'finds_digit' is {finds}, but the lift is {truth['lift']:.3f}. This map's maximum lies in the "
                f"box on {att['pointing_hit']:.0%} of the images (the pointing game), while its mass is "
                f"{'mostly elsewhere' if truth['lift'] < 1 else 'where the digit is'}: the exercise asks about the "
                "map's mass, the lift, not where its peak is.", mistake=WRONG_METRIC)
        if truth["lift"] == 1.0:
            raise CheckFailure(
                f"{what}: 'finds_digit' is {finds} for a map whose lift is exactly 1: it does as well as a map blind "
                "to the digit, no better. 'Above 1' is strict.", mistake=WRONG_BASELINE)
        raise CheckFailure(
            f"{what}: 'finds_digit' is {finds}, but the lift is {truth['lift']:.3f} (mass in box "
            f"{att['mass_in_box']:.3f}, box area {att['box_area']:.3f}). The baseline is a map blind to the digit, "
            "which puts about `area` of its mass in the box (lift 1); the verdict depends on the map, it is not a "
            "fixed answer.", mistake=WRONG_BASELINE)
    passed()
    beats = _as_bool(answer["beats_control"], what=f"{what}: 'beats_control'")
    if beats != truth["beats_control"]:
        if truth["lift"] == truth["control_lift"]:
            raise CheckFailure(
                f"{what}: 'beats_control' is {beats} for a map whose lift equals the control's exactly "
                f"({truth['lift']:.3f}): it finds the digit as well as the backbone's own activity does, no better. "
                "'Above the control's' is strict.", mistake=WRONG_BASELINE)
        raise CheckFailure(
            f"{what}: 'beats_control' is {beats}, but the map's lift is {truth['lift']:.3f} and the control's "
            f"{truth['control_lift']:.3f}. The question is whether the attention finds the digit better than the "
            "backbone's own activity does, by the same measure.", mistake=WRONG_BASELINE)
    passed()


@exercise("judge_localisation", budget_s=10)
def check_judge_localisation(fn: Callable[..., Any]) -> None:
    """judge_localisation(model, images, boxes) on networks whose maps are known to find the digit, or not."""
    from course_lib.capstone import CapstoneNet

    E = expected(CHAPTER)["judge"]
    images, boxes = E["images"], E["boxes"]
    net = CapstoneNet(None).eval()  # one backbone (seeded by the check), several given maps
    for label, maps in {**E["maps"], "the control map itself": control_as_map(net, images)}.items():
        net.attention = GivenMap(maps)
        truth = truth_of_localisation(net, images, boxes)
        expect(label != "the control map itself" or truth["lift"] == truth["control_lift"],
               "internal: the control map given as the attention map has another lift", mistake="values")
        what = f"judge_localisation(model, images, boxes), map {label!r}"
        answer = _call(fn, net, images.clone(), boxes.clone(), doing=what)
        grade_judgement(answer, truth, what=what)


# --------------------------------------------------------------------------------------------
# Exercise 3: a paired comparison of two networks on the same test images
# --------------------------------------------------------------------------------------------
def paired_by_hand(baseline: torch.Tensor, variant: torch.Tensor) -> dict[str, Any]:
    """delta_pt, variant_wins n_b, baseline_wins n_a and McNemar's exact two-sided p, in plain Python."""
    a, b = [bool(v) for v in baseline.tolist()], [bool(v) for v in variant.tolist()]
    n_b = sum(1 for x, y in zip(a, b) if y and not x)
    n_a = sum(1 for x, y in zip(a, b) if x and not y)
    return {"delta_pt": 100.0 * (n_b - n_a) / len(a), "variant_wins": n_b, "baseline_wins": n_a,
            "p_value": _binomial_p(n_a, n_b)}


def _binomial_p(n_a: int, n_b: int, *, sided: int = 2, strict: bool = False, total: int | None = None,
                larger: bool = False) -> float:
    m = n_a + n_b if total is None else total
    k = max(n_a, n_b) if larger else min(n_a, n_b)
    tail = sum(math.comb(m, i) for i in range(k if strict else k + 1)) / 2 ** m
    return min(1.0, sided * tail) if sided == 2 else tail


def paired_slips(baseline: torch.Tensor, variant: torch.Tensor) -> list[tuple[str, str, float]]:
    """p-values that known slips give on this pair: (mistake id, what was done, p)."""
    right = paired_by_hand(baseline, variant)
    n_a, n_b, n = right["baseline_wins"], right["variant_wins"], len(baseline)
    m = n_a + n_b
    slips = [
        (ONE_SIDED, "a one-sided p, P(X <= k) without the factor 2", _binomial_p(n_a, n_b, sided=1)),
        (TAIL, "the tail P(X < k) instead of P(X <= k): the observed split itself must count",
         _binomial_p(n_a, n_b, strict=True)),
        (CONCORDANT, f"a Binomial over all n = {n} images: the concordant images (right for both or wrong for both) "
                     "carry no information on which network is better; the coin is flipped only for the "
                     f"m = n_a + n_b = {m} disagreements", _binomial_p(n_a, n_b, total=n)),
    ]
    if m:
        slips.append((MID_P, "a mid-p value: only half of the observed split's own probability P(X = k) is counted in "
                             "the tail; the exact test counts all of it",
                      min(1.0, 2 * _binomial_p(n_a, n_b, sided=1) - math.comb(m, min(n_a, n_b)) / 2 ** m)))
    right_a, right_b = int(baseline.sum()), int(variant.sum())
    slips.append((CONCORDANT, f"a Binomial over all n = {n} images, on the numbers of images each network gets right: "
                              "McNemar's coin is flipped only for the m = n_a + n_b = "
                              f"{m} images on which the two disagree",
                  min(1.0, 2 * sum(math.comb(n, i) for i in range(min(right_a, right_b) + 1)) / 2 ** n)))
    if n_a != n_b:
        slips.append((LARGER_TAIL, "the tail is summed up to the larger of n_a and n_b; the lopsided tail is the one "
                                   "on the side of the smaller count", _binomial_p(n_a, n_b, larger=True)))
    if m:
        z = abs(n_b - n_a) / math.sqrt(m)
        slips.append((NORMAL, "the normal (chi-square) approximation; the exercise asks for the exact binomial tail",
                      math.erfc(z / math.sqrt(2))))
        zc = max(abs(n_b - n_a) - 1, 0) / math.sqrt(m)
        slips.append((NORMAL, "the normal approximation with a continuity correction; the exercise asks for the exact "
                              "binomial tail", math.erfc(zc / math.sqrt(2))))
    acc_a = sum(bool(v) for v in baseline.tolist()) / n
    acc_b = sum(bool(v) for v in variant.tolist()) / n
    se = math.sqrt(acc_a * (1 - acc_a) / n + acc_b * (1 - acc_b) / n)
    if se > 0:
        slips.append((UNPAIRED, "an unpaired z-test, as if the two accuracies came from different test images "
                                "(sqrt(pa(1-pa)/n + pb(1-pb)/n)): it ignores that most images are right for both",
                      math.erfc(abs(acc_b - acc_a) / se / math.sqrt(2))))
    uncapped = 2 * _binomial_p(n_a, n_b, sided=1)
    if uncapped > 1:
        slips.append((NOT_CAPPED, "2 P(X <= k) is above 1 here (an even split): a probability is capped at 1, "
                                  "p = min(1, 2 P(X <= k))", uncapped))
    return slips


def _pair_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(baseline, variant) correctness, bool (n,), chosen so that every slip gives another answer."""
    def pair(n: int, both: int, b_only: int, a_only: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.zeros(n, dtype=torch.bool)
        b = torch.zeros(n, dtype=torch.bool)
        a[:both] = b[:both] = True
        b[both:both + b_only] = True
        a[both + b_only:both + b_only + a_only] = True
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return a[order], b[order]

    return [pair(400, 340, 14, 5, 1), pair(250, 200, 3, 11, 2), pair(120, 90, 6, 6, 3), pair(50, 44, 0, 0, 4)]


def grade_paired(answer: Any, baseline: torch.Tensor, variant: torch.Tensor, *, what: str) -> None:
    """Compare paired_difference's answer with the truth, naming the mistake a wrong answer matches."""
    right = paired_by_hand(baseline, variant)
    _expect_keys(answer, ("delta_pt", "variant_wins", "baseline_wins", "p_value"), what=what)
    n_a, n_b = right["baseline_wins"], right["variant_wins"]
    wins = expect_int(answer["variant_wins"], what=f"{what}['variant_wins']")
    losses = expect_int(answer["baseline_wins"], what=f"{what}['baseline_wins']")
    if (wins, losses) != (n_b, n_a):
        if (wins, losses) == (n_a, n_b) and n_a != n_b:
            raise CheckFailure(f"{what}: variant_wins = {wins} and baseline_wins = {losses} are swapped. variant_wins "
                               f"counts the images the variant gets right and the baseline wrong ({n_b} here).",
                               mistake=WINS_SWAPPED)
        raise CheckFailure(f"{what}: variant_wins = {wins}, baseline_wins = {losses}. They count the images right for "
                           "one network and wrong for the other, each its own way round (of "
                           f"{len(baseline)} images, {int((baseline & variant).sum())} are right for both).",
                           mistake="values")
    passed()
    delta = _as_float(answer["delta_pt"], what=f"{what}['delta_pt']")
    want = right["delta_pt"]
    if not math.isclose(delta, want, rel_tol=1e-5, abs_tol=1e-4):  # float32 means are fine
        if _same(delta, want / 100):
            raise CheckFailure(f"{what}['delta_pt'] = {delta:.4g} is a fraction; the exercise asks for "
                               "percentage points.", mistake=UNITS)
        if _same(delta, -want):
            raise CheckFailure(f"{what}['delta_pt'] = {delta:+.2f} has the wrong sign: it is the baseline's accuracy "
                               "minus the variant's.", mistake=PAIRED_SIGN)
        m = n_a + n_b
        acc_a = float(baseline.double().mean())
        if acc_a and _same(delta, want / acc_a):
            raise CheckFailure(f"{what}['delta_pt'] = {delta:+.2f} is a relative change (divided by the baseline's "
                               "accuracy); the exercise asks for the difference of the two accuracies, in percentage "
                               "points.", mistake=RELATIVE)
        if m and _same(delta, 100 * (n_b - n_a) / m):
            raise CheckFailure(f"{what}['delta_pt'] = {delta:+.2f} divides by the {m} disagreements; an accuracy "
                               f"is a share of all n = {len(baseline)} test images.",
                               mistake="values")
        if _same(delta, round(want, 1)) or _same(delta, round(want)) or _same(delta, round(want, 2)):
            raise CheckFailure(f"{what}['delta_pt'] = {delta:g} is rounded; the exercise asks for the exact "
                               "difference (round only when you print it).", mistake=ROUNDED)
        n = len(baseline)
        for acc, who in ((int(variant.sum()), "the variant's"), (int(baseline.sum()), "the baseline's")):
            if _same(delta, 100 * acc / n) or _same(delta, acc / n):
                raise CheckFailure(f"{what}['delta_pt'] = {delta:.4g} is {who} own accuracy; delta_pt compares the "
                                   "two networks.", mistake=ACCURACY_NOT_DIFFERENCE)
        raise CheckFailure(f"{what}['delta_pt'] = {delta:.4g}, not the difference in accuracy of the two networks "
                           "in percentage points.", mistake="values")
    passed()
    p = _as_float(answer["p_value"], what=f"{what}['p_value']")
    if math.isnan(p):
        raise CheckFailure(f"{what}['p_value'] is NaN (n_b = {n_b}, n_a = {n_a}). A p-value is a probability; when the "
                           "two networks never disagree (m = 0), the text says what it is.", mistake=NO_DISAGREEMENT)
    if not math.isclose(p, right["p_value"], rel_tol=1e-6, abs_tol=1e-12):
        if math.isclose(p, 100 * right["p_value"], rel_tol=1e-6, abs_tol=1e-10):
            raise CheckFailure(f"{what}['p_value'] = {p:.4g} is in percent; a p-value is a probability, between 0 "
                               "and 1.", mistake=UNITS)
        # a slip computed in float32 is still it
        found = [(mistake, done) for mistake, done, value in paired_slips(baseline, variant)
                 if math.isclose(p, value, rel_tol=1e-4, abs_tol=1e-12)]
        if len({mistake for mistake, _ in found}) == 1:
            raise CheckFailure(f"{what}['p_value'] = {p:.4g} (n_b = {n_b}, n_a = {n_a}): {found[0][1]}.",
                               mistake=found[0][0])
        if found and math.isclose(p, 1.0):  # several slips give 1 here; another case may tell them apart
            raise AmbiguousSlip(
                f"{what}['p_value'] = 1 for n_b = {n_b}, n_a = {n_a}: a p of 1 says that no split of the "
                f"{n_a + n_b} disagreements could be more even than the observed one, yet this one is lopsided.\n  "
                "Likely mistake: a tail summed past the observed split (up to the larger of n_a and n_b), or a "
                f"Binomial over all n = {len(baseline)} images on the numbers of images each network gets right, "
                "where McNemar's coin is flipped only for the disagreements.", mistake=P_ONE)
        if found:
            raise AmbiguousSlip(f"{what}['p_value'] = {p:.4g} for n_b = {n_b}, n_a = {n_a}, not McNemar's exact "
                                "two-sided p-value. It is what each of these gives here: "
                                + "; ".join(done.split(':')[0] for _, done in found) + ".", mistake="values")
        raise CheckFailure(f"{what}['p_value'] = {p:.4g} for n_b = {n_b}, n_a = {n_a}, not McNemar's exact two-sided "
                           "p-value.", mistake="values")
    passed()


class AmbiguousSlip(CheckFailure):
    """A wrong p-value that several known slips give on this case."""


# 20 s: a valid answer may import scipy.stats on its first call, which takes seconds on a busy machine
@exercise("paired_difference", budget_s=20)
def check_paired_difference(fn: Callable[..., Any]) -> None:
    """paired_difference(baseline_correct, variant_correct) -> delta_pt, the wins of each, McNemar's exact p."""
    unclear: AmbiguousSlip | None = None
    for baseline, variant in _pair_cases():
        n_b = int((variant & ~baseline).sum())
        n_a = int((baseline & ~variant).sum())
        what = f"paired_difference(baseline, variant) on {len(baseline)} images ({n_b} won, {n_a} lost by the variant)"
        a, b = baseline.clone(), variant.clone()
        answer = _call(fn, a, b, doing=what)
        expect(torch.equal(a, baseline) and torch.equal(b, variant),
               f"{what} changed the tensors it was given; read them, do not modify them.", mistake="inplace")
        try:
            grade_paired(answer, baseline, variant, what=what)
        except AmbiguousSlip as failure:
            unclear = unclear or failure
    if unclear is not None:
        raise CheckFailure(unclear.args[0], mistake=unclear.mistake)


# --------------------------------------------------------------------------------------------
# Conceptual questions: keys and known wrong answers are salted hashes (checks/questions.py); the plain answers
# live in hidden/ch09_capstone.py, the plain wrong answers in tests/test_questions.py
# --------------------------------------------------------------------------------------------
from .questions import Question, define_question_checks  # noqa: E402

SPLIT_ONE_SIDED = define_mistake("split_one_sided", "the smallest split found with a one-sided test or P(X < k)")
SPLIT_MAJORITY = define_mistake("split_majority", "a simple majority of the disagreements taken as significant")
MORE_DATA = define_mistake("more_data_smaller_p", "images both networks get right taken as evidence")
SMALLER_DELTA = define_mistake("smaller_delta_larger_p", "McNemar's p taken to follow the difference in accuracy")
PAIRED_FALSE = define_mistake("paired_statement", "a statement about paired tests judged the wrong way")
PAM_LOCAL = define_mistake("pam_rank", "the rank of a matrix whose rows are all the same vector, miscounted")
PAM_IDENTITY = define_mistake("pam_identity", "a map with one-hot rows taken for the identity (each query its own key)")

QUESTIONS: dict[str, Question] = {q.qid: q for q in (
    Question("q_split", "int", key="e27724118a4e527a2694",
             doc="The fewest wins out of 16 disagreements that give McNemar's exact two-sided p < 0.05.", advice=(
        "Your paired_difference gives the p-value of any split of 16 disagreements between two made-up networks; "
        "the question asks about the fewest wins that make the test call the difference significant."),
        wrong={"b8cc40413e5e768446a4": (SPLIT_ONE_SIDED, (
            "With that many wins the two-sided p is still above 0.05. The split looks enough with a one-sided p "
            "(P(X <= k) without the factor 2) or with the tail P(X < k), which leaves out the observed split "
            "itself.")),
               "777720f87906185d013f": (SPLIT_MAJORITY, (
            "Winning more than half of the disagreements is what a better network does on average, but a fair coin "
            "also gives 9 or more heads out of 16 about 40 % of the time. Compute the p-value of each split.")),
               "b5f24ae202aebe71a2b3": (SPLIT_MAJORITY, (
            "8 : 8 is an even split, exactly what two equally good networks give: p = 1."))}),
    Question("q_concordant", "choice", key="d71f81239323dcefa202", options="abc",
             doc="What 1 000 more images that both networks get right do to McNemar's p (one letter).", advice=(
        "Which images enter McNemar's statistic at all?"),
        wrong={"3c4b37bbf391f12e774e": (MORE_DATA, (
            "More images help only when they can tell the networks apart. An image both get right is not a coin "
            "flip between them: n_a and n_b do not change, and neither does the Binomial(n_a + n_b, 1/2) tail.")),
               "0b5637512a9db7ec10d0": (SMALLER_DELTA, (
            "The difference in accuracy (n_b - n_a) / n does shrink as n grows, but McNemar's test never looks at "
            "n: only at the split n_b : n_a of the disagreements, which stays as it was."))}),
    Question("q_paired_statements", "choices", key="b73e222e375e796a0f56", options="abcde",
             doc="Which statements (a)-(e) about paired comparisons are true.", advice=(
        "Take the statements one at a time: which images does each test use, what does an interval containing 0 "
        "say (and not say), and what happens when many comparisons are made?"),
        wrong={"89e8354d037622803138": (PAIRED_FALSE, (
            "Look at (d) again: sqrt(p (1 - p) / n) is the noise of one accuracy. Two networks tested on the same "
            "images agree on most of them, and the noise of their difference depends on how often they disagree.")),
               "714cd37e81608dce184e": (PAIRED_FALSE, (
            "Look at (b) again: an interval that contains 0 says the data cannot tell the two apart, not that they are "
            "equal; a larger test set might.")),
}),
    Question("q_pam_rank", "int", key="2e0268bebe810c958736",
             doc="The rank of a (144, 144) map whose rows are all the same one-hot vector.", advice=(
        "The rank of a matrix counts its linearly independent rows (or columns). Write down what the rows of this "
        "map are before you count."),
        wrong={"07903182d7a370d6e8bb": (PAM_IDENTITY, (
            "One 1 per row is what the identity has too, but the identity puts it in a different column for every "
            "query. Here every row is the same vector: how many independent rows does that leave?")),
               "5dc80a4559cf3b2044fc": (PAM_LOCAL, (
            "Rank 0 is the zero matrix only; these rows each sum to 1.")),
               "55bc76265623f28cfa66": (PAM_LOCAL, (
            "N - 1 is the count for rows that are independent but for one constraint among them. Look again at what "
            "sets these rows apart from each other."))}),
)}


__all__ += define_question_checks(globals(), *QUESTIONS.values()) + ["QUESTIONS"]
