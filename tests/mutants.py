"""Wrong implementations, one mistake each, that the reference-module tests exist to catch.

Each mutant subclasses the reference module and changes one thing, so that it keeps the attribute
names the checks read (``fc1``, ``mlp``, ``query_conv``, ...) and differs only by its mistake. Most are
mistakes found in popular copies or in the course's seed blogs; the docstring says what is wrong and
which check catches it. ``test_mutants_are_caught.py`` proves each check fails on its mutant.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from course_lib.reference import cbam, ctdnet, danet, hacnn, se
from course_lib.reference._validate import check_feature_map

# --------------------------------------------------------------------------------------------------
# SE
# --------------------------------------------------------------------------------------------------


class SENoSigmoid(se.SqueezeExcitation):
    """Forgets the sigmoid: the gate is unbounded. Caught by the formula and the (0, 1) gate checks."""

    def attention(self, x):
        check_feature_map(x, "SENoSigmoid", self.channels)
        return self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True))))


class SEMaxSqueeze(se.SqueezeExcitation):
    """Squeezes with a global max instead of the average. Caught by the formula and timm parity."""

    def attention(self, x):
        check_feature_map(x, "SEMaxSqueeze", self.channels)
        return torch.sigmoid(self.fc2(self.relu(self.fc1(x.amax((2, 3), keepdim=True)))))


class SESqueezesWrongAxes(se.SqueezeExcitation):
    """Averages over (C, W) instead of (H, W): a (B, H) "descriptor". Its shapes only work when
    C == H, which is why the tests' inputs keep C out of {H, W}; on them it fails outright. Caught by
    the formula check."""

    def attention(self, x):
        check_feature_map(x, "SESqueezesWrongAxes", self.channels)
        z = x.mean((1, 3))[:, :, None, None]  # (B, H, 1, 1)
        return torch.sigmoid(self.fc2(self.relu(self.fc1(z))))


class SEPoolsHeightSquare(se.SqueezeExcitation):
    """``F.avg_pool2d(x, x.size(2))``: an H x H window (the official BAM's bug), which on an H < W map
    averages only the first H columns. Caught by pixel-permutation equivariance (and the formula)."""

    def attention(self, x):
        check_feature_map(x, "SEPoolsHeightSquare", self.channels)
        z = F.avg_pool2d(x, x.shape[2])
        return torch.sigmoid(self.fc2(self.relu(self.fc1(z))))


class SEFlatAttention(se.SqueezeExcitation):
    """attention(x) returns (B, C) instead of (B, C, 1, 1). Caught by the shape check."""

    def attention(self, x):
        return super().attention(x).flatten(1)

    def forward(self, x):
        return x * self.attention(x)[:, :, None, None]


class SECastsToDefaultDtype(se.SqueezeExcitation):
    """Casts its output to the default dtype ("float() for safety"). Caught by the dtype check."""

    def forward(self, x):
        return super().forward(x).to(torch.get_default_dtype())


class SEUnchecked(se.SqueezeExcitation):
    """No input validation: torch's own errors (IndexError, RuntimeError) or silent broadcasting.
    Caught by the bad-input check."""

    def attention(self, x):
        return torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class SEVagueErrors(se.SqueezeExcitation):
    """Validates, but the message names neither what was expected nor what came. Caught by the
    bad-input check (message content)."""

    def attention(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError("invalid input")
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError("invalid input")
        if not x.is_floating_point():
            raise TypeError("invalid input")
        return torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class SEClampedHidden(se.SqueezeExcitation):
    """``max(1, channels // reduction)``: silently builds a 1-unit MLP when C < r instead of saying
    so. Caught by the bad-constructor check."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        nn.Module.__init__(self)
        self.channels, self.reduction = channels, reduction
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)


# --------------------------------------------------------------------------------------------------
# CBAM
# --------------------------------------------------------------------------------------------------


class CBAMChannelTwoMLPs(cbam.ChannelAttention):
    """A separate MLP for the max-pooled descriptor (the paper shares one). Caught by the formula."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mlp_max = copy.deepcopy(self.mlp)
        for layer in self.mlp_max:
            if isinstance(layer, nn.Conv2d):
                layer.reset_parameters()

    def attention(self, x):
        check_feature_map(x, "CBAMChannelTwoMLPs", self.channels)
        return torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp_max(x.amax((2, 3), keepdim=True)))


class CBAMChannelPoolsHeightSquare(cbam.ChannelAttention):
    """Global pools written as ``F.avg_pool2d(x, x.size(2))`` / ``F.max_pool2d(x, x.size(2))``: an
    H x H window, right only for square maps. Caught by the formula on an H < W input."""

    def attention(self, x):
        check_feature_map(x, "CBAMChannelPoolsHeightSquare", self.channels)
        k = x.shape[2]
        return torch.sigmoid(self.mlp(F.avg_pool2d(x, k)) + self.mlp(F.max_pool2d(x, k)))


class CBAMSpatialSwappedPools(cbam.SpatialAttention):
    """Stacks the pools in the opposite order to the one it declares (``pool_order``), so weights
    copied from the other convention are misused. Caught by the formula (and timm parity)."""

    def attention(self, x):
        check_feature_map(x, "CBAMSpatialSwappedPools")
        avg, max_ = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
        pooled = (max_, avg) if self.pool_order == "avg_max" else (avg, max_)
        return torch.sigmoid(self.bn(self.conv(torch.cat(pooled, dim=1))))


class CBAMSpatialSkipsBN(cbam.SpatialAttention):
    """Builds the BatchNorm but never applies it. Caught by the formula (batch_norm=True)."""

    def attention(self, x):
        check_feature_map(x, "CBAMSpatialSkipsBN")
        avg, max_ = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
        pooled = (avg, max_) if self.pool_order == "avg_max" else (max_, avg)
        return torch.sigmoid(self.conv(torch.cat(pooled, dim=1)))


class CBAMParallelGates(cbam.CBAM):
    """Computes the spatial map on x instead of on F' = M_c * x (parallel, not sequential, gates).
    Caught by the formula."""

    def attention(self, x):
        check_feature_map(x, "CBAMParallelGates", self.channels)
        return self.channel_gate.attention(x), self.spatial_gate.attention(x)

    def forward(self, x):
        channel_map, spatial_map = self.attention(x)
        return x * channel_map * spatial_map


class CBAMOfficialWithPaperPools(cbam.CBAM):
    """``variant="official"`` that keeps the paper's [avg; max] order. Caught by the variant check."""

    def __init__(self, channels, reduction=16, kernel_size=7, *, variant="paper") -> None:
        super().__init__(channels, reduction, kernel_size, variant=variant, pool_order="avg_max")


# --------------------------------------------------------------------------------------------------
# CTDNet SAM
# --------------------------------------------------------------------------------------------------


class SAMMaxAvg(ctdnet.SpatialAttentionModule):
    """Stacks [max; avg] (CBAM official's order) where CTDNet stacks [avg; max]. Caught by the formula."""

    def attention(self, x):
        check_feature_map(x, "SAMMaxAvg", self.in_channels)
        return torch.sigmoid(self.conv_atten(torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), 1)))


