r"""DANet, the Dual Attention Network: position (PAM) and channel (CAM) attention, reference modules.

Paper
    Jun Fu, Jing Liu, Haijie Tian, Yong Li, Yongjun Bao, Zhiwei Fang, Hanqing Lu. "Dual Attention
    Network for Scene Segmentation". IEEE/CVF Conference on Computer Vision and Pattern Recognition
    (CVPR), 2019, pp. 3146-3154. arXiv:1809.02983.
Official code
    junfu1115/DANet: ``encoding/nn/da_att.py`` (``PAM_Module``, ``CAM_Module``; identical to the
    2018 ``encoding/nn/attention.py``) and ``encoding/models/sseg/danet.py`` (``DANetHead``).

Equations (paper numbering; A is the local feature map of shape C x H x W, N = H x W positions,
i and j index positions in (1)-(2) and channels in (3)-(4))

    Position attention module (PAM). B, C, D are 1x1 convolutions of A (in the official code B
    and C have C/8 channels, D has C):
    (1) s_{ji} = \frac{\exp(B_i \cdot C_j)}{\sum_{i=1}^{N} \exp(B_i \cdot C_j)}
    (2) E_j = \alpha \sum_{i=1}^{N} (s_{ji} D_i) + A_j,        \alpha initialised to 0

    Channel attention module (CAM), no projections:
    (3) x_{ji} = \frac{\exp(A_i \cdot A_j)}{\sum_{i=1}^{C} \exp(A_i \cdot A_j)}
    (4) E_j = \beta \sum_{i=1}^{C} (x_{ji} A_i) + A_j,          \beta initialised to 0

The outputs of the two modules are each passed through a convolution and summed (paper Sec. 3.4).

Shape glossary
    B  batch size      C  channels      H, W  height and width      N = H * W
    C' = C // r        the query/key width of PAM (r = ``reduction`` = 8)

    PAM   x (B, C, H, W) -> query (B, N, C'), key (B, C', N), value (B, C, N)
          energy = query @ key: (B, N, C') @ (B, C', N) -> (B, N, N); softmax over the last dim
          out = value @ attention^T: (B, C, N) @ (B, N, N) -> (B, C, N) -> (B, C, H, W)
          gamma * out + x (B, C, H, W)
    CAM   a = x as (B, C, N); energy = a @ a^T: (B, C, N) @ (B, N, C) -> (B, C, C); softmax
          out = attention @ a: (B, C, C) @ (B, C, N) -> (B, C, N) -> (B, C, H, W); gamma * out + x
    Head  x (B, C_in, H, W) -> two branches at C_in // 4 channels -> (B, num_classes, H, W)

Memory: PAM's map is N x N per image. At output stride 8 on a 768 x 768 crop, N = 96^2 = 9216 and
one float32 map takes 9216^2 * 4 bytes = 340 MB (324 MiB), before the softmax's copy and the
gradients (DANet issues #58, #104). ``PositionAttention(..., fused=True)`` avoids storing it, on CPU
(PyTorch's flash kernel for CPU) and on CUDA (see the class's Deviations; ``make bench`` measures it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_lib._validate import (
    check_bool,
    check_choice,
    check_feature_map,
    check_hidden_channels,
    check_positive_int,
)

__all__ = ["ChannelAttention", "DualAttention", "DualAttentionHead", "PositionAttention"]

CAM_VARIANTS = ("paper", "official")


class PositionAttention(nn.Module):
    """DANet position attention module (PAM), Eqs. (1)-(2): self-attention over the N = H * W positions.

    Args:
        channels: C, the number of input channels.
        reduction: r; the query and key convolutions have C // r channels, which must be >= 1
            (official: 8).
        fused: compute ``forward`` with ``torch.nn.functional.scaled_dot_product_attention``
            (``scale=1.0``), which need not materialise the (B, N, N) map (see Deviations); same
            result. ``forward(x, fused=True/False)`` overrides it for one call.

    Submodules and parameters keep the official names so weights copy 1:1: ``query_conv`` and
    ``key_conv`` (``Conv2d(C, C', 1)``, with bias), ``value_conv`` (``Conv2d(C, C, 1)``, with bias)
    and ``gamma`` (the paper's alpha, a scalar initialised to 0, so the module is the identity at
    initialisation).

    ``attention(x)`` returns the (B, N, N) map whose row j, the weights output position j gives to
    every position i, sums to 1 (softmax over the last dim). ``forward(x)`` returns
    ``gamma * out + x`` of shape (B, C, H, W).

    Deviations:
        * Naming: the code's ``query_conv`` plays the paper's C and ``key_conv`` the paper's B: the
          output at position j uses C_j (its query) against every key B_i, which is Eq. (1) with
          ``energy[j, i] = C_j . B_i``. ``value_conv`` is the paper's D.
        * Query/key width C // 8: this reduction is the official code's (``in_dim // 8``); the
          paper's text does not give the width of B and C.
        * No 1/sqrt(C') scaling of the energy (neither the paper nor the official code has one;
          Transformer-style copies add it).
        * ``out = value @ attention^T``: the transpose is required because the values are stored
          channels-first (DANet issue #64 asks about it; it is correct).
        * The fused path pads query and key with zeros from C' to C channels, because the efficient
          SDPA kernels want query, key and value to share their last dimension; zeros add nothing to
          any dot product. The kernels also need contiguous rows, so the rearranged views are made
          contiguous; without either step SDPA silently falls back to its "math" backend, which
          builds the N x N map anyway (tests/test_pam_fused_kernel.py checks the kernel it picks).
          The padding has a price: the energy product then costs N^2 * C instead of N^2 * C'
          (r times more). The fused path always saves memory, but it only saves time once N is
          large: ``make bench`` measured, on 2 CPU cores, 0.4-0.5x the literal time at C = 64,
          N = 64^2, yet about 1.5x at C = 512, N = 32^2. Choose it for memory, not for small maps.
        * Memory grows as N^2: N = 96^2 gives 340 MB (324 MiB) per float32 map per image.
    """

    def __init__(self, channels: int, reduction: int = 8, *, fused: bool = False) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        self.fused = check_bool("fused", fused, owner)
        hidden = check_hidden_channels(channels, reduction, owner, what="the query/key convolutions")
        self.query_conv = nn.Conv2d(channels, hidden, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, hidden, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, fused={self.fused}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map of a validated x: (B, C, H, W) -> (B, N, N)."""
        query = rearrange(self.query_conv(x), "b c h w -> b (h w) c")  # (B, C', H, W) -> (B, N, C')
        key = rearrange(self.key_conv(x), "b c h w -> b c (h w)")  # (B, C', H, W) -> (B, C', N)
        energy = query @ key  # (B, N, C') @ (B, C', N) -> (B, N, N), energy[j, i] = C_j . B_i
        return energy.softmax(dim=-1)  # Eq. (1): each query's row sums to 1

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """s of Eq. (1): (B, C, H, W) -> (B, N, N), rows sum to 1."""
        check_feature_map(x, self._owner(), self.channels)
        return self._map(x)

    def forward(self, x: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """E = gamma * out + x, Eq. (2): (B, C, H, W) -> (B, C, H, W)."""
        _, c, h, w = check_feature_map(x, self._owner(), self.channels)
        fused = self.fused if fused is None else check_bool("fused", fused, self._owner())
        if fused:
            out = self._fused_out(x)
        else:
            attention = self._map(x)  # (B, N, N)
            value = rearrange(self.value_conv(x), "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
            out = value @ rearrange(attention, "b j i -> b i j")  # (B, C, N) @ (B, N, N) -> (B, C, N)
            out = rearrange(out, "b c (h w) -> b c h w", h=h, w=w)  # (B, C, N) -> (B, C, H, W)
        return self.gamma * out + x

    def _fused_out(self, x: torch.Tensor) -> torch.Tensor:
        """sum_i s_ji D_i through scaled_dot_product_attention: (B, C, H, W) -> (B, C, H, W)."""
        _, c, h, w = x.shape
        query = rearrange(self.query_conv(x), "b c h w -> b 1 (h w) c")  # (B, 1, N, C'), one head
        key = rearrange(self.key_conv(x), "b c h w -> b 1 (h w) c")  # (B, 1, N, C')
        value = rearrange(self.value_conv(x), "b c h w -> b 1 (h w) c")  # (B, 1, N, C)
        pad = c - query.shape[-1]
        if pad:  # zeros leave every dot product unchanged: (B, 1, N, C') -> (B, 1, N, C)
            query, key = F.pad(query, (0, pad)), F.pad(key, (0, pad))
        # The efficient kernels also need each row contiguous in memory (stride 1 over channels); the
        # rearranged views are not, and with them SDPA silently falls back to the N x N "math" path.
        query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
        # softmax(query @ key^T) @ value: (B, 1, N, C) x (B, 1, N, C) x (B, 1, N, C) -> (B, 1, N, C)
        out = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        return rearrange(out, "b 1 (h w) c -> b c h w", h=h, w=w)  # (B, 1, N, C) -> (B, C, H, W)


class ChannelAttention(nn.Module):
    """DANet channel attention module (CAM), Eqs. (3)-(4): attention among the C channel maps.

    Args:
        variant: ``"paper"``: x_ji = softmax_i(A_j . A_i), Eq. (3). ``"official"``: the official
            ``CAM_Module``, softmax over ``max_i(energy) - energy`` (see below).

    No channels argument: CAM has no projections, and its only parameter is ``gamma`` (the paper's
    beta, a scalar initialised to 0, named as in the official code), so it works for any C.

    ``attention(x)`` returns the (B, C, C) map, each row summing to 1; ``forward(x)`` returns
    ``gamma * (attention @ a) + x`` of shape (B, C, H, W), with a = x reshaped to (B, C, N).

    Deviations (the official ``max - energy`` line):
        The official code computes ``energy_new = max(energy, -1, keepdim=True) - energy`` and then
        ``softmax(energy_new, dim=-1)``. Softmax is unchanged by adding a constant to a whole row,
        so this equals ``softmax(-energy)``: it turns the attention towards the channels that are
        most *dissimilar* to channel j, the opposite of Eq. (3). It is not a numerical-stability
        shift: that would be ``energy - max`` (which PyTorch's softmax already does internally and
        which gives softmax(energy)). The issue has been raised repeatedly (DANet #9, #15, #48,
        #62, #106); in #48 the author says the form that reduces to softmax(energy) performed worse,
        and the reply quoted from #9 gives "prevent loss divergence during training" as the reason.
        ``variant="official"`` reproduces the code (use it with the official weights and numbers);
        the default ``"paper"`` follows Eq. (3). mmsegmentation's ``da_head.py`` keeps the official
        line too.
    """

    def __init__(self, *, variant: str = "paper") -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, CAM_VARIANTS, type(self).__name__)
        self.gamma = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(variant={self.variant!r})"

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map of a validated x: (B, C, H, W) -> (B, C, C)."""
        a = rearrange(x, "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        energy = a @ rearrange(a, "b c n -> b n c")  # (B, C, N) @ (B, N, C) -> (B, C, C)
        if self.variant == "official":
            # exactly the official line; equals softmax(-energy) row by row
            energy = energy.amax(dim=-1, keepdim=True) - energy  # (B, C, 1) - (B, C, C) -> (B, C, C)
        return energy.softmax(dim=-1)  # Eq. (3): each row j sums to 1

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x of Eq. (3): (B, C, H, W) -> (B, C, C), rows sum to 1."""
        check_feature_map(x, self._owner())
        return self._map(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E = gamma * out + x, Eq. (4): (B, C, H, W) -> (B, C, H, W)."""
        _, _, h, w = check_feature_map(x, self._owner())
        attention = self._map(x)  # (B, C, C)
        a = rearrange(x, "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        out = attention @ a  # (B, C, C) @ (B, C, N) -> (B, C, N)
        out = rearrange(out, "b c (h w) -> b c h w", h=h, w=w)  # (B, C, N) -> (B, C, H, W)
        return self.gamma * out + x


class DualAttention(nn.Module):
    """PAM and CAM side by side on one feature map: ``pam(x) + cam(x) - x``.

    Args:
        channels: C. reduction: PAM's r (C // r >= 1). cam_variant: CAM's ``variant``.
        fused: PAM's ``fused`` option.

    Both branches carry their own residual ``+ x``; subtracting one ``x`` counts the residual once:
    ``x + alpha * PAM_out + beta * CAM_out``. With alpha = beta = 0 at initialisation the module is
    the identity. ``attention(x)`` returns ``(pam_map (B, N, N), cam_map (B, C, C))``.

    Deviations:
        * This is the course's (B, C, H, W) -> (B, C, H, W) form of the paper's fusion, so it can be
          dropped into a backbone like SE or CBAM. The paper and :class:`DualAttentionHead` run the
          two modules on separate reduced features, pass each through a conv-BN-ReLU and sum those
          (Sec. 3.4); here both branches see the same x and there are no extra convolutions.
    """

    def __init__(
        self, channels: int, reduction: int = 8, *, cam_variant: str = "paper", fused: bool = False
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        check_positive_int("reduction", reduction, owner)
        check_hidden_channels(channels, reduction, owner, what="PAM's query/key convolutions")
        check_choice("cam_variant", cam_variant, CAM_VARIANTS, owner)
        check_bool("fused", fused, owner)
        self.pam = PositionAttention(channels, reduction, fused=fused)
        self.cam = ChannelAttention(variant=cam_variant)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(PAM map (B, N, N), CAM map (B, C, C))."""
        check_feature_map(x, self._owner(), self.channels)
        return self.pam.attention(x), self.cam.attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + alpha * PAM_out + beta * CAM_out: (B, C, H, W) -> (B, C, H, W)."""
        check_feature_map(x, self._owner(), self.channels)
        return self.pam(x) + self.cam(x) - x


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (no bias, padding 1) -> BatchNorm2d -> ReLU, the official head's building block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def _classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    """Dropout2d(0.1) -> 1x1 conv with bias, the official head's classifier."""
    return nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(in_channels, num_classes, kernel_size=1))


class DualAttentionHead(nn.Module):
    """The DANet segmentation head (official ``DANetHead``): a PAM branch and a CAM branch, summed.

    Args:
        in_channels: C_in, the backbone's channels (2048 for ResNet); the branches work at
            C' = C_in // 4 channels, which must be >= 8 so that PAM's C' // 8 >= 1.
        num_classes: the number of output classes.
        cam_variant: CAM's ``variant`` (``"paper"`` or ``"official"``).
        fused: PAM's ``fused`` option.

    Layout (official names): ``conv5a`` -> ``pam`` -> ``conv51`` and ``conv5c`` -> ``cam`` ->
    ``conv52`` (each conv a 3x3 conv without bias, BN, ReLU); ``conv8`` (Dropout2d(0.1), 1x1 conv)
    classifies the sum of the two branches; ``conv6`` and ``conv7`` classify each branch alone.

    * ``forward(x)`` -> fused logits (B, num_classes, H, W) at the input's resolution.
    * ``forward(x, return_branches=True)`` -> ``(fused, pam_logits, cam_logits)``, like the official
      head's three outputs (mmsegmentation puts a loss on all three).
    * ``attention(x)`` -> ``(pam_map (B, N, N), cam_map (B, C', C'))`` on the reduced features.

    Deviations:
        * The official head returns the three outputs always and ``DANet`` upsamples them with the
          deprecated ``F.upsample``; here the head returns logits at feature resolution (upsampling
          is the caller's) and computes ``conv6``/``conv7`` only with ``return_branches=True``. Their
          parameters therefore get no gradient from ``forward(x)`` alone.
        * The official head takes a ``norm_layer`` (BatchNorm or SyncBatchNorm); here it is
          ``nn.BatchNorm2d`` (convert with ``nn.SyncBatchNorm.convert_sync_batchnorm``).
        * PAM and CAM deviations: see :class:`PositionAttention` and :class:`ChannelAttention`.
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, cam_variant: str = "paper", fused: bool = False
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int("in_channels", in_channels, owner)
        self.num_classes = check_positive_int("num_classes", num_classes, owner)
        inter = in_channels // 4
        if inter < 8:
            raise ValueError(
                f"{owner}: in_channels // 4 = {in_channels} // 4 = {inter} inner channels, but PAM needs "
                f"at least 8 (its query/key width is inner // 8); use in_channels >= 32, got {in_channels}"
            )
        check_choice("cam_variant", cam_variant, CAM_VARIANTS, owner)
        check_bool("fused", fused, owner)
        self.inter_channels = inter
        self.conv5a = _conv_bn_relu(in_channels, inter)
        self.conv5c = _conv_bn_relu(in_channels, inter)
        self.pam = PositionAttention(inter, fused=fused)
        self.cam = ChannelAttention(variant=cam_variant)
        self.conv51 = _conv_bn_relu(inter, inter)
        self.conv52 = _conv_bn_relu(inter, inter)
        self.conv6 = _classifier(inter, num_classes)
        self.conv7 = _classifier(inter, num_classes)
        self.conv8 = _classifier(inter, num_classes)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(in_channels={self.in_channels})"

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(PAM map (B, N, N) on conv5a(x), CAM map (B, C', C') on conv5c(x))."""
        check_feature_map(x, self._owner(), self.in_channels)
        return self.pam.attention(self.conv5a(x)), self.cam.attention(self.conv5c(x))

    def forward(
        self, x: torch.Tensor, return_branches: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W) -> logits (B, num_classes, H, W), or (fused, pam, cam) logits."""
        check_feature_map(x, self._owner(), self.in_channels)
        check_bool("return_branches", return_branches, self._owner())
        pam_feat = self.conv51(self.pam(self.conv5a(x)))  # (B, C_in, H, W) -> (B, C', H, W)
        cam_feat = self.conv52(self.cam(self.conv5c(x)))  # (B, C_in, H, W) -> (B, C', H, W)
        logits = self.conv8(pam_feat + cam_feat)  # (B, C', H, W) -> (B, num_classes, H, W)
        if not return_branches:
            return logits
        return logits, self.conv6(pam_feat), self.conv7(cam_feat)
