r"""Squeeze-and-Excitation (SE): reference module.

Paper
    Jie Hu, Li Shen, Gang Sun. "Squeeze-and-Excitation Networks". IEEE/CVF Conference on Computer
    Vision and Pattern Recognition (CVPR), 2018, pp. 7132-7141. arXiv:1709.01507.
    Journal version: Jie Hu, Li Shen, Samuel Albanie, Gang Sun, Enhua Wu, IEEE Transactions on
    Pattern Analysis and Machine Intelligence (TPAMI) 42(8), 2020.
Official code
    hujie-frank/SENet (Caffe), e.g. ``models/SE-ResNet-50.prototxt``.

Equations (paper numbering; U = (u_1, ..., u_C) is the feature map the block recalibrates)

    (2) squeeze      z_c = F_sq(u_c) = 1 / (H W) \sum_{i=1}^{H} \sum_{j=1}^{W} u_c(i, j)
    (3) excitation   s = F_ex(z, W) = \sigma(W_2 \delta(W_1 z)),
                     W_1 \in R^{(C/r) x C}, W_2 \in R^{C x (C/r)}, \delta = ReLU, \sigma = sigmoid
    (4) scale        \tilde{x}_c = F_scale(u_c, s_c) = s_c u_c

Shape glossary
    B  batch size              C  channels              H, W  height and width
    r  ``reduction``           C' = C // r, the hidden width of the excitation MLP

    x                       (B, C, H, W)
    z = GAP(x)              (B, C, 1, 1)
    fc1(z), ReLU            (B, C', 1, 1)
    s = sigmoid(fc2(.))     (B, C, 1, 1)    ``attention(x)``
    x * s                   (B, C, H, W)    ``forward(x)``
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib.reference._validate import check_feature_map, check_hidden_channels, check_positive_int

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation gate: ``x * sigmoid(fc2(relu(fc1(GAP(x)))))``.

    Args:
        channels: C, the number of input (and output) channels; at least ``reduction`` (16 by
            default), so that the hidden width C // r is at least 1.
        reduction: r, the bottleneck ratio of the excitation MLP; the hidden width is C // r and must
            be at least 1. The paper and the official models use r = 16.

    ``attention(x)`` returns the gate s of shape (B, C, 1, 1), each entry in (0, 1);
    ``forward(x)`` returns ``x * s`` of shape (B, C, H, W).

    The two fully connected layers are 1x1 convolutions with bias, as in the official Caffe model
    (``conv*_1x1_down`` / ``conv*_1x1_up``). They are named ``fc1`` and ``fc2`` so that a state dict
    copies 1:1 to and from timm's ``SEModule`` (``timm.layers.squeeze_excite``) built with the same
    hidden width.

    Deviations:
        * None from the paper's equations. A 1x1 convolution on (B, C, 1, 1) computes exactly the
          paper's fully connected layer (the conv weight (C', C, 1, 1) is the Linear weight (C', C)
          reshaped), and it works unchanged on channels_last tensors.
        * The hidden width is ``channels // reduction`` (floor), like the official models. timm's
          ``SEModule`` rounds it to a multiple of 8 (C = 64 gives 8, not 4); build it with
          ``rd_channels=channels // reduction`` to compare.
        * Several popular copies (moskomule/senet.pytorch, External-Attention-pytorch) drop the two
          biases; the official model has them, and so does this module.
        * Where the block goes (in SE-ResNet: on the residual branch, after the last BN and before
          the addition) is the caller's business; this module is only the gate.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        hidden = check_hidden_channels(channels, reduction, owner)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate s = sigmoid(W2 relu(W1 GAP(x))): (B, C, H, W) -> (B, C, 1, 1), in (0, 1)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        z = x.mean((2, 3), keepdim=True)  # squeeze, Eq. (2): (B, C, H, W) -> (B, C, 1, 1)
        hidden = self.relu(self.fc1(z))  # (B, C, 1, 1) -> (B, C', 1, 1)
        return torch.sigmoid(self.fc2(hidden))  # excitation, Eq. (3): (B, C', 1, 1) -> (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibrate x channel by channel, Eq. (4): (B, C, H, W) -> (B, C, H, W)."""
        return x * self.attention(x)  # (B, C, H, W) * (B, C, 1, 1) -> (B, C, H, W)
