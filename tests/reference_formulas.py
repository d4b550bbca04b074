"""The papers' formulas, written a second time, independently of ``course_lib``, in float64.

Nothing here imports ``course_lib``, and the formulas call neither ``torch.nn`` nor
``torch.nn.functional``: convolution, batch norm, bilinear resizing and sampling are spelled out with explicit loops over kernel offsets or
pixels and ``torch.einsum``. Every function takes the module's parameters as plain tensors, so a test
reads them out of the module under test (by attribute) and the two computations share only the numbers.

Shapes: x is (B, C, H, W); N = H * W with pixels flattened row-major (index n = h * W + w).
Weights of 1x1 convolutions are passed as (C_out, C_in) matrices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------------------


def f64(t: Tensor | None) -> Tensor | None:
    """Detached float64 copy on the CPU (None passes through)."""
    return None if t is None else t.detach().to("cpu", torch.float64)


def sigmoid(z: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-z))


def relu(z: Tensor) -> Tensor:
    return torch.where(z > 0, z, torch.zeros_like(z))


def softmax_last(e: Tensor) -> Tensor:
    """exp(e_ij) / sum_k exp(e_ik): each row (last index) is normalised."""
    shifted = e - e.max(dim=-1, keepdim=True).values
    num = torch.exp(shifted)
    return num / num.sum(dim=-1, keepdim=True)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, stride: int = 1, padding: int = 0) -> Tensor:
    """Cross-correlation as a sum over kernel offsets: y[o] = b[o] + sum_{c,i,j} w[o,c,i,j] x_pad[c, s*h+i, s*w+j]."""
    b, c, h, w = x.shape
    c_out, c_in, kh, kw = weight.shape
    if c_in != c:
        raise ValueError(f"conv2d: weight expects {c_in} input channels, got {c}")
    padded = torch.zeros(b, c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (w + 2 * padding - kw) // stride + 1
    out = torch.zeros(b, c_out, h_out, w_out, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i : i + stride * (h_out - 1) + 1 : stride, j : j + stride * (w_out - 1) + 1 : stride]
            out = out + torch.einsum("bchw,oc->bohw", patch, weight[:, :, i, j])
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """1x1 convolution with a (C_out, C_in) matrix, on (B, C, H, W) or on (B, C) vectors."""
    if x.dim() == 2:
        out = torch.einsum("bc,oc->bo", x, weight)
        return out if bias is None else out + bias[None, :]
    out = torch.einsum("bchw,oc->bohw", x, weight)
    return out if bias is None else out + bias[None, :, None, None]


@dataclass
class BatchNorm:
    """BatchNorm2d parameters as plain tensors. ``mean``/``var`` None means: use the batch statistics."""

    weight: Tensor
    bias: Tensor
    mean: Tensor | None
    var: Tensor | None
    eps: float = 1e-5

    def __call__(self, x: Tensor) -> Tensor:
        # x: (B, C, H, W) or (B, C); statistics per channel over every other axis.
        axes = [0] + list(range(2, x.dim()))
        if self.mean is None:
            count = x.numel() // x.shape[1]
            mean = x.sum(dim=axes) / count
            centred = x - _expand(mean, x)
            var = (centred * centred).sum(dim=axes) / count  # biased, as BatchNorm normalises
        else:
            mean, var = self.mean, self.var
        normed = (x - _expand(mean, x)) / torch.sqrt(_expand(var, x) + self.eps)
        return normed * _expand(self.weight, x) + _expand(self.bias, x)


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape([1, -1] + [1] * (like.dim() - 2))


def identity(x: Tensor) -> Tensor:
    return x


def align_corners_matrix(n_out: int, n_in: int) -> Tensor:
    """(n_out, n_in) linear-interpolation weights, align_corners=True: output i sits at i*(n_in-1)/(n_out-1)."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = 0.0 if n_out == 1 else i * (n_in - 1) / (n_out - 1)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def resize_bilinear_align_corners(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Separable bilinear resize of (B, C, h, w) to (B, C, H, W) with corner pixels aligned."""
    ry = align_corners_matrix(size[0], x.shape[2])
    rx = align_corners_matrix(size[1], x.shape[3])
    return torch.einsum("Yh,bchw,Xw->bcYX", ry, x, rx)


