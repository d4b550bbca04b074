"""Hidden checks of chapter 09 (capstone) and the builder of its stored expected values.

The capstone's graded module, ``ChannelSpatialGate``, has no file among the reference modules (it is this
chapter's own small block), so its reference lives here, beside the checks that use it; this file never
reaches students. At grading time the student's gate gets the reference's weights (found by role) and must
match it on random shapes, in float32 and float64, on a channels_last input, with the same gradients; the
dtype and device follow the input. The measuring exercises are re-run on fresh data and fresh maps.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks.toolkit import build, exercise, expect, expect_follows, expect_int, \
    float32_exact, passed, seeded_picker, seeded_randn
from course_lib.checks.ch09_capstone import (
    GivenMap,
    _call,
    _close,
    _two_gates,
    _unchanged,
    check_gate_layers,
    control_as_map,
    gate_count_by_hand,
    gate_roles,
    grade_judgement,
    load_gate,
    truth_of_localisation,
)
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.hidden.toolkit import expect_same_gradients, sweep

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {"q_split": ("int", 13, {}), "q_concordant": ("choice", "b", {"options": "abc"}),
           "q_paired_statements": ("choices", "ace", {"options": "abcde"}), "q_pam_rank": ("int", 1, {})}
define_hidden_question_checks(globals(), ANSWERS)

# --------------------------------------------------------------------------------------------
# the reference gate
# --------------------------------------------------------------------------------------------
class ChannelSpatialGate(nn.Module):
    """Reference: c = sigmoid(W2 relu(W1 mean_hw(x))), s = sigmoid(conv1x1(x)), forward = x * c * s."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"channels // reduction must be >= 1; got {channels} // {reduction} = {hidden}")
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial = nn.Conv2d(channels, 1, kernel_size=1)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x.mean((2, 3))  # (B, C, H, W) -> (B, C)
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))  # (B, C') -> (B, C)
        s = torch.sigmoid(self.spatial(x))  # (B, C, H, W) -> (B, 1, H, W)
        return c[:, :, None, None], s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.attention(x)
        return x * c * s


def reference(channels: int, reduction: int, seed: int) -> ChannelSpatialGate:
    """A float64 reference gate with seeded weights (large enough that every part of it matters)."""
    module = ChannelSpatialGate(channels, reduction).double()
    hidden = channels // reduction
    with torch.no_grad():
        module.fc1.weight.copy_(float32_exact(seeded_randn(hidden, channels, seed=seed) / channels ** 0.5 * 1.5))
        module.fc1.bias.copy_(float32_exact(0.3 * seeded_randn(hidden, seed=seed + 1)))
        module.fc2.weight.copy_(float32_exact(seeded_randn(channels, hidden, seed=seed + 2) / hidden ** 0.5 * 1.5))
        module.fc2.bias.copy_(float32_exact(0.3 * seeded_randn(channels, seed=seed + 3)))
        module.spatial.weight.copy_(float32_exact(seeded_randn(1, channels, 1, 1, seed=seed + 4) / channels ** 0.5 * 1.5))
        module.spatial.bias.copy_(float32_exact(0.3 * seeded_randn(1, seed=seed + 5)))
    return module


