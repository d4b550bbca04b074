"""Visible checks of chapter 07, the capstone: your module in a trained network, measured.

The notebook's test cells call:

    check_gate(ChannelSpatialGate)                        attention(x) and forward(x) on stored inputs
    check_gate_in_network(ChannelSpatialGate)             it fills CapstoneNet's slot and trains there
    check_gate_parameter_count(gate_parameter_count)      2 C C' + C' + C (channel gate) + C + 1 (spatial gate)
    check_judge_localisation(judge_localisation)          lift of the map, lift of the control, two verdicts
    check_gain_and_noise(gain_and_noise)                  reading the results table by name, in points

``ChannelSpatialGate(channels, reduction=4)`` is a channel gate (SE's squeeze and excitation) and a spatial
gate (a 1x1 convolution to one map, then a sigmoid), both computed from the same input and both applied:
``forward(x) = x * c * s``. Its weights are loaded by role (shape), so ``nn.Linear`` and 1x1 ``nn.Conv2d``
both pass. The expected values are stored in ``checks/expected/ch09_capstone.pt`` (built by
``checks/hidden/ch09_capstone.py``); the two measuring exercises are checked against
:mod:`course_lib.capstone`'s own helpers, recomputed on the spot, on cases whose answers differ.

Nothing here imports a reference module (``course_lib.se``, ``cbam``, ...): this file ships to students.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ._core import (
    CheckFailure,
    build,
    call_with_hints,
    close_named,
    count_parameters,
    define_mistake,
    exercise,
    expect,
    expect_defaults,
    expect_device_free,
    expect_int,
    expect_module_gradients,
    expect_shape,
    expect_unchanged,
    expected,
    fmt_shape,
    load_by_shape,
    passed,
)

__all__ = [
    "check_gate",
    "check_gate_in_network",
    "check_gate_parameter_count",
    "check_judge_localisation",
    "check_gain_and_noise",
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
ROW_BY_POSITION = define_mistake("row_by_position", "table rows picked by position instead of by variant name")
UNITS = define_mistake("units", "a fraction where percentage points are asked (or the reverse)")

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
                       "forward computes the spatial gate from x * c. Both gates look at x: "
                       "c, s = self.attention(x); return x * c * s."),
    "out_added": ("values", "forward adds the gates (x * (c + s)); it multiplies them: x * c * s."),
}

#: Errors a gate typically raises, with the mistake they point to.
HINTS: Sequence[tuple[str, str, str]] = (
    ("channels, but got 1 channels instead", "pool_axis",
     "something averaged over the channel axis (dim 1), leaving one channel. The squeeze averages over H "
     "and W (dims 2 and 3); the spatial gate's 1x1 conv sees all C channels."),
)

_call = functools.partial(call_with_hints, hints=HINTS)
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
    intro = (f"{what} has {got} parameters; expected {want}: the channel gate 2*C*C' + C' + C with C' = C // r "
             f"= {hidden}, plus the spatial 1x1 conv C + 1 (C = {channels}).\n  yours: {listing}")
    for ignored in {channels // 4, channels // 16} - {hidden}:
        if ignored >= 1 and got in {_count_with_hidden(channels, ignored),
                                    _count_with_hidden(channels, ignored) - ignored - channels - 1}:
            raise CheckFailure(intro + f"\n  Likely mistake: the hidden layer has {ignored} units whatever "
                                       f"`reduction` is; use channels // reduction = {hidden}.",
                               mistake="reduction_ignored")
    if got in (want - 1, want - hidden - channels, want - hidden - channels - 1, want - hidden, want - channels):
        raise CheckFailure(intro + "\n  Likely mistake: a layer without bias. Both MLP layers and the spatial conv "
                                   "keep their bias (nn.Linear's and nn.Conv2d's default bias=True).",
                           mistake="missing_bias")
    if got in (want - channels - 1, want - channels):
        raise CheckFailure(intro + "\n  Likely mistake: no spatial gate. Add nn.Conv2d(channels, 1, kernel_size=1) "
                                   "and return sigmoid(conv(x)) as the second map of attention(x).",
                           mistake="parameters")
    raise CheckFailure(intro + "\n  Likely mistake: the layers are W1: C -> C // r, W2: C // r -> C (each with "
                               "bias) and a 1x1 conv C -> 1 (with bias), and nothing else with parameters.",
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
    expect_defaults(cls, (c,), {"reduction": 4}, E["x"], what=getattr(cls, "__name__", "the gate"))
    load_by_shape(module, gate_roles(E["weights"]), what=name)
    module.eval()

    x = E["x"]
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

    expect_module_gradients(module, x, what=name, upstream=E["upstream"], grad_x=E["grad_x"], hints=HINTS)
    expect_device_free(module, x, what=name)


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
        silent = [n for n, p in net.attention.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
        expect(not silent,
               f"inside CapstoneNet no gradient reached these parameters of your gate: {', '.join(silent)}. "
               "They would never train: keep the gates in the autograd graph.", mistake="no_grad")
        found = _call(attention_outputs, net, images, doing="course_lib.capstone.attention_outputs(net, images)")
        expect("channel" in found and "spatial" in found,
               "course_lib.capstone finds the maps by their shapes: attention(features) must return a (B, C, 1, 1) "
               f"channel gate and a (B, 1, H, W) spatial gate; it found {sorted(found) or 'none'}.",
               mistake="shape")


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
        message = (f"{shown} returned {got}; expected {want}: channel gate 2*C*C' + C' + C = {2 * c * h + h + c} "
                   f"(C' = C // r = {h}) plus spatial gate C + 1 = {c + 1}.")
        ignored = [k for k in {c // 4, c // 16} - {h} if k >= 1 and got == _count_with_hidden(c, k)]
        if ignored:
            raise CheckFailure(message + f"\n  Likely mistake: the hidden width is {ignored[0]} whatever `reduction` "
                                         f"is (a hard-coded // 4 or // 16); it is channels // reduction = {h}.",
                               mistake="reduction_ignored")
        if got in (want - 1, want - h - c, want - h - c - 1, want - h, want - c):
            raise CheckFailure(message + "\n  Likely mistake: a bias is left out: W1 has C' biases, W2 has C, the "
                                         "spatial conv 1.", mistake="missing_bias")
        if got in (want - c - 1, want - c):
            raise CheckFailure(message + "\n  Likely mistake: the spatial gate is left out (a 1x1 conv C -> 1: C "
                                         "weights and 1 bias).", mistake="param_count")
        raise CheckFailure(message + "\n  Likely mistake: W1 is C' x C, W2 is C x C', the spatial conv 1 x C, plus "
                                     "one bias per output unit.", mistake="param_count")


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


def grade_judgement(answer: Any, truth: Mapping[str, Any], *, what: str) -> None:
    """Compare judge_localisation's answer with the truth, naming the mistake a wrong answer matches."""
    if not isinstance(answer, Mapping):
        raise CheckFailure(f"{what} returned {type(answer).__name__}; it should return a dict with the keys "
                           f"{', '.join(_KEYS)}.", mistake="values")
    missing = [k for k in _KEYS if k not in answer]
    expect(not missing, f"{what} returned a dict without {', '.join(missing)}; expected the keys {', '.join(_KEYS)}.",
           mistake="values")
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
        raise CheckFailure(
            f"{what}: 'finds_digit' is {finds}, but the lift is {truth['lift']:.3f} (mass in box "
            f"{att['mass_in_box']:.3f}, box area {att['box_area']:.3f}). The baseline is a map blind to the digit, "
            "which puts about `area` of its mass in the box: finds_digit = lift > 1 (not mass > 0.5, and not a "
            "fixed answer).", mistake=WRONG_BASELINE)
    passed()
    beats = _as_bool(answer["beats_control"], what=f"{what}: 'beats_control'")
    if beats != truth["beats_control"]:
        raise CheckFailure(
            f"{what}: 'beats_control' is {beats}, but the map's lift is {truth['lift']:.3f} and the control's "
            f"{truth['control_lift']:.3f}. beats_control = lift > control_lift: does the attention find the digit "
            "better than where the backbone is active anyway?", mistake=WRONG_BASELINE)
    passed()