class SAMSkipsBN(ctdnet.SpatialAttentionModule):
    """Registers ``bn`` but forward never calls it. Caught by the formula and by the
    every-parameter-gets-a-gradient check (bn.weight and bn.bias get none)."""

    def forward(self, x):
        return F.relu(self.conv(x * self.attention(x)))


# --------------------------------------------------------------------------------------------------
# HA-CNN
# --------------------------------------------------------------------------------------------------


class HACNNSpatialFixedX2(hacnn.SpatialAttention):
    """torchreid's fixed x2 upsample ``(2h, 2w)``: gives back (H, W) only for even sizes. Caught by
    the odd-size shape check (and the formula on odd inputs)."""

    def attention(self, x):
        check_feature_map(x, "HACNNSpatialFixedX2")
        s = self.conv1(x.mean(1, keepdim=True))
        s = F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv2(s)


class HACNNSoftFixedX2(hacnn.SoftAttention):
    """Soft attention built on :class:`HACNNSpatialFixedX2`. Caught by the odd-size check."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.spatial_attn = HACNNSpatialFixedX2()


class HACNNSoftNoReLU(hacnn.SoftAttention):
    """The last 1x1 block without its ReLU (conv -> BN -> sigmoid): the map reaches below 0.5.
    Caught by the [0.5, 1) range check and the formula."""

    def attention(self, x):
        check_feature_map(x, "HACNNSoftNoReLU", self.channels)
        y = self.spatial_attn(x) * self.channel_attn(x)
        return torch.sigmoid(self.conv.bn(self.conv.conv(y)))


class HACNNHardNoTanh(hacnn.HardAttention):
    """Translations straight from the fc, without the tanh. Caught by the formula (theta)."""

    def attention(self, x):
        check_feature_map(x, "HACNNHardNoTanh", self.channels)
        return rearrange(self.fc(x.mean((2, 3))), "b (r two) -> b r two", two=2)


class HACNNHardAlignCorners(hacnn.HardAttention):
    """Samples the crops with ``align_corners=True`` while the module documents False: every crop
    shifts by a fraction of a pixel. Caught by the formula's independent sampler."""

    def forward(self, x, *, crop_size=None):
        b, c, h, w = check_feature_map(x, "HACNNHardAlignCorners", self.channels)
        r = self.num_regions
        crop_h = max(1, round(h / r))
        matrices = rearrange(self.affine(x), "b r i j -> (b r) i j")
        grid = F.affine_grid(matrices, [b * r, c, crop_h, w], align_corners=True)
        crops = F.grid_sample(repeat(x, "b c h w -> (b r) c h w", r=r), grid, align_corners=True)
        return rearrange(crops, "(b r) c h w -> b r c h w", r=r)


