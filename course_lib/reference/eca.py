r"""ECA, Efficient Channel Attention: reference module.

Paper
    Qilong Wang, Banggu Wu, Pengfei Zhu, Peihua Li, Wangmeng Zuo, Qinghua Hu. "ECA-Net: Efficient
    Channel Attention for Deep Convolutional Neural Networks". IEEE/CVF Conference on Computer Vision
    and Pattern Recognition (CVPR), 2020, pp. 11534-11542. arXiv:1910.03151.
Official code
    BangguWu/ECANet, ``models/eca_module.py`` (``eca_layer``) and ``models/eca_resnet.py``.

Equations (numbering of the arXiv text; issues #12 and #17 of the official repository call the
kernel-size rule "Eq. (9)", after an older version of the paper)

    (1) \omega = \sigma(f_{W_1, W_2}(g(X))),  g(X) = 1 / (W H) \sum_{i, j} X_{ij}     (SE, for contrast)
    (2) f_{W_1, W_2}(y) = W_2 ReLU(W_1 y)                                        (SE's reduction)
    (8) \omega_i = \sigma(\sum_{j=1}^{k} w^j y_i^j),  y_i^j \in \Omega_i^k      (k neighbours, shared w)
    (9) \omega = \sigma(C1D_k(y))                                               (the same as a 1-D conv)
   (12) k = \psi(C) = | \log_2(C) / \gamma + b / \gamma |_{odd},  \gamma = 2, b = 1

    |t|_odd is "the nearest odd number of t" in the text. The paper's own code listing (Fig. 3)
    computes ``t = int(abs((log2(C) + b) / gamma)); k = t if t % 2 else t + 1``: it floors, then turns
    an even t into t + 1. The two agree except where (log2(C) + 1) / 2 is an even integer, i.e. a tie
    of "nearest odd": C = 128 (t = 4: the listing gives 5; "nearest odd" is 3 or 5) and C = 2048
    (t = 6: 7; "nearest odd" is 5 or 7). This module computes the listing's rule, as timm does:

        C        64  128  256  512  1024  2048
        k         3    5    5    5     5     7

Shape glossary
    B  batch size      C  channels      H, W  height and width      k  ``kernel_size``

    x                         (B, C, H, W)
    y = g(x), GAP             (B, C) -> (B, 1, C)        the channels as a 1-D signal
    C1D_k(y)                  (B, 1, C)                  zero padding (k - 1) / 2 keeps C
    \omega = sigmoid(.)       (B, C, 1, 1)               ``attention(x)``
    x * \omega                (B, C, H, W)               ``forward(x)``
"""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.reference._validate import check_feature_map, check_odd_kernel_size, check_positive_int, describe

__all__ = ["EfficientChannelAttention", "adaptive_kernel_size"]


def _check_real(name: str, value, owner: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{owner}: {name} must be a finite real number; got {describe(value)}")
    if positive and value <= 0:
        raise ValueError(f"{owner}: {name} must be > 0; got {value}")
    return float(value)


def adaptive_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """k = psi(C) of Eq. (12), computed as the paper's Fig. 3 listing (and timm) do.

    ``t = int(abs((log2(C) + b) / gamma))``, then ``k = t`` if t is odd, else ``t + 1``. This rounds
    the ties of "nearest odd" up: C = 128 gives 5 and C = 2048 gives 7 (see the module docstring).
    C < 8 gives k = 1 (a single shared weight); timm's ``EcaModule`` clamps k to at least 3 there.
    """
    owner = "adaptive_kernel_size"
    check_positive_int("channels", channels, owner)
    gamma = _check_real("gamma", gamma, owner, positive=True)
    b = _check_real("b", b, owner, positive=False)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class EfficientChannelAttention(nn.Module):
    """ECA gate: ``x * sigmoid(conv1d_k(GAP(x)))``, the conv running across the channel axis.

    Args:
        channels: C, the number of input (and output) channels.
        kernel_size: k, the number of neighbouring channels each weight sees. ``None`` (the default,
            the paper's ECA) computes k = psi(C) with :func:`adaptive_kernel_size`; an odd int fixes
            it, which is what the official code does (``eca_layer(channel, k_size=3)`` ignores
            ``channel``; the released ResNet-50 uses k = 3, 5, 5, 7 per stage).
        gamma, b: the constants of Eq. (12) (paper: 2 and 1; timm calls b ``beta``). Only used when
            ``kernel_size`` is None.

    ``conv`` is ``Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)``, named as in the official code
    and timm's ``EcaModule``, so weights copy 1:1. It has k parameters in all.

    ``attention(x)`` returns the gate (B, C, 1, 1), each entry in (0, 1); ``forward(x)`` returns
    ``x * gate``.

    Deviations:
        * Eq. (12) says "nearest odd"; like the paper's listing and timm, the code floors and then
          rounds an even t up (ties at C = 128 and 2048 go to 5 and 7).
        * timm's ``EcaModule(channels=C)`` also clamps k to >= 3, which changes k only for C < 8
          (here k = 1 there). timm pools with ``x.mean((2, 3))``, as here; the official code uses
          ``AdaptiveAvgPool2d(1)``, the same average.
        * The official ``eca_layer`` never computes psi(C): pass ``kernel_size=3`` (or the per-stage
          values of a released checkpoint) to reproduce it. An even k is refused: with the official
          padding (k - 1) // 2 the convolution returns C + 2 ((k - 1) // 2) - k + 1 = C - 1 values, one
          fewer than the channels, so the official ``eca_layer`` would fail at ``y.expand_as(x)``
          (``models/eca_module.py`` lines 15 and 28); padding k // 2 gives C + 1, and no symmetric
          zero padding centres an even window.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, *, gamma: float = 2, b: float = 1) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.gamma = _check_real("gamma", gamma, owner, positive=True)
        self.b = _check_real("b", b, owner, positive=False)
        if kernel_size is None:
            self.adaptive = True
            kernel_size = adaptive_kernel_size(channels, self.gamma, self.b)
        else:
            self.adaptive = False
            check_odd_kernel_size("kernel_size", kernel_size, owner)
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def extra_repr(self) -> str:
        how = f"psi(C) with gamma={self.gamma:g}, b={self.b:g}" if self.adaptive else "fixed"
        return f"channels={self.channels}, kernel_size={self.kernel_size} ({how})"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate omega of Eq. (9): (B, C, H, W) -> (B, C, 1, 1), in (0, 1)."""
        b, c, _, _ = check_feature_map(x, self._owner(), self.channels, module=self)
        y = x.mean((2, 3)).reshape(b, 1, c)  # g(x), Eq. (1): (B, C, H, W) -> (B, C) -> (B, 1, C)
        y = self.conv(y)  # C1D_k across channels, Eq. (9): (B, 1, C) -> (B, 1, C)
        return torch.sigmoid(y).reshape(b, c, 1, 1)  # (B, 1, C) -> (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibrate x channel by channel: (B, C, H, W) -> (B, C, H, W)."""
        return x * self.attention(x)  # (B, C, H, W) * (B, C, 1, 1) -> (B, C, H, W)