def weights_of(module: ChannelSpatialGate) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------------------------
# what known mistakes compute (for the diagnoses)
# --------------------------------------------------------------------------------------------
def gate_mistakes(x: torch.Tensor, module: ChannelSpatialGate) -> tuple[dict, dict, dict]:
    """(channel-gate, spatial-gate, output) results of the mistakes in ADVICE, in float64."""
    x = x.double()
    with torch.no_grad():
        fc1, fc2, conv = module.fc1, module.fc2, module.spatial
        z = x.mean((2, 3))
        c4 = lambda t: t[:, :, None, None]  # noqa: E731 - (B, C) -> (B, C, 1, 1)
        pre = fc2(F.relu(fc1(z)))
        c, s = module.attention(x)
        s_seq = torch.sigmoid(conv(x * c))
        b, _, h, w = s.shape
        channel = {
            "channel_missing_sigmoid": c4(pre),
            "channel_relu_after_last": c4(torch.sigmoid(F.relu(pre))),
            "channel_missing_relu": c4(torch.sigmoid(fc2(fc1(z)))),
            "channel_max_squeeze": c4(torch.sigmoid(fc2(F.relu(fc1(x.amax((2, 3))))))),
            "channel_softmax": c4(torch.softmax(pre, dim=1)),
            "channel_sigmoid_hidden": c4(torch.sigmoid(fc2(torch.sigmoid(fc1(z))))),
            "channel_sum_squeeze": c4(torch.sigmoid(fc2(F.relu(fc1(x.sum((2, 3))))))),
            "channel_batch_squeeze": c4(torch.sigmoid(fc2(F.relu(fc1(x.mean((0, 2, 3)).expand(len(x), -1)))))),
            "channel_avg_max": c4(torch.sigmoid(fc2(F.relu(fc1(z))) + fc2(F.relu(fc1(x.amax((2, 3))))))),
            "channel_gelu": c4(torch.sigmoid(fc2(F.gelu(fc1(z))))),
        }
        spatial = {
            "spatial_missing_sigmoid": conv(x),
            "spatial_softmax": torch.softmax(conv(x).reshape(b, 1, h * w), dim=-1).reshape(b, 1, h, w),
            "spatial_sequential": s_seq,
            "spatial_channel_mean": torch.sigmoid(x.mean(1, keepdim=True)),
            "spatial_channel_mean_bias": torch.sigmoid(x.mean(1, keepdim=True) + conv.bias.reshape(1, 1, 1, 1)),
            "spatial_tanh": torch.tanh(conv(x)),
        }
        out = {
            "out_channel_only": x * c,
            "out_spatial_only": x * s,
            "out_sequential": x * c * s_seq,
            "out_added": x * (c + s),
            "out_bam": x * (1 + c * s),
        }
    return channel, spatial, out


# --------------------------------------------------------------------------------------------
# maps whose verdicts are known (exercise 3)
# --------------------------------------------------------------------------------------------
def _box_masks(boxes: torch.Tensor, size: int, canvas: int) -> torch.Tensor:
    """(N, 1, size, size) float64: 1 where a feature cell's centre lies inside the digit's box."""
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) * (canvas / size)
    top, left, bottom, right = (boxes[:, k, None].double() for k in range(4))
    rows = (centres >= top) & (centres < bottom)
    cols = (centres >= left) & (centres < right)
    return (rows[:, :, None] & cols[:, None, :])[:, None].double()


