r"""HA-CNN's Harmonious Attention (soft spatial-channel and hard regional attention): reference modules.

Paper
    Wei Li, Xiatian Zhu, Shaogang Gong. "Harmonious Attention Network for Person
    Re-Identification". IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR),
    2018, pp. 2285-2294. arXiv:1802.08122.
Reference code
    No author code was found; the widely used implementation is torchreid
    (KaiyangZhou/deep-person-reid, ``torchreid/models/hacnn.py``: ``ConvBlock``, ``SpatialAttn``,
    ``ChannelAttn``, ``SoftAttn``, ``HardAttn``). These modules follow its semantics and attribute
    names (weights copy 1:1) but run on any device, dtype and input size.

Equations (section 3.1 of the paper; the equation numbers were not checked against the PDF, so
they are omitted). X is the block's input of shape (B, C, H, W); every convolution below is a
``ConvBlock``, i.e. conv -> BatchNorm -> ReLU.

    soft attention      A = S \times C,  broadcast to (B, C, H, W), then a 1x1 ConvBlock and a
                        sigmoid: M = \sigma(ConvBlock_{1x1}(S \times C))
    spatial (S)         cross-channel mean  X_s = 1/C \sum_c X_c           (B, 1, H, W)
                        S = ConvBlock_{1x1}(Upsample(ConvBlock_{3x3, stride 2}(X_s)))
    channel (C)         squeeze  z = GAP(X)                                 (B, C, 1, 1)
                        excitation  C = ConvBlock_{1x1}(ConvBlock_{1x1}(z)), width C -> C/r -> C
    hard attention      per region, an affine transform with fixed scale and learnt translation
                        A_hard = [[s_h, 0, t_x], [0, s_w, t_y]],  (t_x, t_y) = tanh(FC(GAP(X)))
                        sampled from X with a spatial transformer (affine_grid + grid_sample);
                        torchreid (and this module) fix the scales to 1 along the width and
                        1/R along the height, so each region is a horizontal stripe

Shape glossary
    B  batch size   C  channels   H, W  height and width   r  ``reduction``   R  ``num_regions``
    (h, w)  crop size, by default (max(1, round(H_s / R)), W_s) of the crop source (H_s, W_s)

    SpatialAttention   x (B, C, H, W) -> mean over C (B, 1, H, W) -> 3x3 s2 ConvBlock
                       (B, 1, ceil(H/2), ceil(W/2)) -> bilinear resize to (H, W) -> 1x1 ConvBlock (B, 1, H, W)
    ChannelAttention   x (B, C, H, W) -> GAP (B, C, 1, 1) -> (B, C/r, 1, 1) -> (B, C, 1, 1)
    SoftAttention      S (B, 1, H, W) * C (B, C, 1, 1) -> (B, C, H, W) -> 1x1 ConvBlock, sigmoid
                       -> M (B, C, H, W) in [0.5, 1);  forward: x * M (B, C, H, W)
    HardAttention      x -> GAP (B, C) -> fc (B, 2R) -> tanh -> theta (B, R, 2)
                       -> affine (B, R, 2, 3) -> crops of the source, x by default (B, R, C_s, h, w)
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from course_lib.reference._validate import (
    autocast_covers,
    check_batch_norm_values,
    check_choice,
    check_feature_map,
    check_hidden_channels,
    check_positive_int,
    check_size_pair,
)

__all__ = ["ChannelAttention", "ConvBlock", "HardAttention", "SoftAttention", "SpatialAttention"]


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context that disables autocast for ``device_type`` where it is enabled (else it does nothing)."""
    if autocast_covers(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()

RESAMPLE_MODES = ("direct", "torchreid")


class ConvBlock(nn.Module):
    """torchreid's ``ConvBlock``: ``relu(bn(conv(x)))``, the conv with a bias as in torchreid.

    Args:
        in_c, out_c: input and output channels.
        k: kernel size; s: stride; p: padding (the torchreid names).
    """

    def __init__(self, in_c: int, out_c: int, k: int, s: int = 1, p: int = 0) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive_int("in_c", in_c, owner)
        check_positive_int("out_c", out_c, owner)
        check_positive_int("k", k, owner)
        check_positive_int("s", s, owner)
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{owner}: p must be an int >= 0; got {p!r} of type {type(p).__name__}")
        if p < 0:
            raise ValueError(f"{owner}: p must be an int >= 0; got {p}")
        self.conv = nn.Conv2d(in_c, out_c, k, stride=s, padding=p)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class SpatialAttention(nn.Module):
    """HA-CNN spatial attention S: cross-channel mean -> 3x3 stride-2 ConvBlock -> resize -> 1x1 ConvBlock.

    ``attention(x)`` and ``forward(x)`` both return S of shape (B, 1, H, W), for any channel count.
    S is the output of a ReLU, so it is >= 0 and unbounded above; the sigmoid comes later, in
    :class:`SoftAttention`. Submodules ``conv1`` (3x3, stride 2, padding 1) and ``conv2`` (1x1, the
    paper's "scaling" convolution), both ``ConvBlock(1, 1, ...)``.

    Deviations:
        * torchreid upsamples by a fixed factor of 2 (``F.upsample(x, (2h, 2w))``), which only gives
          back (H, W) when H and W are even (true for its 160x64 inputs). This module resizes to the
          input's own (H, W) with ``F.interpolate(mode="bilinear", align_corners=True)``: identical
          for even sizes, and odd sizes work too.
        * ``F.interpolate`` instead of the deprecated ``F.upsample``.
        * Each ConvBlock has a BatchNorm; in training mode a batch of one map with H, W <= 2
          (one value after the stride-2 conv) cannot be normalised, as in torchreid; a ValueError
          says so.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(1, 1, 3, s=2, p=1)
        self.conv2 = ConvBlock(1, 1, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """S(x): (B, C, H, W) -> (B, 1, H, W), values >= 0."""
        owner = f"{type(self).__name__}()"
        b, _, h, w = check_feature_map(x, owner, module=self)
        self.check_batch_norm(b, h, w, owner)
        s = x.mean(1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        s = self.conv1(s)  # (B, 1, H, W) -> (B, 1, ceil(H/2), ceil(W/2))
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=True)  # -> (B, 1, H, W)
        return self.conv2(s)  # (B, 1, H, W) -> (B, 1, H, W)

    def check_batch_norm(self, b: int, h: int, w: int, owner: str) -> None:
        """Raise ValueError where a training-mode BatchNorm would get one value per channel."""
        half = b * ((h + 1) // 2) * ((w + 1) // 2)  # the stride-2 conv's output: ceil(H/2) x ceil(W/2)
        check_batch_norm_values(self.conv1.bn, half, owner, "the stride-2 spatial map (B * ceil(H/2) * ceil(W/2) values)")
        check_batch_norm_values(self.conv2.bn, b * h * w, owner, "the spatial map (B * H * W values)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`attention`: (B, C, H, W) -> (B, 1, H, W)."""
        return self.attention(x)


class ChannelAttention(nn.Module):
    """HA-CNN channel attention C: GAP -> 1x1 ConvBlock (C -> C/r) -> 1x1 ConvBlock (C/r -> C).

    Args:
        channels: C; must be divisible by ``reduction``.
        reduction: r (torchreid's ``reduction_rate``, 16).

    ``attention(x)`` and ``forward(x)`` both return C(x) of shape (B, C, 1, 1), values >= 0 (the
    last ConvBlock ends in ReLU; no sigmoid here). Submodules ``conv1`` and ``conv2``.

    Deviations:
        * torchreid checks ``in_channels % reduction_rate == 0`` with ``assert``; this module raises
          a ValueError that names both numbers.
        * The ConvBlocks include BatchNorm on (B, C, 1, 1) maps: in training mode this needs B > 1,
          as in torchreid (a ValueError here says so). The SE block (``course_lib.reference.se``) has neither BN nor ReLU at this place.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        hidden = check_hidden_channels(channels, reduction, owner, divisible=True)
        self.conv1 = ConvBlock(channels, hidden, 1)
        self.conv2 = ConvBlock(hidden, channels, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """C(x): (B, C, H, W) -> (B, C, 1, 1), values >= 0."""
        b, _, _, _ = check_feature_map(x, self._owner(), self.channels, module=self)
        self.check_batch_norm(b, self._owner())
        z = x.mean((2, 3), keepdim=True)  # squeeze: (B, C, H, W) -> (B, C, 1, 1)
        return self.conv2(self.conv1(z))  # (B, C, 1, 1) -> (B, C/r, 1, 1) -> (B, C, 1, 1)

    def check_batch_norm(self, b: int, owner: str) -> None:
        """Raise ValueError where a training-mode BatchNorm would get one value per channel."""
        for block in (self.conv1, self.conv2):
            check_batch_norm_values(block.bn, b, owner, "the (B, C, 1, 1) channel descriptor (B values per channel)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`attention`: (B, C, H, W) -> (B, C, 1, 1)."""
        return self.attention(x)


class SoftAttention(nn.Module):
    """HA-CNN soft attention M = sigmoid(ConvBlock_1x1(S(x) * C(x))), applied as ``x * M``.

    Args:
        channels: C; must be divisible by 16 (the channel attention's reduction).

    Submodules ``spatial_attn`` (:class:`SpatialAttention`), ``channel_attn``
    (:class:`ChannelAttention`) and ``conv`` (``ConvBlock(C, C, 1)``), named as in torchreid.
    ``attention(x)`` returns M of shape (B, C, H, W); ``forward(x)`` returns ``x * M``.

    Range: the ConvBlock ends in ReLU, so the sigmoid only sees values >= 0 and M lies in [0.5, 1):
    the mask can damp a feature by at most a factor of 2, never switch it off. (In float32,
    sigmoid(z) rounds to exactly 1.0 for z above about 17, so a huge activation can reach 1.0.)

    Deviations:
        * None from torchreid's ``SoftAttn`` beyond those of :class:`SpatialAttention` (resize to
          the input's own size). Like torchreid's, it cannot run in training mode on a batch of one
          image (the channel attention's BatchNorm sees one value per channel): a ValueError says so. torchreid's ``SoftAttn.forward`` returns the map M and its
          ``HarmAttn``/``HACNN`` multiply it in; here ``attention`` returns M and ``forward``
          applies it.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        what = "the channel attention's hidden layer (reduction 16)"
        check_hidden_channels(channels, 16, owner, divisible=True, what=what)
        self.spatial_attn = SpatialAttention()
        self.channel_attn = ChannelAttention(channels)
        self.conv = ConvBlock(channels, channels, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """M(x): (B, C, H, W) -> (B, C, H, W), in [0.5, 1)."""
        b, _, h, w = check_feature_map(x, self._owner(), self.channels, module=self)
        # named errors for the BatchNorms inside (a submodule may have been swapped for another module)
        if isinstance(self.channel_attn, ChannelAttention):
            self.channel_attn.check_batch_norm(b, self._owner())
        if isinstance(self.spatial_attn, SpatialAttention):
            self.spatial_attn.check_batch_norm(b, h, w, self._owner())
        y = self.spatial_attn(x) * self.channel_attn(x)  # (B, 1, H, W) * (B, C, 1, 1) -> (B, C, H, W)
        return torch.sigmoid(self.conv(y))  # (B, C, H, W) -> (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * M(x): (B, C, H, W) -> (B, C, H, W)."""
        return x * self.attention(x)


class HardAttention(nn.Module):
    """HA-CNN hard (regional) attention: R horizontal stripes located by learnt translations.

    Args:
        channels: C, the number of channels of the map theta is computed from.
        num_regions: R, the number of regions (torchreid and the paper: 4).
        resample: how a crop of size (h, w) is sampled (keyword-only).
            ``"direct"`` (default): ``F.grid_sample`` straight at (h, w), one bilinear step.
            ``"torchreid"``: as torchreid's ``HACNN.stn``: sample each stripe at the crop source's
            full size (H_s, W_s), then resize that to (h, w) with ``F.interpolate(mode="bilinear",
            align_corners=True)`` (torchreid's ``F.upsample(..., (24, 28), ...)``). Two bilinear
            steps average other pixels than one step: on the same theta the crops differ (an audit
            found up to 2.17 on features of magnitude 3), so use ``"torchreid"`` with torchreid's
            weights.

    ``fc`` is ``Linear(C, 2R)``, zero weight, bias initialised so that region i starts at
    (t_x, t_y) = (0, (2i + 1) / R - 1) *before* the tanh: for R = 4 the bias is
    [0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75], as in torchreid. After the tanh the initial centres are
    tanh(+-0.75) = +-0.635 and tanh(+-0.25) = +-0.245, not exactly the stripe centres.

    * ``attention(x)``: theta = tanh(fc(GAP(x))) reshaped to (B, R, 2), the (t_x, t_y)
      translations in normalised [-1, 1] coordinates.
    * ``affine(x)``: the (B, R, 2, 3) matrices [[1, 0, t_x], [0, 1/R, t_y]]: full width, 1/R of the
      height, i.e. horizontal stripes (torchreid's ``transform_theta`` with scale [[1, 0], [0, 0.25]]).
    * ``forward(x, *, crop_size=None, source=None)``: theta from x, and the R crops of ``source``
      (default: x itself) sampled with ``F.affine_grid``/``F.grid_sample`` (bilinear, zero padding,
      ``align_corners=False``), shape (B, R, C_s, h, w) with C_s the source's channels and
      (h, w) = ``crop_size`` or (max(1, round(H_s / R)), W_s).

    The crop source. In HA-CNN, theta comes from the block's *output* (its attention module sits
    after the Inception block), while the stripes are cut from the block's *input*: torchreid's
    block 1 computes theta on the 128-channel 40 x 16 map and crops the 32-channel 80 x 32 map
    before it. ``forward(out, source=inp)`` does that: ``source`` may have any channel count and
    spatial size (the affine matrices are in normalised coordinates), but the same batch size,
    dtype and device as x (under ``torch.autocast`` float16, bfloat16 and float32 may meet: the
    sampling runs in float32 there). Without ``source`` the crops come from x (a self-contained module).

    Default crop height: ``round(H_s / R)`` is Python's round, which rounds halves to even: H = 10,
    R = 4 gives 2 (not 3), H = 18 gives 4; a stripe is 1/R of the height, so such a crop holds a
    little less than its stripe. Pass ``crop_size`` to choose.

    Deviations:
        * torchreid builds theta with ``theta.cuda()`` behind a ``use_gpu`` flag; here theta is
          computed in x's device and dtype, so the module runs on CPU and GPU alike.
        * ``align_corners=False`` is passed explicitly (torchreid relies on the default, which
          changed in PyTorch 1.3 and now warns).
        * The default ``resample="direct"`` samples the crop at its final size in one step; torchreid
          samples at the source's full size and resizes (``resample="torchreid"``) to the sizes of
          its local branch, (24, 28), (12, 14) and (6, 7): pass those as ``crop_size``.
        * The fc gets its gradient through ``grid_sample``'s sampling positions only, as in the
          paper's spatial-transformer formulation.
        * A batch of 0 images gives an empty (0, R, C_s, h, w) result (``F.affine_grid`` alone
          refuses an empty batch).
    """

    def __init__(self, channels: int, num_regions: int = 4, *, resample: str = "direct") -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.num_regions = check_positive_int("num_regions", num_regions, owner)
        self.resample = check_choice("resample", resample, RESAMPLE_MODES, owner)
        self.fc = nn.Linear(channels, 2 * num_regions)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero weight; bias (t_x, t_y) = (0, (2i + 1) / R - 1) for region i (before the tanh)."""
        r = self.num_regions
        ty = (2 * torch.arange(r, dtype=torch.float64) + 1) / r - 1  # (R,)
        bias = torch.stack((torch.zeros_like(ty), ty), dim=1)  # (R, 2): [t_x, t_y] per region
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(rearrange(bias, "r two -> (r two)"))  # (R, 2) -> (2R,)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_regions={self.num_regions}, resample={self.resample!r}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """theta = tanh(fc(GAP(x))): (B, C, H, W) -> (B, R, 2), the (t_x, t_y) of each region."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        z = x.mean((2, 3))  # (B, C, H, W) -> (B, C)
        theta = torch.tanh(self.fc(z))  # (B, C) -> (B, 2R)
        return rearrange(theta, "b (r two) -> b r two", two=2)  # (B, 2R) -> (B, R, 2)

    def affine(self, x: torch.Tensor) -> torch.Tensor:
        """The affine matrices [[1, 0, t_x], [0, 1/R, t_y]]: (B, C, H, W) -> (B, R, 2, 3)."""
        theta = self.attention(x)  # (B, R, 2)
        scale = torch.tensor(
            [[1.0, 0.0], [0.0, 1.0 / self.num_regions]], dtype=theta.dtype, device=theta.device
        )  # (2, 2), fixed
        scale = scale.expand(theta.shape[0], self.num_regions, 2, 2)  # (2, 2) -> (B, R, 2, 2)
        return torch.cat((scale, theta.unsqueeze(-1)), dim=-1)  # (B, R, 2, 2) + (B, R, 2, 1) -> (B, R, 2, 3)

    def _check_source(self, x: torch.Tensor, source: object) -> tuple[int, int, int]:
        """Validate the crop source against x; return its (C_s, H_s, W_s)."""
        owner = self._owner()
        b, c_s, h_s, w_s = check_feature_map(source, f"{owner}.forward(x, source=...)")
        dtypes_differ = source.dtype != x.dtype and not autocast_covers(x.device.type, source.dtype, x.dtype)
        if b != x.shape[0] or dtypes_differ or source.device != x.device:
            raise ValueError(
                f"{owner}.forward(x, source=...) crops source with the theta of x, so both need the same batch "
                f"size, dtype and device; got x of shape {tuple(x.shape)} ({x.dtype}, {x.device}) and source of "
                f"shape {tuple(source.shape)} ({source.dtype}, {source.device})"
            )
        return c_s, h_s, w_s

    def forward(
        self,
        x: torch.Tensor,
        *,
        crop_size: int | tuple[int, int] | None = None,
        source: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The R regions of ``source`` (default x) placed by theta(x): (B, C, H, W) -> (B, R, C_s, h, w)."""
        b, c, h, w = check_feature_map(x, self._owner(), self.channels, module=self)
        if source is None:
            source, (c_s, h_s, w_s) = x, (c, h, w)
        else:
            c_s, h_s, w_s = self._check_source(x, source)
        if crop_size is None:
            crop_h, crop_w = max(1, round(h_s / self.num_regions)), w_s
        else:
            crop_h, crop_w = check_size_pair("crop_size", crop_size, self._owner())
        r = self.num_regions
        # sampled at the crop size, or at the source's full size and resized (torchreid)
        sample_h, sample_w = (h_s, w_s) if self.resample == "torchreid" else (crop_h, crop_w)
        matrices = rearrange(self.affine(x), "b r i j -> (b r) i j")  # (B, R, 2, 3) -> (B*R, 2, 3)
        images = repeat(source, "b c h w -> (b r) c h w", r=r)  # (B, C_s, H_s, W_s) -> (B*R, C_s, H_s, W_s)
        # The grid in float32 at least, and outside autocast (which would make it bfloat16 on the CPU):
        # sampling positions keep their precision, and affine_grid's bfloat16 CPU kernel fails on a side
        # of length 1 (forward and backward).
        matrices = matrices.to(torch.promote_types(matrices.dtype, torch.float32))
        if b == 0:  # affine_grid refuses an empty batch; an empty grid samples nothing
            grid = matrices.new_zeros((0, sample_h, sample_w, 2))
        else:
            with _autocast_off(images.device.type):
                grid = F.affine_grid(matrices, [b * r, c_s, sample_h, sample_w], align_corners=False)  # (B*R, h, w, 2)
        if not autocast_covers(images.device.type, images.dtype, grid.dtype):
            grid = grid.to(images.dtype)  # grid_sample needs one dtype; autocast samples in float32 itself
        crops = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.resample == "torchreid":  # (B*R, C_s, H_s, W_s) -> (B*R, C_s, h, w)
            crops = F.interpolate(crops, size=(crop_h, crop_w), mode="bilinear", align_corners=True)
        return rearrange(crops, "(b r) c h w -> b r c h w", r=r)  # (B*R, C_s, h, w) -> (B, R, C_s, h, w)
