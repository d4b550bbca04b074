"""Grader catalog of chapter 03 (CTDNet SAM): wrong implementations that students and popular copies write,
each with the mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch03_ctdnet_sam as visible
from course_lib.hidden import ch03_ctdnet_sam as hidden

CHAPTER = "03_ctdnet_sam"

ATTENTION = Exercise(CHAPTER, "SpatialAttentionModule.attention", "SpatialAttentionModule",
                     visible.check_sam_attention, hidden.hidden_sam_attention, "sam", "test_sam_attention")
FORWARD = Exercise(CHAPTER, "SpatialAttentionModule.forward", "SpatialAttentionModule",
                   visible.check_sam_forward, hidden.hidden_sam_forward, "sam", "test_sam_forward")
COUNT = Exercise(CHAPTER, "sam_parameter_count", "sam_parameter_count",
                 visible.check_sam_parameter_count, hidden.hidden_sam_parameter_count,
                 "parameter_count", "test_parameter_count")
SWAP = Exercise(CHAPTER, "swap_pool_order", "swap_pool_order",
                visible.check_swap_pool_order, hidden.hidden_swap_pool_order, "swap_pool_order", "test_swap_pool_order")
Q_STACKED, Q_WINDOW, Q_FLIP = (question(CHAPTER, visible, hidden, q) for q in
                               ("q_stacked_shape", "q_wide_window", "q_kernel_flip"))
EXERCISES = [ATTENTION, FORWARD, COUNT, SWAP, Q_STACKED, Q_WINDOW, Q_FLIP]

# ------------------------------------------------------------------------------------------------
# SpatialAttentionModule: a template whose parts the variants replace
# ------------------------------------------------------------------------------------------------
INIT = """\
        self.conv_atten = nn.Conv2d(2, 1, 3, padding=1, bias=False)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)"""
ATT = """\
        avg = x.mean(1, keepdim=True)
        mx = x.amax(1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))"""
FWD = """\
        return F.relu(self.bn(self.conv(x * self.attention(x))))"""


def sam(*, init: str = INIT, att: str = ATT, fwd: str = FWD, default: str = "64", extra: str = "") -> str:
    return f"""
class SpatialAttentionModule(nn.Module):
    def __init__(self, in_channels, out_channels={default}):
        super().__init__()
{init}
{extra}
    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