def judge_maps(boxes: torch.Tensor, *, size: int = 12, canvas: int = 48, seed: int) -> dict[str, torch.Tensor]:
    """Spatial maps (N, 1, size, size) for the judge checks; their verdicts differ (see the tests)."""
    mask = _box_masks(boxes, size, canvas)
    noise = torch.rand(mask.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    # one cell in the middle of each box, and the corner of the map farthest from it, for the maps whose maximum is
    # not where their mass is
    flat = mask.flatten(1)
    cells = torch.arange(size * size)
    middle = torch.stack([cells[row > 0][int(row.sum()) // 2] for row in flat])  # the box's middle cell, row by row
    row, col = middle // size, middle % size
    far = torch.where(row + col < size - 1, torch.full_like(middle, size * size - 1), torch.zeros_like(middle))
    spike_in = torch.zeros_like(flat).scatter_(1, middle[:, None], 1.0).reshape(mask.shape)
    spike_out = torch.zeros_like(flat).scatter_(1, far[:, None], 1.0).reshape(mask.shape)
    return {
        "sharp on the digit's box": (0.05 + mask).float(),
        "everywhere but the digit's box": (1.0 - 0.9 * mask).float(),
        "random noise": noise.float(),
        "faintly raised on the box": (noise + 0.2 * mask).float(),
        # the pointing game and the lift disagree: the maximum in the box, the mass outside it, and the reverse
        "its peak in the box, its mass outside": (1.0 - 0.9 * mask + 2.0 * spike_in).float(),
        "raised on the box, its peak outside": (0.2 + 0.5 * mask + 3.0 * spike_out).float(),
        # a map blind to the digit: no mass to place, lift exactly 1 (neither above 1 nor below)
        "constant, blind to the digit": torch.full(mask.shape, 0.5),
    }


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
def build_expected() -> dict:
    from course_lib.data import make_cluttered_digits

    c, r = 20, 5
    ref = reference(c, r, seed=701)
    x = seeded_randn(3, c, 7, 5, seed=702).float()
    upstream = seeded_randn(3, c, 7, 5, seed=703)
    with torch.no_grad():
        channel, spatial = ref.attention(x.double())
        out = ref(x.double())
    xg = x.double().requires_grad_(True)
    (ref(xg) * upstream).sum().backward()
    channel_d, spatial_d, out_d = gate_mistakes(x, ref)
    gate = {
        "channels": c, "reduction": r, "weights": weights_of(ref), "x": x, "upstream": upstream.float(),
        "channel": channel, "spatial": spatial, "out": out, "grad_x": xg.grad.detach(),
        "channel_diagnoses": channel_d, "spatial_diagnoses": spatial_d, "out_diagnoses": out_d,
    }

    digits = make_cluttered_digits(4, seed=704)
    network = {"images": digits.images.clone(), "labels": digits.labels.clone()}

    counts = [{"channels": ch, "reduction": rr,
               "count": sum(p.numel() for p in ChannelSpatialGate(ch, rr).parameters())}
              for ch, rr in ((48, 4), (20, 5), (64, 16), (7, 2), (33, 8))]

    sample = make_cluttered_digits(8, seed=705)
    judge = {"images": sample.images.clone(), "boxes": sample.boxes.clone(),
             "maps": judge_maps(sample.boxes, seed=715)}
    return {"gate": gate, "network": network, "parameter_count": counts, "judge": judge}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, n: int = 3):
    pick = seeded_picker(seed)
    for trial in range(n):
        reduction = pick(2, 6)
        channels = reduction * pick(2, 8) + pick(0, reduction - 1)  # C' = C // r in 2..8, C' != C
        yield trial, pick(2, 4), channels, reduction, pick(1, 9), pick(1, 9)


def _student(cls: type, ref: ChannelSpatialGate, placed: dict | None = None) -> Callable:
    """The sweep's builder: the student's gate with the reference's weights (found by role; ``placed`` gets the
    state-dict key -> (name, parameter) of the last one built)."""
    c, r = ref.fc2.out_features, ref.fc2.out_features // ref.fc1.out_features
    x = seeded_randn(2, c, 3, 4, seed=7050)
    with torch.no_grad():
        probe = (x.float(), *ref.attention(x))

    def student(dtype: torch.dtype, device: str) -> nn.Module:
        module = build(cls, c, reduction=r)
        found = load_gate(module, weights_of(ref), what=f"{cls.__name__}({c}, reduction={r})", probe=probe)
        if placed is not None:
            placed.clear()
            placed.update(found)
        return module.to(device=device, dtype=dtype)
    return student


@exercise("ChannelSpatialGate (hidden)", budget_s=30)
def hidden_gate(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(7070):
        ref = reference(c, r, seed=7100 + trial)
        check_gate_layers(build(cls, c, reduction=r), c, r, what=f"{cls.__name__}({c}, reduction={r})")
        x64 = seeded_randn(b, c, h, w, seed=7200 + trial)
        with torch.no_grad():
            want_c, want_s = ref.attention(x64)
            want_out = ref(x64)
        channel_d, spatial_d, out_d = gate_mistakes(x64, ref)

        def compare(module: nn.Module, x: torch.Tensor, xin: torch.Tensor, text: Callable[..., str]) -> None:
            doing = text("attention(x)")
            got_c, got_s = _two_gates(_call(module.attention, xin, doing=doing), b, c, h, w, what=doing)
            y = _call(module, xin, doing=text("forward(x)"))
            _unchanged(x, xin, what=text("forward(x)"))
            for name, got in (("channel gate", got_c), ("spatial gate", got_s), ("forward(x)", y)):
                expect_follows(got, dtype=x.dtype, doing=text(f"the {name}"))
                expect(got.device.type == x.device.type,
                       f"{text(f'the {name}')} is on {got.device}: it must stay on the input's device "
                       "(no .cuda() or .cpu()).", mistake="device")
            _close(got_c.detach().cpu(), want_c, what=text("the channel gate"), diagnoses=channel_d)
            _close(got_s.detach().cpu(), want_s, what=text("the spatial gate"), diagnoses=spatial_d)
            _close(y.detach().cpu(), want_out, what=text("forward(x)"), diagnoses=out_d)

        sweep(_student(cls, ref), x64, each=compare)
        # the gradients with respect to the input and every weight equal the reference's
        placed: dict = {}
        module, ref_g = _student(cls, ref, placed)(torch.float64, "cpu"), copy.deepcopy(ref)
        mine = {key: (name, dict(module.named_parameters())[name]) for key, (name, _) in placed.items()}
        # load_gate placed each role in exactly one parameter; the gradient is compared in the reference's layout
        expect_same_gradients(module, ref_g, x64, seeded_randn(b, c, h, w, seed=7300 + trial), call=_call,
                              mistake="values", params=[(f"{mine[pname][0]} (it plays {pname})", mine[pname][1], p)
                                                        for pname, p in ref_g.named_parameters()])


@exercise("ChannelSpatialGate in CapstoneNet (hidden)", budget_s=60)
def hidden_gate_in_network(cls: type) -> None:
    from course_lib.capstone import CapstoneNet, attention_outputs, fit
    from course_lib.data import make_cluttered_digits

    data = make_cluttered_digits(32, seed=7400)
    widths = (12, 16, 24)
    torch.manual_seed(7401)
    net = _call(CapstoneNet, cls, widths=widths, doing=f"CapstoneNet({cls.__name__}, widths={widths})")
    before = {n: p.detach().clone() for n, p in net.attention.named_parameters()}
    losses = _call(fit, net, data, epochs=1, seed=0, batch_size=16, device="cpu", progress=False,
                   doing="course_lib.capstone.fit(net, 32 images, epochs=1)")
    expect(all(torch.isfinite(torch.tensor(losses))), f"training gave non-finite losses {losses}", mistake="values")
    frozen = [n for n, p in net.attention.named_parameters() if torch.equal(before[n], p.detach())]
    expect(not frozen, f"training did not change these parameters of the gate: {', '.join(frozen)}",
           mistake="no_grad")
    found = attention_outputs(net, data.images[:5])
    expect(found.get("channel") is not None and found["channel"].shape == (5, widths[-1])
           and found.get("spatial") is not None and found["spatial"].shape == (5, 12, 12),
           "the capstone helpers did not find a (B, C, 1, 1) channel gate and a (B, 1, H, W) spatial gate",
           mistake="shape")
    gates = torch.cat([found["channel"].flatten(), found["spatial"].flatten()])
    expect(bool(((gates > 0) & (gates < 1)).all()),
           "after training, a gate value lies outside (0, 1): both gates end in a sigmoid.", mistake="missing_sigmoid")


@exercise("gate_parameter_count (hidden)", budget_s=5)
def hidden_gate_parameter_count(fn: Callable) -> None:
    g = torch.Generator().manual_seed(7500)
    for _ in range(8):
        r = int(torch.randint(1, 20, (1,), generator=g))
        c = int(torch.randint(r, 400, (1,), generator=g))
        want = sum(p.numel() for p in ChannelSpatialGate(c, r).parameters())
        got = expect_int(_call(fn, c, r, doing=f"gate_parameter_count({c}, {r})"),
                         what=f"gate_parameter_count({c}, {r})")
        expect(got == want,
               f"gate_parameter_count({c}, {r}) returned {got!r}; expected {want}", mistake="param_count")
    expect(gate_count_by_hand(48) == sum(p.numel() for p in ChannelSpatialGate(48).parameters()),
           "internal: the by-hand count disagrees with the reference gate", mistake="param_count")


@exercise("judge_localisation (hidden)", budget_s=20)
def hidden_judge_localisation(fn: Callable) -> None:
    from course_lib.capstone import CapstoneNet
    from course_lib.data import make_cluttered_digits

    for trial in range(2):
        sample = make_cluttered_digits(9 + trial, seed=7600 + trial)
        torch.manual_seed(7610 + trial)
        net = CapstoneNet(None).eval()
        maps_of = judge_maps(sample.boxes, seed=7620 + trial)
        for label, maps in {**maps_of, "the control map itself": control_as_map(net, sample.images)}.items():
            net.attention = GivenMap(maps)
            truth = truth_of_localisation(net, sample.images, sample.boxes)
            what = f"judge_localisation(model, images, boxes) on {len(sample)} fresh images, map {label}"
            grade_judgement(_call(fn, net, sample.images, sample.boxes, doing=what), truth, what=what)
        # a trained-looking gate of the course: its own maps
        torch.manual_seed(7630 + trial)
        net = CapstoneNet(ChannelSpatialGate).eval()
        truth = truth_of_localisation(net, sample.images, sample.boxes)
        what = "judge_localisation(model, images, boxes) for a CapstoneNet with a ChannelSpatialGate"
        grade_judgement(_call(fn, net, sample.images, sample.boxes, doing=what), truth, what=what)


# 20 s: a valid answer may import scipy.stats on its first call, which takes seconds on a busy machine
@exercise("paired_difference (hidden)", budget_s=20)
def hidden_paired_difference(fn: Callable) -> None:
    """Random pairs of networks (correlated correctness) against course_lib.stats' McNemar test."""
    from course_lib import stats

    g = torch.Generator().manual_seed(7701)
    for trial in range(8):
        n = int(torch.randint(20, 3000, (1,), generator=g))
        baseline = torch.rand(n, generator=g) < 0.5 + 0.45 * float(torch.rand(1, generator=g))
        flip = torch.rand(n, generator=g) < 0.02 + 0.2 * float(torch.rand(1, generator=g))
        variant = baseline ^ flip
        if trial == 0:
            variant = baseline.clone()  # they never disagree: p = 1
        test = stats.mcnemar_exact(baseline, variant)
        n_b, n_a = int(test["variant_wins"]), int(test["baseline_wins"])
        want = {"delta_pt": 100 * (n_b - n_a) / n, "variant_wins": n_b, "baseline_wins": n_a,
                "p_value": test["p_value"]}
        what = f"paired_difference(baseline, variant) on {n} random images"
        got = _call(fn, baseline.clone(), variant.clone(), doing=what)
        ok = isinstance(got, dict) and all(k in got for k in want)
        if ok:
            try:
                ok = (int(got["variant_wins"]) == want["variant_wins"] and int(got["baseline_wins"]) ==
                      want["baseline_wins"] and abs(float(got["delta_pt"]) - want["delta_pt"]) <= 1e-4 and
                      abs(float(got["p_value"]) - want["p_value"]) <= 1e-6 * max(want["p_value"], 1e-12))
            except (TypeError, ValueError):
                ok = False
        expect(ok, f"{what} returned {got!r}; expected {want!r}", mistake="values")
    passed()
