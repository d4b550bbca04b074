r"""Coordinate Attention (CA): reference module.

Paper
    Qibin Hou, Daquan Zhou, Jiashi Feng. "Coordinate Attention for Efficient Mobile Network Design".
    IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR), 2021, pp. 13713-13722.
    arXiv:2103.02907.
Official code
    houqb/CoordAttention (formerly Andrew-Qibin/CoordAttention, the address its README links),
    ``coordatt.py`` (``CoordAtt(inp, oup, reduction=32)``, ``h_swish``) and ``mbv2_ca.py`` (the block
    inside MobileNetV2, the model file of the released checkpoint ``mbv2_ca.pth``).

Equations (the paper's section "Coordinate Attention Blocks": two steps, coordinate information
embedding, the two pools, then coordinate attention generation; cited here by what they compute)

    z^h_c(h) = 1 / W \sum_{0 <= i < W} x_c(h, i)         pool along the width: one value per row
    z^w_c(w) = 1 / H \sum_{0 <= j < H} x_c(j, w)         pool along the height: one value per column
    f = \delta(F_1([z^h, z^w])),  f \in R^{C/r x (H + W)}   F_1 a shared 1x1 conv (+ BN), \delta
                                                        a non-linearity (h_swish in the code)
    g^h = \sigma(F_h(f^h))      g^w = \sigma(F_w(f^w))     f split back into f^h (H) and f^w (W)
    y_c(i, j) = x_c(i, j) \times g^h_c(i) \times g^w_c(j)    the output, no residual

    h_swish(x) = x * ReLU6(x + 3) / 6 (``nn.Hardswish`` computes the same function).

Shape glossary
    B  batch size      C  channels      H, W  height and width
    r  ``reduction``   M = max(8, C // r), the shared transform's width (official "mip")

    x                                   (B, C, H, W)
    z^h = mean over W                   (B, C, H, 1)
    z^w = mean over H, as a column      (B, C, 1, W) -> (B, C, W, 1)
    [z^h, z^w] along dim 2              (B, C, H + W, 1)
    f = h_swish(BN(conv1(.)))           (B, M, H + W, 1)
    f^h, f^w = split                    (B, M, H, 1), (B, M, W, 1) -> (B, M, 1, W)
    g^h = sigmoid(conv_h(f^h))          (B, C, H, 1)
    g^w = sigmoid(conv_w(f^w))          (B, C, 1, W)        ``gates(x)`` returns (g^h, g^w)
    g^h * g^w                           (B, C, H, W)        ``attention(x)``
    x * g^h * g^w                       (B, C, H, W)        ``forward(x)``, the output y
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from course_lib.reference._validate import check_bool, check_feature_map, check_positive_int

__all__ = ["MBV2_CA_KEYS", "CoordinateAttention"]

#: the official ``mbv2_ca.py``'s submodule names (released checkpoint) -> this module's
MBV2_CA_KEYS = {"conv2": "conv_h", "conv3": "conv_w"}


class CoordinateAttention(nn.Module):
    """Coordinate Attention: two direction-aware gates, one per row and one per column, per channel.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r; the shared transform has ``max(min_hidden, C // r)`` channels (official: r = 32,
            with the floor of 8, so M = 8 up to C = 287 and C // 32 above).
        min_hidden: the floor of that width (official: 8).
        hidden_channels: set the width M directly (overrides ``reduction`` and ``min_hidden``), e.g.
            to copy a timm ``CoordAttn``, whose width rule differs (see Deviations).
        bias: whether the three 1x1 convolutions have biases (official: yes; timm: no).

    Submodules keep the names of the official ``coordatt.py`` (``CoordAtt``, lines 30-35), so its
    weights copy 1:1: ``conv1`` (C -> M), ``bn1`` (``BatchNorm2d(M)``), ``act`` (``nn.Hardswish``, the
    official ``h_swish``), ``conv_h`` and ``conv_w`` (M -> C). The released ImageNet checkpoint
    (``mbv2_ca.pth``) belongs to ``mbv2_ca.py``, whose ``CoordAtt`` (lines 37-49) names the two gate
    convolutions ``conv2`` and ``conv3`` and the h_swish ``relu`` (which has no weights): its keys do
    not copy 1:1. Rename ``conv2`` to ``conv_h`` and ``conv3`` to ``conv_w`` (:data:`MBV2_CA_KEYS`);
    ``conv1`` and ``bn1`` keep their names, and the result loads with ``strict=True`` (and computes the
    same function: tests/test_reference_official_details.py).

    ``gates(x)`` returns (g^h (B, C, H, 1), g^w (B, C, 1, W)); ``attention(x)`` returns their
    product (B, C, H, W), each entry in (0, 1); ``forward(x)`` returns ``x * g^w * g^h``, the output y.
    There is no residual: at initialisation both gates sit near 0.5, so the block starts near x / 4.

    Deviations:
        * None from the official ``CoordAtt`` except the signature: it takes ``(inp, oup)``, and any
          ``oup != inp`` fails at the final product, so here there is one ``channels``. The official
          ``mbv2_ca.py`` calls the reduction ``groups``, names the gate convolutions ``conv2``/``conv3``
          (above) and adds ``.expand`` calls that broadcasting makes unnecessary (issue #35).
        * timm's ``CoordAttn`` (timm >= 1.0.23) has no conv biases and a different width rule,
          ``make_divisible(C / 16 * 2 / 3, 8)``: the same M = 8 up to C = 287, but 16 instead of 9 at
          C = 288 and 40 instead of 32 at C = 1024. Build ``CoordinateAttention(C, hidden_channels=M, bias=False)`` to match it.
        * The paper leaves delta open; the official code and timm use h_swish, and the README reports
          that it beats ReLU6. BN sits inside F_1 as in the code; the pooled rows and columns share
          its statistics (they are concatenated before it).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 32,
        *,
        min_hidden: int = 8,
        hidden_channels: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        check_positive_int("min_hidden", min_hidden, owner)
        check_bool("bias", bias, owner)
        if hidden_channels is None:
            hidden = max(min_hidden, channels // reduction)
        else:
            hidden = check_positive_int("hidden_channels", hidden_channels, owner)
        self.hidden_channels = hidden
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)
        self.conv_w = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, hidden_channels={self.hidden_channels}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def _gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(g^h, g^w) of a validated x."""
        _, _, h, w = x.shape
        z_h = x.mean(3, keepdim=True)  # z^h: (B, C, H, W) -> (B, C, H, 1)
        z_w = rearrange(x.mean(2, keepdim=True), "b c 1 w -> b c w 1")  # z^w: -> (B, C, W, 1)
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))  # f: (B, M, H + W, 1)
        f_h, f_w = torch.split(f, [h, w], dim=2)  # (B, M, H, 1), (B, M, W, 1)
        f_w = rearrange(f_w, "b m w 1 -> b m 1 w")  # (B, M, W, 1) -> (B, M, 1, W)
        g_h = torch.sigmoid(self.conv_h(f_h))  # g^h: (B, M, H, 1) -> (B, C, H, 1)
        g_w = torch.sigmoid(self.conv_w(f_w))  # g^w: (B, M, 1, W) -> (B, C, 1, W)
        return g_h, g_w

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g^h (B, C, H, 1) and g^w (B, C, 1, W), the two gates, each in (0, 1)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        return self._gates(x)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The full map g^h * g^w: (B, C, H, W) -> (B, C, H, W), in (0, 1)."""
        g_h, g_w = self.gates(x)
        return g_h * g_w  # (B, C, H, 1) * (B, C, 1, W) -> (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = x * g^h * g^w: (B, C, H, W) -> (B, C, H, W)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        g_h, g_w = self._gates(x)
        return x * g_w * g_h  # the official order; (B, C, H, W) * (B, C, 1, W) * (B, C, H, 1)