WRONG_ATTENTION = [
    ("x.max(dim=1, keepdim=True) used as a tensor (it returns (values, indices))", "tuple_as_tensor", dict(att="""\
        avg = x.mean(1, keepdim=True)
        mx = x.max(dim=1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))""")),
    ("[max, avg] stacked where [avg, max] is asked (official CBAM order)", "pool_order", dict(att="""\
        mx = x.amax(1, keepdim=True)
        avg = x.mean(1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([mx, avg], dim=1)))""")),
    ("only average pooling (Conv2d(1, 1, 3))", "single_pool", dict(
        init=INIT.replace("nn.Conv2d(2, 1, 3", "nn.Conv2d(1, 1, 3"),
        att="        return torch.sigmoid(self.conv_atten(x.mean(1, keepdim=True)))")),
    ("only max pooling (Conv2d(1, 1, 3))", "single_pool", dict(
        init=INIT.replace("nn.Conv2d(2, 1, 3", "nn.Conv2d(1, 1, 3"),
        att="        return torch.sigmoid(self.conv_atten(x.amax(1, keepdim=True)))")),
    ("no sigmoid", "missing_sigmoid", dict(att="""\
        return self.conv_atten(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1))""")),
    ("softmax over the H*W positions instead of a sigmoid", "softmax_gate", dict(att="""\
        z = self.conv_atten(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1))
        b, _, h, w = z.shape
        return torch.softmax(z.reshape(b, 1, h * w), dim=-1).reshape(b, 1, h, w)""")),
    ("softmax over dim=1 (the single map channel) instead of a sigmoid", "softmax_gate", dict(att="""\
        z = self.conv_atten(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1))
        return F.softmax(z, dim=1)""")),
    ("7x7 attention conv (CBAM's kernel)", "kernel_size", dict(
        init=INIT.replace("nn.Conv2d(2, 1, 3, padding=1", "nn.Conv2d(2, 1, 7, padding=3"))),
    ("attention conv without padding", "kernel_size", dict(
        init=INIT.replace("nn.Conv2d(2, 1, 3, padding=1", "nn.Conv2d(2, 1, 3, padding=0"))),
    ("BatchNorm in the attention path (official CBAM's BasicConv)", "bn_in_attention", dict(
        init=INIT + "\n        self.bn_atten = nn.BatchNorm2d(1)",
        att="""\
        z = self.conv_atten(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1))
        return torch.sigmoid(self.bn_atten(z))""")),
    ("attention conv with a bias", "conv_bias", dict(
        init=INIT.replace("nn.Conv2d(2, 1, 3, padding=1, bias=False)", "nn.Conv2d(2, 1, 3, padding=1)"))),
    ("pooling over the batch axis (dim=0) instead of the channels", "pool_axis", dict(att="""\
        avg = x.mean(0, keepdim=True)
        mx = x.amax(0, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))""")),
    ("pooling over the height (dim=2) instead of the channels", "pool_axis", dict(att="""\
        avg = x.mean(2, keepdim=True)
        mx = x.amax(2, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))""")),
    ("sum over channels instead of the mean", "channel_sum", dict(att="""\
        s = x.sum(1, keepdim=True)
        mx = x.amax(1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([s, mx], dim=1)))""")),
    ("attention returns the reweighted features x * A", "returns_features", dict(att="""\
        avg = x.mean(1, keepdim=True)
        mx = x.amax(1, keepdim=True)
        return x * torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))""",
        fwd="        return F.relu(self.bn(self.conv(self.attention(x))))")),
    ("map computed under torch.no_grad()", "no_grad", dict(att="""\
        with torch.no_grad():
            stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
            return torch.sigmoid(self.conv_atten(stacked))""")),
    ("the max map detached", "no_grad", dict(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True).detach()], dim=1)
        return torch.sigmoid(self.conv_atten(stacked))""")),
    ("hard-coded .cuda()", "device", dict(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1).cuda()
        return torch.sigmoid(self.conv_atten(stacked))""")),
    ("hard-coded float32 (.float())", "dtype", dict(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1).float()
        return torch.sigmoid(F.conv2d(stacked, self.conv_atten.weight.float(), padding=1))""")),
]

WRONG_FORWARD = [
    ("forward returns the attention map", "returns_map", dict(fwd="        return self.attention(x)")),
    ("forward returns x * A without the projection", "missing_projection",
     dict(fwd="        return x * self.attention(x)")),
    ("no ReLU after the BatchNorm", "missing_relu", dict(fwd="        return self.bn(self.conv(x * self.attention(x)))")),
    ("conv -> ReLU -> BN", "projection_order",
     dict(fwd="        return self.bn(F.relu(self.conv(x * self.attention(x))))")),
    ("projection of x instead of x * A", "gate_not_applied", dict(fwd="""\
        a = self.attention(x)
        return F.relu(self.bn(self.conv(x)))""")),
    ("no BatchNorm in the projection", "missing_bn", dict(
        init=INIT.replace("        self.bn = nn.BatchNorm2d(out_channels)", ""),
        fwd="        return F.relu(self.conv(x * self.attention(x)))")),
    ("BatchNorm without running statistics", "missing_bn", dict(
        init=INIT.replace("nn.BatchNorm2d(out_channels)", "nn.BatchNorm2d(out_channels, track_running_stats=False)"))),
    ("projection conv with a bias", "conv_bias", dict(
        init=INIT.replace("nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)",
                          "nn.Conv2d(in_channels, out_channels, 3, padding=1)"))),
    ("1x1 projection conv", "kernel_size", dict(
        init=INIT.replace("nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)",
                          "nn.Conv2d(in_channels, out_channels, 1, bias=False)"))),
    ("out_channels defaults to in_channels", "default_out_channels", dict(
        default="None",
        init="        out_channels = in_channels if out_channels is None else out_channels\n" + INIT)),
    ("in-place gating x *= A", "inplace", dict(fwd="""\
        x *= self.attention(x)
        return F.relu(self.bn(self.conv(x)))""")),
    ("BatchNorm forced into eval mode in forward", "bn_forced_eval", dict(fwd="""\
        self.bn.eval()
        return F.relu(self.bn(self.conv(x * self.attention(x))))""")),
    ("BatchNorm by hand with training=False", "bn_forced_eval", dict(fwd="""\
        y = self.conv(x * self.attention(x))
        bn = self.bn
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        return F.relu(y)""")),
    ("a CPU mask made in forward", "cpu_constant", dict(fwd="""\
        mask = torch.ones(x.shape[2:], dtype=x.dtype)
        return F.relu(self.bn(self.conv(x * self.attention(x) * mask)))""")),
    ("attention map detached (no gradient to the attention conv)", "no_grad",
     dict(fwd="        return F.relu(self.bn(self.conv(x * self.attention(x).detach())))")),
]

VALID = [
    ("official style: conv3x3 helper, torch.max(...)[0], torch.mul, in-place ReLU", dict(
        init="""\
        def conv3x3(cin, cout):
            return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv_atten = conv3x3(2, 1)
        self.conv = conv3x3(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)""",
        att="""\
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg_out, max_out], dim=1)))""",
        fwd="""\
        out = torch.mul(x, self.attention(x))
        return F.relu(self.bn(self.conv(out)), inplace=True)""")),
    ("nn.Sequential projection with other names", dict(
        init="""\
        self.gate = nn.Conv2d(2, 1, kernel_size=(3, 3), padding=(1, 1), bias=False)
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )""",
        att="""\
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)
        return self.gate(pooled).sigmoid()""",
        fwd="        return self.project(x * self.attention(x))")),
    ("einops reduce for the pooled maps, nn.Sigmoid", dict(
        init=INIT + "\n        self.sigmoid = nn.Sigmoid()",
        att="""\
        avg = reduce(x, 'b c h w -> b 1 h w', 'mean')
        mx = reduce(x, 'b c h w -> b 1 h w', 'max')
        return self.sigmoid(self.conv_atten(torch.cat((avg, mx), 1)))""")),
    ("torch.stack of squeezed maps, functional conv with its own Parameter", dict(
        init="""\
        self.weight = nn.Parameter(torch.randn(1, 2, 3, 3) * 0.1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)""",
        att="""\
        stacked = torch.stack([x.mean(1), x.amax(1)], dim=1)
        return torch.sigmoid(F.conv2d(stacked, self.weight, padding=1))""")),
    ("extra harmless buffer and attribute", dict(
        extra="""\
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.note = "CTDNet SAM"
""")),
    ("gate computed inline in forward (another order of computation)", dict(fwd="""\
        a = self.attention(x)
        y = self.conv(a * x)
        y = self.bn(y)
        return y.clamp_min(0)""")),
]

IMPLS = (
    [Impl(ATTENTION, label, sam(**parts), mistake) for label, mistake, parts in WRONG_ATTENTION]
    + [Impl(FORWARD, label, sam(**parts), mistake) for label, mistake, parts in WRONG_FORWARD]
    + [Impl(ATTENTION, label, sam(**parts)) for label, parts in VALID]
    + [Impl(FORWARD, label, sam(**parts)) for label, parts in VALID]
)

# ------------------------------------------------------------------------------------------------
# sam_parameter_count
# ------------------------------------------------------------------------------------------------
IMPLS += [
    Impl(COUNT, "conv biases counted", "def sam_parameter_count(i, o):\n    return 2 * 9 + 1 + i * o * 9 + o + 2 * o\n",
         "param_count"),
    Impl(COUNT, "BatchNorm running statistics counted",
         "def sam_parameter_count(i, o):\n    return 2 * 9 + i * o * 9 + 4 * o\n", "param_count"),
    Impl(COUNT, "BatchNorm left out", "def sam_parameter_count(i, o):\n    return 2 * 9 + i * o * 9\n", "param_count"),
    Impl(COUNT, "CBAM's 7x7 kernel", "def sam_parameter_count(i, o):\n    return 2 * 49 + i * o * 9 + 2 * o\n",
         "param_count"),
    Impl(COUNT, "kernels counted as 1x1", "def sam_parameter_count(i, o):\n    return 2 + i * o + 2 * o\n",
         "param_count"),
    Impl(COUNT, "returns a float", "def sam_parameter_count(i, o):\n    return 18 + 9.5 * i * o + 2 * o\n",
         "float_count"),
    Impl(COUNT, "the right count as a float", "def sam_parameter_count(i, o):\n    return 18 + 9 * i * o + 2.0 * o\n",
         "float_count"),
    Impl(COUNT, "a numpy integer", "import numpy as np\n\ndef sam_parameter_count(i, o):\n"
         "    return np.int64(18) + 9 * np.int64(i) * o + 2 * o\n"),
    Impl(COUNT, "a 0-d integer tensor", "def sam_parameter_count(i, o):\n"
         "    return torch.tensor(18 + 9 * i * o + 2 * o)\n"),
    Impl(COUNT, "formula", "def sam_parameter_count(in_channels, out_channels):\n"
         "    return 2 * 9 + in_channels * out_channels * 9 + 2 * out_channels\n"),
    Impl(COUNT, "factored formula", "def sam_parameter_count(i, o):\n    return 9 * (2 + i * o) + 2 * o\n"),
    Impl(COUNT, "counted from torch layers", """\
