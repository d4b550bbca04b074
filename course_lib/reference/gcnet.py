r"""GCNet, the global context block: reference module.

Paper
    Yue Cao, Jiarui Xu, Stephen Lin, Fangyun Wei, Han Hu. "GCNet: Non-local Networks Meet
    Squeeze-Excitation Networks and Beyond". IEEE/CVF International Conference on Computer Vision
    Workshops (ICCVW), 2019. arXiv:1904.11492. Extended version: "Global Context Networks" (IEEE
    TPAMI), arXiv:2012.13375.
Official code
    xvjiarui/GCNet, ``mmdet/ops/gcb/context_block.py`` (``ContextBlock``); the ResNet placement in
    ``mmdet/models/backbones/resnet.py``.

Equations (written out by what they compute; the observation is the paper's Sec. 3.2, "Statistical
Analysis", whose Table 1 gives the mean cosine distance of the block's inputs, outputs and attention maps)

    Observation: the non-local block's attention maps (and outputs) are almost the same for every
    query position, so one query-independent map can serve them all.

    Simplified non-local block:
        z_i = x_i + W_v \sum_{j=1}^{N} \frac{\exp(W_k x_j)}{\sum_{m=1}^{N} \exp(W_k x_m)} x_j

    Global context (GC) block:
        z_i = x_i + W_{v2} ReLU(LN(W_{v1} \sum_{j=1}^{N} \alpha_j x_j)),
        \alpha_j = \frac{\exp(W_k x_j)}{\sum_m \exp(W_k x_m)}        (attention pooling)

    (a) context modelling: W_k a 1x1 conv C -> 1, softmax over the N positions, weighted sum of x;
    (b) transform: W_{v1} (C -> C/r), LayerNorm, ReLU, W_{v2} (C/r -> C);
    (c) fusion: broadcast addition to every position (the paper's block; the official code also
        offers an SE-style sigmoid gate, ``channel_mul``).

Shape glossary
    B  batch size      C  channels      H, W  height and width      N = H * W
    r  ``reduction``   C' = C // r, the bottleneck width (official: r = 16), or ``hidden_channels``

    x                                       (B, C, H, W)
    logits = conv_mask(x)                   (B, 1, H, W)
    alpha = softmax over the N positions    (B, 1, H, W)      ``attention(x)``, sums to 1 per image
    context = x @ alpha                     (B, C, N) @ (B, N, 1) -> (B, C, 1)
                                            -> (B, C, 1, 1)   ``context(x)``
    transform: conv -> LN -> ReLU -> conv   (B, C, 1, 1) -> (B, C', 1, 1) -> (B, C, 1, 1)
    fusion "add": x + transform             (B, C, H, W)      ``forward(x)``
    fusion "mul": x * sigmoid(transform)    (B, C, H, W)
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

import math

from course_lib.reference._validate import check_choice, check_feature_map, check_hidden_channels, check_positive_int, describe

__all__ = ["GlobalContextBlock"]

FUSIONS = ("add", "mul", "mul_add")
POOLINGS = ("att", "avg")


def _transform(channels: int, hidden: int, eps: float) -> nn.Sequential:
    """conv 1x1 (C -> C') -> LayerNorm over (C', 1, 1) -> ReLU -> conv 1x1 (C' -> C), official layout."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, kernel_size=1),
        nn.LayerNorm([hidden, 1, 1], eps=eps),
        nn.ReLU(),
        nn.Conv2d(hidden, channels, kernel_size=1),
    )


