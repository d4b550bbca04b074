"""Chapter 02 (CBAM): what students and popular copies write, wrong and right.

Every source defines the exercise's symbol given catalog.PRELUDE; the CBAM entries define the two gates they use.
"""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch02_cbam as visible
from course_lib.checks.ch02_cbam import check_cbam, check_channel_attention, check_spatial_attention
from course_lib.hidden import ch02_cbam as hidden
from course_lib.hidden.ch02_cbam import hidden_cbam, hidden_channel_attention, hidden_spatial_attention

CH = Exercise("02_cbam", "ChannelAttention", "ChannelAttention", check_channel_attention, hidden_channel_attention,
              "channel_attention", "test_channel_attention")
SP = Exercise("02_cbam", "SpatialAttention", "SpatialAttention", check_spatial_attention, hidden_spatial_attention,
              "spatial_attention", "test_spatial_attention")
CB = Exercise("02_cbam", "CBAM", "CBAM", check_cbam, hidden_cbam, "cbam", "test_cbam")
Q_SPATIAL, Q_ORDER, Q_PARAMS = (question("02_cbam", visible, hidden, q) for q in
                                ("q_spatial_params", "q_gate_order", "q_cbam_params"))
EXERCISES = [CH, SP, CB, Q_SPATIAL, Q_ORDER, Q_PARAMS]


def channel(gate: str, *, hidden: str = "channels // reduction", bias: str = "False", extra: str = "") -> str:
    """A ChannelAttention with one shared 1x1-conv MLP; ``gate`` is the body of attention() (avg, mx given)."""
    return f"""
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(channels, {hidden}, 1, bias={bias}), nn.ReLU(),
                                 nn.Conv2d({hidden}, channels, 1, bias={bias}))
{extra}
    def attention(self, x):
        avg, mx = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        return {gate}

    def forward(self, x):
        return x * self.attention(x)
"""


def spatial(pooled: str, *, conv: str = "nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)",
            gate: str = "torch.sigmoid(self.conv(pooled))") -> str:
    return f"""
class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = {conv}

    def attention(self, x):
        pooled = {pooled}
        return {gate}

    def forward(self, x):
        return x * self.attention(x)
"""


GOOD_CHANNEL = channel("torch.sigmoid(self.mlp(avg) + self.mlp(mx))")
GOOD_SPATIAL = spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)")


def cbam(forward: str) -> str:
    return GOOD_CHANNEL + GOOD_SPATIAL + f"""
class CBAM(nn.Module):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel_gate = ChannelAttention(channels, reduction)
        self.spatial_gate = SpatialAttention(kernel_size)

    def forward(self, x):
{forward.strip(chr(10))}
"""