def sam_parameter_count(in_channels, out_channels):
    layers = [nn.Conv2d(2, 1, 3, bias=False), nn.Conv2d(in_channels, out_channels, 3, bias=False),
              nn.BatchNorm2d(out_channels)]
    return sum(p.numel() for layer in layers for p in layer.parameters())
"""),
]

# ------------------------------------------------------------------------------------------------
# swap_pool_order
# ------------------------------------------------------------------------------------------------
IMPLS += [
    Impl(SWAP, "returns the weight unchanged", "def swap_pool_order(weight):\n    return weight.clone()\n",
         "pool_order"),
    Impl(SWAP, "flips dim 0 (size 1: no change)", "def swap_pool_order(weight):\n    return weight.flip(0)\n",
         "pool_order"),
    Impl(SWAP, "mirrors the kernel left-right", "def swap_pool_order(weight):\n    return weight.flip(-1)\n",
         "flipped_kernel"),
    Impl(SWAP, "rotates the kernel by 180 degrees", "def swap_pool_order(weight):\n    return weight.flip((2, 3))\n",
         "flipped_kernel"),
    Impl(SWAP, "swaps in place and returns the same tensor", """\
def swap_pool_order(weight):
    weight[:, [0, 1]] = weight[:, [1, 0]]
    return weight
