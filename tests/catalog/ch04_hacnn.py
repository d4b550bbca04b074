"""Grader catalog of chapter 04 (HA-CNN): wrong implementations that students and popular copies write (the
torchreid code and the blog seed among them), each with the mistake id the checks must name, and valid
alternatives that must get full marks. Every source is self-contained given catalog.PRELUDE: it brings the
notebook's provided ConvBlock and whatever modules the exercise builds on."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch04_hacnn as visible
from course_lib.hidden import ch04_hacnn as hidden

CHAPTER = "04_hacnn"

SPATIAL = Exercise(CHAPTER, "SpatialAttention", "SpatialAttention", visible.check_spatial_attention,
                   hidden.hidden_spatial_attention, "spatial_attention", "test_spatial_attention")
CHANNEL = Exercise(CHAPTER, "ChannelAttention", "ChannelAttention", visible.check_channel_attention,
                   hidden.hidden_channel_attention, "channel_attention", "test_channel_attention")
SOFT = Exercise(CHAPTER, "SoftAttention", "SoftAttention", visible.check_soft_attention,
                hidden.hidden_soft_attention, "soft_attention", "test_soft_attention")
INTERVAL = Exercise(CHAPTER, "soft_map_interval", "soft_map_interval", visible.check_soft_map_interval,
                    hidden.hidden_soft_map_interval, "soft_map_interval", "test_soft_map_interval")
THETA = Exercise(CHAPTER, "HardAttention.attention", "HardAttention", visible.check_hard_attention_theta,
                 hidden.hidden_hard_attention_theta, "hard_attention", "test_hard_attention_theta")
CROPS = Exercise(CHAPTER, "HardAttention.forward", "HardAttention", visible.check_hard_attention_crops,
                 hidden.hidden_hard_attention_crops, "hard_attention", "test_hard_attention_crops")
Q_FIXED, Q_PARAMS, Q_CENTRE = (question(CHAPTER, visible, hidden, q) for q in
                               ("q_fixed_entries", "q_spatial_params", "q_initial_centre"))
EXERCISES = [SPATIAL, CHANNEL, SOFT, INTERVAL, THETA, CROPS, Q_FIXED, Q_PARAMS, Q_CENTRE]

CONVBLOCK = """
class ConvBlock(nn.Module):
    def __init__(self, in_c, out_c, k, s=1, p=0):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, k, stride=s, padding=p)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))
"""

# ------------------------------------------------------------------------------------------------
# SpatialAttention
# ------------------------------------------------------------------------------------------------
SPATIAL_BODY = """\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)
        return self.conv2(s)"""


def spatial(body: str = SPATIAL_BODY) -> str:
    return CONVBLOCK + f"""
class SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(1, 1, 3, s=2, p=1)
        self.conv2 = ConvBlock(1, 1, 1)

    def attention(self, x):
{body}

    def forward(self, x):
        return self.attention(x)