IMPLS = [
    # ---------------------------------------------------------------- ChannelAttention
    Impl(CH, "the blog copy: in_planes // 16 whatever the ratio",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(mx))", hidden="channels // 16"), "reduction_ignored"),
    Impl(CH, "two separate MLPs", """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        h = channels // reduction
        self.mlp_avg = nn.Sequential(nn.Conv2d(channels, h, 1, bias=False), nn.ReLU(), nn.Conv2d(h, channels, 1, bias=False))
        self.mlp_max = nn.Sequential(nn.Conv2d(channels, h, 1, bias=False), nn.ReLU(), nn.Conv2d(h, channels, 1, bias=False))

    def attention(self, x):
        return torch.sigmoid(self.mlp_avg(x.mean((2, 3), keepdim=True)) + self.mlp_max(x.amax((2, 3), keepdim=True)))

    def forward(self, x):
        return x * self.attention(x)
""", "separate_mlps"),
    Impl(CH, "average pooling only", channel("torch.sigmoid(self.mlp(avg))"), "single_pool"),
    Impl(CH, "max pooling only", channel("torch.sigmoid(self.mlp(mx))"), "single_pool"),
    Impl(CH, "no sigmoid", channel("self.mlp(avg) + self.mlp(mx)"), "missing_sigmoid"),
    Impl(CH, "softmax over channels", channel("torch.softmax(self.mlp(avg) + self.mlp(mx), dim=1)"), "softmax_gate"),
    Impl(CH, "ReLU after the last layer",
         channel("torch.sigmoid(F.relu(self.mlp(avg)) + F.relu(self.mlp(mx)))"), "relu_after_last"),
    Impl(CH, "forward returns the map", GOOD_CHANNEL.replace("return x * self.attention(x)", "return self.attention(x)"),
         "returns_map"),
    Impl(CH, "valid: the official code's Linear layers with their default bias (the checks zero it, as §3 says)", """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(),
                                 nn.Linear(channels // reduction, channels))

    def attention(self, x):
        s = self.mlp(F.avg_pool2d(x, x.shape[2:])) + self.mlp(F.max_pool2d(x, x.shape[2:]))
        return rearrange(torch.sigmoid(s), "b c -> b c 1 1")

    def forward(self, x):
        return x * self.attention(x)
"""),
    Impl(CH, "valid: the paper's shared MLP as 1x1 convolutions, no biases", GOOD_CHANNEL),
    Impl(CH, "official style: Linear layers, bias=False", """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(),
                                 nn.Linear(channels // reduction, channels, bias=False))

    def attention(self, x):
        s = self.mlp(F.avg_pool2d(x, x.shape[2:])) + self.mlp(F.max_pool2d(x, x.shape[2:]))
        return rearrange(torch.sigmoid(s), "b c -> b c 1 1")

    def forward(self, x):
        return x * self.attention(x)
"""),
    Impl(CH, "adaptive pools, both descriptors in one batch through the MLP", """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool, self.max_pool = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def attention(self, x):
        both = torch.cat([self.avg_pool(x), self.max_pool(x)], dim=0)  # (2B, C, 1, 1)
        a, m = self.fc2(F.relu(self.fc1(both))).chunk(2, dim=0)
        return torch.sigmoid(a + m)

    def forward(self, x):
        return x * self.attention(x)
"""),
    # ---------------------------------------------------------------- SpatialAttention
    Impl(SP, "[max; mean] as in the official code",
         spatial("torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)"), "pool_order"),
    Impl(SP, "pooling over H and W instead of the channels",
         spatial("torch.cat([x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)], dim=1)"), "pool_axis"),
    Impl(SP, "mean map only", spatial("x.mean(1, keepdim=True)",
                                      conv="nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)"),
         "single_pool"),
    Impl(SP, "no sigmoid", spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                                   gate="self.conv(pooled)"), "missing_sigmoid"),
    Impl(SP, "padding 3 whatever the kernel size",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                 conv="nn.Conv2d(2, 1, kernel_size, padding=3, bias=False)"), "kernel_size"),
    Impl(SP, "the paper's gate", GOOD_SPATIAL),
    Impl(SP, "valid: a conv with nn.Conv2d's default bias (the checks zero it, as §4 says)",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                 conv="nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)")),
    Impl(SP, "the official gate: conv, BatchNorm2d(1), sigmoid", """
class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def attention(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))

    def forward(self, x):
        return x * self.attention(x)
""", "parameters"),
    Impl(SP, "torch.max(...)[0], einops reduce and a bias-free conv", """
class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.gate_conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def attention(self, x):
        avg = reduce(x, "b c h w -> b 1 h w", "mean")
        mx = torch.max(x, dim=1, keepdim=True)[0]
        return self.sigmoid(self.gate_conv(torch.cat((avg, mx), 1)))

    def forward(self, x):
        return x * self.attention(x)
"""),
    # ---------------------------------------------------------------- CBAM
    Impl(CB, "spatial gate first", cbam("        return self.channel_gate(self.spatial_gate(x))"), "cbam_order"),
    Impl(CB, "spatial map computed on the input",
         cbam("        return self.channel_gate(x) * self.spatial_gate.attention(x)"), "spatial_on_input"),
    Impl(CB, "both gates on x, side by side",
         cbam("        return x * self.channel_gate.attention(x) * self.spatial_gate.attention(x)"), "spatial_on_input"),
    Impl(CB, "an inner residual around the channel gate",
         cbam("        return self.spatial_gate(x + self.channel_gate(x))"), "cbam_residual"),
    Impl(CB, "a residual added to the output",
         cbam("        return x + self.spatial_gate(self.channel_gate(x))"), "cbam_residual"),
    Impl(CB, "the spatial map applied to the input",
         cbam("        return x * self.spatial_gate.attention(self.channel_gate(x))"), "spatial_applied_to_input"),
    Impl(CB, "wrong constructor defaults (reduction=8, kernel_size=3)",
         cbam("        return self.spatial_gate(self.channel_gate(x))").replace(
             "def __init__(self, channels, reduction=16, kernel_size=7)",
             "def __init__(self, channels, reduction=8, kernel_size=3)"), "default_args"),
    Impl(CB, "a mask kept in a plain tensor attribute", cbam("""
        if self.mask.shape != x.shape[-2:]:
            self.mask = torch.ones(x.shape[-2:])
        return self.spatial_gate(self.channel_gate(x)) * self.mask""").replace(
             "self.spatial_gate = SpatialAttention(kernel_size)",
             "self.spatial_gate = SpatialAttention(kernel_size)\n        self.mask = torch.ones(1, 1)"),
         "tensor_attribute"),
    Impl(CB, "a CPU tensor made in forward", cbam("""
        ones = torch.ones(x.shape[-2:], dtype=x.dtype)
        return self.spatial_gate(self.channel_gate(x)) * ones"""), "cpu_constant"),
    Impl(CB, "channel then spatial", cbam("        return self.spatial_gate(self.channel_gate(x))")),
    Impl(CB, "valid: every layer keeps its bias (the checks zero them, as §6 says)",
         cbam("        return self.spatial_gate(self.channel_gate(x))").replace("bias=False", "bias=True")),
    Impl(CB, "a constant made on x's device, and a buffer", cbam("""
        ones = torch.ones(x.shape[-2:], dtype=x.dtype, device=x.device)
        return self.spatial_gate(self.channel_gate(x)) * ones * self.one""").replace(
             "self.spatial_gate = SpatialAttention(kernel_size)",
             "self.spatial_gate = SpatialAttention(kernel_size)\n        self.register_buffer('one', torch.ones(()))")),
    Impl(CB, "channel then spatial, maps written out", cbam("""
        refined = x * self.channel_gate.attention(x)
        return refined * self.spatial_gate.attention(refined)""")),

    # ---------------------------------------------------------------- question 1: the spatial gate's parameters
    Impl(Q_SPATIAL, "one input map", "q_spatial_params = 7 * 7", "single_pool"),
    Impl(Q_SPATIAL, "a bias added", "q_spatial_params = 2 * 7 * 7 + 1", "extra_parameter"),
    Impl(Q_SPATIAL, "the official gate with its BatchNorm", "q_spatial_params = 100", "official_batch_norm"),
    Impl(Q_SPATIAL, "7 weights per map", "q_spatial_params = 14", "kernel_ignored"),
    Impl(Q_SPATIAL, "the CBAM block's count", "q_spatial_params = 8290", "wrong_answer"),
    Impl(Q_SPATIAL, "a shape instead of a count", "q_spatial_params = (1, 2, 7, 7)", "answer_form"),
    Impl(Q_SPATIAL, "valid: the number", "q_spatial_params = 98"),
    Impl(Q_SPATIAL, "valid: counted from a layer", "q_spatial_params = nn.Conv2d(2, 1, 7, bias=False).weight.numel()"),
    Impl(Q_SPATIAL, "valid: a float with no fraction", "q_spatial_params = 98.0"),

    # ---------------------------------------------------------------- question 2: the order of the gates
    Impl(Q_ORDER, "the parallel picture", "q_gate_order = 'bc'", "spatial_on_input"),
    Impl(Q_ORDER, "the order taken not to matter", "q_gate_order = {'a', 'e'}", "gates_commute"),
    Impl(Q_ORDER, "sequential taken to equal parallel", "q_gate_order = 'ace'", "spatial_on_input"),
    Impl(Q_ORDER, "only (d)", "q_gate_order = 'd'", "wrong_answer"),
    Impl(Q_ORDER, "an option that does not exist", "q_gate_order = 'adf'", "answer_form"),
    Impl(Q_ORDER, "valid: a set", "q_gate_order = {'a', 'd', 'e'}"),
    Impl(Q_ORDER, "valid: upper case with commas", "q_gate_order = 'E, D, A'"),
    Impl(Q_ORDER, "valid: a tuple", "q_gate_order = ('a', 'd', 'e')"),

    # ---------------------------------------------------------------- question 3: one block's parameters
    Impl(Q_PARAMS, "the official MLP biases", "q_cbam_params = 2 * 256 * 16 + 16 + 256 + 98", "official_mlp_bias"),
    Impl(Q_PARAMS, "the whole official block", "q_cbam_params = 2 * 256 * 16 + 16 + 256 + 100", "official_mlp_bias"),
    Impl(Q_PARAMS, "two MLPs", "q_cbam_params = 2 * (2 * 256 * 16) + 98", "separate_mlps"),
    Impl(Q_PARAMS, "the spatial gate forgotten", "q_cbam_params = 2 * 256 * 16", "param_count"),
    Impl(Q_PARAMS, "true division with a remainder", "q_cbam_params = 2 * 256 * 256 / 16 + 98.5", "answer_form"),
    Impl(Q_PARAMS, "valid: the number", "q_cbam_params = 8290"),
    Impl(Q_PARAMS, "valid: counted from the reference's layers", """
mlp = nn.Sequential(nn.Conv2d(256, 16, 1, bias=False), nn.ReLU(), nn.Conv2d(16, 256, 1, bias=False))
q_cbam_params = sum(p.numel() for p in mlp.parameters()) + nn.Conv2d(2, 1, 7, padding=3, bias=False).weight.numel()
"""),
    Impl(Q_PARAMS, "valid: a float with no fraction", "q_cbam_params = 8290.0"),

    # ---------------------------------------------------------------- second trial (issue 26): float64 and named hints
    Impl(CH, "x cast to float32 inside attention (float64 is graded: §3)",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(mx))").replace(
             "avg, mx = x.mean", "x = x.float()\n        avg, mx = x.mean"), "dtype"),
    Impl(CH, "the gate returned as float32 whatever the input",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(mx)).float()"), "dtype"),
    Impl(CH, "no ReLU between W_0 and W_1", """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1, bias=False),
                                 nn.Conv2d(channels // reduction, channels, 1, bias=False))

    def attention(self, x):
        return torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))

    def forward(self, x):
        return x * self.attention(x)
""", "missing_relu"),
    Impl(CH, "a sigmoid on each descriptor, the two gates added",
         channel("torch.sigmoid(self.mlp(avg)) + torch.sigmoid(self.mlp(mx))"), "sigmoid_per_descriptor"),
    Impl(CH, "a sigmoid on each descriptor, the two gates averaged",
         channel("(torch.sigmoid(self.mlp(avg)) + torch.sigmoid(self.mlp(mx))) / 2"), "sigmoid_per_descriptor"),
    Impl(CH, "the average descriptor sent through the MLP twice",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(avg))"), "single_pool"),
    Impl(SP, "x cast to float32 inside attention (float64 is graded: §4)",
         spatial("torch.cat([x.float().mean(1, keepdim=True), x.float().amax(1, keepdim=True)], dim=1)"), "dtype"),
    Impl(SP, "the channels summed instead of averaged",
         spatial("torch.cat([x.sum(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)"), "sum_pool"),
    Impl(SP, "a softmax over the pixels instead of a sigmoid",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                 gate="torch.softmax(self.conv(pooled).flatten(2), dim=-1).view(x.shape[0], 1, *x.shape[2:])"),
         "softmax_gate"),
    Impl(Q_PARAMS, "the spatial kernel counted twice", "q_cbam_params = 2 * 256 * 16 + 2 * 98", "spatial_counted_twice"),

    # ---------------------------------------------------------------- student trial t246: named where they were generic
    Impl(CH, "a minimum over H and W instead of the maximum",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(x.amin((2, 3), keepdim=True)))"), "min_pool"),
    Impl(CH, "the maximum taken over the channels too, then expanded",
         channel("torch.sigmoid(self.mlp(avg) + self.mlp(x.amax(1, keepdim=True).amax((2, 3), keepdim=True)"
                 ".expand(-1, x.shape[1], 1, 1)))"), "pool_axis"),
    Impl(CH, "a residual in forward (x + x * map)",
         GOOD_CHANNEL.replace("return x * self.attention(x)", "return x + x * self.attention(x)"), "gate_residual"),
    Impl(SP, "padding = kernel_size - 1",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                 conv="nn.Conv2d(2, 1, kernel_size, padding=kernel_size - 1, bias=False)"), "kernel_size"),
    Impl(SP, "padding_mode='reflect'",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
                 conv="nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False, padding_mode='reflect')"),
         "conv_padding_mode"),
    Impl(SP, "the max over H, expanded back",
         spatial("torch.cat([x.mean(1, keepdim=True), x.amax(2, keepdim=True).expand(-1, 1, x.shape[2], -1)], 1)"),
         "pool_axis"),
    Impl(SP, "two one-map convolutions summed (the same function; the checks load one 2-map kernel)", """
class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv_avg = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.conv_max = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x):
        return torch.sigmoid(self.conv_avg(x.mean(1, keepdim=True)) + self.conv_max(x.amax(1, keepdim=True)))

    def forward(self, x):
        return x * self.attention(x)
""", "split_conv"),
    Impl(CB, "the channel gate applied again after the spatial gate", cbam("""
        f = self.spatial_gate(self.channel_gate(x))
        return f * self.channel_gate.attention(f)"""), "channel_gate_twice"),
    Impl(CB, "the two gated tensors added (BAM-like)",
         cbam("        return self.channel_gate(x) + self.spatial_gate(x)"), "gates_summed"),
    Impl(Q_ORDER, "the max over the channels taken to stay put", "q_gate_order = 'ad'", "gated_max_fixed"),
    Impl(Q_ORDER, "sequential taken to equal parallel, (e) left out", "q_gate_order = 'acd'", "spatial_on_input"),
    Impl(Q_ORDER, "the weighted mean left out", "q_gate_order = 'de'", "spatial_on_input"),
    Impl(Q_ORDER, "(b) with the true ones", "q_gate_order = 'abde'", "gates_commute"),
    Impl(Q_PARAMS, "the spatial kernel on one map", "q_cbam_params = 2 * 256 * 16 + 49", "single_pool"),
    Impl(Q_PARAMS, "one MLP layer", "q_cbam_params = 256 * 16 + 98", "mlp_one_layer"),
    Impl(Q_PARAMS, "a spatial bias", "q_cbam_params = 2 * 256 * 16 + 98 + 1", "extra_parameter"),
    Impl(Q_PARAMS, "every layer counted twice", "q_cbam_params = 2 * (2 * 256 * 16 + 98)", "separate_mlps"),
]