# --------------------------------------------------------------------------------------------------
# DANet
# --------------------------------------------------------------------------------------------------


class PAMSoftmaxDim1(danet.PositionAttention):
    """``softmax(dim=1)``: normalises each key's column, not each query's row. Caught by the
    rows-sum-to-one check and the formula."""

    def _map(self, x):
        query = rearrange(self.query_conv(x), "b c h w -> b (h w) c")
        key = rearrange(self.key_conv(x), "b c h w -> b c (h w)")
        return (query @ key).softmax(dim=1)


class PAMNoTranspose(danet.PositionAttention):
    """``value @ attention`` without the transpose (DANet issue #64, SAGAN issue #11): output i mixes
    the values with column i instead of row i. Rows still sum to 1; caught by the formula."""

    def forward(self, x, fused=None):
        _, c, h, w = check_feature_map(x, "PAMNoTranspose", self.channels)
        value = rearrange(self.value_conv(x), "b c h w -> b c (h w)")
        out = rearrange(value @ self._map(x), "b c (h w) -> b c h w", h=h, w=w)
        return self.gamma * out + x


class PAMFusedDefaultScale(danet.PositionAttention):
    """The fused path with scaled_dot_product_attention's default 1/sqrt(d) scale, which DANet does
    not have. Caught by the fused == literal check."""

    def _fused_out(self, x):
        _, c, h, w = x.shape
        query = rearrange(self.query_conv(x), "b c h w -> b 1 (h w) c")
        key = rearrange(self.key_conv(x), "b c h w -> b 1 (h w) c")
        value = rearrange(self.value_conv(x), "b c h w -> b 1 (h w) c")
        out = F.scaled_dot_product_attention(query, key, value)
        return rearrange(out, "b 1 (h w) c -> b c h w", h=h, w=w)


class _BlockedNoDelta(danet._BlockedPositionAttention):
    """The blocked backward with the softmax gradient written as ``s * ds`` (the ``- delta`` term,
    sum_i s_ji ds_ji, forgotten)."""

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, _ = ctx.saved_tensors
        grad_query, grad_key, grad_value = torch.empty_like(query), torch.zeros_like(key), torch.zeros_like(value)
        for j in range(0, query.shape[1], ctx.rows):
            q, g = query[:, j:j + ctx.rows], grad_out[:, j:j + ctx.rows]
            attention = torch.softmax(q @ key, dim=-1)
            grad_value.baddbmm_(g.transpose(1, 2), attention)
            grad_energy = (g @ value).mul_(attention)
            grad_query[:, j:j + ctx.rows] = grad_energy @ key.transpose(1, 2)
            grad_key.baddbmm_(q.transpose(1, 2), grad_energy)
        return grad_query, grad_key, grad_value, None


class _BlockedDropsLastBlock(danet._BlockedPositionAttention):
    """The blocked forward that only visits whole blocks: when ``rows`` does not divide N the last
    queries keep a zero output."""

    @staticmethod
    def forward(ctx, query, key, value, rows):
        b, n, _ = query.shape
        out = value.new_zeros(b, n, value.shape[1])
        for j in range(0, n - rows + 1, rows):
            out[:, j:j + rows] = torch.softmax(query[:, j:j + rows] @ key, dim=-1) @ value.transpose(1, 2)
        ctx.save_for_backward(query, key, value, out)
        ctx.rows = rows
        return out


class _BlockedPAM(danet.PositionAttention):
    function = danet._BlockedPositionAttention

    def _fused_out(self, x):
        b, _, h, w = x.shape
        query = rearrange(self.query_conv(x), "b c h w -> b (h w) c")
        key, value = self.key_conv(x).flatten(2), self.value_conv(x).flatten(2)
        out = self.function.apply(query, key, value, self.query_block or danet.query_block_rows(b, h * w))
        return rearrange(out, "b (h w) c -> b c h w", h=h, w=w)


