r"""CTDNet's Spatial Attention Module (SAM): reference module.

Paper
    Zhirui Zhao, Changqun Xia, Chenxi Xie, Jia Li. "Complementary Trilateral Decoder for Fast and
    Accurate Salient Object Detection". Proceedings of the 29th ACM International Conference on
    Multimedia (ACM MM), 2021.
Official code
    iCVTEAM/CTDNet, ``src/net.py``, class ``SAM`` (the author's mirror zhaozhirui/CTDNet has the
    same module). In CTDNet-18 it is the "spatial path": ``SAM(128, 64)`` on the 1/8-resolution
    ResNet ``layer2`` output, feeding the cross aggregation module.

Equations (as released in the official code; the paper's equation numbers were not checked here)

    A = \sigma(f^{3x3}([AvgPool_c(X); MaxPool_c(X)]))         spatial map, pooling over channels
    Y = \delta(BN(f^{3x3}(A \otimes X)))                       projection to ``out_channels``

with \sigma the sigmoid, \delta ReLU, \otimes element-wise product broadcast over channels, and both
convolutions 3x3 with padding 1 and no bias.

Shape glossary
    B  batch size     C  ``in_channels``     C_out  ``out_channels``     H, W  height and width

    x                                   (B, C, H, W)
    [mean; max] over C                  (B, 2, H, W)
    conv_atten, sigmoid: A              (B, 1, H, W)      ``attention(x)``
    x * A                               (B, C, H, W)
    conv, bn, ReLU: Y                   (B, C_out, H, W)  ``forward(x)``

Compared with CBAM's spatial gate (``course_lib.reference.cbam.SpatialAttention``): a 3x3 instead of a 7x7
kernel, no BatchNorm in the attention path, the [avg; max] order of CBAM's paper (the official
CBAM code stacks [max; avg]), and a conv-BN-ReLU projection after the gate, used once as a feature
projector rather than in every residual block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.reference._validate import check_batch_norm_values, check_feature_map, check_positive_int

__all__ = ["SpatialAttentionModule"]


class SpatialAttentionModule(nn.Module):
    """CTDNet SAM: a 3x3 spatial gate followed by a 3x3 conv-BN-ReLU projection.

    Args:
        in_channels: C, the number of input channels.
        out_channels: C_out, the channels after the projection (official use: ``SAM(128, 64)``).

    Submodules keep the official names so weights copy 1:1: ``conv_atten``
    (``Conv2d(2, 1, 3, padding=1, bias=False)``), ``conv`` (``Conv2d(C, C_out, 3, padding=1,
    bias=False)``) and ``bn`` (``BatchNorm2d(C_out)``).

    ``attention(x)`` returns the spatial map A of shape (B, 1, H, W) in (0, 1);
    ``forward(x)`` returns ``relu(bn(conv(x * A)))`` of shape (B, C_out, H, W). Unlike the other
    modules of the course, forward changes the channel count unless ``out_channels == in_channels``.

    Deviations:
        * The official forward ends with ``F.relu(..., inplace=True)``; this module uses an
          out-of-place ReLU, which gives the same values and is safe whatever autograd keeps.
        * ``bn`` normalises over B * H * W values per channel: in training mode a single 1 x 1 map
          (B = H = W = 1) cannot be normalised, as in the official code; the module says so with a
          ValueError instead of PyTorch's error.
        * The official ``weight_init`` (Kaiming-normal fan-in convolutions, BN weight 1, bias 0) is
          applied by CTDNet's network, not by SAM; this module keeps PyTorch's default init.
    """

    def __init__(self, in_channels: int, out_channels: int = 64) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int("in_channels", in_channels, owner)
        self.out_channels = check_positive_int("out_channels", out_channels, owner)
        self.conv_atten = nn.Conv2d(2, 1, kernel_size=3, padding=1, bias=False)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(in_channels={self.in_channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map A: (B, C, H, W) -> (B, 1, H, W), in (0, 1)."""
        check_feature_map(x, self._owner(), self.in_channels, module=self)
        avg = x.mean(1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        max_ = x.amax(1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        stacked = torch.cat((avg, max_), dim=1)  # (B, 1, H, W) x 2 -> (B, 2, H, W)
        return torch.sigmoid(self.conv_atten(stacked))  # (B, 2, H, W) -> (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn(conv(x * A))): (B, C, H, W) -> (B, C_out, H, W)."""
        b, _, h, w = check_feature_map(x, self._owner(), self.in_channels, module=self)
        check_batch_norm_values(self.bn, b * h * w, self._owner(), "the projection (B * H * W values per channel)")
        gated = x * self.attention(x)  # (B, C, H, W) * (B, 1, H, W) -> (B, C, H, W)
        return F.relu(self.bn(self.conv(gated)))  # (B, C, H, W) -> (B, C_out, H, W)
