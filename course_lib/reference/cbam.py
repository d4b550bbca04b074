r"""CBAM, the Convolutional Block Attention Module: reference modules.

Paper
    Sanghyun Woo, Jongchan Park, Joon-Young Lee, In So Kweon. "CBAM: Convolutional Block Attention
    Module". European Conference on Computer Vision (ECCV), 2018, pp. 3-19. arXiv:1807.06521.
Official code
    Jongchan/attention-module, ``MODELS/cbam.py`` (``ChannelGate``, ``SpatialGate``, ``CBAM``).

Equations (paper numbering; F is the block's input feature map, \otimes element-wise product
with broadcasting)

    (1) F'  = M_c(F) \otimes F
        F'' = M_s(F') \otimes F'
    (2) M_c(F) = \sigma(MLP(AvgPool(F)) + MLP(MaxPool(F)))
               = \sigma(W_1(W_0(F^c_avg)) + W_1(W_0(F^c_max))),
        W_0 \in R^{(C/r) x C} followed by ReLU, W_1 \in R^{C x (C/r)}, shared by both descriptors
    (3) M_s(F) = \sigma(f^{7x7}([AvgPool(F); MaxPool(F)])) = \sigma(f^{7x7}([F^s_avg; F^s_max])),
        pooling along the channel axis, f^{7x7} a 7x7 convolution with one output channel

Shape glossary
    B  batch size      C  channels      H, W  height and width
    r  ``reduction``   C' = C // r      k  ``kernel_size``

    channel attention   x (B, C, H, W) -> avg, max pools (B, C, 1, 1) each -> shared MLP
                        (B, C, 1, 1) -> (B, C', 1, 1) -> (B, C, 1, 1) -> sum, sigmoid: M_c (B, C, 1, 1)
    spatial attention   x (B, C, H, W) -> [mean; max] over C (B, 2, H, W) -> k x k conv (B, 1, H, W)
                        -> [BatchNorm] -> sigmoid: M_s (B, 1, H, W)
    CBAM                x (B, C, H, W) -> F' = M_c * x (B, C, H, W) -> F'' = M_s(F') * F' (B, C, H, W)

Where the implementations differ (see each class's "Deviations")

    ======================  ===============  ===========  =============  =============
    implementation          MLP bias         pool order   BN in M_s      hidden width
    ======================  ===============  ===========  =============  =============
    paper                   not specified    [avg; max]   no             C / r
    official (Jongchan)     yes (Linear)     [max; avg]   yes            C // r
    timm ``CbamModule``     no               [avg; max]   yes            round(C / r)
    luuuyi/CBAM.PyTorch     no               [avg; max]   no             C // 16 always
    ======================  ===============  ===========  =============  =============
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib.reference._validate import (
    check_batch_norm_values,
    check_bool,
    check_choice,
    check_feature_map,
    check_fraction,
    check_hidden_channels,
    check_odd_kernel_size,
    check_positive_int,
)

__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]

POOL_ORDERS = ("avg_max", "max_avg")
VARIANTS = ("paper", "official")



class ChannelAttention(nn.Module):
    """CBAM channel attention M_c, Eq. (2): one MLP shared by the average- and max-pooled descriptors.

    Args:
        channels: C, the number of input channels; at least ``reduction`` (16 by default).
        reduction: r; the MLP's hidden width is C // r and must be at least 1 (paper: r = 16).
        mlp_bias: whether the two MLP layers have biases. The official code uses ``nn.Linear`` with
            bias (``mlp_bias=True``); timm and luuuyi use bias-free 1x1 convolutions (the default
            here, which also matches the paper's bias-free notation W_1(W_0 F)).

    ``mlp`` is ``nn.Sequential(Conv2d(C, C', 1), ReLU, Conv2d(C', C, 1))``: index 0 is W_0, index 2
    is W_1. ``attention(x)`` returns M_c of shape (B, C, 1, 1) in (0, 1); ``forward(x)`` returns
    ``x * M_c``.

    Deviations:
        * 1x1 convolutions instead of ``nn.Linear``: the same function (the conv weight is the Linear
          weight with two trailing singleton dimensions), no ``Flatten``/``view``, and channels_last
          inputs work unchanged.
        * The official ``ChannelGate`` also offers ``lp`` and ``lse`` pooling; only the paper's
          average and max pooling are implemented.
        * Hidden width: floor(C / r) as in the official code. timm rounds C / r to the nearest
          integer (``make_divisible(C / r, 1)``); luuuyi/CBAM.PyTorch hard-codes ``C // 16`` and
          ignores its ``ratio`` argument (luuuyi PR #16).
    """

    def __init__(self, channels: int, reduction: int = 16, *, mlp_bias: bool = False) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        self.mlp_bias = check_bool("mlp_bias", mlp_bias, owner)
        hidden = check_hidden_channels(channels, reduction, owner)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=mlp_bias),  # W_0
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=mlp_bias),  # W_1
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, mlp_bias={self.mlp_bias}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_c(x), Eq. (2): (B, C, H, W) -> (B, C, 1, 1), in (0, 1)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        avg = x.mean((2, 3), keepdim=True)  # F^c_avg: (B, C, H, W) -> (B, C, 1, 1)
        max_ = x.amax((2, 3), keepdim=True)  # F^c_max: (B, C, H, W) -> (B, C, 1, 1)
        # the same MLP on both descriptors: (B, C, 1, 1) -> (B, C', 1, 1) -> (B, C, 1, 1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(max_))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * M_c(x): (B, C, H, W) -> (B, C, H, W)."""
        return x * self.attention(x)  # (B, C, H, W) * (B, C, 1, 1) -> (B, C, H, W)


class SpatialAttention(nn.Module):
    """CBAM spatial attention M_s, Eq. (3): channel-wise [mean; max] -> k x k conv -> sigmoid.

    Args:
        kernel_size: k, a positive odd int (paper and official code: 7); the convolution is padded
            by k // 2 so the map keeps the input's H and W.
        pool_order: ``"avg_max"`` stacks [mean; max] as in the paper's Eq. (3) and timm;
            ``"max_avg"`` stacks [max; mean] as the official ``ChannelPool`` does. The order only
            matters when copying weights: it swaps the two input channels of ``conv``.
        batch_norm: add ``BatchNorm2d(1, eps=1e-5, momentum=bn_momentum)`` between the convolution
            and the sigmoid, as the official ``SpatialGate`` (``BasicConv(..., relu=False)``) does.
            The paper does not mention it. When False, ``bn`` is an ``nn.Identity``.
        bn_momentum: the BatchNorm's running-statistics momentum (keyword-only; only used with
            ``batch_norm=True``). The default 0.01 is the official ``BasicConv``'s; timm's
            ``CbamModule`` uses PyTorch's default 0.1 (``bn_momentum=0.1``). Both give the same
            output in training mode (batch statistics); after one training step the running
            statistics differ, and so does every output in eval mode.

    ``conv`` is ``Conv2d(2, 1, k, padding=k // 2, bias=False)``. ``attention(x)`` returns M_s of
    shape (B, 1, H, W) in (0, 1) for any channel count; ``forward(x)`` returns ``x * M_s``.

    Deviations:
        * ``batch_norm`` and ``pool_order`` default to the paper; set ``batch_norm=True,
          pool_order="max_avg"`` for the official gate (``CBAM(..., variant="official")`` does).
        * The official ResNet initialisation sets the weight of this BatchNorm to 0, so that at
          initialisation M_s = sigmoid(0) = 0.5 everywhere (Jongchan/attention-module issue #2, no
          author answer). This module keeps PyTorch's default BN init (weight 1), like timm; zero
          ``bn.weight`` yourself to reproduce the official start.
        * ``torch.sigmoid`` instead of the official code's ``F.sigmoid``.
        * With ``batch_norm=True`` the BatchNorm sees B * H * W values: in training mode a single
          1 x 1 map (B = H = W = 1) cannot be normalised (official code and timm alike); this module
          raises a ValueError that says so.
    """

    def __init__(
        self,
        kernel_size: int = 7,
        *,
        pool_order: str = "avg_max",
        batch_norm: bool = False,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size = check_odd_kernel_size("kernel_size", kernel_size, owner)
        self.pool_order = check_choice("pool_order", pool_order, POOL_ORDERS, owner)
        self.batch_norm = check_bool("batch_norm", batch_norm, owner)
        self.bn_momentum = check_fraction("bn_momentum", bn_momentum, owner)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=bn_momentum) if batch_norm else nn.Identity()

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, pool_order={self.pool_order!r}, batch_norm={self.batch_norm}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_s(x), Eq. (3): (B, C, H, W) -> (B, 1, H, W), in (0, 1)."""
        b, _, h, w = check_feature_map(x, self._owner(), module=self)
        if self.batch_norm:
            check_batch_norm_values(self.bn, b * h * w, self._owner(), "the spatial map (B * H * W values)")
        avg = x.mean(1, keepdim=True)  # F^s_avg: (B, C, H, W) -> (B, 1, H, W)
        max_ = x.amax(1, keepdim=True)  # F^s_max: (B, C, H, W) -> (B, 1, H, W)
        pooled = (avg, max_) if self.pool_order == "avg_max" else (max_, avg)
        stacked = torch.cat(pooled, dim=1)  # (B, 1, H, W) x 2 -> (B, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(stacked)))  # (B, 2, H, W) -> (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * M_s(x): (B, C, H, W) -> (B, C, H, W)."""
        return x * self.attention(x)  # (B, C, H, W) * (B, 1, H, W) -> (B, C, H, W)


class CBAM(nn.Module):
    """CBAM, Eq. (1): channel attention, then spatial attention on the channel-refined features.

    Args:
        channels: C, the number of input channels.
        reduction: r of the channel MLP (paper: 16).
        kernel_size: k of the spatial convolution, a positive odd int (paper: 7).
        variant: the defaults of the three options below. ``"paper"``: ``mlp_bias=False,
            pool_order="avg_max", batch_norm=False``. ``"official"`` (Jongchan/attention-module):
            ``mlp_bias=True, pool_order="max_avg", batch_norm=True``.
        mlp_bias, pool_order, batch_norm: override the variant's value when given (not None). For
            example timm's ``CbamModule`` is ``CBAM(C, variant="paper", batch_norm=True,
            bn_momentum=0.1)`` (bias-free MLP, [mean; max], BN in the spatial gate with PyTorch's
            default momentum), up to its rounding of C / r.
        bn_momentum: the spatial BatchNorm's momentum (see :class:`SpatialAttention`): 0.01 as in
            the official code by default, 0.1 for timm's.

    Submodules ``channel_gate`` (:class:`ChannelAttention`) and ``spatial_gate``
    (:class:`SpatialAttention`). ``attention(x)`` returns the pair ``(M_c, M_s)`` with M_c of shape
    (B, C, 1, 1) computed on x and M_s of shape (B, 1, H, W) computed on F' = M_c * x, the maps
    that ``forward`` applies; ``forward(x)`` returns F'' of shape (B, C, H, W).

    Deviations:
        * The default ``variant="paper"`` follows the paper's text; the official code differs in
          three places (MLP bias, [max; mean] order, BN in the spatial gate), all reachable through
          ``variant="official"`` or the keyword overrides.
        * The official ResNet initialisation zeroes the spatial BN weight (Jongchan #2), which
          halves the residual branch at the start; this module keeps the default BN init (see
          :class:`SpatialAttention`).
        * timm's ``CbamModule`` rounds the hidden width to the nearest integer
          (``make_divisible(C / r, 1)``) where this module and the official code floor it, and its
          spatial BatchNorm keeps PyTorch's momentum 0.1 where the official ``BasicConv`` (and the
          default ``bn_momentum`` here) sets 0.01: the same in training mode, different in eval mode
          after any training step. Pass ``bn_momentum=0.1`` to reproduce timm.
        * luuuyi/CBAM.PyTorch, the most-copied unofficial version, ignores its ``ratio`` argument
          (hidden width always C // 16, luuuyi PR #16) and has no BN; External-Attention-pytorch's
          ``CBAMBlock`` adds an extra ``+ residual`` and defaults to a 49x49 kernel. Neither is
          reproduced here.
        * The official ``no_spatial`` (channel-only) option is :class:`ChannelAttention` itself.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        *,
        variant: str = "paper",
        mlp_bias: bool | None = None,
        pool_order: str | None = None,
        batch_norm: bool | None = None,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive_int("channels", channels, owner)
        self.variant = check_choice("variant", variant, VARIANTS, owner)
        official = variant == "official"
        mlp_bias = official if mlp_bias is None else mlp_bias
        pool_order = ("max_avg" if official else "avg_max") if pool_order is None else pool_order
        batch_norm = official if batch_norm is None else batch_norm
        # validate here too, so that messages name CBAM rather than the gate it builds
        check_positive_int("reduction", reduction, owner)
        check_hidden_channels(channels, reduction, owner, what="the channel MLP's hidden layer")
        check_odd_kernel_size("kernel_size", kernel_size, owner)
        check_bool("mlp_bias", mlp_bias, owner)
        check_choice("pool_order", pool_order, POOL_ORDERS, owner)
        check_bool("batch_norm", batch_norm, owner)
        check_fraction("bn_momentum", bn_momentum, owner)
        self.channels = channels
        self.channel_gate = ChannelAttention(channels, reduction, mlp_bias=mlp_bias)
        self.spatial_gate = SpatialAttention(
            kernel_size, pool_order=pool_order, batch_norm=batch_norm, bn_momentum=bn_momentum
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}, variant={self.variant!r}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def _check(self, x: torch.Tensor) -> None:
        """Validate x with messages that name CBAM rather than the gate that would fail."""
        b, _, h, w = check_feature_map(x, self._owner(), self.channels, module=self)
        if getattr(self.spatial_gate, "batch_norm", False):  # the gate may have been swapped for another module
            check_batch_norm_values(
                self.spatial_gate.bn, b * h * w, self._owner(), "the spatial map (B * H * W values)"
            )

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M_c(x) of shape (B, C, 1, 1), M_s(F') of shape (B, 1, H, W)) with F' = M_c(x) * x."""
        self._check(x)
        channel_map = self.channel_gate.attention(x)  # (B, C, H, W) -> (B, C, 1, 1)
        refined = x * channel_map  # F': (B, C, H, W) * (B, C, 1, 1) -> (B, C, H, W)
        spatial_map = self.spatial_gate.attention(refined)  # (B, C, H, W) -> (B, 1, H, W)
        return channel_map, spatial_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """F'' = M_s(F') * F' with F' = M_c(x) * x, Eq. (1): (B, C, H, W) -> (B, C, H, W)."""
        self._check(x)
        refined = x * self.channel_gate.attention(x)  # F': (B, C, H, W) * (B, C, 1, 1)
        return refined * self.spatial_gate.attention(refined)  # F'': (B, C, H, W) * (B, 1, H, W)
