"""Grader catalog of chapter 09 (capstone): wrong implementations of the chapter's four exercises, each with the
mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl
from course_lib.checks import ch09_capstone as visible
from course_lib.checks.hidden import ch09_capstone as hidden

CHAPTER = "09_capstone"

GATE = Exercise(CHAPTER, "ChannelSpatialGate", "ChannelSpatialGate", visible.check_gate, hidden.hidden_gate,
                "gate", "test_gate")
IN_NETWORK = Exercise(CHAPTER, "ChannelSpatialGate in CapstoneNet", "ChannelSpatialGate",
                      visible.check_gate_in_network, hidden.hidden_gate_in_network, "gate", "test_gate_in_network")
COUNT = Exercise(CHAPTER, "gate_parameter_count", "gate_parameter_count", visible.check_gate_parameter_count,
                 hidden.hidden_gate_parameter_count, "parameter_count", "test_parameter_count")
TABLE = Exercise(CHAPTER, "gain_and_noise", "gain_and_noise", visible.check_gain_and_noise,
                 hidden.hidden_gain_and_noise, "gain_and_noise", "test_gain_and_noise")
JUDGE = Exercise(CHAPTER, "judge_localisation", "judge_localisation", visible.check_judge_localisation,
                 hidden.hidden_judge_localisation, "judge_localisation", "test_judge_localisation")
EXERCISES = [GATE, IN_NETWORK, COUNT, TABLE, JUDGE]

# ------------------------------------------------------------------------------------------------
# ChannelSpatialGate: a template whose parts the variants replace
# ------------------------------------------------------------------------------------------------
INIT = """\
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial = nn.Conv2d(channels, 1, kernel_size=1)"""
ATT = """\
        z = x.mean((2, 3))
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
        s = torch.sigmoid(self.spatial(x))
        return c[:, :, None, None], s"""
FWD = """\
        c, s = self.attention(x)
        return x * c * s"""


def gate(*, init: str = INIT, att: str = ATT, fwd: str = FWD, default: str = "4") -> str:
    return f"""
class ChannelSpatialGate(nn.Module):
    def __init__(self, channels, reduction={default}):
        super().__init__()
{init}

    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


def _att(*, channel: str = "torch.sigmoid(self.fc2(F.relu(self.fc1(z))))", squeeze: str = "x.mean((2, 3))",
         spatial: str = "torch.sigmoid(self.spatial(x))", ret: str = "c[:, :, None, None], s") -> str:
    return f"""\
        z = {squeeze}
        c = {channel}
        s = {spatial}
        return {ret}"""