""", "modifies_input"),
    Impl(SWAP, "index [1, 0] on dim 1", "def swap_pool_order(weight):\n    return weight[:, [1, 0]]\n"),
    Impl(SWAP, "flip(1)", "def swap_pool_order(weight):\n    return torch.flip(weight, dims=[1])\n"),
    Impl(SWAP, "cat of the two slices", """\
def swap_pool_order(weight):
    avg_part, max_part = weight[:, :1], weight[:, 1:]
    return torch.cat([max_part, avg_part], dim=1)
"""),
    Impl(SWAP, "einops rearrange", """\
def swap_pool_order(weight):
    return rearrange(weight.flip(1), 'o c h w -> o c h w').contiguous()
"""),
]

# ------------------------------------------------------------------------------------------------
# the conceptual questions
# ------------------------------------------------------------------------------------------------
IMPLS += [
    # question 1: the shape of [S_avg; S_max]
    Impl(Q_STACKED, "the features stacked twice", "q_stacked_shape = (2, 256, 44, 44)", "pooled_features"),
    Impl(Q_STACKED, "pooled over H and W", "q_stacked_shape = (2, 2, 1, 1)", "pooled_spatially"),
    Impl(Q_STACKED, "one pooled map", "q_stacked_shape = (2, 1, 44, 44)", "one_pooled_map"),
    Impl(Q_STACKED, "channels last", "q_stacked_shape = (2, 44, 44, 2)", "wrong_answer"),
    Impl(Q_STACKED, "a string", "q_stacked_shape = '(2, 2, 44, 44)'", "answer_form"),
    Impl(Q_STACKED, "left as None", "q_stacked_shape = None", "unanswered"),
    Impl(Q_STACKED, "valid: a tuple", "q_stacked_shape = (2, 2, 44, 44)"),
    Impl(Q_STACKED, "valid: a list", "q_stacked_shape = [2, 2, 44, 44]"),
    Impl(Q_STACKED, "valid: a torch.Size", "q_stacked_shape = torch.cat([torch.zeros(2, 1, 44, 44)] * 2, 1).shape"),
    # question 2: the window of forward(x) with a 7x7 gate
    Impl(Q_WINDOW, "the 7x7 gate alone", "q_wide_window = 7", "window_one_conv"),
    Impl(Q_WINDOW, "7 + 3", "q_wide_window = 10", "window_added"),
    Impl(Q_WINDOW, "7 * 3", "q_wide_window = 21", "window_multiplied"),
    Impl(Q_WINDOW, "the SAM's 5", "q_wide_window = 5", "kernel_size"),
    Impl(Q_WINDOW, "81 pixels (the area)", "q_wide_window = 81", "wrong_answer"),
    Impl(Q_WINDOW, "a float that is not whole", "q_wide_window = 9.5", "answer_form"),
    Impl(Q_WINDOW, "valid: an int", "q_wide_window = 9"),
    Impl(Q_WINDOW, "valid: the sum of growths", "q_wide_window = 1 + (7 - 1) + (3 - 1)"),
    Impl(Q_WINDOW, "valid: a whole float", "q_wide_window = 9.0"),
    # question 3: what a mirrored kernel does
    Impl(Q_FLIP, "the flip taken for a swap", "q_kernel_flip = 'd'", "flip_is_swap"),
    Impl(Q_FLIP, "(a) and the swap", "q_kernel_flip = {'a', 'd'}", "flip_is_swap"),
    Impl(Q_FLIP, "(a) and the mirrored map", "q_kernel_flip = 'ac'", "extra_choice"),
    Impl(Q_FLIP, "nothing changes", "q_kernel_flip = 'b'", "wrong_answer"),
    Impl(Q_FLIP, "an option that does not exist", "q_kernel_flip = 'ae'", "answer_form"),
    Impl(Q_FLIP, "valid: a set", "q_kernel_flip = {'a'}"),
    Impl(Q_FLIP, "valid: an upper-case string", "q_kernel_flip = 'A'"),
    Impl(Q_FLIP, "valid: a list", "q_kernel_flip = ['a']"),
]

# issue 27: the BatchNorm in eval and training mode on loaded weights
IMPLS += [
    Impl(FORWARD, "BatchNorm forced to batch statistics (F.batch_norm with training=True)", sam(fwd="""\
        y = self.conv(x * self.attention(x))
        return F.relu(F.batch_norm(y, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                                   training=True))"""), "bn_forced_train"),
    Impl(FORWARD, "the projection run twice (the second time for a printout): running statistics move twice",
         sam(fwd="""\
        g = x * self.attention(x)
        self.stats = float(self.bn(self.conv(g)).mean())
        return F.relu(self.bn(self.conv(g)))"""), "bn_twice"),
]

# issue 26: what §4 says is graded, held to the checks: float64 compared at float64 precision (hidden tests)
IMPLS += [
    Impl(FORWARD, "the projection computed in float32 and cast back to x's dtype", sam(fwd="""\
        y = F.relu(F.batch_norm(F.conv2d((x * self.attention(x)).float(), self.conv.weight.float(), padding=1),
                                self.bn.running_mean.float(), self.bn.running_var.float(), self.bn.weight.float(),
                                self.bn.bias.float(), self.training, self.bn.momentum, self.bn.eps))
        return y.to(x.dtype)"""), "float32_inside"),
]

# issue 26, second trial: the mistakes a student tried that got no named hint or a misleading one, and the
# promises of section 4 (float64 at float64 precision, the input's dtype, channels_last) held by the visible checks
_REFUSE_CHANNELS_LAST = """\
        if not x.is_contiguous():
            raise RuntimeError("view size is not compatible with input tensor's size and stride")
