"""Grader catalog of chapter 09 (capstone): wrong implementations of the chapter's four exercises, each with the
mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch09_capstone as visible
from course_lib.hidden import ch09_capstone as hidden

CHAPTER = "09_capstone"

GATE = Exercise(CHAPTER, "ChannelSpatialGate", "ChannelSpatialGate", visible.check_gate, hidden.hidden_gate,
                "gate", "test_gate")
IN_NETWORK = Exercise(CHAPTER, "ChannelSpatialGate in CapstoneNet", "ChannelSpatialGate",
                      visible.check_gate_in_network, hidden.hidden_gate_in_network, "gate", "test_gate_in_network")
COUNT = Exercise(CHAPTER, "gate_parameter_count", "gate_parameter_count", visible.check_gate_parameter_count,
                 hidden.hidden_gate_parameter_count, "parameter_count", "test_parameter_count")
PAIRED = Exercise(CHAPTER, "paired_difference", "paired_difference", visible.check_paired_difference,
                  hidden.hidden_paired_difference, "paired_difference", "test_paired_difference")


QUESTIONS = {qid: question(CHAPTER, visible, hidden, qid) for qid in ("q_split", "q_concordant", "q_paired_statements", "q_pam_rank")}
JUDGE = Exercise(CHAPTER, "judge_localisation", "judge_localisation", visible.check_judge_localisation,
                 hidden.hidden_judge_localisation, "judge_localisation", "test_judge_localisation")
EXERCISES = [GATE, IN_NETWORK, COUNT, PAIRED, JUDGE, *QUESTIONS.values()]

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
    # student trial t093: these passed the visible check (the stored case is 20 / 5, both widths divisible; the
    # module ran only in float32 and contiguous) or were named only by a generic message
    ("hidden width rounded up with math.ceil", "hidden_width",
     dict(init=INIT.replace("channels // reduction", "math.ceil(channels / reduction)"))),
    ("forward returns float32 (.float() on the result)", "dtype", dict(fwd="""\
        c, s = self.attention(x)
        return (x * c * s).float()""")),
    ("the gates computed on x.float(), cast back to x's dtype", "dtype", dict(att="""\
        xf = x.float()
        c = torch.sigmoid(self.fc2(F.relu(self.fc1(xf.mean((2, 3))))))
        s = torch.sigmoid(self.spatial(xf))
        return c[:, :, None, None].to(x.dtype), s.to(x.dtype)""")),
    ("the spatial gate's sigmoid in float32, cast back", "float32_inside",
     dict(att=_att(spatial="torch.sigmoid(self.spatial(x).float()).to(x.dtype)"))),
    ("x.view for the squeeze: breaks on a channels_last input", "memory_layout",
     dict(att=_att(squeeze="x.view(x.shape[0], x.shape[1], -1).mean(-1)"))),
    ("a sigmoid between the two layers of the MLP", "sigmoid_hidden",
     dict(att=_att(channel="torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(z))))"))),
    ("a sum for the squeeze", "sum_squeeze", dict(att=_att(squeeze="x.sum((2, 3))"))),
    ("the squeeze also averages over the batch", "batch_mixed",
     dict(att=_att(squeeze="x.mean((0, 2, 3)).expand(x.shape[0], -1)"))),
    ("BAM's combination x * (1 + c * s)", "bam_residual", dict(fwd="""\
        c, s = self.attention(x)
        return x * (1 + c * s)""")),
    ("the spatial gate from the channel mean, conv built but unused", "spatial_channel_mean",
     dict(att=_att(spatial="torch.sigmoid(x.mean(1, keepdim=True))"))),
]

WRONG_GATE += [  # student trial t093 (round 2): dropout passed (never run in training mode); the rest were generic
    ("nn.Dropout inside the channel MLP", "train_mode", dict(
        init=INIT + "\n        self.drop = nn.Dropout(0.5)",
        att=_att(channel="torch.sigmoid(self.fc2(self.drop(F.relu(self.fc1(z)))))"))),
    ("F.dropout on the spatial logits in training", "train_mode", dict(
        att=_att(spatial="torch.sigmoid(F.dropout(self.spatial(x), 0.5, self.training))"))),
    ("CBAM's channel gate: MLP(mean) + MLP(max)", "avg_max_squeeze", dict(att=_att(
        channel="torch.sigmoid(self.fc2(F.relu(self.fc1(z))) + self.fc2(F.relu(self.fc1(x.amax((2, 3))))))"))),
    ("GELU between the two layers", "hidden_activation",
     dict(att=_att(channel="torch.sigmoid(self.fc2(F.gelu(self.fc1(z))))"))),
    ("tanh for the spatial gate", "tanh_gate", dict(att=_att(spatial="torch.tanh(self.spatial(x))"))),
    ("the channel gate returned as (B, C, 1)", "shape", dict(att=_att(ret="c[:, :, None], s"))),
    ("the spatial gate from the channel mean plus the conv's bias", "spatial_channel_mean", dict(att=_att(
        spatial="torch.sigmoid(x.mean(1, keepdim=True) + self.spatial.bias.reshape(1, 1, 1, 1))"))),
]


def _raw_spatial(w_shape: str, b_shape: str = "1") -> dict:
    """The spatial gate as raw parameters: w of (G2) stored as ``w_shape``, b_s as ``b_shape``."""
    return dict(init=f"""\
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.ws = nn.Parameter(torch.randn({w_shape}) / channels ** 0.5)
        self.bs = nn.Parameter(torch.zeros({b_shape}))""", att=_att(
        spatial="torch.sigmoid(einsum(x, self.ws.reshape(-1), 'b c h w, c -> b h w')[:, None] + self.bs)"))

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
    # student trial t093 (round 2): w of (G2) as a raw nn.Parameter of C numbers failed in the layouts (C,) and (C, 1)
    ("raw parameters: w of shape (C,), as (G2) writes it", _raw_spatial("channels")),
    ("raw parameters: w of shape (C, 1), b_s a scalar", _raw_spatial("channels, 1", "()")),
    ("raw parameters: w of shape (1, C, 1, 1), b_s of shape (1, 1, 1, 1)", _raw_spatial("1, channels, 1, 1",
                                                                                      "1, 1, 1, 1")),
    ("every weight a raw parameter, b2 and w both (C,)", dict(init="""\
        hidden = channels // reduction
        self.W1 = nn.Parameter(torch.randn(hidden, channels) / channels ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.W2 = nn.Parameter(torch.randn(channels, hidden) / hidden ** 0.5)
        self.b2 = nn.Parameter(torch.zeros(channels))
        self.ws = nn.Parameter(torch.randn(channels) / channels ** 0.5)
        self.bs = nn.Parameter(torch.zeros(1))""", att="""\
        z = x.mean((2, 3))
        c = torch.sigmoid(F.relu(z @ self.W1.T + self.b1) @ self.W2.T + self.b2)
        s = torch.sigmoid(torch.einsum("bchw,c->bhw", x, self.ws)[:, None] + self.bs)
        return c[:, :, None, None], s""")),
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
    ("the spatial conv counted as 3x3", "kernel_size", count("""\
    h = channels // reduction
    return 2 * channels * h + h + channels + 9 * channels + 1""")),
]

WRONG_COUNT += [
    ("true division for the hidden width", "float_count", count("""\
    h = channels / reduction
    return 2 * channels * h + h + 2 * channels + 1""")),
]

WRONG_COUNT += [  # student trial t093: generic messages before (each printed the formula and the count)
    ("the hidden width rounded up", "hidden_width", count("""\
    h = math.ceil(channels / reduction)
    return 2 * channels * h + h + 2 * channels + 1""")),
    ("true division, the total truncated to an int", "hidden_width", count("""\
    h = channels / reduction
    return int(2 * channels * h + h + 2 * channels + 1)""")),
    ("one weight matrix of the MLP left out", "param_count", count("""\
    h = channels // reduction
    return channels * h + h + 2 * channels + 1""")),
    ("no default for reduction", "default_args", """
def gate_parameter_count(channels, reduction):
    h = channels // reduction
    return 2 * channels * h + h + 2 * channels + 1
"""),
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
# paired_difference
# ------------------------------------------------------------------------------------------------
def paired(body: str) -> str:
    return f"""
def paired_difference(baseline_correct, variant_correct):
{body}
"""


COUNTS = """\
    n = len(baseline_correct)
    n_b = int((variant_correct & ~baseline_correct).sum())
    n_a = int((baseline_correct & ~variant_correct).sum())
    m, k = n_a + n_b, min(n_a, n_b)
"""


def _ret(delta: str = "100 * (n_b - n_a) / n", p: str = "min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m)",
         wins: str = "n_b", losses: str = "n_a") -> str:
    return COUNTS + f"""\
    return {{"delta_pt": {delta}, "variant_wins": {wins}, "baseline_wins": {losses}, "p_value": {p}}}"""


WRONG_PAIRED = [
    ("a fraction where points are asked", "units", paired(_ret(delta="(n_b - n_a) / n"))),
    ("baseline minus variant", "paired_sign", paired(_ret(delta="100 * (n_a - n_b) / n"))),
    ("wins and losses swapped", "wins_swapped", paired(_ret(wins="n_a", losses="n_b"))),
    ("a one-sided p-value", "one_sided", paired(_ret(p="sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m"))),
    ("the tail P(X < k)", "tail_off_by_one", paired(_ret(p="min(1.0, 2 * sum(math.comb(m, i) for i in range(k)) / 2 ** m)"))),
    ("a Binomial over all n images", "concordant_counted",
     paired(_ret(p="min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)"))),
    ("the chi-square (normal) approximation", "normal_approximation",
     paired(_ret(p="math.erfc(abs(n_b - n_a) / math.sqrt(m) / math.sqrt(2)) if m else 1.0"))),
    ("an unpaired z-test on the two accuracies", "unpaired", paired(COUNTS + """\
    pa, pb = baseline_correct.float().mean().item(), variant_correct.float().mean().item()
    se = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    p = math.erfc(abs(pb - pa) / se / math.sqrt(2)) if se > 0 else 1.0
    return {"delta_pt": 100 * (n_b - n_a) / n, "variant_wins": n_b, "baseline_wins": n_a, "p_value": p}""")),
    ("2 P(X <= k) not capped at 1", "p_not_capped",
     paired(_ret(p="2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m if m else 1.0"))),
    ("delta divided by the disagreements", "values", paired(_ret(delta="100 * (n_b - n_a) / m if m else 0.0"))),
    ("modifies its input (a &= ...)", "inplace", paired("""\
    n = len(baseline_correct)
    both = baseline_correct & variant_correct
    n_b = int((variant_correct ^ both).sum())
    baseline_correct ^= both
    n_a = int(baseline_correct.sum())
    m, k = n_a + n_b, min(n_a, n_b)
    return {"delta_pt": 100 * (n_b - n_a) / n, "variant_wins": n_b, "baseline_wins": n_a,
            "p_value": min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m)}""")),
]

WRONG_PAIRED += [  # student trial t093: generic messages (or a raw error) before
    ("the tail summed up to max(n_a, n_b)", "p_one",
     paired(_ret(p="min(1.0, 2 * sum(math.comb(m, i) for i in range(max(n_a, n_b) + 1)) / 2 ** m)"))),
    ("NaN when the two never disagree", "no_disagreement",
     paired(_ret(p="min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m) if m else float('nan')"))),
    ("a relative change in percent", "relative_difference", paired(COUNTS + """\
    acc_a, acc_b = baseline_correct.double().mean().item(), variant_correct.double().mean().item()
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m)
    return {"delta_pt": 100 * (acc_b - acc_a) / acc_a, "variant_wins": n_b, "baseline_wins": n_a, "p_value": p}""")),
    ("bool tensors subtracted", "bool_arithmetic", paired("""\
    d = variant_correct - baseline_correct
    n_b, n_a = int((d == 1).sum()), int((d == -1).sum())
    return {"delta_pt": 100 * (n_b - n_a) / len(d), "variant_wins": n_b, "baseline_wins": n_a, "p_value": 1.0}""")),
]

WRONG_PAIRED += [  # student trial t093 (round 2): generic, or misnamed (larger_tail) before
    ("a mid-p value", "mid_p", paired(_ret(
        p="min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m - math.comb(m, k) / 2 ** m)"))),
    ("the p-value in percent", "units",
     paired(_ret(p="100 * min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m)"))),
    ("delta rounded to 0.1", "rounded_result", paired(_ret(delta="round(100 * (n_b - n_a) / n, 1)"))),
    ("delta set to the variant's accuracy", "accuracy_not_difference",
     paired(_ret(delta="100 * float(variant_correct.float().mean())"))),
    ("a Binomial over all n on the counts of right images", "p_one", paired(_ret(
        p="min(1.0, 2 * sum(math.comb(n, i) for i in range(min(int(variant_correct.sum()), "
          "int(baseline_correct.sum())) + 1)) / 2 ** n)"))),
]

VALID_PAIRED = [
    ("the notebook's solution", paired(_ret())),
    ("scipy's binomtest, tensors as ints", paired("""\
    from scipy.stats import binomtest
    a, b = baseline_correct.long(), variant_correct.long()
    n_b, n_a = int(((b - a) == 1).sum()), int(((a - b) == 1).sum())
    p = binomtest(n_b, n_a + n_b, 0.5).pvalue if n_a + n_b else 1.0
    return {"delta_pt": (b.float().mean() - a.float().mean()).item() * 100, "variant_wins": n_b,
            "baseline_wins": n_a, "p_value": float(p)}""")),
    ("torch's Binomial distribution, numpy ints, extra keys", paired("""\
    import numpy as np
    a, b = baseline_correct.numpy(), variant_correct.numpy()
    n_b, n_a = np.sum(b & ~a), np.sum(a & ~b)
    m = int(n_a + n_b)
    k = torch.arange(int(min(n_a, n_b)) + 1, dtype=torch.float64)
    tail = torch.distributions.Binomial(m, probs=torch.tensor(0.5, dtype=torch.float64)).log_prob(k).exp().sum()
    p = min(1.0, 2 * tail.item()) if m else 1.0
    return {"delta_pt": 100.0 * float(n_b - n_a) / len(a), "variant_wins": n_b, "baseline_wins": n_a,
            "p_value": p, "disagreements": m}""")),
]

# ------------------------------------------------------------------------------------------------
# the conceptual questions: wrong answers with their own hint, and right answers in another form
# ------------------------------------------------------------------------------------------------
WRONG_ANSWERS = [
    ("q_split", "12 (one-sided)", "q_split = 12", "split_one_sided"),
    ("q_split", "9 (a majority)", "q_split = 9", "split_majority"),
    ("q_split", "8 (an even split)", "q_split = 8", "split_majority"),
    ("q_split", "an unlisted wrong number", "q_split = 15", "wrong_answer"),
    ("q_split", "a float that is not whole", "q_split = 12.5", "answer_form"),
    ("q_split", "left unanswered", "q_split = None", "unanswered"),
    ("q_concordant", "more data, smaller p", "q_concordant = 'a'", "more_data_smaller_p"),
    ("q_concordant", "smaller delta, larger p", "q_concordant = 'c'", "smaller_delta_larger_p"),
    ("q_concordant", "not an option", "q_concordant = 'd'", "answer_form"),
    ("q_paired_statements", "(d) taken as true", "q_paired_statements = 'acde'", "paired_statement"),
    ("q_paired_statements", "(b) taken as true", "q_paired_statements = {'a', 'b', 'c', 'e'}", "paired_statement"),
    ("q_paired_statements", "(e) left out (a near set: no hint about (e))", "q_paired_statements = 'ac'",
     "missing_choice"),
    ("q_paired_statements", "all of them", "q_paired_statements = 'abcde'", "wrong_answer"),
    ("q_pam_rank", "full rank (the identity)", "q_pam_rank = 144", "pam_identity"),
    ("q_pam_rank", "rank 0", "q_pam_rank = 0", "pam_rank"),
    ("q_pam_rank", "N - 1", "q_pam_rank = 143", "pam_rank"),
    ("q_pam_rank", "the shape instead of the rank", "q_pam_rank = (144, 144)", "answer_form"),
]

RIGHT_ANSWERS = [
    ("q_split", "a numpy integer", "import numpy as np\nq_split = np.int64(13)"),
    ("q_split", "a whole float", "q_split = 13.0"),
    ("q_concordant", "upper case", "q_concordant = 'B'"),
    ("q_paired_statements", "a list in another order", "q_paired_statements = ['e', 'a', 'c']"),
    ("q_paired_statements", "a string with commas and spaces", "q_paired_statements = 'A, C, E'"),
    ("q_pam_rank", "a 0-d integer tensor", "q_pam_rank = torch.tensor(1)"),
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

WRONG_JUDGE += [  # student trial t093: these passed (no map told the pointing game from the lift, none had lift 1)
    ("finds_digit by the pointing game", "wrong_metric", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["pointing_hit"] > 0.5,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
    ("finds_digit with lift >= 1", "wrong_baseline", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] >= 1,
            "beats_control": att["lift"] > ctrl["lift"]}""")),
]