WRONG_GATE = [
    ("channel gate without sigmoid", "missing_sigmoid", dict(att=_att(channel="self.fc2(F.relu(self.fc1(z)))"))),
    ("spatial gate without sigmoid", "missing_sigmoid", dict(att=_att(spatial="self.spatial(x)"))),
    ("softmax over the H*W positions for the spatial gate", "softmax_gate", dict(att=_att(
        spatial="torch.softmax(self.spatial(x).flatten(2), dim=-1).reshape(x.shape[0], 1, *x.shape[2:])"))),
    ("softmax over the channels for the channel gate", "softmax_gate",
     dict(att=_att(channel="torch.softmax(self.fc2(F.relu(self.fc1(z))), dim=1)"))),
    ("ReLU after the last layer of the MLP", "relu_after_last",
     dict(att=_att(channel="torch.sigmoid(F.relu(self.fc2(F.relu(self.fc1(z)))))"))),
    ("no ReLU between the two layers", "missing_relu", dict(att=_att(channel="torch.sigmoid(self.fc2(self.fc1(z)))"))),
    ("max pooling for the squeeze", "max_squeeze", dict(att=_att(squeeze="x.amax((2, 3))"))),
    ("the reduction argument ignored (a hard-coded // 16)", "reduction_ignored",
     dict(init=INIT.replace("channels // reduction", "max(channels // 16, 1)"))),
    ("the reduction argument ignored (a hard-coded // 4)", "reduction_ignored",
     dict(init=INIT.replace("channels // reduction", "channels // 4"))),
    ("MLP layers without bias (popular SE copies)", "missing_bias", dict(init=INIT.replace(
        "nn.Linear(channels, hidden)", "nn.Linear(channels, hidden, bias=False)").replace(
        "nn.Linear(hidden, channels)", "nn.Linear(hidden, channels, bias=False)"))),
    ("spatial conv without bias", "missing_bias",
     dict(init=INIT.replace("kernel_size=1)", "kernel_size=1, bias=False)"))),
    ("3x3 spatial conv", "kernel_size", dict(init=INIT.replace("kernel_size=1)", "kernel_size=3, padding=1)"))),
    ("spatial gate from the channel mean, no conv (spatial pooling over the channel axis)", "parameters", dict(
        init=INIT.split("\n        self.spatial")[0],
        att=_att(spatial="torch.sigmoid(x.mean(1, keepdim=True))"))),
    ("gates returned as (s, c)", "gate_order", dict(att=_att(ret="s, c[:, :, None, None]"), fwd="""\
        s, c = self.attention(x)
        return x * c * s""")),
    ("attention returns the gated features", "returns_features", dict(att=_att(ret="x * c[:, :, None, None] * s"),
                                                                      fwd="        return self.attention(x)")),
    ("forward applies only the channel gate", "gate_missing", dict(fwd="""\
        c, s = self.attention(x)
        return x * c""")),
    ("forward applies only the spatial gate", "gate_missing", dict(fwd="""\
        c, s = self.attention(x)
        return x * s""")),
    ("gates in sequence: the spatial gate sees x * c (CBAM's order)", "sequential_gates", dict(att="""\
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))[:, :, None, None]
        s = torch.sigmoid(self.spatial(x * c))
        return c, s""")),
    ("forward: sequential gates, attention right", "sequential_gates", dict(fwd="""\
        c, _ = self.attention(x)
        return x * c * torch.sigmoid(self.spatial(x * c))""")),
    ("forward adds the gates", "values", dict(fwd="""\
        c, s = self.attention(x)
        return x * (c + s)""")),
    ("forward returns the spatial map", "returns_map", dict(fwd="        return self.attention(x)[1]")),
    ("in-place multiplication of the input", "inplace", dict(fwd="""\
        c, s = self.attention(x)
        x *= c
        x *= s
        return x""")),
    ("the channel gate detached from the graph", "no_grad",
     dict(att=_att(channel="torch.sigmoid(self.fc2(F.relu(self.fc1(z)))).detach()"))),
    ("the spatial gate computed under torch.no_grad()", "no_grad", dict(att="""\
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        with torch.no_grad():
            s = torch.sigmoid(self.spatial(x))
        return c[:, :, None, None], s""")),
    ("hard-coded float32", "dtype", dict(att="""\
        x = x.float()
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        s = torch.sigmoid(self.spatial(x))
        return c[:, :, None, None], s""", fwd="""\
        c, s = self.attention(x)
        return x.float() * c * s""")),
    ("hard-coded .cuda()", "device", dict(fwd="""\
        c, s = self.attention(x)
        return (x * c * s).cuda()""")),
    ("reduction defaults to 16", "default_args", dict(default="16")),
    ("a CPU mask made in forward", "cpu_constant", dict(fwd="""\
        c, s = self.attention(x)
        return x * c * s * torch.ones(x.shape[2:], dtype=x.dtype)""")),
    ("a temperature kept in a plain tensor attribute", "tensor_attribute", dict(
        init=INIT + "\n        self.temperature = torch.ones(1)", att=_att(spatial="torch.sigmoid(self.spatial(x) / self.temperature)"))),
    ("spatial gate detached", "no_grad", dict(att=_att(spatial="torch.sigmoid(self.spatial(x)).detach()"))),
]

VALID_GATE = [
    ("the notebook's solution (einops reduce/rearrange)", dict(att="""\
        z = reduce(x, "b c h w -> b c", "mean")
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
        s = torch.sigmoid(self.spatial(x))
        return rearrange(c, "b c -> b c 1 1"), s""")),
    ("1x1 convolutions for the MLP, keepdim mean", dict(init="""\
        hidden = channels // reduction
        self.down = nn.Conv2d(channels, hidden, 1)
        self.up = nn.Conv2d(hidden, channels, 1)
        self.where = nn.Conv2d(channels, 1, 1)""", att="""\
        z = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.up(F.relu(self.down(z)))), torch.sigmoid(self.where(x))""")),
    ("nn.Sequential with AdaptiveAvgPool2d and nn.Sigmoid, view", dict(init="""\
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, channels // reduction),
                                     nn.ReLU(), nn.Linear(channels // reduction, channels), nn.Sigmoid())
        self.spatial = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())""", att="""\
        b, c, _, _ = x.shape
        return self.channel(x).view(b, c, 1, 1), self.spatial(x)""")),
    ("spatial gate as nn.Linear on channels-last positions", dict(init=INIT.replace(
        "nn.Conv2d(channels, 1, kernel_size=1)", "nn.Linear(channels, 1)"), att=_att(
        spatial="rearrange(torch.sigmoid(self.spatial(rearrange(x, 'b c h w -> b h w c'))), 'b h w 1 -> b 1 h w')"))),
    ("einsum with raw parameters for the spatial gate", dict(init="""\
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.w = nn.Parameter(torch.randn(1, channels) / channels ** 0.5)
        self.b = nn.Parameter(torch.zeros(1))""", att=_att(
        spatial="torch.sigmoid(einsum(x, self.w, 'b c h w, o c -> b o h w') + self.b.reshape(1, 1, 1, 1))"))),
    ("forward recomputes the gates, F.sigmoid via nn.functional", dict(fwd="""\
        c = F.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        s = F.sigmoid(self.spatial(x))
        return c[:, :, None, None] * s * x""")),
    ("extra harmless buffer and stored hidden width", dict(init=INIT + """
        self.hidden = hidden
        self.register_buffer("calls", torch.zeros((), dtype=torch.long), persistent=False)""")),
]