"""
IMPLS += [
    Impl(ATTENTION, "mean over the batch axis (dim 0): the concatenation fails", sam(att="""\
        avg = x.mean(dim=0, keepdim=True)
        mx = x.amax(dim=1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))"""), "pool_axis"),
    Impl(ATTENTION, "mean over W (dim -1): the concatenation fails", sam(att="""\
        avg = x.mean(dim=-1, keepdim=True)
        mx = x.amax(dim=1, keepdim=True)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))"""), "pool_axis"),
    Impl(ATTENTION, "pooled over H and W, then expanded back to every pixel", sam(att="""\
        h, w = x.shape[2:]
        avg = x.mean((2, 3), keepdim=True).mean(1, keepdim=True).expand(-1, 1, h, w)
        mx = x.amax((2, 3), keepdim=True).amax(1, keepdim=True).expand(-1, 1, h, w)
        return torch.sigmoid(self.conv_atten(torch.cat([avg, mx], dim=1)))"""), "pooled_spatially"),
    Impl(ATTENTION, "pooled maps concatenated along the batch, then viewed as (B, 2, H, W)", sam(att="""\
        b, _, h, w = x.shape
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=0).view(b, 2, h, w)
        return torch.sigmoid(self.conv_atten(stacked))"""), "batch_mixed"),
    Impl(ATTENTION, "sigmoid of the pooled maps, then the conv", sam(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return self.conv_atten(torch.sigmoid(stacked))"""), "sigmoid_before_conv"),
    Impl(ATTENTION, "the map computed in float32 and cast back to x's dtype", sam(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1).float()
        return torch.sigmoid(F.conv2d(stacked, self.conv_atten.weight.float(), padding=1)).to(x.dtype)"""),
         "float32_inside"),
    Impl(ATTENTION, "the map returned as .float() whatever x's dtype", sam(att=ATT.replace(
        "dim=1)))", "dim=1))).float()")), "dtype"),
    Impl(ATTENTION, "attention refuses a channels_last input (a .view-style assumption)", sam(
        att=_REFUSE_CHANNELS_LAST + ATT), "memory_layout"),
    Impl(FORWARD, "a residual: the projection of x * A + x", sam(fwd="""\
        return F.relu(self.bn(self.conv(x * self.attention(x) + x)))"""), "gate_residual"),
    Impl(FORWARD, "the gate applied after the projection", sam(fwd="""\
        return F.relu(self.bn(self.conv(x))) * self.attention(x)"""), "gate_after_projection"),
    Impl(FORWARD, "the gate computed from x.detach(): no input gradient through the gate",
         sam(fwd="        return F.relu(self.bn(self.conv(x * self.attention(x.detach()))))"), "no_grad"),
    Impl(FORWARD, "the module cast to float32 inside forward, the result cast back", sam(fwd="""\
        dtype = x.dtype
        self.float()
        return F.relu(self.bn(self.conv(x.float() * self.attention(x.float())))).to(dtype)"""), "float32_inside"),
    Impl(FORWARD, "forward returns .float() whatever x's dtype",
         sam(fwd="        return F.relu(self.bn(self.conv(x * self.attention(x)))).float()"), "dtype"),
    Impl(FORWARD, "forward returns .double() whatever x's dtype",
         sam(fwd="        return F.relu(self.bn(self.conv(x * self.attention(x)))).double()"), "dtype"),
    Impl(FORWARD, "forward refuses a channels_last input (a .view-style assumption)",
         sam(fwd=_REFUSE_CHANNELS_LAST + FWD), "memory_layout"),
    Impl(FORWARD, "pooled maps concatenated along the batch, then viewed (the mistake is in the map)", sam(att="""\
        b, _, h, w = x.shape
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=0).view(b, 2, h, w)
        return torch.sigmoid(self.conv_atten(stacked))"""), "batch_mixed"),
    Impl(FORWARD, "the median over the channels where the mean is asked (the mistake is in the map)", sam(att="""\
        med = x.median(1, keepdim=True).values
        return torch.sigmoid(self.conv_atten(torch.cat([med, x.amax(1, keepdim=True)], dim=1)))"""),
         "attention_in_forward"),
    Impl(FORWARD, "sigmoid before the conv (the mistake is in the map)", sam(att="""\
        stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return self.conv_atten(torch.sigmoid(stacked))"""), "sigmoid_before_conv"),
    Impl(ATTENTION, "valid: a Python loop over the images of the batch", sam(att="""\
        maps = [torch.cat([xi.mean(0, keepdim=True), xi.amax(0, keepdim=True)])[None] for xi in x]
        return torch.sigmoid(self.conv_atten(torch.cat(maps)))""")),
    Impl(FORWARD, "valid: a Python loop over the images of the batch", sam(att="""\
        maps = [torch.cat([xi.mean(0, keepdim=True), xi.amax(0, keepdim=True)])[None] for xi in x]
        return torch.sigmoid(self.conv_atten(torch.cat(maps)))""")),
    Impl(COUNT, "BatchNorm counted over the input channels",
         "def sam_parameter_count(i, o):\n    return 2 * 9 + i * o * 9 + 2 * i\n", "param_count"),
    Impl(COUNT, "hard-coded for SAM(128, 64)", "def sam_parameter_count(i, o):\n    return 73874\n", "param_count"),
    Impl(COUNT, "attention conv with one input map", "def sam_parameter_count(i, o):\n    return 9 + i * o * 9 + 2 * o\n",
         "param_count"),
    Impl(SWAP, "transpose(0, 1): the output and input axes exchanged", "def swap_pool_order(weight):\n"
         "    return weight.transpose(0, 1)\n", "swap_axes"),
    Impl(SWAP, "a size hard-coded for 7x7 kernels", "def swap_pool_order(weight):\n"
         "    return weight.reshape(2, 49).flip(0).reshape(1, 2, 7, 7)\n", "hard_coded_size"),
    Impl(SWAP, "a clone, then a, b = b, a on two of its slices (views)", """\