@exercise("judge_localisation", budget_s=10)
def check_judge_localisation(fn: Callable[..., Any]) -> None:
    """judge_localisation(model, images, boxes) on networks whose maps are known to find the digit, or not."""
    from course_lib.capstone import CapstoneNet

    E = expected(CHAPTER)["judge"]
    images, boxes = E["images"], E["boxes"]
    net = CapstoneNet(None).eval()  # one backbone (seeded by the check), several given maps
    for label, maps in E["maps"].items():
        net.attention = GivenMap(maps)
        truth = truth_of_localisation(net, images, boxes)
        what = f"judge_localisation(model, images, boxes), map {label!r}"
        answer = _call(fn, net, images.clone(), boxes.clone(), doing=what)
        grade_judgement(answer, truth, what=what)


# --------------------------------------------------------------------------------------------
# Exercise 3: reading the table
# --------------------------------------------------------------------------------------------
def gain_and_noise_by_hand(rows: Sequence[Mapping[str, Any]], variant: str, num_test: int,
                           baseline: str = "none") -> tuple[float, float]:
    """(100 * (acc[variant] - acc[baseline]), 100 * sqrt(p (1 - p) / n)) with p = acc[baseline]."""
    acc = {r["variant"]: float(r["acc_mean"]) for r in rows}
    p = acc[baseline]
    return 100.0 * (acc[variant] - p), 100.0 * math.sqrt(p * (1.0 - p) / num_test)


