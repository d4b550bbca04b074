"""The Non-local, GCNet, ECA and Coordinate Attention formulas, written a second time, in float64.

Like ``reference_formulas.py``: nothing here imports ``course_lib``, ``torch.nn`` or
``torch.nn.functional``. Products are ``torch.einsum``; softmax, max pooling, batch and layer
normalisation, the 1-D convolution and h_swish are spelled out. Every function takes the parameters
as plain tensors that a test reads out of the module under test, so the two computations share only
the numbers.

Shapes: x is (B, C, H, W); N = H * W, pixels flattened row-major (n = h * W + w). 1x1 convolution
weights are passed as (C_out, C_in) matrices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def f64(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().to("cpu", torch.float64)


def sigmoid(z: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-z))


def softmax_rows(e: Tensor) -> Tensor:
    """exp(e_ij) / sum_k exp(e_ik) over the last index."""
    num = torch.exp(e - e.max(dim=-1, keepdim=True).values)
    return num / num.sum(dim=-1, keepdim=True)


def conv1x1(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """y[b, o, h, w] = sum_c W[o, c] x[b, c, h, w] + bias[o]."""
    y = torch.einsum("oc,bchw->bohw", weight, x)
    return y if bias is None else y + bias[None, :, None, None]


def max_pool_2x2(x: Tensor) -> Tensor:
    """Max over each 2 x 2 block (stride 2, a trailing odd row/column dropped), by comparing the four."""
    h2, w2 = x.shape[2] // 2, x.shape[3] // 2
    x = x[:, :, : 2 * h2, : 2 * w2]
    corners = [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
    out = corners[0]
    for c in corners[1:]:
        out = torch.where(c > out, c, out)
    return out


@dataclass
class BN:
    """A BatchNorm's numbers: affine (gamma, beta), running statistics, eps."""

    gamma: Tensor
    beta: Tensor
    mean: Tensor
    var: Tensor
    eps: float


def batch_norm(v: Tensor, bn: BN, *, train: bool) -> Tensor:
    """Per channel (dim 1): eval uses the running statistics, train the batch's (biased variance)."""
    if train:
        dims = [d for d in range(v.dim()) if d != 1]
        mean = v.mean(dims)
        var = ((v - mean.reshape(1, -1, *[1] * (v.dim() - 2))) ** 2).mean(dims)
    else:
        mean, var = bn.mean, bn.var
    shape = (1, -1, *[1] * (v.dim() - 2))
    return (v - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + bn.eps) * bn.gamma.reshape(shape) + bn.beta.reshape(shape)


def flat(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, N, C), row-major pixels."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h * w).transpose(1, 2)


# --------------------------------------------------------------------------------------------------
# Non-local, Eqs. (1)-(4), (6)
# --------------------------------------------------------------------------------------------------


@dataclass
class NonLocalParams:
    theta: tuple[Tensor, Tensor] | None  # (W, b) or None (Gaussian)
    phi: tuple[Tensor, Tensor] | None
    g: tuple[Tensor, Tensor]
    w_z: tuple[Tensor, Tensor]
    bn: BN | None
    pairwise: str
    sub_sample: bool
    pool_first: bool
    scale: float


def nonlocal_parts(x: Tensor, p: NonLocalParams) -> tuple[Tensor, Tensor]:
    """(map (B, N, N'), y (B, N, C')) of Eq. (1)."""
    source = max_pool_2x2(x) if p.sub_sample and p.pool_first else x
    if p.theta is None:
        q, k = x, source
    else:
        q, k = conv1x1(x, *p.theta), conv1x1(source, *p.phi)
    v = conv1x1(source, *p.g)
    if p.sub_sample and not p.pool_first:
        k, v = max_pool_2x2(k), max_pool_2x2(v)
    q, k, v = flat(q), flat(k), flat(v)  # (B, N, Cq), (B, N', Cq), (B, N', C')
    f = p.scale * torch.einsum("bic,bjc->bij", q, k)
    if p.pairwise == "dot_product":
        att = f / k.shape[1]  # C(x) = N'
    else:
        att = softmax_rows(f)  # e^f / sum_j e^f
    y = torch.einsum("bij,bjc->bic", att, v)
    return att, y


def nonlocal_block(x: Tensor, p: NonLocalParams, *, train: bool = False) -> Tensor:
    """z = BN(W_z y) + x, Eq. (6)."""
    b, c, h, w = x.shape
    _, y = nonlocal_parts(x, p)
    y = y.transpose(1, 2).reshape(b, -1, h, w)
    z = conv1x1(y, *p.w_z)
    if p.bn is not None:
        z = batch_norm(z, p.bn, train=train)
    return z + x


# --------------------------------------------------------------------------------------------------
# GCNet: context modelling, transform, fusion
# --------------------------------------------------------------------------------------------------


@dataclass
class GCTransform:
    w1: Tensor
    b1: Tensor
    ln_gamma: Tensor
    ln_beta: Tensor
    ln_eps: float
    w2: Tensor
    b2: Tensor