def swap_pool_order(weight):
    w = weight.clone()
    w[:, 0], w[:, 1] = w[:, 1], w[:, 0]
    return w
""", "aliased_swap"),
    Impl(Q_FLIP, "(a) and the unchanged convolution: a near set gets no 'one away'", "q_kernel_flip = 'ab'",
         "extra_choice"),
    Impl(Q_FLIP, "nothing holds: a near set gets no 'one away'", "q_kernel_flip = ''", "missing_choice"),
]

# ------------------------------------------------------------------------------------------------
# student trial t093: generic messages before (or a promise no visible check held)
# ------------------------------------------------------------------------------------------------
IMPLS += [
    Impl(ATTENTION, "the standard deviation over the channels where the max is asked",
         sam(att=ATT.replace("x.amax(1, keepdim=True)", "x.std(1, keepdim=True)")), "pool_statistic"),
    Impl(ATTENTION, "the minimum over the channels where the max is asked",
         sam(att=ATT.replace("x.amax(1, keepdim=True)", "x.amin(1, keepdim=True)")), "pool_statistic"),
    Impl(ATTENTION, "the max of |x| over the channels",
         sam(att=ATT.replace("x.amax(1, keepdim=True)", "x.abs().amax(1, keepdim=True)")), "pool_statistic"),
    Impl(ATTENTION, "F.hardsigmoid for the gate", sam(att=ATT.replace("torch.sigmoid(", "F.hardsigmoid(")),
         "hard_sigmoid"),
    Impl(ATTENTION, "the attention conv pads by reflection",
         sam(init=INIT.replace("nn.Conv2d(2, 1, 3, padding=1, bias=False)",
                               "nn.Conv2d(2, 1, 3, padding=1, bias=False, padding_mode='reflect')")),
         "conv_padding_mode"),
    Impl(FORWARD, "the gate's statistic wrong (min): forward names it too",
         sam(att=ATT.replace("x.amax(1, keepdim=True)", "x.amin(1, keepdim=True)")), "pool_statistic"),
    Impl(FORWARD, "(2, 1): the projection conv created before the attention conv",
         sam(init="""\
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv_atten = nn.Conv2d(2, 1, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)"""), "layer_order"),
    Impl(FORWARD, "a module that refuses in_channels == 2", sam(extra="""\
        if in_channels == 2:
            raise ValueError("in_channels must not be 2")