# ------------------------------------------------------------------------------------------------
# gate_parameter_count
# ------------------------------------------------------------------------------------------------
def count(body: str) -> str:
    return f"""
def gate_parameter_count(channels, reduction=4):
{body}
"""


WRONG_COUNT = [
    ("the spatial conv's bias left out", "missing_bias", count("""\
    h = channels // reduction
    return 2 * channels * h + h + channels + channels""")),
    ("every bias left out", "missing_bias", count("""\
    h = channels // reduction
    return 2 * channels * h + channels""")),
    ("the spatial gate left out (SE's count)", "param_count", count("""\
    h = channels // reduction
    return 2 * channels * h + h + channels""")),
    ("C / r instead of C // r", "float_count", count("""\
    h = channels / reduction
    return 2 * channels * h + h + 2 * channels + 1""")),
    ("the reduction ignored (a hard-coded // 4)", "reduction_ignored", count("""\
    h = channels // 4
    return 2 * channels * h + h + 2 * channels + 1""")),
    ("the spatial conv counted as 3x3", "param_count", count("""\
    h = channels // reduction
    return 2 * channels * h + h + channels + 9 * channels + 1""")),
]

WRONG_COUNT += [
    ("true division for the hidden width", "float_count", count("""\
    h = channels / reduction
    return 2 * channels * h + h + 2 * channels + 1""")),
]

VALID_COUNT = [
    ("a numpy integer", count("""\
    import numpy as np
    h = np.int64(channels) // reduction
    return 2 * channels * h + h + 2 * channels + 1""")),
    ("the formula, expanded", count("""\
    h = channels // reduction
    return channels * h + h + h * channels + channels + channels + 1""")),
    ("counted from a module built on the spot", count("""\
    hidden = channels // reduction
    layers = [nn.Linear(channels, hidden), nn.Linear(hidden, channels), nn.Conv2d(channels, 1, 1)]
    return sum(p.numel() for layer in layers for p in layer.parameters())""")),
]

# ------------------------------------------------------------------------------------------------
# gain_and_noise
# ------------------------------------------------------------------------------------------------
def table(body: str) -> str:
    return f"""
def gain_and_noise(rows, variant, num_test, baseline="none"):
{body}
"""


WRONG_TABLE = [
    ("rows picked by position (second minus first)", "row_by_position", table("""\
    a, p = rows[1]["acc_mean"], rows[0]["acc_mean"]
    return 100 * (a - p), 100 * math.sqrt(p * (1 - p) / num_test)""")),
    ("a fraction where percentage points are asked", "units", table("""\
    acc = {r["variant"]: r["acc_mean"] for r in rows}
    p = acc[baseline]
    return acc[variant] - p, math.sqrt(p * (1 - p) / num_test)""")),
    ("the noise from the variant's accuracy", "values", table("""\
    acc = {r["variant"]: r["acc_mean"] for r in rows}
    q = acc[variant]
    return 100 * (q - acc[baseline]), 100 * math.sqrt(q * (1 - q) / num_test)""")),
    ("baseline minus variant (sign reversed)", "values", table("""\
    acc = {r["variant"]: r["acc_mean"] for r in rows}
    p = acc[baseline]
    return 100 * (p - acc[variant]), 100 * math.sqrt(p * (1 - p) / num_test)""")),
    ("a relative gain in percent instead of points", "values", table("""\
    acc = {r["variant"]: r["acc_mean"] for r in rows}
    p = acc[baseline]
    return 100 * (acc[variant] - p) / p, 100 * math.sqrt(p * (1 - p) / num_test)""")),
    ("the variance where the standard error is asked (no square root)", "values", table("""\
    acc = {r["variant"]: r["acc_mean"] for r in rows}
    p = acc[baseline]
    return 100 * (acc[variant] - p), 100 * p * (1 - p) / num_test""")),
]

