r"""The non-local block (Non-local Neural Networks): reference module.

Paper
    Xiaolong Wang, Ross Girshick, Abhinav Gupta, Kaiming He. "Non-local Neural Networks". IEEE/CVF
    Conference on Computer Vision and Pattern Recognition (CVPR), 2018, pp. 7794-7803.
    arXiv:1711.07971.
Official code
    facebookresearch/video-nonlocal-net (Caffe2), ``lib/models/nonlocal_helper.py``
    (``spacetime_nonlocal``), defaults in ``lib/core/config.py``. A widely used PyTorch port:
    AlexHex7/Non-local_pytorch (``lib/non_local_*.py``).

Equations (paper numbering; x_i is the feature vector at position i, j runs over all positions)

    (1) y_i = \frac{1}{C(x)} \sum_{\forall j} f(x_i, x_j) g(x_j),       g(x_j) = W_g x_j
    (2) Gaussian:           f = e^{x_i^T x_j},                        C(x) = \sum_j f(x_i, x_j)
    (3) embedded Gaussian:  f = e^{\theta(x_i)^T \phi(x_j)},          C(x) = \sum_j f(x_i, x_j)
                            \theta(x_i) = W_\theta x_i, \phi(x_j) = W_\phi x_j
    (4) dot product:        f = \theta(x_i)^T \phi(x_j),              C(x) = N
    (5) concatenation:      f = ReLU(w_f^T [\theta(x_i), \phi(x_j)]), C(x) = N     (not implemented)
    (6) z_i = W_z y_i + x_i

    With (2) or (3), 1/C(x) and the exponential are a softmax over j: Sec. 3.2 writes the embedded
    Gaussian block as y = softmax(x^T W_\theta^T W_\phi x) g(x), "the self-attention form".
    Sec. 3.3: W_g, W_\theta, W_\phi have half the channels of x (the bottleneck); subsampling adds a
    max pooling after \phi and g, so the sum over j runs over the pooled positions \hat{x}_j:
    y_i = 1/C(\hat x) \sum_j f(x_i, \hat x_j) g(\hat x_j). Sec. 4.1: one BatchNorm right after W_z,
    its scale initialised to zero, so the whole block starts as the identity.

Shape glossary
    B  batch size      C  channels      H, W  height and width      N = H * W
    C' = C // r        the bottleneck (r = ``reduction`` = 2); C for the Gaussian's \theta, \phi
    N'                 key positions: N, or floor(H / 2) * floor(W / 2) with ``sub_sample``

    query = \theta(x)                    (B, C', H, W) -> (B, N, C')
    key   = \phi(x) [max-pooled]         (B, C', H', W') -> (B, C', N')
    value = g(x) [max-pooled]            (B, C', H', W') -> (B, N', C')
    f = query @ key                      (B, N, C') @ (B, C', N') -> (B, N, N')
    map = softmax_j(f) or f / N'         (B, N, N')           ``attention(x)``
    y = map @ value                      (B, N, N') @ (B, N', C') -> (B, N, C') -> (B, C', H, W)
    z = BN(W_z y) + x                    (B, C', H, W) -> (B, C, H, W)   ``forward(x)``, Eq. (6)

Memory: the map is N x N' per image, 9.8 M floats (39 MB in float32) at 56 x 56 without
subsampling. ``fused=True`` computes the same output without storing it (see the class).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_lib.reference._validate import (
    check_batch_norm_values,
    check_bool,
    check_choice,
    check_feature_map,
    check_hidden_channels,
    check_positive_int,
    describe,
)

__all__ = ["NonLocalBlock"]

PAIRWISE = ("embedded_gaussian", "dot_product", "gaussian")
INITS = ("msra", "official")
#: the official code's ``NONLOCAL.CONV_INIT_STD`` (video-nonlocal-net, ``lib/core/config.py``)
OFFICIAL_INIT_STD = 0.01


class NonLocalBlock(nn.Module):
    """The 2-D non-local block, Eqs. (1)-(4) and (6): every position reads a weighted sum of all others.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r; theta, phi and g have C // r channels, which must be >= 1 (paper: 2).
        pairwise: f of Eq. (1): ``"embedded_gaussian"`` (Eq. (3), the paper's default),
            ``"dot_product"`` (Eq. (4)) or ``"gaussian"`` (Eq. (2): no theta and phi, the raw
            features are compared; only g is learned).
        inter_channels: set C' directly (overrides ``reduction``), e.g. to copy timm's
            ``NonLocalAttn``, whose bottleneck is C / 8 rounded to a multiple of 8.
        sub_sample: max-pool (2 x 2, stride 2) the keys and values, Sec. 3.3: N' = N / 4.
        pool_first: where that pool sits. ``False`` (paper, AlexHex7): after the phi and g
            convolutions. ``True`` (official Caffe2 code): on the block's input, before them
            (cheaper; not the same function, a 1x1 conv and a max-pool do not commute).
        batch_norm: BatchNorm2d after W_z with zero scale and shift (Sec. 4.1), the default. Without
            it, W_z's weight and bias are zero instead (with ``init="msra"``). Either way the block
            starts as the identity.
        scale: a factor on theta^T phi before the softmax of the two Gaussian forms. The paper has none
            (1.0); the official code multiplies by C'**-0.5 (``USE_SCALE``), timm's ``NonLocalAttn`` by
            C**-0.5. The dot-product form refuses any other value than 1: the official code applies
            its scale only inside its softmax branch (video-nonlocal-net, ``lib/models/nonlocal_helper.py``
            lines 84-91) and divides the dot product by N' alone (lines 92-101); AlexHex7's port scales
            neither form (``lib/non_local_embedded_gaussian.py`` lines 85-86,
            ``lib/non_local_dot_product.py`` lines 78-80).
        init: ``"msra"`` (default, Sec. 4.1's "the method in [20]"): theta, phi, g He-normal (fan_in)
            with zero bias, W_z PyTorch's default with BN, zero without. ``"official"``: the Caffe2
            code's initialisation, every convolution (theta, phi, g and W_z) Gaussian with std 0.01 and
            zero bias (``nonlocal_helper.py`` lines 32-33, 54-55, 64-65 and 122-125,
            ``NONLOCAL.CONV_INIT_STD = 0.01`` in ``lib/core/config.py`` line 198). The BN scale and
            shift are zero in both (``BN_INIT_GAMMA = 0.0``, config line 209), so with BN the block
            starts as the identity; without BN the official W_z is not zero
            (``USE_ZERO_INIT_CONV = False``) and the block does not.
        fused: compute ``forward`` without storing the (B, N, N') map (see Deviations); same result.
            ``forward(x, fused=...)`` overrides it for one call.

    Submodules: ``theta``, ``phi`` (absent, None, for ``"gaussian"``), ``g``, ``w_z`` (1x1
    convolutions with bias), ``bn`` (or None) and ``pool`` (``MaxPool2d(2)`` or None). theta, phi
    and g are He-normal (fan_in) with zero bias, "the method in [20]" of Sec. 4.1.

    ``attention(x)`` returns the (B, N, N') map: row i holds the weights query position i gives to
    every key position j (rows sum to 1 for the two Gaussian forms; entries are f / N' for the dot
    product). ``forward(x)`` returns z of Eq. (6), shape (B, C, H, W).

    Deviations:
        * Paper-faithful by default: no scaling, pool after phi and g, embedded Gaussian. The official
          code's choices (``scale=C' ** -0.5``, ``pool_first=True``, ``sub_sample=True``,
          ``init="official"``: Gaussian std 0.01 rather than MSRA) are options.
        * The concatenation form, Eq. (5), is left out: it builds a (B, 2C', N, N') tensor.
        * The official code's dot-product form stops the gradient through its 1 / N'; here N' is a
          constant anyway, so nothing differs.
        * ``fused=True``: the Gaussian forms go through ``torch.nn.functional.scaled_dot_product_attention``
          (one head; for ``"gaussian"``, whose queries and keys have C channels, the values are
          zero-padded from C' to C so that the efficient kernels apply, and the padding is dropped
          after). The dot product needs no softmax, so it is regrouped:
          (theta phi^T) g / N' = theta (phi^T g) / N', a (C' x C') product instead of an N x N' map.
          Both agree with the literal path to rounding (tests/test_reference_nonlocal_gcnet.py).
        * timm's ``NonLocalAttn``: embedded Gaussian only, C' = C / 8 (multiple of 8), scale
          C**-0.5, no subsampling, BN weight and bias zero; names ``t``, ``p``, ``g``, ``z``, ``norm``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        *,
        pairwise: str = "embedded_gaussian",
        inter_channels: int | None = None,
        sub_sample: bool = False,
        pool_first: bool = False,
        batch_norm: bool = True,
        scale: float = 1.0,
        fused: bool = False,
        init: str = "msra",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        self.pairwise = check_choice("pairwise", pairwise, PAIRWISE, owner)
        self.sub_sample = check_bool("sub_sample", sub_sample, owner)
        self.pool_first = check_bool("pool_first", pool_first, owner)
        check_bool("batch_norm", batch_norm, owner)
        self.fused = check_bool("fused", fused, owner)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"{owner}: scale must be a positive finite number; got {describe(scale)}")
        if pairwise == "dot_product" and scale != 1:
            raise ValueError(
                f"{owner}: scale multiplies theta^T phi before the softmax of the Gaussian forms; the dot-product "
                f"form has none (the official code divides it by N' only), so scale must be 1 with "
                f"pairwise='dot_product'; got scale={scale!r}"
            )
        self.scale = float(scale)
        self.init = check_choice("init", init, INITS, owner)
        if inter_channels is None:
            inter = check_hidden_channels(channels, reduction, owner, what="theta, phi and g")
        else:
            inter = check_positive_int("inter_channels", inter_channels, owner)
        self.inter_channels = inter
        gaussian = pairwise == "gaussian"
        self.theta = None if gaussian else nn.Conv2d(channels, inter, kernel_size=1)
        self.phi = None if gaussian else nn.Conv2d(channels, inter, kernel_size=1)
        self.g = nn.Conv2d(channels, inter, kernel_size=1)
        self.w_z = nn.Conv2d(inter, channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(channels) if batch_norm else None
        self.pool = nn.MaxPool2d(2) if sub_sample else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``init="msra"``: He-normal theta, phi, g (zero bias); zero BN scale and shift (or a zero W_z
        without BN). ``init="official"``: theta, phi, g and W_z Gaussian std 0.01, zero biases; zero BN
        scale and shift."""
        if self.init == "official":
            for conv in (self.theta, self.phi, self.g, self.w_z):
                if conv is not None:
                    nn.init.normal_(conv.weight, std=OFFICIAL_INIT_STD)
                    nn.init.zeros_(conv.bias)
            if self.bn is not None:
                nn.init.zeros_(self.bn.weight)
                nn.init.zeros_(self.bn.bias)
            return
        for conv in (self.theta, self.phi, self.g):
            if conv is not None:
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        if self.bn is not None:
            nn.init.zeros_(self.bn.weight)
            nn.init.zeros_(self.bn.bias)
        else:
            nn.init.zeros_(self.w_z.weight)
            nn.init.zeros_(self.w_z.bias)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, inter_channels={self.inter_channels}, pairwise={self.pairwise!r}, "
                f"sub_sample={self.sub_sample}, pool_first={self.pool_first}, scale={self.scale:g}, "
                f"fused={self.fused}, init={self.init!r}")

    def _owner(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"

    def _check(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        b, c, h, w = check_feature_map(x, self._owner(), self.channels, module=self)
        if self.sub_sample and (h < 2 or w < 2):
            raise ValueError(
                f"{self._owner()} with sub_sample=True max-pools the keys 2 x 2, so it needs H, W >= 2; "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if self.bn is not None:
            check_batch_norm_values(self.bn, b * h * w, self._owner(), "W_z's output (B * H * W values per channel)")
        return b, c, h, w

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """query (B, N, Cq), key (B, N', Cq), value (B, N', C') of a validated x (Cq = C' or C)."""
        source = self.pool(x) if self.sub_sample and self.pool_first else x  # (B, C, H', W') if pooled
        if self.theta is None:  # Gaussian, Eq. (2): compare the raw features
            query, key = x, source
        else:
            query, key = self.theta(x), self.phi(source)  # (B, C', H, W), (B, C', H', W')
        value = self.g(source)  # (B, C', H', W')
        if self.sub_sample and not self.pool_first:  # the paper: max-pool after phi and g
            key, value = self.pool(key), self.pool(value)
        query = rearrange(query, "b c h w -> b (h w) c")  # (B, N, Cq)
        key = rearrange(key, "b c h w -> b (h w) c")  # (B, N', Cq)
        value = rearrange(value, "b c h w -> b (h w) c")  # (B, N', C')
        return query, key, value

    def _map(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        f = query @ rearrange(key, "b n c -> b c n")  # (B, N, Cq) @ (B, Cq, N') -> (B, N, N')
        if self.pairwise == "dot_product":
            return f / key.shape[1]  # Eq. (4): C(x) = N' (no scale, as in the official code)
        return (self.scale * f).softmax(dim=-1)  # Eqs. (2)-(3): normalise over the keys j

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """f(x_i, x_j) / C(x) of Eq. (1): (B, C, H, W) -> (B, N, N')."""
        self._check(x)
        query, key, _ = self._project(x)
        return self._map(query, key)

    def forward(self, x: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """z = BN(W_z y) + x, Eq. (6): (B, C, H, W) -> (B, C, H, W)."""
        _, _, h, w = self._check(x)
        fused = self.fused if fused is None else check_bool("fused", fused, self._owner())
        query, key, value = self._project(x)
        if not fused:
            y = self._map(query, key) @ value  # Eq. (1): (B, N, N') @ (B, N', C') -> (B, N, C')
        elif self.pairwise == "dot_product":
            # (theta phi^T) g / N' regrouped as theta (phi^T g) / N': no (N, N') map is formed
            kv = rearrange(key, "b n c -> b c n") @ value  # (B, Cq, N') @ (B, N', C') -> (B, Cq, C')
            y = (query @ kv) / key.shape[1]  # (B, N, Cq) @ (B, Cq, C') -> (B, N, C')
        else:
            y = self._fused_softmax(query, key, value)
        y = rearrange(y, "b (h w) c -> b c h w", h=h, w=w)  # (B, N, C') -> (B, C', H, W)
        z = self.w_z(y)  # (B, C', H, W) -> (B, C, H, W)
        if self.bn is not None:
            z = self.bn(z)
        return z + x  # Eq. (6)

    def _fused_softmax(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """softmax(scale * query key^T) value through SDPA, one head: -> (B, N, C')."""
        c_value = value.shape[-1]
        pad = query.shape[-1] - c_value
        if pad:  # Gaussian: queries and keys have C channels, values C'; zero columns stay zero
            value = F.pad(value, (0, pad))  # (B, N', C') -> (B, N', C)
        # one head, rows contiguous, so that SDPA can pick a kernel that never stores the map
        q, k, v = (t.unsqueeze(1).contiguous() for t in (query, key, value))  # (B, 1, n, c)
        y = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, 1, N, Cv)
        return y[:, 0, :, :c_value]  # (B, 1, N, Cv) -> (B, N, C')