def _table_cases() -> list[tuple[list[dict], str, int, str | None]]:
    """Synthetic tables (rows as summarise() writes them), in an order where position gives wrong answers."""
    def row(variant: str, acc: float, params: int) -> dict:
        return {"variant": variant, "seeds": 1, "acc_mean": acc, "acc_std": 0.0, "acc_per_seed": f"{acc:.4f}",
                "params": params, "macs": 2_000_000 + params, "latency_ms": 0.5, "train_s_mean": 10.0}

    first = [row("se", 0.912, 40_665), row("gate", 0.9275, 41_587), row("none", 0.8975, 40_326),
             row("cbam", 0.884, 40_763)]
    second = [row("gate", 0.861, 41_587), row("danet_pam", 0.7875, 42_190), row("none", 0.845, 40_326)]
    return [(first, "gate", 400, None), (first, "se", 2000, None), (second, "danet_pam", 1000, "gate"),
            (second, "gate", 1000, None)]


@exercise("gain_and_noise", budget_s=5)
def check_gain_and_noise(fn: Callable[..., Any]) -> None:
    """gain_and_noise(rows, variant, num_test, baseline="none") -> (gain in points, standard error in points)."""
    for rows, variant, n, baseline in _table_cases():
        args: tuple = (rows, variant, n) if baseline is None else (rows, variant, n, baseline)
        base = "none" if baseline is None else baseline
        shown = f"gain_and_noise(rows, {variant!r}, {n}" + ("" if baseline is None else f", {baseline!r}") + ")"
        given = [dict(r) for r in rows]
        result = _call(fn, given, *args[1:], doing=shown)
        expect(given == rows, f"{shown} changed the rows it was given; read them, do not modify them.",
               mistake="values")
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailure(f"{shown} returned {result!r}; it should return a pair (gain_pt, noise_pt).",
                               mistake="values")
        gain = _as_float(result[0], what=f"{shown}[0], the gain")
        noise = _as_float(result[1], what=f"{shown}[1], the noise")
        want_gain, want_noise = gain_and_noise_by_hand(rows, variant, n, base)
        if not _same(gain, want_gain):
            positional = {100 * (rows[i]["acc_mean"] - rows[j]["acc_mean"])
                          for i in range(len(rows)) for j in range(len(rows)) if i != j}
            if _same(gain, want_gain / 100):
                raise CheckFailure(f"{shown}[0] = {gain:.4g} is a fraction; the gain is asked in percentage points "
                                   f"(x 100): {want_gain:.2f}.", mistake=UNITS)
            if _same(gain, -want_gain):
                raise CheckFailure(f"{shown}[0] = {gain:.2f} has the wrong sign: the gain is the variant's accuracy "
                                   f"minus the baseline's, {want_gain:+.2f} points.", mistake="values")
            if any(_same(gain, v) for v in positional):
                raise CheckFailure(f"{shown}[0] = {gain:.2f}: the rows were picked by position. Find each row by its "
                                   "'variant' name (the table's order is not fixed); expected "
                                   f"{want_gain:+.2f} points.", mistake=ROW_BY_POSITION)
            raise CheckFailure(f"{shown}[0] = {gain:.4g}; expected {want_gain:.4f} = 100 * (acc_mean of {variant!r} "
                               f"- acc_mean of {base!r}).", mistake="values")
        passed()
        if not _same(noise, want_noise):
            if _same(noise, want_noise / 100):
                raise CheckFailure(f"{shown}[1] = {noise:.4g} is a fraction; give it in percentage points (x 100): "
                                   f"{want_noise:.3f}.", mistake=UNITS)
            p = {r["variant"]: r["acc_mean"] for r in rows}[variant]
            if _same(noise, 100 * math.sqrt(p * (1 - p) / n)):
                raise CheckFailure(f"{shown}[1] uses the variant's accuracy; the yardstick is the baseline's: "
                                   f"p = acc_mean of {base!r}.", mistake="values")
            raise CheckFailure(f"{shown}[1] = {noise:.4g}; expected 100 * sqrt(p * (1 - p) / n) = {want_noise:.4f} "
                               f"with p = acc_mean of {base!r} and n = {n}.", mistake="values")
        passed()
