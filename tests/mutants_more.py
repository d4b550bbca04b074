"""Wrong Non-local, GCNet, ECA and Coordinate Attention implementations, one mistake each.

As in ``mutants.py``: each subclasses the reference module and changes one thing, so it keeps the
attribute names the checks read and differs only by its mistake; the docstring says what is wrong
(where it comes from, if a known copy or issue thread makes it) and which check catches it.
``test_mutants_more_are_caught.py`` proves that every check fails on its mutant.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_lib.reference import coord_attention, eca, gcnet, nonlocal_block

# --------------------------------------------------------------------------------------------------
# Non-local
# --------------------------------------------------------------------------------------------------


class NLSoftmaxOverQueries(nonlocal_block.NonLocalBlock):
    """Normalises over the queries (dim 1) instead of the keys (AlexHex7 #13 asks which). Caught by
    the formula check and by rows-sum-to-one."""

    def _map(self, query, key):
        f = self.scale * (query @ rearrange(key, "b n c -> b c n"))
        if self.pairwise == "dot_product":
            return f / key.shape[1]
        return f.softmax(dim=1)


class NLAlwaysScaled(nonlocal_block.NonLocalBlock):
    """Divides the energy by sqrt(C') whatever ``scale`` says (the official code's USE_SCALE, which the
    paper does not have). Caught by the formula check."""

    def _map(self, query, key):
        f = (query @ rearrange(key, "b n c -> b c n")) * self.scale / query.shape[-1] ** 0.5
        if self.pairwise == "dot_product":
            return f / key.shape[1]
        return f.softmax(dim=-1)


class NLDotDividesByN(nonlocal_block.NonLocalBlock):
    """Dot product normalised by N (the query count) instead of N' (the keys): the same without
    subsampling, wrong with it. Caught by the formula check with ``sub_sample=True``."""

    def _map(self, query, key):
        f = self.scale * (query @ rearrange(key, "b n c -> b c n"))
        if self.pairwise == "dot_product":
            return f / query.shape[1]
        return f.softmax(dim=-1)


class NLPoolsBeforeProjections(nonlocal_block.NonLocalBlock):
    """Max-pools the input before phi and g although ``pool_first=False`` asks for the paper's order
    (after). Caught by the formula check with ``sub_sample=True``."""

    def _project(self, x):
        source = self.pool(x) if self.sub_sample else x
        query, key = (x, source) if self.theta is None else (self.theta(x), self.phi(source))
        value = self.g(source)
        return tuple(rearrange(t, "b c h w -> b (h w) c") for t in (query, key, value))


class NLBatchNormScaleOne(nonlocal_block.NonLocalBlock):
    """Initialises the BN after W_z with scale 1 (proposed in AlexHex7 #12/#18): the branch then
    outputs a normalised signal, not zero, and the block does not start as the identity. Caught by
    the identity-at-initialisation check."""

    def reset_parameters(self):
        super().reset_parameters()
        if self.bn is not None:
            nn.init.ones_(self.bn.weight)


class NLNoResidual(nonlocal_block.NonLocalBlock):
    """Forgets ``+ x`` of Eq. (6). Caught by the formula and identity-at-initialisation checks."""

    def forward(self, x, fused=None):
        return super().forward(x, fused) - x


class NLLocalTheta(nonlocal_block.NonLocalBlock):
    """A 3x3 theta: each query sees its neighbours, so the block is no longer a function of the set of
    pixels. Caught by pixel-permutation equivariance."""

    def __init__(self, channels, *args, **kwargs):
        super().__init__(channels, *args, **kwargs)
        self.theta = nn.Conv2d(channels, self.inter_channels, kernel_size=3, padding=1)


class NLFusedDefaultScale(nonlocal_block.NonLocalBlock):
    """The fused path calls SDPA without ``scale=``, so SDPA divides by sqrt(C') where the literal path
    does not. Caught by the fused-equals-literal check."""

    def _fused_softmax(self, query, key, value):
        c_value = value.shape[-1]
        pad = query.shape[-1] - c_value
        if pad:
            value = F.pad(value, (0, pad))
        q, k, v = (t.unsqueeze(1).contiguous() for t in (query, key, value))
        return F.scaled_dot_product_attention(q, k, v)[:, 0, :, :c_value]


class NLFusedDetachedDot(nonlocal_block.NonLocalBlock):
    """The regrouped dot-product path detaches phi^T g: the same forward, no gradient to phi and g.
    Caught by the fused-equals-literal check (backward)."""

    def forward(self, x, fused=None):
        fused = self.fused if fused is None else fused
        if not (fused and self.pairwise == "dot_product"):
            return super().forward(x, fused)
        _, _, h, w = x.shape
        query, key, value = self._project(x)
        kv = (rearrange(key, "b n c -> b c n") @ value).detach()
        y = rearrange(self.scale * (query @ kv) / key.shape[1], "b (h w) c -> b c h w", h=h, w=w)
        z = self.w_z(y)
        return (self.bn(z) if self.bn is not None else z) + x


# --------------------------------------------------------------------------------------------------
# GCNet
# --------------------------------------------------------------------------------------------------


class GCSigmoidPooling(gcnet.GlobalContextBlock):
    """Sigmoid instead of softmax over positions: the weights no longer sum to 1 (a "gate", not a
    pooling). Caught by the formula and the sums-to-one checks."""

    def _alpha(self, x):
        return torch.sigmoid(self.conv_mask(x))


class GCNoLayerNorm(gcnet.GlobalContextBlock):
    """Drops the LayerNorm from the bottleneck (the simplified NL block plus SE's ReLU). Caught by the
    formula check."""

    def forward(self, x):
        context = self._context(x)
        out = x
        if self.channel_mul_conv is not None:
            t = self.channel_mul_conv
            out = out * torch.sigmoid(t[3](t[2](t[0](context))))  # t[1], the LayerNorm, skipped
        if self.channel_add_conv is not None:
            t = self.channel_add_conv
            out = out + t[3](t[2](t[0](context)))
        return out


class GCMulWithoutSigmoid(gcnet.GlobalContextBlock):
    """Multiplies by the raw transform in ``"mul"`` fusion. Caught by the formula check."""

    def forward(self, x):
        context = self._context(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * self.channel_mul_conv(context)
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out


class GCLastBiasNotZeroed(gcnet.GlobalContextBlock):
    """Zeroes only the last conv's weight, not its bias (what timm's ``GlobalContext`` does): the
    additive block starts as x + bias. Caught by the identity-at-initialisation check."""

    def reset_parameters(self):
        super().reset_parameters()
        for t in (self.channel_add_conv, self.channel_mul_conv):
            if t is not None:
                nn.init.uniform_(t[-1].bias, -0.5, 0.5)


# --------------------------------------------------------------------------------------------------
# ECA
# --------------------------------------------------------------------------------------------------


class ECANearestOddDown(eca.EfficientChannelAttention):
    """Resolves the "nearest odd" ties down (k = 3 at C = 128, 5 at C = 2048), unlike the paper's
    listing and timm. Caught by the kernel-size table check."""

    def __init__(self, channels, kernel_size=None, **kwargs):
        super().__init__(channels, kernel_size, **kwargs)
        if kernel_size is None:
            import math

            t = (math.log2(channels) + self.b) / self.gamma
            if t == int(t) and int(t) % 2 == 0:  # a tie between t - 1 and t + 1: take the lower
                k = max(int(t) - 1, 1)
                self.kernel_size = k
                self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)


class ECACircularPadding(eca.EfficientChannelAttention):
    """Pads the channel signal circularly (timm's ``CecaModule``), so the first and last channels see
    each other. Caught by the formula check and the locality check."""

    def attention(self, x):
        b, c, _, _ = x.shape
        y = x.mean((2, 3)).reshape(b, 1, c)
        half = (self.kernel_size - 1) // 2
        y = F.conv1d(F.pad(y, (half, half), mode="circular"), self.conv.weight)
        return torch.sigmoid(y).reshape(b, c, 1, 1)


class ECAMaxSqueeze(eca.EfficientChannelAttention):
    """Squeezes with the global max. Caught by the formula check."""

    def attention(self, x):
        b, c, _, _ = x.shape
        y = self.conv(x.amax((2, 3)).reshape(b, 1, c))
        return torch.sigmoid(y).reshape(b, c, 1, 1)


class ECANoSigmoid(eca.EfficientChannelAttention):
    """Forgets the sigmoid. Caught by the gate-range and formula checks."""

    def attention(self, x):
        b, c, _, _ = x.shape
        return self.conv(x.mean((2, 3)).reshape(b, 1, c)).reshape(b, c, 1, 1)


class ECAUnchecked(eca.EfficientChannelAttention):
    """Skips the input check. A 1-D conv across channels runs on any C, so a wrong channel count gives
    no error at all, just a gate for the wrong layer. Caught by the wrong-channel-count check."""

    def attention(self, x):
        b, c, _, _ = x.shape
        return torch.sigmoid(self.conv(x.mean((2, 3)).reshape(b, 1, c))).reshape(b, c, 1, 1)


# --------------------------------------------------------------------------------------------------
# Coordinate Attention
# --------------------------------------------------------------------------------------------------


class CASwappedPools(coord_attention.CoordinateAttention):
    """z^h averages over H instead of W (and z^w over W): each row gate then sees a column summary.
    On an H != W input the split sizes disagree and it fails outright; on a square one it runs.
    Caught by the formula check (and the row/column permutation check)."""

    def _gates(self, x):
        _, _, h, w = x.shape
        z_h = rearrange(x.mean(2, keepdim=True), "b c 1 w -> b c w 1")  # wrong: length W
        z_w = x.mean(3, keepdim=True)  # wrong: length H
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(rearrange(f_w, "b m w 1 -> b m 1 w")))


class CASeparateBatchNorm(coord_attention.CoordinateAttention):
    """Runs BN on the row and column summaries separately: identical in eval mode, but in training the
    two halves get their own batch statistics. Caught by the training-mode formula check."""

    def _gates(self, x):
        _, _, h, w = x.shape
        z_h = x.mean(3, keepdim=True)
        z_w = rearrange(x.mean(2, keepdim=True), "b c 1 w -> b c w 1")
        f_h = self.act(self.bn1(self.conv1(z_h)))
        f_w = self.act(self.bn1(self.conv1(z_w)))
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(rearrange(f_w, "b m w 1 -> b m 1 w")))


class CAReLU(coord_attention.CoordinateAttention):
    """ReLU instead of the official h_swish. Caught by the formula check."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.act = nn.ReLU()


class CAOneGateConv(coord_attention.CoordinateAttention):
    """Uses ``conv_h`` for both directions (``conv_w`` left unused). Caught by the formula check and
    the every-parameter-gets-a-gradient check."""

    def _gates(self, x):
        g_h, _ = super()._gates(x)
        _, _, h, w = x.shape
        z_h = x.mean(3, keepdim=True)
        z_w = rearrange(x.mean(2, keepdim=True), "b c 1 w -> b c w 1")
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        _, f_w = torch.split(f, [h, w], dim=2)
        return g_h, torch.sigmoid(self.conv_h(rearrange(f_w, "b m w 1 -> b m 1 w")))
