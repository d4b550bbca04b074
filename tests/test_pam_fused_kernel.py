"""The fused position attention must really take an efficient SDPA kernel, not the N x N "math" fallback
that SDPA picks silently when q, k and v differ in width or are not contiguous."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.profiler import ProfilerActivity, profile

from course_lib.danet import PositionAttention


def sdpa_kernels(fn) -> set[str]:
    """The aten kernels below scaled_dot_product_attention that ``fn`` runs (CPU)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key} - {"aten::scaled_dot_product_attention"}


def test_fused_pam_uses_the_flash_kernel_on_cpu():
    module = PositionAttention(32).eval()
    x = torch.randn(2, 32, 9, 7)
    with torch.no_grad():
        kernels = sdpa_kernels(lambda: module(x, fused=True))
    assert kernels and not any("math" in k for k in kernels), kernels


def test_the_kernel_probe_sees_the_math_fallback():
    # counter-test: unpadded q, k (width C') with v (width C), as a naive fused path would pass them
    q = rearrange(torch.randn(1, 4, 9, 7), "b c h w -> b 1 (h w) c")
    v = rearrange(torch.randn(1, 32, 9, 7), "b c h w -> b 1 (h w) c")
    kernels = sdpa_kernels(lambda: F.scaled_dot_product_attention(q, q, v, scale=1.0))
    assert any("math" in k for k in kernels), kernels