"""


IMPLS = [
    Impl(SPATIAL, "conv2 applied to the small map, before the resize", spatial("""\
        h, w = x.shape[2:]
        s = self.conv2(self.conv1(x.mean(1, keepdim=True)))
        return F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)"""), "scaling_before_resize"),
    Impl(SPATIAL, "the seed / torchreid: F.upsample(x, (2h, 2w)) after the stride-2 conv", spatial("""\
        x = x.mean(1, keepdim=True)
        x = self.conv1(x)
        x = F.upsample(x, (x.size(2) * 2, x.size(3) * 2), mode='bilinear', align_corners=True)
        return self.conv2(x)"""), "odd_size"),
    Impl(SPATIAL, "F.interpolate(scale_factor=2)", spatial("""\
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv2(s)"""), "odd_size"),
    Impl(SPATIAL, "x2 upsample, then crop to (H, W)", spatial("""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.interpolate(s, size=(2 * s.shape[2], 2 * s.shape[3]), mode="bilinear", align_corners=True)
        return self.conv2(s[:, :, :h, :w])"""), "odd_size"),
    Impl(SPATIAL, "deprecated F.upsample to the right size", spatial("""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.upsample(s, size=(h, w), mode="bilinear", align_corners=True)
        return self.conv2(s)"""), "deprecated_upsample"),
    Impl(SPATIAL, "F.interpolate without align_corners", spatial("""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.interpolate(s, size=(h, w), mode="bilinear")
        return self.conv2(s)"""), "align_corners"),
    Impl(SPATIAL, "nearest-neighbour resize", spatial("""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        return self.conv2(F.interpolate(s, size=(h, w), mode="nearest"))"""), "upsample_mode"),
    Impl(SPATIAL, "no scaling conv", spatial("""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        return F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)"""), "missing_scaling_conv"),
    Impl(SPATIAL, "sigmoid at the end of the spatial map", spatial(SPATIAL_BODY.replace(
        "return self.conv2(s)", "return torch.sigmoid(self.conv2(s))")), "extra_sigmoid"),
    Impl(SPATIAL, "max over channels instead of the mean", spatial(SPATIAL_BODY.replace(
        "x.mean(1, keepdim=True)", "x.amax(1, keepdim=True)")), "channel_pool"),
    Impl(SPATIAL, "mean over the batch axis", spatial(SPATIAL_BODY.replace(
        "x.mean(1, keepdim=True)", "x.mean(0, keepdim=True)")), "pool_axis"),
    Impl(SPATIAL, "size from x.shape[-2:]", spatial("""\
        s = self.conv1(torch.mean(x, dim=1, keepdim=True))
        s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv2(s)""")),
    Impl(SPATIAL, "nn.Upsample built per call, einops reduce", spatial("""\
        s = self.conv1(reduce(x, "b c h w -> b 1 h w", "mean"))
        resize = nn.Upsample(size=tuple(x.shape[2:]), mode="bilinear", align_corners=True)
        return self.conv2(resize(s))""")),
    Impl(SPATIAL, "F.interpolate with explicit keyword arguments and an extra attribute", spatial("""\
        self.last_size = tuple(x.shape[2:])
        s = self.conv1(x.mean(dim=1, keepdim=True))
        return self.conv2(F.interpolate(input=s, size=self.last_size, scale_factor=None, mode="bilinear",
                                        align_corners=True))""")),
]

# ------------------------------------------------------------------------------------------------
# ChannelAttention
# ------------------------------------------------------------------------------------------------
CHANNEL_BODY = """\
        return self.conv2(self.conv1(x.mean((2, 3), keepdim=True)))"""


def channel(body: str = CHANNEL_BODY, with_convblock: bool = True) -> str:
    return (CONVBLOCK if with_convblock else "") + f"""
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        if channels % reduction:
            raise ValueError(f"channels ({{channels}}) must be divisible by reduction ({{reduction}})")
        self.conv1 = ConvBlock(channels, channels // reduction, 1)
        self.conv2 = ConvBlock(channels // reduction, channels, 1)

    def attention(self, x):
{body}

    def forward(self, x):
        return self.attention(x)
"""


IMPLS += [
    Impl(CHANNEL, "max over H and W", channel(CHANNEL_BODY.replace("x.mean((2, 3), keepdim=True)",
                                                                    "x.amax((2, 3), keepdim=True)")), "max_squeeze"),
    Impl(CHANNEL, "sum over H and W", channel(CHANNEL_BODY.replace("x.mean((2, 3), keepdim=True)",
                                                                    "x.sum((2, 3), keepdim=True)")), "sum_squeeze"),
    Impl(CHANNEL, "sigmoid at the end of the channel map", channel(
        "        return torch.sigmoid(self.conv2(self.conv1(x.mean((2, 3), keepdim=True))))"), "extra_sigmoid"),
    Impl(CHANNEL, "squeeze without keepdim", channel("        return self.conv2(self.conv1(x.mean((2, 3))))"), "keepdim"),
    Impl(CHANNEL, "pooling over the channels instead of space", channel(CHANNEL_BODY.replace(
        "x.mean((2, 3), keepdim=True)", "x.mean(1, keepdim=True)")), "pool_axis"),
    Impl(CHANNEL, "conv2 forgotten", channel("        return self.conv1(x.mean((2, 3), keepdim=True))"),
         "channel_missing_conv"),
    Impl(CHANNEL, "reduction defaults to 8", channel().replace("def __init__(self, channels, reduction=16)",
                                                                "def __init__(self, channels, reduction=8)"),
         "default_args"),
    Impl(CHANNEL, "squeeze divided by H * H", channel("""\
        h, w = x.shape[2:]
        return self.conv2(self.conv1(x.sum((2, 3), keepdim=True) / (h * h)))"""), "divisor"),
    Impl(CHANNEL, "a CPU constant divisor tensor", channel("""\
        n = torch.full((1, x.shape[1], 1, 1), float(x.shape[2] * x.shape[3]), dtype=x.dtype)
        return self.conv2(self.conv1(x.sum((2, 3), keepdim=True) / n))"""), "cpu_constant"),
    Impl(CHANNEL, "channel map computed on x.data", channel(CHANNEL_BODY.replace("x.mean((2, 3), keepdim=True)",
                                                                                 "x.data.mean((2, 3), keepdim=True)")),
         "no_grad"),
    Impl(CHANNEL, "the squeeze and the convolutions run in float32, the map cast back to x's dtype", channel(
        "        return self.conv2.float()(self.conv1.float()(x.float().mean((2, 3), keepdim=True))).to(x.dtype)"),
         "float32_inside"),
    Impl(CHANNEL, "torchreid: F.avg_pool2d(x, x.size()[2:])", channel("""\
        x = F.avg_pool2d(x, x.size()[2:])
        x = self.conv1(x)
        return self.conv2(x)""")),
    Impl(CHANNEL, "F.adaptive_avg_pool2d", channel(
        "        return self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))")),
    Impl(CHANNEL, "einops reduce", channel(
        "        return self.conv2(self.conv1(reduce(x, 'b c h w -> b c 1 1', 'mean')))")),
]

# ------------------------------------------------------------------------------------------------
# SoftAttention (with correct SpatialAttention and ChannelAttention unless stated)
# ------------------------------------------------------------------------------------------------
SOFT_ATT = """\
        return torch.sigmoid(self.conv(self.spatial_attn(x) * self.channel_attn(x)))"""
SOFT_FWD = """\
        return x * self.attention(x)"""


def soft(att: str = SOFT_ATT, fwd: str = SOFT_FWD, spatial_body: str = SPATIAL_BODY) -> str:
    return spatial(spatial_body) + channel(with_convblock=False) + f"""
class SoftAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.spatial_attn = SpatialAttention()
        self.channel_attn = ChannelAttention(channels)
        self.conv = ConvBlock(channels, channels, 1)

    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


IMPLS += [
    Impl(SOFT, "no sigmoid", soft("        return self.conv(self.spatial_attn(x) * self.channel_attn(x))"),
         "missing_sigmoid"),
    Impl(SOFT, "S + C instead of S * C", soft(
        "        return torch.sigmoid(self.conv(self.spatial_attn(x) + self.channel_attn(x)))"), "sum_not_product"),
    Impl(SOFT, "no 1x1 ConvBlock", soft("        return torch.sigmoid(self.spatial_attn(x) * self.channel_attn(x))"),
         "missing_conv"),
    Impl(SOFT, "sigmoid before the ConvBlock", soft(
        "        return self.conv(torch.sigmoid(self.spatial_attn(x) * self.channel_attn(x)))"), "sigmoid_order"),
    Impl(SOFT, "torchreid's SoftAttn.forward: returns the map", soft(fwd="        return self.attention(x)"),
         "returns_map"),
    Impl(SOFT, "forward adds the map", soft(fwd="        return x + self.attention(x)"), "gate_added"),
    Impl(SOFT, "in-place x *= M", soft(fwd="""\
        x *= self.attention(x)
        return x"""), "inplace"),
    Impl(SOFT, "the product computed in float32, cast back to x's dtype", soft(fwd="""\
        return (x.float() * self.attention(x).float()).to(x.dtype)"""), "float32_inside"),
    Impl(SOFT, "right SoftAttention on a SpatialAttention without its scaling conv", soft(spatial_body="""\
        h, w = x.shape[2:]
        s = self.conv1(x.mean(1, keepdim=True))
        return F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)"""), "submodule"),
    Impl(SOFT, "the seed's SoftAttn (F.sigmoid, named steps) plus forward", soft(att="""\
        y_spatial = self.spatial_attn(x)
        y_channel = self.channel_attn(x)
        y = y_spatial * y_channel
        return F.sigmoid(self.conv(y))""")),
    Impl(SOFT, "nn.Sigmoid, .attention() of the submodules, torch.mul", soft(att="""\
        y = torch.mul(self.spatial_attn.attention(x), self.channel_attn.attention(x))
        return nn.Sigmoid()(self.conv(y))""", fwd="        return torch.mul(self.attention(x), x)")),
]

# ------------------------------------------------------------------------------------------------
# soft_map_interval
# ------------------------------------------------------------------------------------------------
IMPLS += [
    Impl(INTERVAL, "the sigmoid's range (0, 1)", "def soft_map_interval():\n    return (0.0, 1.0)\n", "sigmoid_range"),
    Impl(INTERVAL, "(0, 0.5)", "def soft_map_interval():\n    return (0, 0.5)\n", "sigmoid_range"),
    Impl(INTERVAL, "a string", "def soft_map_interval():\n    return '[0.5, 1)'\n", "values"),
    Impl(INTERVAL, "(0.5, 1.0)", "def soft_map_interval():\n    return (0.5, 1.0)\n"),
    Impl(INTERVAL, "computed with torch", """\
def soft_map_interval():
    low = torch.sigmoid(F.relu(torch.tensor(-3.0))).item()
    return [low, 1]
"""),
]

# ------------------------------------------------------------------------------------------------
# HardAttention
# ------------------------------------------------------------------------------------------------
RESET = """\
        r = self.num_regions
        ty = (2 * torch.arange(r, dtype=torch.float32) + 1) / r - 1
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.stack([torch.zeros(r), ty], dim=1).reshape(-1))"""
ATTENTION = """\
        theta = torch.tanh(self.fc(x.mean((2, 3))))
        return theta.reshape(x.shape[0], self.num_regions, 2)"""
AFFINE = """\
        theta = self.attention(x)
        b, r, _ = theta.shape
        scale = torch.tensor([[1.0, 0.0], [0.0, 1.0 / r]], dtype=theta.dtype, device=theta.device)
        return torch.cat([scale.expand(b, r, 2, 2), theta.unsqueeze(-1)], dim=-1)"""
FORWARD = """\
        r = self.num_regions
        grid = F.affine_grid(self.affine(x).reshape(b * r, 2, 3), [b * r, c, crop_h, crop_w], align_corners=False)
        crops = F.grid_sample(x.repeat_interleave(r, dim=0), grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        return crops.reshape(b, r, c, crop_h, crop_w)"""


def hard(*, reset: str = RESET, att: str = ATTENTION, affine: str = AFFINE, fwd: str = FORWARD) -> str:
    return f"""
class HardAttention(nn.Module):
    def __init__(self, channels, num_regions=4):
        super().__init__()
        self.channels = channels
        self.num_regions = num_regions
        self.fc = nn.Linear(channels, 2 * num_regions)
        self.reset_parameters()

    def reset_parameters(self):
{reset}

    def attention(self, x):
{att}

    def affine(self, x):
{affine}

    def forward(self, x, *, crop_size=None):
        b, c, h, w = x.shape
        crop_h, crop_w = (max(1, round(h / self.num_regions)), w) if crop_size is None else crop_size
{fwd}
"""


IMPLS += [
    Impl(THETA, "bias added after the tanh", hard(att="""\
        theta = torch.tanh(F.linear(x.mean((2, 3)), self.fc.weight)) + self.fc.bias
        return theta.reshape(x.shape[0], self.num_regions, 2)"""), "tanh_placement"),
    Impl(THETA, "no tanh", hard(att="""\
        return self.fc(x.mean((2, 3))).reshape(x.shape[0], self.num_regions, 2)"""), "tanh_placement"),
    Impl(THETA, "bias pairs (t_y, t_x)", hard(reset=RESET.replace("[torch.zeros(r), ty]", "[ty, torch.zeros(r)]")),
         "theta_order"),
    Impl(THETA, "bias laid out as all t_x, then all t_y", hard(reset=RESET.replace(
        "torch.stack([torch.zeros(r), ty], dim=1).reshape(-1)", "torch.cat([torch.zeros(r), ty])")), "theta_order"),
    Impl(THETA, "right bias, fc output reshaped as (B, 2, R) and transposed", hard(att="""\
        theta = torch.tanh(self.fc(x.mean((2, 3))))
        return theta.reshape(x.shape[0], 2, self.num_regions).transpose(1, 2)"""), "theta_reshape"),
    Impl(THETA, "theta detached", hard(att="""\
        theta = torch.tanh(self.fc(x.mean((2, 3)))).detach()
        return theta.reshape(x.shape[0], self.num_regions, 2)"""), "no_grad"),
    Impl(THETA, "zero bias", hard(reset="""\
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)"""), "fc_init"),
    Impl(THETA, "fc weight left at PyTorch's default init", hard(reset="""\
        r = self.num_regions
        ty = (2 * torch.arange(r, dtype=torch.float32) + 1) / r - 1
        with torch.no_grad():
            self.fc.bias.copy_(torch.stack([torch.zeros(r), ty], dim=1).reshape(-1))"""), "fc_init"),
    Impl(THETA, "torchreid's bias list hard-coded for 4 regions", hard(reset="""\
        self.fc.weight.data.zero_()
        self.fc.bias.data.copy_(torch.tensor([0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75], dtype=torch.float))"""),
         "num_regions_ignored"),
    Impl(THETA, "max over H and W instead of the mean", hard(att="""\
        theta = torch.tanh(self.fc(x.amax((2, 3))))
        return theta.reshape(x.shape[0], self.num_regions, 2)"""), "max_squeeze"),
    Impl(THETA, "theta moved to the GPU (torchreid's theta.cuda())", hard(att="""\
        theta = torch.tanh(self.fc(x.mean((2, 3)))).cuda()
        return theta.reshape(x.shape[0], self.num_regions, 2)"""), "device"),
    Impl(THETA, "torchreid-style init with .data, linspace centres, view", hard(reset="""\
        r = self.num_regions
        centres = torch.linspace(-1 + 1 / r, 1 - 1 / r, r)
        bias = torch.zeros(r, 2)
        bias[:, 1] = centres
        self.fc.weight.data.zero_()
        self.fc.bias.data.copy_(bias.view(-1))""", att="""\
        z = F.avg_pool2d(x, x.size()[2:]).view(x.size(0), x.size(1))
        return torch.tanh(self.fc(z)).view(-1, self.num_regions, 2)""")),
    Impl(THETA, "nn.init and einops rearrange", hard(reset="""\
        r = self.num_regions
        nn.init.zeros_(self.fc.weight)
        ty = [(2 * i + 1) / r - 1 for i in range(r)]
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([v for t in ty for v in (0.0, t)]))""", att="""\
        theta = torch.tanh(self.fc(reduce(x, 'b c h w -> b c', 'mean')))
        return rearrange(theta, 'b (r two) -> b r two', two=2)""")),
]

IMPLS += [
    Impl(CROPS, "vertical stripes: scale [[1/R, 0], [0, 1]]", hard(affine=AFFINE.replace(
        "[[1.0, 0.0], [0.0, 1.0 / r]]", "[[1.0 / r, 0.0], [0.0, 1.0]]")), "stripe_scale"),
    Impl(CROPS, "identity scale", hard(affine=AFFINE.replace("[[1.0, 0.0], [0.0, 1.0 / r]]", "[[1.0, 0.0], [0.0, 1.0]]")),
         "stripe_scale"),
    Impl(CROPS, "torchreid's fixed 0.25", hard(affine=AFFINE.replace("1.0 / r]]", "0.25]]")), "num_regions_ignored"),
    Impl(CROPS, "translation column (t_y, t_x)", hard(affine=AFFINE.replace("theta.unsqueeze(-1)", "theta.flip(-1).unsqueeze(-1)")),
         "theta_order"),
    Impl(CROPS, "align_corners=True", hard(fwd=FORWARD.replace("align_corners=False", "align_corners=True")),
         "align_corners"),
    Impl(CROPS, "align_corners left out (PyTorch's warning)", hard(fwd="""\
        r = self.num_regions
        grid = F.affine_grid(self.affine(x).reshape(b * r, 2, 3), [b * r, c, crop_h, crop_w])
        crops = F.grid_sample(x.repeat_interleave(r, dim=0), grid)
        return crops.reshape(b, r, c, crop_h, crop_w)"""), "align_corners"),
    Impl(CROPS, "nearest sampling", hard(fwd=FORWARD.replace('mode="bilinear"', 'mode="nearest"')), "upsample_mode"),
    Impl(CROPS, "theta rebuilt with torch.tensor (detached)", hard(affine="""\
        theta = torch.tensor(self.attention(x).tolist(), dtype=x.dtype)
        b, r, _ = theta.shape
        scale = torch.tensor([[1.0, 0.0], [0.0, 1.0 / r]], dtype=theta.dtype)
        return torch.cat([scale.expand(b, r, 2, 2), theta.unsqueeze(-1)], dim=-1)"""), "no_grad"),
    Impl(CROPS, "torchreid's transform_theta with .cuda()", hard(affine="""\
        theta = self.attention(x)
        b, r, _ = theta.shape
        out = torch.zeros(b, r, 2, 3)
        out[..., 0, 0] = 1
        out[..., 1, 1] = 1 / r
        out[..., :, 2] = theta
        return out.cuda()"""), "device"),
    Impl(CROPS, "affine built in a float32 zeros tensor", hard(affine="""\
        theta = self.attention(x)
        b, r, _ = theta.shape
        out = torch.zeros(b, r, 2, 3, device=x.device)
        out[..., 0, 0] = 1
        out[..., 1, 1] = 1 / r
        out[..., :, 2] = theta
        return out"""), "dtype"),
    Impl(CROPS, "crops returned as (B*R, C, h, w)", hard(fwd="""\
        r = self.num_regions
        grid = F.affine_grid(self.affine(x).reshape(b * r, 2, 3), [b * r, c, crop_h, crop_w], align_corners=False)
        return F.grid_sample(x.repeat_interleave(r, dim=0), grid, align_corners=False)"""), "shape"),
    Impl(CROPS, "torch.stack of rows, einops repeat/rearrange", hard(affine="""\
        theta = self.attention(x)
        r = self.num_regions
        one, zero = torch.ones_like(theta[..., 0]), torch.zeros_like(theta[..., 0])
        row_x = torch.stack([one, zero, theta[..., 0]], dim=-1)
        row_y = torch.stack([zero, one / r, theta[..., 1]], dim=-1)
        return torch.stack([row_x, row_y], dim=-2)""", fwd="""\
        r = self.num_regions
        matrices = rearrange(self.affine(x), 'b r i j -> (b r) i j')
        images = repeat(x, 'b c h w -> (b r) c h w', r=r)
        grid = F.affine_grid(matrices, [b * r, c, crop_h, crop_w], align_corners=False)
        crops = F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
        return rearrange(crops, '(b r) c h w -> b r c h w', r=r)""")),
    Impl(CROPS, "a loop over regions (torchreid's style), torch.stack", hard(fwd="""\
        affine = self.affine(x)
        crops = []
        for i in range(self.num_regions):
            grid = F.affine_grid(affine[:, i], [b, c, crop_h, crop_w], align_corners=False)
            crops.append(F.grid_sample(x, grid, align_corners=False))
        return torch.stack(crops, dim=1)""")),
]

# ------------------------------------------------------------------------------------------------
# the conceptual questions
# ------------------------------------------------------------------------------------------------
IMPLS += [
    # question 1: the fixed entries of a stripe's affine matrix
    Impl(Q_FIXED, "the learnt entries", "q_fixed_entries = {'c', 'f'}", "learnt_entries"),
    Impl(Q_FIXED, "the scales only", "q_fixed_entries = 'ae'", "shear_entries"),
    Impl(Q_FIXED, "the zeros only", "q_fixed_entries = 'bd'", "scale_entries"),
    Impl(Q_FIXED, "everything", "q_fixed_entries = 'abcdef'", "learnt_entries"),
    Impl(Q_FIXED, "one row", "q_fixed_entries = 'abc'", "wrong_answer"),
    Impl(Q_FIXED, "a letter that is not an entry", "q_fixed_entries = 'abdg'", "answer_form"),
    Impl(Q_FIXED, "valid: a set", "q_fixed_entries = {'a', 'b', 'd', 'e'}"),
    Impl(Q_FIXED, "valid: a string in another order", "q_fixed_entries = 'edba'"),
    Impl(Q_FIXED, "valid: upper case with commas", "q_fixed_entries = 'A, B, D, E'"),
    # question 2: the parameters of SpatialAttention()
    Impl(Q_PARAMS, "conv biases left out", "q_spatial_params = 14", "convblock_bias"),
    Impl(Q_PARAMS, "BatchNorms left out", "q_spatial_params = 10", "convblock_bn"),
    Impl(Q_PARAMS, "running statistics counted", "q_spatial_params = 20", "bn_buffers"),
    Impl(Q_PARAMS, "conv1 only", "q_spatial_params = 12", "one_convblock"),
    Impl(Q_PARAMS, "the 3x3 kernel only", "q_spatial_params = 9", "wrong_answer"),
    Impl(Q_PARAMS, "a float", "q_spatial_params = 16.5", "answer_form"),
    Impl(Q_PARAMS, "valid: an int", "q_spatial_params = 16"),
    Impl(Q_PARAMS, "valid: the sum per layer", "q_spatial_params = (9 + 1 + 2) + (1 + 1 + 2)"),
    Impl(Q_PARAMS, "valid: a 0-d integer tensor", "q_spatial_params = torch.tensor(16)"),
    # question 3: region 0's initial centre
    Impl(Q_CENTRE, "the bias itself", "q_initial_centre = -0.75", "bias_after_tanh"),
    Impl(Q_CENTRE, "the bottom stripe", "q_initial_centre = 0.635", "region_order"),
    Impl(Q_CENTRE, "region 1", "q_initial_centre = math.tanh(-0.25)", "region_order"),
    Impl(Q_CENTRE, "region 1's bias", "q_initial_centre = -0.25", "region_order"),
    Impl(Q_CENTRE, "zero", "q_initial_centre = 0.0", "wrong_answer"),
    Impl(Q_CENTRE, "a word", "q_initial_centre = 'top'", "answer_form"),
    Impl(Q_CENTRE, "valid: tanh", "q_initial_centre = math.tanh(-0.75)"),
    Impl(Q_CENTRE, "valid: three digits", "q_initial_centre = -0.635"),
    Impl(Q_CENTRE, "valid: a 0-d tensor", "q_initial_centre = torch.tanh(torch.tensor(-0.75))"),
]

# issue 27: the BatchNorms in training mode on loaded weights
IMPLS += [
    Impl(SOFT, "forward runs attention twice (once to keep the map for a plot): running statistics move twice", soft(
        fwd="        self.last_map = self.attention(x).detach()\n        return x * self.attention(x)"), "bn_twice"),
    Impl(SOFT, "the spatial branch computed twice (for S and for a sanity check): its BatchNorms run twice", soft(
        att="        s = self.spatial_attn(x)\n        assert self.spatial_attn(x).shape[1] == 1\n"
            "        return torch.sigmoid(self.conv(s * self.channel_attn(x)))"), "bn_twice"),
]

# issue 26 (second trial): the interval's ends compared exactly, and the likely mistakes named
IMPLS += [
    Impl(INTERVAL, "the upper end rounded to 0.999", "def soft_map_interval():\n    return (0.5, 0.999)\n",
         "sigmoid_range"),
    Impl(INTERVAL, "the upper end rounded to 0.9999", "def soft_map_interval():\n    return (0.5, 0.9999)\n",
         "sigmoid_range"),
    Impl(INTERVAL, "the lower end just above 0.5", "def soft_map_interval():\n    return (0.5001, 1.0)\n",
         "sigmoid_range"),
    Impl(INTERVAL, "valid: the ends as fractions", "def soft_map_interval():\n    return (1 / 2, 2 / 2)\n"),
    Impl(CHANNEL, "the ConvBlocks switched to training mode inside attention", channel(
        "        self.train()\n" + CHANNEL_BODY), "bn_forced_train"),
    Impl(SOFT, "a sigmoid on S and on C, multiplied", soft(
        "        return torch.sigmoid(self.spatial_attn(x)) * torch.sigmoid(self.channel_attn(x))"),
         "sigmoid_each_map"),
    Impl(THETA, "sigmoid instead of tanh", hard(att=ATTENTION.replace("torch.tanh", "torch.sigmoid")),
         "sigmoid_not_tanh"),
    Impl(THETA, "initial centres at 2i/R - 1 (the top edge of each band)", hard(reset=RESET.replace(
        "ty = (2 * torch.arange(r, dtype=torch.float32) + 1) / r - 1",
        "ty = 2 * torch.arange(r, dtype=torch.float32) / r - 1")), "stripe_edge"),
    Impl(CROPS, "x.repeat(R, 1, 1, 1): images paired with the wrong regions", hard(fwd=FORWARD.replace(
        "x.repeat_interleave(r, dim=0)", "x.repeat(r, 1, 1, 1)")), "image_pairing"),
    Impl(CROPS, "padding_mode='border'", hard(fwd=FORWARD.replace('padding_mode="zeros"', 'padding_mode="border"')),
         "padding_mode"),
    Impl(CROPS, "the crops unflattened as (R, B) and transposed", hard(fwd=FORWARD.replace(
        "return crops.reshape(b, r, c, crop_h, crop_w)",
        "return crops.reshape(r, b, c, crop_h, crop_w).transpose(0, 1)")), "output_layout"),
    Impl(Q_PARAMS, "two counted too many (buffers, or a bias-free conv with four BatchNorm tensors)",
         "q_spatial_params = 18", "bn_buffers"),
    Impl(Q_PARAMS, "both ConvBlocks counted as 1x1", "q_spatial_params = 8", "kernel_ignored"),
    Impl(Q_CENTRE, "rounded to two digits", "q_initial_centre = -0.64", "rounding"),
    Impl(Q_CENTRE, "the inverse tanh of the bias", "q_initial_centre = math.atanh(-0.75)", "inverse_tanh"),

    # ---------------------------------------------------------------- student trial t246: named where they were generic
    Impl(SPATIAL, "bicubic resize", spatial(SPATIAL_BODY.replace('mode="bilinear"', 'mode="bicubic"')), "upsample_mode"),
    Impl(CHANNEL, "the ConvBlocks on the full map, then the mean", channel("""\
        return self.conv2(self.conv1(x)).mean((2, 3), keepdim=True)"""), "squeeze_order"),
    Impl(SOFT, "the ConvBlock on x * S * C", soft("""\
        return torch.sigmoid(self.conv(x * self.spatial_attn(x) * self.channel_attn(x)))"""), "soft_input"),
    Impl(SOFT, "channel attention on the spatially gated x", soft("""\
        s = self.spatial_attn(x)
        return torch.sigmoid(self.conv(s * self.channel_attn(x * s)))"""), "soft_input"),
    Impl(SOFT, "a tanh instead of the sigmoid", soft("""\
        return torch.tanh(self.conv(self.spatial_attn(x) * self.channel_attn(x)))"""), "tanh_gate"),
    Impl(THETA, "the bias t_y = i / R", hard(reset=RESET.replace("(2 * torch.arange(r, dtype=torch.float32) + 1) / r - 1",
                                                                  "torch.arange(r, dtype=torch.float32) / r")),
         "stripe_centres"),
    Impl(THETA, "the bias t_y = linspace(-1, 1, R)",
         hard(reset=RESET.replace("(2 * torch.arange(r, dtype=torch.float32) + 1) / r - 1", "torch.linspace(-1, 1, r)")),
         "stripe_centres"),
    Impl(CROPS, "t_y in both rows of the translation column", hard(affine=AFFINE.replace(
        "theta.unsqueeze(-1)", "theta[..., [1, 1]].unsqueeze(-1)")), "theta_order"),
    Impl(Q_CENTRE, "valid: one unit of the third digit below (as §9 accepts)", "q_initial_centre = -0.634"),
    Impl(Q_CENTRE, "valid: one unit of the third digit above (as §9 accepts)", "q_initial_centre = -0.636"),
    Impl(Q_CENTRE, "two units off", "q_initial_centre = -0.633", "wrong_answer"),
]

# second trial, round 2: any real number type is a number (ch06's Q4 accepts a Fraction too)
IMPLS += [
    Impl(INTERVAL, "valid: the ends as Fractions",
         "from fractions import Fraction\n\ndef soft_map_interval():\n    return (Fraction(1, 2), Fraction(1))\n"),
    Impl(INTERVAL, "valid: the ends as numpy and 0-d tensor scalars",
         "import numpy as np\n\ndef soft_map_interval():\n    return (np.float32(0.5), torch.tensor(1))\n"),
    Impl(INTERVAL, "the sigmoid's range up to rounding (0.0, 1.0000001)",
         "def soft_map_interval():\n    return (0.0, 1.0000001)\n", "sigmoid_range"),
    Impl(INTERVAL, "a bool end", "def soft_map_interval():\n    return (0.5, True)\n", "values"),
]

# second trial, round 2: misleading messages (swapped ConvBlocks, resize first) and generic ones named
IMPLS += [
    Impl(CHANNEL, "conv2 applied before conv1", channel(
        "        return self.conv1(self.conv2(x.mean((2, 3), keepdim=True)))"), "convblock_order"),
    Impl(CHANNEL, "the mean over the channels too, expanded back to C", channel(
        "        return self.conv2(self.conv1(x.mean(1, keepdim=True).expand_as(x).mean((2, 3), keepdim=True)))"),
         "pool_axis"),
    Impl(SPATIAL, "resize first, then conv1 and conv2", spatial("""\
        h, w = x.shape[2:]
        s = F.interpolate(x.mean(1, keepdim=True), size=(h, w), mode="bilinear", align_corners=True)
        return self.conv2(self.conv1(s))"""), "resize_order"),
    Impl(SOFT, "forward adds a residual x + x * M", soft(fwd="        return x + x * self.attention(x)"),
         "soft_residual"),
    Impl(THETA, "initial t_x = t_y", hard(reset=RESET.replace("torch.stack([torch.zeros(r), ty]",
                                                             "torch.stack([ty, ty]")), "theta_order"),
]

IMPLS += [
    Impl(CROPS, "grid_sample with padding_mode='reflection'", hard(fwd=FORWARD.replace(
        'padding_mode="zeros"', 'padding_mode="reflection"')), "padding_mode"),
    Impl(CROPS, "affine_grid given (W, H), the crops transposed back", hard(fwd=FORWARD.replace(
        "[b * r, c, crop_h, crop_w]", "[b * r, c, crop_w, crop_h]").replace(
        "crops.reshape(b, r, c, crop_h, crop_w)", "crops.reshape(b, r, c, crop_w, crop_h).transpose(-1, -2)")),
         "hw_swapped"),
]