def gc_alpha(x: Tensor, mask: tuple[Tensor, Tensor] | None) -> Tensor:
    """(B, N) pooling weights: softmax over positions of W_k x_j + b_k, or 1/N for average pooling."""
    b, c, h, w = x.shape
    if mask is None:
        return torch.full((b, h * w), 1.0 / (h * w), dtype=x.dtype)
    wk, bk = mask  # (1, C), (1,)
    logits = torch.einsum("c,bnc->bn", wk[0], flat(x)) + bk[0]
    return softmax_rows(logits)


def gc_transform(context: Tensor, t: GCTransform) -> Tensor:
    """(B, C) -> (B, C): W2 ReLU(LN(W1 c + b1)) + b2, LN over the C' entries (biased variance)."""
    u = torch.einsum("oc,bc->bo", t.w1, context) + t.b1
    mean = u.mean(1, keepdim=True)
    var = ((u - mean) ** 2).mean(1, keepdim=True)
    u = (u - mean) / torch.sqrt(var + t.ln_eps) * t.ln_gamma + t.ln_beta
    u = torch.where(u > 0, u, torch.zeros_like(u))
    return torch.einsum("oc,bc->bo", t.w2, u) + t.b2


def gc_block(x: Tensor, mask, add: GCTransform | None, mul: GCTransform | None) -> Tensor:
    alpha = gc_alpha(x, mask)  # (B, N)
    context = torch.einsum("bn,bnc->bc", alpha, flat(x))  # sum_j alpha_j x_j
    out = x
    if mul is not None:
        out = out * sigmoid(gc_transform(context, mul))[:, :, None, None]
    if add is not None:
        out = out + gc_transform(context, add)[:, :, None, None]
    return out


# --------------------------------------------------------------------------------------------------
# ECA, Eqs. (9) and (12)
# --------------------------------------------------------------------------------------------------


def eca_kernel_size_by_listing(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """The paper's Fig. 3 listing, by hand: the largest integer t <= |(log2 C + b) / gamma|, odd-ified up."""
    import math

    value = abs((math.log2(channels) + b) / gamma)
    t = 0
    while t + 1 <= value:
        t += 1
    return t if t % 2 == 1 else t + 1


def eca_gate(x: Tensor, weight: Tensor) -> Tensor:
    """(B, C) gate: omega_c = sigmoid(sum_j w_j y_{c + j - (k - 1)/2}), zero outside [0, C)."""
    b, c, _, _ = x.shape
    y = x.mean((2, 3))  # (B, C)
    k = weight.numel()
    half = (k - 1) // 2
    z = torch.zeros(b, c, dtype=x.dtype)
    for j in range(k):
        shift = j - half
        for ch in range(c):
            src = ch + shift
            if 0 <= src < c:
                z[:, ch] += weight[j] * y[:, src]
    return sigmoid(z)


# --------------------------------------------------------------------------------------------------
# Coordinate Attention, Eqs. (3)-(8)
# --------------------------------------------------------------------------------------------------


def h_swish(v: Tensor) -> Tensor:
    """v * ReLU6(v + 3) / 6."""
    r6 = torch.clamp(v + 3.0, min=0.0, max=6.0)
    return v * r6 / 6.0


def coord_gates(x: Tensor, conv1, bn: BN, conv_h, conv_w, *, train: bool = False) -> tuple[Tensor, Tensor]:
    """(g^h (B, C, H), g^w (B, C, W)). In training mode BN's statistics are taken over the H + W
    pooled values of every image together (they are concatenated before the BN)."""
    z_h = x.mean(3)  # (B, C, H): mean over the width, Eq. (3)
    z_w = x.mean(2)  # (B, C, W): mean over the height, Eq. (4)
    w1, b1 = conv1
    u = torch.einsum("mc,bcl->bml", w1, torch.cat([z_h, z_w], dim=2))  # (B, M, H + W)
    if b1 is not None:
        u = u + b1[None, :, None]
    f = h_swish(batch_norm(u, bn, train=train))  # Eq. (5)
    h = x.shape[2]
    f_h, f_w = f[:, :, :h], f[:, :, h:]
    wh, bh = conv_h
    ww, bw = conv_w
    a_h = torch.einsum("cm,bml->bcl", wh, f_h)
    a_w = torch.einsum("cm,bml->bcl", ww, f_w)
    if bh is not None:
        a_h, a_w = a_h + bh[None, :, None], a_w + bw[None, :, None]
    return sigmoid(a_h), sigmoid(a_w)  # Eqs. (6)-(7)


def coord_attention(x: Tensor, *params, train: bool = False) -> Tensor:
    """y_c(i, j) = x_c(i, j) g^h_c(i) g^w_c(j), Eq. (8)."""
    g_h, g_w = coord_gates(x, *params, train=train)
    return x * g_h[:, :, :, None] * g_w[:, :, None, :]