"""), "crash"),
    Impl(COUNT, "the BatchNorm counted with one parameter per channel",
         "def sam_parameter_count(i, o):\n    return 2 * 9 + i * o * 9 + o\n", "param_count"),
    Impl(COUNT, "the projection counted as a 1x1 conv",
         "def sam_parameter_count(i, o):\n    return 2 * 9 + i * o + 2 * o\n", "param_count"),
    Impl(SWAP, "transposes each kernel", "def swap_pool_order(weight):\n    return weight.transpose(2, 3)\n",
         "kernel_transposed"),
    Impl(SWAP, "negates the weight", "def swap_pool_order(weight):\n    return -weight\n", "negated"),
    Impl(SWAP, "swaps and also mirrors each kernel",
         "def swap_pool_order(weight):\n    return weight.flip(1).flip(-1)\n", "swap_and_flip"),
]

# ------------------------------------------------------------------------------------------------
# student trial t093 (round 2): ReLU6 and a BatchNorm with other eps or momentum passed (no output above 6, the
# BatchNorm's settings overwritten); the others were generic or a raw error
# ------------------------------------------------------------------------------------------------
IMPLS += [
    Impl(FORWARD, "ReLU6 at the end of the projection", sam(
        fwd="        return F.relu6(self.bn(self.conv(x * self.attention(x))))"), "capped_relu"),
    Impl(FORWARD, "BatchNorm2d(out, eps=1e-3)", sam(init=INIT.replace("nn.BatchNorm2d(out_channels)",
                                                                      "nn.BatchNorm2d(out_channels, eps=1e-3)")),
         "bn_settings"),
    Impl(FORWARD, "BatchNorm2d(out, momentum=0.01)", sam(init=INIT.replace(
        "nn.BatchNorm2d(out_channels)", "nn.BatchNorm2d(out_channels, momentum=0.01)")), "bn_settings"),
    Impl(FORWARD, "LeakyReLU at the end of the projection", sam(
        fwd="        return F.leaky_relu(self.bn(self.conv(x * self.attention(x))), 0.1)"), "leaky_activation"),
    Impl(FORWARD, "the map applied again to the projection's output", sam(fwd="""\
        a = self.attention(x)
        return F.relu(self.bn(self.conv(x * a))) * a"""), "gate_twice"),
    Impl(ATTENTION, "1 - sigmoid for the gate", sam(att=ATT.replace("return torch.sigmoid(", "return 1 - torch.sigmoid(")),
         "inverted_gate"),
    Impl(FORWARD, "1 - sigmoid for the gate, seen by forward", sam(
        att=ATT.replace("return torch.sigmoid(", "return 1 - torch.sigmoid(")), "inverted_gate"),
    Impl(ATTENTION, "F.logsigmoid for the gate", sam(att=ATT.replace("return torch.sigmoid(", "return F.logsigmoid(")),
         "log_sigmoid"),
    Impl(FORWARD, "attention conv without padding, seen by forward", sam(
        init=INIT.replace("nn.Conv2d(2, 1, 3, padding=1, bias=False)", "nn.Conv2d(2, 1, 3, padding=0, bias=False)")),
         "kernel_size"),
    Impl(SWAP, "a numpy-style reversed slice w[:, ::-1]", "def swap_pool_order(weight):\n    return weight[:, ::-1]\n",
         "negative_step"),
    Impl(FORWARD, "BatchNorm2d with its defaults written out", sam(init=INIT.replace(
        "nn.BatchNorm2d(out_channels)", "nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1, affine=True)"))),
]