WRONG_JUDGE += [  # student trial t093 (round 2): passed (no map tied with the control), while lift >= 1 failed
    ("beats_control with lift >= control_lift", "wrong_baseline", judge(RIGHT_LIFTS + """\
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1,
            "beats_control": att["lift"] >= ctrl["lift"]}""")),
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
    impls += [Impl(IN_NETWORK, label, gate(**parts)) for label, parts in VALID_GATE[:3] + VALID_GATE[-4:]]
    # in the network, a mistake shows as what it breaks there (the slot's contract), not as its cause
    in_network = {"the channel gate detached from the graph": "no_grad",
                  "the spatial gate computed under torch.no_grad()": "no_grad",
                  "forward returns the spatial map": "returns_map",
                  "attention returns the gated features": "shape",
                  "in-place multiplication of the input": "inplace",
                  "hard-coded .cuda()": "device",
                  "reduction defaults to 16": "default_args"}
    impls += [Impl(IN_NETWORK, label, gate(**parts), in_network[label]) for label, _, parts in WRONG_GATE
              if label in in_network]
    impls += [Impl(COUNT, label, source, mistake) for label, mistake, source in WRONG_COUNT]
    impls += [Impl(COUNT, label, source) for label, source in VALID_COUNT]
    impls += [Impl(PAIRED, label, source, mistake) for label, mistake, source in WRONG_PAIRED]
    impls += [Impl(PAIRED, label, source) for label, source in VALID_PAIRED]
    impls += [Impl(QUESTIONS[qid], label, source, mistake) for qid, label, source, mistake in WRONG_ANSWERS]
    impls += [Impl(QUESTIONS[qid], label, source) for qid, label, source in RIGHT_ANSWERS]
    impls += [Impl(JUDGE, label, source, mistake) for label, mistake, source in WRONG_JUDGE]
    impls += [Impl(JUDGE, label, source) for label, source in VALID_JUDGE]
    return impls


IMPLS = _impls()