def sample_bilinear(x: Tensor, xs: Tensor, ys: Tensor, *, align_corners: bool) -> Tensor:
    """Read x (B, C, H, W) at normalised points (xs, ys) of shape (B, h, w), zero outside the image.

    Normalised -1 and +1 are the centres of the corner pixels (align_corners=True) or the outer
    edges of the corner pixels (align_corners=False). One pixel at a time, written for clarity.
    """
    b, c, h, w = x.shape
    out = torch.zeros(b, c, *xs.shape[1:], dtype=x.dtype)
    for n in range(b):
        for i in range(xs.shape[1]):
            for j in range(xs.shape[2]):
                u, v = float(xs[n, i, j]), float(ys[n, i, j])
                if align_corners:
                    px, py = (u + 1) / 2 * (w - 1), (v + 1) / 2 * (h - 1)
                else:
                    px, py = ((u + 1) * w - 1) / 2, ((v + 1) * h - 1) / 2
                x0, y0 = math.floor(px), math.floor(py)
                for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                    for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                        if 0 <= yy < h and 0 <= xx < w:
                            out[n, :, i, j] += wy * wx * x[n, :, yy, xx]
    return out


# --------------------------------------------------------------------------------------------------
# SE (Hu et al., CVPR 2018): s = sigma(W2 delta(W1 GAP(x))), y = x * s
# --------------------------------------------------------------------------------------------------


def se_attention(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
    z = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])  # (B, C)
    s = sigmoid(pointwise(relu(pointwise(z, w1, b1)), w2, b2))  # (B, C)
    return s[:, :, None, None]


def se_forward(x: Tensor, *params: Tensor | None) -> Tensor:
    return x * se_attention(x, *params)


# --------------------------------------------------------------------------------------------------
# CBAM (Woo et al., ECCV 2018)
#   M_c(F) = sigma(MLP(AvgPool(F)) + MLP(MaxPool(F)))       one MLP shared by both descriptors
#   M_s(F) = sigma(f^{k x k}([AvgPool_c(F); MaxPool_c(F)]))  (official code: [max; mean] and a BN)
#   F' = M_c(F) * F,  F'' = M_s(F') * F'
# --------------------------------------------------------------------------------------------------


def cbam_channel_attention(x: Tensor, w0: Tensor, b0: Tensor | None, w1: Tensor, b1: Tensor | None) -> Tensor:
    def mlp(v: Tensor) -> Tensor:
        return pointwise(relu(pointwise(v, w0, b0)), w1, b1)

    avg = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
    mx = x.flatten(2).max(dim=2).values
    return sigmoid(mlp(avg) + mlp(mx))[:, :, None, None]


def channel_pools(x: Tensor, order: str) -> Tensor:
    """(B, 2, H, W): the cross-channel mean and max, stacked in ``order`` ("avg_max" or "max_avg")."""
    avg = x.sum(dim=1, keepdim=True) / x.shape[1]
    mx = x.max(dim=1, keepdim=True).values
    pair = {"avg_max": (avg, mx), "max_avg": (mx, avg)}[order]
    return torch.cat(pair, dim=1)