# second trial, round 2: the trial's exact CBAM forms that were still generic
IMPLS += [
    Impl(CB, "the channel gate twice, no spatial gate",
         cbam("        return self.channel_gate(self.channel_gate(x))"), "gate_applied_twice"),
    Impl(CB, "the spatial gate twice after the channel gate",
         cbam("        return self.spatial_gate(self.spatial_gate(self.channel_gate(x)))"), "gate_applied_twice"),
    Impl(CB, "the channel gate only", cbam("        return self.channel_gate(x)"), "spatial_gate_missing"),
    Impl(CB, "F' + F''", cbam("""
        f = self.channel_gate(x)
        return f + self.spatial_gate(f)"""), "cbam_residual"),
    Impl(CB, "BAM-like x * (1 + sigmoid(M_c + M_s))", cbam(
        "        return x * (1 + torch.sigmoid(self.channel_gate.attention(x) + self.spatial_gate.attention(x)))"),
         "bam_like"),
]

# second trial, round 2: likely gate mistakes that were still generic
IMPLS += [
    Impl(CH, "descriptors summed before the MLP", channel("torch.sigmoid(self.mlp(avg + mx))"), "branch_combination"),
    Impl(CH, "the two branches averaged", channel("torch.sigmoid((self.mlp(avg) + self.mlp(mx)) / 2)"),
         "branch_combination"),
    Impl(CH, "the two branches multiplied", channel("torch.sigmoid(self.mlp(avg) * self.mlp(mx))"),
         "branch_combination"),
    Impl(CH, "sum over H and W for the average", channel(
        "torch.sigmoid(self.mlp(x.sum((2, 3), keepdim=True)) + self.mlp(mx))"), "sum_pool"),
    Impl(SP, "std over the channels instead of the max", spatial(
        "torch.cat([x.mean(1, keepdim=True), x.std(1, keepdim=True)], dim=1)"), "std_pool"),
    Impl(SP, "torch.max(x, 1)[1]: the indices", spatial(
        "torch.cat([x.mean(1, keepdim=True), torch.max(x, 1, keepdim=True)[1].to(x.dtype)], dim=1)"), "max_indices"),
    Impl(SP, "a ReLU before the sigmoid", spatial(
        "torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)",
        gate="torch.sigmoid(torch.relu(self.conv(pooled)))"), "relu_before_sigmoid"),
]