class PAMBlockedForgetsSoftmaxDelta(_BlockedPAM):
    """Memory-light PAM whose backward drops the ``- sum_i s_ji ds_ji`` term of the softmax gradient:
    the forward is exact, the gradients of query_conv and key_conv are wrong. Caught only by the
    backward half of the fused == literal check."""

    function = _BlockedNoDelta


class PAMBlockedDropsLastBlock(_BlockedPAM):
    """Memory-light PAM that skips the last, partial block of queries. Caught by the fused == literal
    check with a block size that does not divide N."""

    function = _BlockedDropsLastBlock


class PAMGammaOne(danet.PositionAttention):
    """gamma initialised to 1 instead of 0: not the identity at initialisation. Caught by the
    identity-at-init check."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gamma = nn.Parameter(torch.ones(1))


class PAMReturnsInput(danet.PositionAttention):
    """Returns x whatever gamma is (a stub, or a branch lost in refactoring): passes identity at
    init for the wrong reason. Caught by the not-identity-when-gamma-is-nonzero check."""

    def forward(self, x, fused=None):
        check_feature_map(x, "PAMReturnsInput", self.channels)
        return x


class PAM3x3Projections(danet.PositionAttention):
    """Query and key from 3x3 convolutions (a common "variant", cf. External-Attention's DAModule):
    the output now depends on where pixels sit. Caught by pixel-permutation equivariance."""

    def __init__(self, channels: int, reduction: int = 8, *, fused: bool = False) -> None:
        super().__init__(channels, reduction, fused=fused)
        self.query_conv = nn.Conv2d(channels, channels // reduction, 3, padding=1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 3, padding=1)


def _flatten_assuming_contiguous(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, N) by reading memory as if it were NCHW-contiguous (wrong otherwise)."""
    b, c, h, w = t.shape
    return t.as_strided((b, c, h * w), (c * h * w, h * w, 1))


class PAMAssumesContiguous(danet.PositionAttention):
    """Flattens with ``as_strided`` as if every tensor were NCHW-contiguous (what hand-written
    kernels and ``x.data_ptr()`` tricks do): channels_last input reads the wrong memory. Caught by
    the channels_last check."""

    def _map(self, x):
        query = _flatten_assuming_contiguous(self.query_conv(x)).transpose(1, 2)
        key = _flatten_assuming_contiguous(self.key_conv(x))
        return (query @ key).softmax(dim=-1)

    def forward(self, x, fused=None):
        _, c, h, w = check_feature_map(x, "PAMAssumesContiguous", self.channels)
        value = _flatten_assuming_contiguous(self.value_conv(x))
        out = (value @ self._map(x).transpose(1, 2)).reshape(x.shape)
        return self.gamma * out + x


class PAMDetachedAttention(danet.PositionAttention):
    """Detaches the attention map (kept "for plotting"): no gradient flows through the softmax, so
    query_conv and key_conv never learn. Caught by gradcheck."""

    def _map(self, x):
        return super()._map(x).detach()


class CAMVariantsSwapped(danet.ChannelAttention):
    """"paper" computes the official ``max - energy`` and "official" the paper's softmax(energy).
    Caught by the official-is-softmax(-energy) check and the formula."""

    def _map(self, x):
        a = rearrange(x, "b c h w -> b c (h w)")
        energy = a @ a.transpose(1, 2)
        if self.variant == "paper":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return energy.softmax(dim=-1)


class CAMStabilityShift(danet.ChannelAttention):
    """"official" written as the stabilising ``energy - max`` (DANet issue #48's proposal), which is
    softmax(energy), not the official code. Caught by the official-is-softmax(-energy) check."""

    def _map(self, x):
        a = rearrange(x, "b c h w -> b c (h w)")
        energy = a @ a.transpose(1, 2)
        if self.variant == "official":
            energy = energy - energy.amax(dim=-1, keepdim=True)
        return energy.softmax(dim=-1)


class CAMValueTransposed(danet.ChannelAttention):
    """Flattens the values column-major (``(w h)``, the (width, height) naming slip taken literally)
    but reshapes the output row-major: pixels land in the wrong places. Caught by pixel-permutation
    equivariance (and the formula)."""

    def forward(self, x):
        _, _, h, w = check_feature_map(x, "CAMValueTransposed")
        value = rearrange(x, "b c h w -> b c (w h)")
        out = rearrange(self._map(x) @ value, "b c (h w) -> b c h w", h=h, w=w)
        return self.gamma * out + x


class DualResidualTwice(danet.DualAttention):
    """``pam(x) + cam(x)``: each branch carries its own ``+ x``, so the residual is counted twice and
    the module doubles its input at initialisation. Caught by the identity-at-init check."""

    def forward(self, x):
        check_feature_map(x, "DualResidualTwice", self.channels)
        return self.pam(x) + self.cam(x)