def cbam_spatial_attention(x: Tensor, conv_w: Tensor, *, pool_order: str, bn=identity) -> Tensor:
    k = conv_w.shape[-1]
    return sigmoid(bn(conv2d(channel_pools(x, pool_order), conv_w, padding=k // 2)))


def cbam_forward(x: Tensor, mlp_params: tuple, conv_w: Tensor, *, pool_order: str, bn=identity):
    """Returns (output, channel map, spatial map); the spatial map is computed on the channel-refined F'."""
    mc = cbam_channel_attention(x, *mlp_params)
    refined = x * mc
    ms = cbam_spatial_attention(refined, conv_w, pool_order=pool_order, bn=bn)
    return refined * ms, mc, ms


# --------------------------------------------------------------------------------------------------
# CTDNet SAM (Zhao et al., ACM MM 2021): a = sigma(conv3x3([mean_c; max_c])); y = ReLU(BN(conv3x3(x * a)))
# --------------------------------------------------------------------------------------------------


def ctdnet_sam_attention(x: Tensor, atten_w: Tensor) -> Tensor:
    return sigmoid(conv2d(channel_pools(x, "avg_max"), atten_w, padding=1))


def ctdnet_sam_forward(x: Tensor, atten_w: Tensor, conv_w: Tensor, bn) -> Tensor:
    return relu(bn(conv2d(x * ctdnet_sam_attention(x, atten_w), conv_w, padding=1)))


# --------------------------------------------------------------------------------------------------
# HA-CNN (Li, Zhu, Gong, CVPR 2018). ConvBlock = conv (with bias) -> BN -> ReLU.
# --------------------------------------------------------------------------------------------------


@dataclass
class ConvBlock:
    weight: Tensor
    bias: Tensor | None
    bn: BatchNorm
    stride: int = 1
    padding: int = 0

    def __call__(self, x: Tensor) -> Tensor:
        return relu(self.bn(conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)))


def hacnn_spatial_attention(x: Tensor, block1: ConvBlock, block2: ConvBlock) -> Tensor:
    """Cross-channel mean -> 3x3/2 ConvBlock -> bilinear back to (H, W) -> 1x1 ConvBlock: (B, 1, H, W)."""
    m = x.sum(dim=1, keepdim=True) / x.shape[1]
    m = block1(m)
    m = resize_bilinear_align_corners(m, (x.shape[2], x.shape[3]))
    return block2(m)


def hacnn_channel_attention(x: Tensor, block1: ConvBlock, block2: ConvBlock) -> Tensor:
    z = (x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3]))[:, :, None, None]
    return block2(block1(z))


def hacnn_soft_attention(x: Tensor, spatial: tuple, channel: tuple, block: ConvBlock) -> Tensor:
    """sigma(ConvBlock(spatial * channel)): in [0.5, 1) because the ConvBlock ends in ReLU."""
    y = hacnn_spatial_attention(x, *spatial) * hacnn_channel_attention(x, *channel)
    return sigmoid(block(y))


def hacnn_hard_theta(x: Tensor, fc_w: Tensor, fc_b: Tensor, num_regions: int) -> Tensor:
    """(B, R, 2) translations: tanh(W GAP(x) + b), viewed as R pairs (t_x, t_y)."""
    z = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
    return torch.tanh(torch.einsum("bc,oc->bo", z, fc_w) + fc_b).reshape(x.shape[0], num_regions, 2)