VALID_TABLE = [
    ("next() over the rows, numpy's sqrt", table("""\
    import numpy as np
    a = next(r["acc_mean"] for r in rows if r["variant"] == variant)
    p = next(r["acc_mean"] for r in rows if r["variant"] == baseline)
    return float(100 * (a - p)), float(100 * np.sqrt(p * (1 - p) / num_test))""")),
    ("a loop, returning a list", table("""\
    for r in rows:
        if r["variant"] == variant:
            a = r["acc_mean"]
        if r["variant"] == baseline:
            p = r["acc_mean"]
    return [100 * a - 100 * p, math.sqrt(1e4 * p * (1 - p) / num_test)]""")),
]

# ------------------------------------------------------------------------------------------------
# judge_localisation
# ------------------------------------------------------------------------------------------------
def judge(body: str) -> str:
    return f"""
from course_lib.capstone import localisation, spatial_maps


def judge_localisation(model, images, boxes):
{body}
"""


RIGHT_LIFTS = """\
    att = localisation(spatial_maps(model, images), boxes)
    ctrl = localisation(spatial_maps(model, images, control=True), boxes)
"""

WRONG_JUDGE = [
    ("control=True forgotten: the control is the map again", "no_control", judge("""\
    att = localisation(spatial_maps(model, images), boxes)
    ctrl = localisation(spatial_maps(model, images), boxes)
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("mass in box reported as the lift", "wrong_metric", judge(RIGHT_LIFTS + """\
    return {"lift": att["mass_in_box"], "control_lift": ctrl["mass_in_box"],
            "finds_digit": att["mass_in_box"] > att["box_area"], "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("pointing hits reported as the lifts", "wrong_metric", judge(RIGHT_LIFTS + """\
    return {"lift": att["pointing_hit"], "control_lift": ctrl["pointing_hit"], "finds_digit": att["lift"] > 1,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("finds_digit as 'most of the mass in the box'", "wrong_baseline", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["mass_in_box"] > 0.5,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("finds_digit always True", "wrong_baseline", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": True,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("beats_control = finds_digit", "wrong_baseline", judge(RIGHT_LIFTS + """\
    finds = att["lift"] > 1
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": finds, "beats_control": finds}""")),
    ("beats_control by the pointing game", "wrong_baseline", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1,
            "beats_control": att["pointing_hit"] > ctrl["pointing_hit"]}""")),
    ("maps at feature resolution, boxes divided by 4", "values", judge("""\
    from course_lib.capstone import attention_outputs
    small = attention_outputs(model, images)["spatial"]
    feats = model.features(images).abs().mean(1).detach()
    att = localisation(small, boxes // 4)
    ctrl = localisation(feats, boxes // 4)
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
]

VALID_JUDGE = [
    ("the notebook's solution, numpy bools", judge("""\
    import numpy as np
    lift = localisation(spatial_maps(model, images), boxes)["lift"]
    control = localisation(spatial_maps(model, images, control=True), boxes)["lift"]
    return dict(lift=np.float64(lift), control_lift=np.float64(control), finds_digit=np.float64(lift) > 1,
                beats_control=np.float64(lift) > np.float64(control))""")),
    ("mass over area, via the returned columns", judge(RIGHT_LIFTS + """\
    lift, control = att["lift"], ctrl["lift"]
    return {"beats_control": bool(control < lift), "finds_digit": bool(1.0 < lift), "lift": float(lift),
            "control_lift": float(control), "note": "extra keys are fine"}""")),
]


def _impls() -> list[Impl]:
    impls = [Impl(GATE, label, gate(**parts), mistake) for label, mistake, parts in WRONG_GATE]
    impls += [Impl(GATE, label, gate(**parts)) for label, parts in VALID_GATE]
    impls += [Impl(IN_NETWORK, label, gate(**parts)) for label, parts in VALID_GATE[:3]]
    # in the network, a mistake shows as what it breaks there (the slot's contract), not as its cause
    in_network = {"the channel gate detached from the graph": "no_grad",
                  "the spatial gate computed under torch.no_grad()": "no_grad",
                  "forward returns the spatial map": "returns_map",
                  "attention returns the gated features": "shape",
                  "in-place multiplication of the input": "inplace",
                  "hard-coded .cuda()": "device"}
    impls += [Impl(IN_NETWORK, label, gate(**parts), in_network[label]) for label, _, parts in WRONG_GATE
              if label in in_network]
    impls += [Impl(COUNT, label, source, mistake) for label, mistake, source in WRONG_COUNT]
    impls += [Impl(COUNT, label, source) for label, source in VALID_COUNT]
    impls += [Impl(TABLE, label, source, mistake) for label, mistake, source in WRONG_TABLE]
    impls += [Impl(TABLE, label, source) for label, source in VALID_TABLE]
    impls += [Impl(JUDGE, label, source, mistake) for label, mistake, source in WRONG_JUDGE]
    impls += [Impl(JUDGE, label, source) for label, source in VALID_JUDGE]
    return impls


IMPLS = _impls()
