"""The memory-light position attention (``fused=True``) never forms an N x N tensor, forward or backward.

Every tensor an aten operation returns during a training step is recorded by a dispatch mode (the
backward pass of the custom autograd Function included); the largest must stay well below the
(B, N, N) map the literal path builds. The counter-test runs the same probe on the literal path and
sees the map.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from course_lib.reference import danet


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an aten op returns inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.largest = max([self.largest, *sizes])
        return out


def largest_tensor_of_a_step(module: torch.nn.Module, x: torch.Tensor) -> int:
    x = x.clone().requires_grad_(True)
    with LargestTensor() as probe:
        module(x).sum().backward()
    assert x.grad is not None and module.query_conv.weight.grad is not None  # the backward really ran
    return probe.largest


def pam(channels: int, **kwargs) -> danet.PositionAttention:
    m = danet.PositionAttention(channels, **kwargs)
    with torch.no_grad():
        m.gamma.fill_(0.5)  # so that the attention branch gets gradients
    return m


@pytest.mark.parametrize(("shape", "query_block"), [((1, 8, 40, 40), None), ((2, 16, 12, 12), 16)],
                         ids=["default_blocks_N1600", "blocks_of_16_N144"])
def test_memory_light_pam_never_forms_the_n_by_n_map(shape, query_block):
    b, c, h, w = shape
    n = h * w
    largest = largest_tensor_of_a_step(pam(c, fused=True, query_block=query_block), torch.randn(shape))
    assert largest <= b * n * n // 4, f"a tensor of {largest} elements; the (B, N, N) map has {b * n * n}"


def test_the_probe_sees_the_literal_map():
    # counter-test: the literal path forms the (B, N, N) map, and the probe must see it
    b, c, h, w = 2, 16, 12, 12
    assert largest_tensor_of_a_step(pam(c), torch.randn(b, c, h, w)) >= b * (h * w) ** 2


def test_default_block_holds_about_two_million_entries_within_row_bounds():
    assert danet.query_block_rows(1, 96 * 96) * 96 * 96 <= danet.BLOCK_ENTRIES
    assert danet.query_block_rows(1, 32 * 32) == danet.BLOCK_ROWS[1]  # capped at 256 rows
    assert danet.query_block_rows(64, 96 * 96) == danet.BLOCK_ROWS[0]  # at least 32 rows
    assert danet.query_block_rows(1, 10) == danet.BLOCK_ROWS[0]  # a block may run past N: one block
    assert danet.query_block_rows(0, 100) >= 1  # an empty batch


def test_fused_runs_the_literal_computation_only_where_one_block_would_hold_the_whole_map():
    m = danet.PositionAttention(8, fused=True)
    assert m.fused_kernel(1, 32 * 32) == "literal"  # 2^20 entries: one block would be the map
    assert m.fused_kernel(2, 32 * 32) == "literal"  # 2^21 entries, just within BLOCK_ENTRIES
    assert m.fused_kernel(3, 32 * 32) == "blocked"
    assert m.fused_kernel(1, 64 * 64) == "blocked"  # the bench's N = 64^2 and 96^2 block
    assert danet.PositionAttention(8, fused=True, query_block=64).fused_kernel(1, 16) == "blocked"