class GlobalContextBlock(nn.Module):
    """GCNet's global context block: attention pooling, a LayerNorm bottleneck, broadcast fusion.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r; the bottleneck has C // r channels, which must be >= 1 (paper: r = 16; r = 4 is
            its heavier variant). The official ``ContextBlock`` takes ``ratio`` as a *multiplier*
            (``planes = int(inplanes * ratio)``, configs pass ``ratio=1/16``); here r divides.
        fusion: ``"add"`` (the paper's block, the default): ``x + transform(context)``. ``"mul"``:
            ``x * sigmoid(transform(context))``, the SE-like form and **timm's default** (timm's
            ``GlobalContext`` has ``fuse_add=False, fuse_scale=True``; its ``'gca'`` layer is the additive
            one). ``"mul_add"``: both, the gate first, then the addition, as the official code does
            when given both fusion types.
        pooling: ``"att"`` (the paper's attention pooling, default) or ``"avg"`` (global average
            pooling, the official ``pooling_type='avg'``, i.e. an SE squeeze).
        eps: the LayerNorm's epsilon, a positive finite number (official: 1e-5; timm's
            ``LayerNorm2d``: 1e-6).
        hidden_channels: set the bottleneck width C' directly (overrides ``reduction``), as
            ``CoordinateAttention(hidden_channels=...)`` and ``NonLocalBlock(inter_channels=...)`` do.
            timm's ``GlobalContext(C)`` rounds C / 8 to the nearest integer, halves up
            (``make_divisible(C / 8, 1, round_limit=0.)`` in ``timm/layers/global_context.py``,
            which is ``max(1, int(C / 8 + 0.5))``), where ``reduction=8`` floors: C = 12, 20, 36, 100
            give 2, 3, 5, 13 there and 1, 2, 4, 12 here. Pass ``hidden_channels=max(1, int(C / 8 + 0.5))``
            to load timm's weights at any C.

    Submodules keep the official names so weights copy 1:1: ``conv_mask`` (``Conv2d(C, 1, 1)`` with
    bias; absent with ``pooling="avg"``), ``channel_add_conv`` and/or ``channel_mul_conv`` (each
    ``Sequential(Conv2d(C, C', 1), LayerNorm([C', 1, 1]), ReLU, Conv2d(C', C, 1))``).

    Initialisation (official ``reset_parameters``): ``conv_mask`` He-normal (fan_in), and the last conv
    of each transform has weight **and** bias zero. So ``"add"`` is exactly the identity at the start,
    while ``"mul"`` starts at ``x * sigmoid(0) = x / 2``.

    ``attention(x)`` returns the pooling weights alpha (B, 1, H, W), which sum to 1 over the positions
    of each image (uniform 1 / N for ``pooling="avg"``); ``context(x)`` the pooled vector (B, C, 1, 1);
    ``forward(x)`` the fused output (B, C, H, W).

    Deviations:
        * None from the official block in ``"add"`` mode. The LayerNorm's place (inside the
          bottleneck, before the ReLU) follows the official code.
        * timm's ``GlobalContext``: default multiplicative (above); bottleneck C / 8 rounded to the
          nearest integer, not C // 16 (``hidden_channels`` above); LN eps 1e-6; and only
          ``mlp_add.fc2.weight`` is zeroed, not its bias, so timm's additive block is not exactly the
          identity at initialisation (its ``init_last_zero`` argument is never read).
        * In the official repository, ResNet's ``init_weights`` (without a pretrained checkpoint)
          re-initialises every conv, the zero-initialised ones included: its GC blocks do not start
          as the identity. This module keeps the zero initialisation.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        fusion: str = "add",
        pooling: str = "att",
        eps: float = 1e-5,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        self.fusion = check_choice("fusion", fusion, FUSIONS, owner)
        self.pooling = check_choice("pooling", pooling, POOLINGS, owner)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise TypeError(f"{owner}: eps (the LayerNorm's epsilon) must be a positive finite number; got {describe(eps)}")
        try:
            eps_value = float(eps)
        except OverflowError:  # an int beyond the range of a float
            eps_value = math.inf
        if not (math.isfinite(eps_value) and eps_value > 0):  # refuses 0, negatives, NaN and infinity
            raise ValueError(f"{owner}: eps (the LayerNorm's epsilon) must be a positive finite number; got {eps!r}")
        if hidden_channels is None:
            hidden = check_hidden_channels(channels, reduction, owner, what="the bottleneck transform")
        else:
            hidden = check_positive_int("hidden_channels", hidden_channels, owner)
        self.hidden_channels = hidden
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1) if pooling == "att" else None
        self.channel_add_conv = _transform(channels, hidden, eps_value) if "add" in fusion else None
        self.channel_mul_conv = _transform(channels, hidden, eps_value) if "mul" in fusion else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan_in) ``conv_mask``; zero last conv (weight and bias) of each transform."""
        if self.conv_mask is not None:
            nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.conv_mask.bias)
        for transform in (self.channel_add_conv, self.channel_mul_conv):
            if transform is not None:
                nn.init.zeros_(transform[-1].weight)
                nn.init.zeros_(transform[-1].bias)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, reduction={self.reduction}, fusion={self.fusion!r}, "
                f"pooling={self.pooling!r}")

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def _alpha(self, x: torch.Tensor) -> torch.Tensor:
        """The pooling weights of a validated x: (B, C, H, W) -> (B, 1, H, W), summing to 1."""
        b, _, h, w = x.shape
        if self.conv_mask is None:
            return x.new_full((b, 1, h, w), 1.0 / (h * w))
        logits = rearrange(self.conv_mask(x), "b 1 h w -> b (h w)")  # W_k x_j: (B, 1, H, W) -> (B, N)
        alpha = logits.softmax(dim=-1)  # softmax over the N positions of each image
        return rearrange(alpha, "b (h w) -> b 1 h w", h=h, w=w)  # (B, N) -> (B, 1, H, W)

    def _context(self, x: torch.Tensor) -> torch.Tensor:
        """sum_j alpha_j x_j of a validated x: (B, C, H, W) -> (B, C, 1, 1)."""
        if self.conv_mask is None:
            return x.mean((2, 3), keepdim=True)
        alpha = rearrange(self._alpha(x), "b 1 h w -> b (h w) 1")  # (B, N, 1)
        context = rearrange(x, "b c h w -> b c (h w)") @ alpha  # (B, C, N) @ (B, N, 1) -> (B, C, 1)
        return context.unsqueeze(-1)  # (B, C, 1) -> (B, C, 1, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """alpha, the attention-pooling weights: (B, C, H, W) -> (B, 1, H, W), each image's sum 1."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        return self._alpha(x)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The global context vector sum_j alpha_j x_j: (B, C, H, W) -> (B, C, 1, 1)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        return self._context(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the transformed context into every position: (B, C, H, W) -> (B, C, H, W)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        context = self._context(x)  # (B, C, 1, 1)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))  # (B, C, H, W) * (B, C, 1, 1)
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)  # (B, C, H, W) + (B, C, 1, 1)
        return out