def hacnn_crop(x: Tensor, tx: Tensor, ty: Tensor, *, scale: tuple[float, float], out_size: tuple[int, int],
               align_corners: bool) -> Tensor:
    """The affine crop [[s_x, 0, t_x], [0, s_y, t_y]] of x sampled on an out_size grid: (B, C, h, w)."""
    h, w = out_size
    b = x.shape[0]
    base_y = torch.linspace(-1, 1, h, dtype=torch.float64) if align_corners else (
        (2 * torch.arange(h, dtype=torch.float64) + 1) / h - 1)
    base_x = torch.linspace(-1, 1, w, dtype=torch.float64) if align_corners else (
        (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1)
    xs = scale[0] * base_x[None, None, :].expand(b, h, w) + tx[:, None, None]
    ys = scale[1] * base_y[None, :, None].expand(b, h, w) + ty[:, None, None]
    return sample_bilinear(x, xs, ys, align_corners=align_corners)


# --------------------------------------------------------------------------------------------------
# DANet (Fu et al., CVPR 2019)
#   PAM: s_ji = exp(B_i . C_j) / sum_i exp(B_i . C_j);  E_j = alpha * sum_i s_ji D_i + A_j
#   CAM: x_ji = exp(A_i . A_j) / sum_i exp(A_i . A_j);  E_j = beta * sum_i x_ji A_i + A_j
#   official CAM: softmax over i of (max_k A_k . A_j - A_i . A_j), i.e. softmax(-energy)
# --------------------------------------------------------------------------------------------------


def pam_attention(x: Tensor, wq: Tensor, bq: Tensor, wk: Tensor, bk: Tensor) -> Tensor:
    q = pointwise(x, wq, bq).flatten(2)  # (B, C', N)
    k = pointwise(x, wk, bk).flatten(2)  # (B, C', N)
    energy = torch.einsum("bci,bcj->bij", q, k)  # energy[b, i, j] = q_i . k_j
    return softmax_last(energy)  # normalised over the keys j for each query i


def pam_forward(x: Tensor, wq, bq, wk, bk, wv, bv, gamma: Tensor) -> Tensor:
    b, c, h, w = x.shape
    attn = pam_attention(x, wq, bq, wk, bk)
    v = pointwise(x, wv, bv).flatten(2)  # (B, C, N)
    out = torch.einsum("bij,bcj->bci", attn, v)  # out_i = sum_j A[i, j] v_j
    return gamma * out.reshape(b, c, h, w) + x


def cam_energy(x: Tensor) -> Tensor:
    a = x.flatten(2)  # (B, C, N)
    return torch.einsum("bin,bjn->bij", a, a)  # (B, C, C)


def cam_attention(x: Tensor, variant: str) -> Tensor:
    energy = cam_energy(x)
    if variant == "paper":
        return softmax_last(energy)
    if variant == "official":
        return softmax_last(energy.max(dim=-1, keepdim=True).values - energy)
    raise ValueError(variant)


def cam_forward(x: Tensor, gamma: Tensor, variant: str) -> Tensor:
    b, c, h, w = x.shape
    attn = cam_attention(x, variant)
    out = torch.einsum("bij,bjn->bin", attn, x.flatten(2))  # out_i = sum_j A[i, j] x_j
    return gamma * out.reshape(b, c, h, w) + x


def dual_forward(x: Tensor, pam_params: tuple, pam_gamma: Tensor, cam_gamma: Tensor, cam_variant: str) -> Tensor:
    """Both modules on the same x, one residual: x + alpha * PAM_out + beta * CAM_out."""
    pam_branch = pam_forward(x, *pam_params, pam_gamma) - x
    cam_branch = cam_forward(x, cam_gamma, cam_variant) - x
    return x + pam_branch + cam_branch


def conv3x3_bn_relu(x: Tensor, weight: Tensor, bn) -> Tensor:
    return relu(bn(conv2d(x, weight, padding=1)))


def danet_head_forward(x: Tensor, p: dict, cam_variant: str) -> tuple[Tensor, Tensor, Tensor]:
    """DANet head (Sec. 3.4), dropout as in eval mode. ``p`` holds plain tensors:
    conv5a/conv5c/conv51/conv52: (weight, bn); pam: (wq, bq, wk, bk, wv, bv, gamma); cam_gamma;
    conv6/conv7/conv8: (weight as a matrix, bias). Returns (fused, PAM-only, CAM-only) logits."""
    pam_feat = conv3x3_bn_relu(pam_forward(conv3x3_bn_relu(x, *p["conv5a"]), *p["pam"]), *p["conv51"])
    cam_feat = conv3x3_bn_relu(cam_forward(conv3x3_bn_relu(x, *p["conv5c"]), p["cam_gamma"], cam_variant), *p["conv52"])
    return (
        pointwise(pam_feat + cam_feat, *p["conv8"]),
        pointwise(pam_feat, *p["conv6"]),
        pointwise(cam_feat, *p["conv7"]),
    )


# --------------------------------------------------------------------------------------------------
# Test set-up helpers (no formulas): random, non-trivial parameters and BatchNorm statistics
# --------------------------------------------------------------------------------------------------


def randomize_(module: torch.nn.Module, seed: int = 0, *, gamma: float = 0.75) -> torch.nn.Module:
    """Draw every parameter afresh, give every BatchNorm non-trivial running statistics, set any
    ``gamma`` to a non-zero value. Zero-initialised weights (DANet's gamma, HA-CNN's hard-attention
    fc) would otherwise hide whole terms of the formula from a comparison."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.split(".")[-1] == "gamma":
                p.fill_(gamma)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(fan_in)))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
    return module
