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
gradients (DANet issues #58, #104). ``PositionAttention(..., fused=True)`` never stores it: it works
through the queries in blocks and recomputes each block's map in the backward pass (see the class's
"Memory-light path"; ``make bench`` measures both paths side by side).
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.autograd.function import once_differentiable

from course_lib.reference._validate import (
    autocast_covers,
    check_batch_norm_values,
    check_bool,
    check_choice,
    check_feature_map,
    check_hidden_channels,
    check_positive_int,
)

__all__ = ["ChannelAttention", "DualAttention", "DualAttentionHead", "PositionAttention"]

CAM_VARIANTS = ("paper", "official")


#: the memory-light PAM's block of queries holds about this many map entries (B * rows * N) ...
BLOCK_ENTRIES = 2**21
#: ... with the number of query rows per block kept within these bounds
BLOCK_ROWS = (32, 256)


def query_block_rows(batch: int, positions: int) -> int:
    """Rows (query positions) per block of the memory-light PAM for a (B, N, N) map.

    A block's map holds B * rows * N entries: about ``BLOCK_ENTRIES`` (8 MiB in float32), within
    ``BLOCK_ROWS`` rows. A first measurement on one CPU thread (a loaded 2-core machine, so rough):
    blocks of 128-512 rows were faster than the literal map at N = 64^2 and 96^2; 64 rows lost at
    C = 512 (the (rows, N) @ (N, C) products get thin).
    """
    rows = BLOCK_ENTRIES // max(1, batch * positions)
    return max(BLOCK_ROWS[0], min(BLOCK_ROWS[1], rows, positions))


def _softmax_(energy: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, in place: ``torch.softmax(..., out=)`` into its own input (each row
    is read for its max and sum before it is overwritten), which needs no second block buffer."""
    return torch.softmax(energy, dim=-1, out=energy)


class _BlockedPositionAttention(torch.autograd.Function):
    """out_j = sum_i softmax_i(q_j . k_i) v_i, one block of queries j at a time, recomputed in backward.

    query (B, N, C'), key (B, C', N), value (B, C, N) -> out (B, N, C). Only the inputs and the output
    are saved. Each pass allocates its (B, rows, N) block buffers once and reuses them for every
    block (products written with ``out=``, softmax in place), so the memory the process asks for
    stays at a few blocks however many blocks there are.
    """

    @staticmethod
    def forward(ctx, query, key, value, rows):  # noqa: D102 (documented on the class)
        b, n, _ = query.shape
        out = value.new_empty(b, n, value.shape[1])  # (B, N, C)
        value_t = rearrange(value, "b c n -> b n c")  # a view
        energy = query.new_empty(b, min(rows, n), n)  # one block's map, reused
        for j in range(0, n, rows):
            q = query[:, j:j + rows]  # (B, r, C'), r <= rows
            attention = _softmax_(torch.bmm(q, key, out=energy[:, :q.shape[1]]))  # (B, r, C') @ (B, C', N)
            torch.bmm(attention, value_t, out=out[:, j:j + rows])  # (B, r, N) @ (B, N, C) -> (B, r, C)
        ctx.save_for_backward(query, key, value, out)
        ctx.rows = rows
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        query, key, value, out = ctx.saved_tensors
        rows = ctx.rows
        b, n, _ = query.shape
        grad_query = torch.empty_like(query)  # (B, N, C')
        grad_key = torch.zeros_like(key)  # (B, C', N)
        grad_value = torch.zeros_like(value)  # (B, C, N)
        key_t = rearrange(key, "b c n -> b n c")
        attention_buffer = query.new_empty(b, min(rows, n), n)
        grad_buffer = query.new_empty(b, min(rows, n), n)
        for j in range(0, n, rows):
            q, g = query[:, j:j + rows], grad_out[:, j:j + rows]  # (B, r, C'), (B, r, C)
            r = q.shape[1]
            # softmax backward needs sum_i s_ji dL/ds_ji per query j, which equals sum_c dL/dout_jc out_jc
            delta = (g * out[:, j:j + rows]).sum(-1, keepdim=True)  # (B, r, C) -> (B, r, 1)
            attention = _softmax_(torch.bmm(q, key, out=attention_buffer[:, :r]))  # recomputed: (B, r, N)
            grad_value.baddbmm_(rearrange(g, "b r c -> b c r"), attention)  # += (B, C, r) @ (B, r, N)
            # d energy = s * (d s - delta), in the buffer of d s = g @ value: (B, r, C) @ (B, C, N)
            grad_energy = torch.bmm(g, value, out=grad_buffer[:, :r]).sub_(delta).mul_(attention)
            torch.bmm(grad_energy, key_t, out=grad_query[:, j:j + rows])  # (B, r, N) @ (B, N, C') -> (B, r, C')
            grad_key.baddbmm_(rearrange(q, "b r c -> b c r"), grad_energy)  # += (B, C', r) @ (B, r, N)
        return grad_query, grad_key, grad_value, None


class PositionAttention(nn.Module):
    """DANet position attention module (PAM), Eqs. (1)-(2): self-attention over the N = H * W positions.

    Args:
        channels: C, the number of input channels.
        reduction: r; the query and key convolutions have C // r channels, which must be >= 1
            (official: 8).
        fused: compute ``forward`` on the memory-light path, which never forms the (B, N, N) map
            (see "Memory-light path"); same result. ``forward(x, fused=True/False)`` overrides it
            for one call.
        query_block: rows (query positions) per block on the memory-light path; None (default)
            chooses by size (:func:`query_block_rows`). Tests set small blocks to exercise the
            block boundaries on small maps.

    Submodules and parameters keep the official names so weights copy 1:1: ``query_conv`` and
    ``key_conv`` (``Conv2d(C, C', 1)``, with bias), ``value_conv`` (``Conv2d(C, C, 1)``, with bias)
    and ``gamma`` (the paper's alpha, a scalar initialised to 0, so the module is the identity at
    initialisation).

    ``attention(x)`` returns the (B, N, N) map whose row j, the weights output position j gives to
    every position i, sums to 1 (softmax over the last dim). ``forward(x)`` returns
    ``gamma * out + x`` of shape (B, C, H, W).

    Memory-light path (``fused=True``):
        Chosen by size (:meth:`fused_kernel`): when one block would hold the whole map
        (B * N * N <= ``BLOCK_ENTRIES``, e.g. N <= 32^2 at B = 1), blocking saves nothing, and the
        literal computation runs (measured: recomputing a single block cost about 1.1x at C = 512,
        N = 32^2). Otherwise the queries are taken in blocks of ``rows`` positions. For each block
        the (B, rows, N) energies are formed at the real query/key width C' (no padding), turned
        into softmax rows in place and multiplied into the values, in one block buffer reused by
        every block. A custom ``torch.autograd.Function`` saves only the query, key, value and
        output and, in the backward pass, recomputes each block's map from them (one extra
        (rows, C') @ (C', N) product and softmax per block) to form the gradients; the softmax
        gradient uses ``sum_i s_ji dL/ds_ji = sum_c dL/dout_jc out_jc``, so nothing of size N x N
        is ever kept. Peak extra memory is two block buffers, O(B * rows * N), plus the (B, C, N)
        activations both paths keep, instead of several (B, N, N) maps; on a CPU it is also faster
        where it blocks, because a block stays in cache and no page of a large map is allocated.
        One run of ``make bench BENCH_ARGS=--pam-only`` (B = 1, one thread, a loaded 2-core
        machine) measured 0.31-0.80x the literal time where it blocks (0.88x and 0.99x at
        N = 32^2, the same code), and 13x (C = 64) and 5.2x (C = 512) less peak memory at
        N = 64^2; at C = 512 the activations dominate what is left. It computes the same function
        as the literal form (``torch.testing.assert_close``, forward and backward, float32 and
        float64); it supports one backward pass (no double backward: ``torch.autograd.gradgradcheck``
        refuses it).
        Any device: it is made of matrix products and softmax only.

        Why not ``scaled_dot_product_attention``: its efficient kernels limit the head dimension.
        On the CPU, PyTorch's flash kernel needs query, key and value of one width
        (``check_head_dim_size_cpp`` in ``aten/src/ATen/native/transformers/sdp_utils_cpp.cpp``),
        so PAM's C' = C / 8 queries would have to be padded to C, which makes the energy product
        8 times dearer (the course's earlier fused path did this and lost at C = 512). On CUDA
        (``cuda/sdp_utils.cpp``) the flash kernel needs query, key and value of equal width, at
        most 256, so padding DANet's C = 512 rules it out; the memory-efficient kernel takes
        query/key and value widths that differ (each a multiple of 4 in float32 on sm80+, 8 with
        tensor cores in half precision); the cuDNN kernel allows up to 128 (256 on recent
        hardware). When no kernel applies, SDPA silently uses its "math" backend, which forms the
        N x N map. The blocked path does not depend on any of these limits.

    Deviations:
        * Naming: the code's ``query_conv`` plays the paper's C and ``key_conv`` the paper's B: the
          output at position j uses C_j (its query) against every key B_i, which is Eq. (1) with
          ``energy[j, i] = C_j . B_i``. ``value_conv`` is the paper's D.
        * Query/key width C // 8: the paper defines B, C and D all as C x H x W maps (the same
          width as A), and its v3 text even put them through BatchNorm and ReLU; the official code
          uses 1x1 convolutions without BN or ReLU, of width C // 8 for B and C and C for D
          (``in_dim // 8``; reduction 8 is the code's choice). DANet #45 is about the BN and ReLU
          only: the author answers that the paper's statement will be corrected (v4 drops them,
          #61); no thread supports the reduced width, and #131 asks why B and C are reduced and D
          is not, without an answer. The default 8 departs from the paper on purpose (every
          published DANet result used it; chapter 05 §1 says so); ``reduction=1`` gives the
          paper's width.
        * No 1/sqrt(C') scaling of the energy (neither the paper nor the official code has one;
          Transformer-style copies add it).
        * ``out = value @ attention^T``: the transpose is required because the values are stored
          channels-first (DANet issue #64 asks about it; it is correct).
        * Memory grows as N^2: N = 96^2 gives 340 MB (324 MiB) per float32 map per image on the
          literal path; ``fused=True`` avoids it.
    """

    def __init__(
        self, channels: int, reduction: int = 8, *, fused: bool = False, query_block: int | None = None
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int("channels", channels, owner)
        self.reduction = check_positive_int("reduction", reduction, owner)
        self.fused = check_bool("fused", fused, owner)
        if query_block is not None:
            check_positive_int("query_block", query_block, owner)
        self.query_block = query_block
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
        check_feature_map(x, self._owner(), self.channels, module=self)
        return self._map(x)

    def forward(self, x: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """E = gamma * out + x, Eq. (2): (B, C, H, W) -> (B, C, H, W)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
        fused = self.fused if fused is None else check_bool("fused", fused, self._owner())
        out = self._fused_out(x) if fused else self._literal_out(x)  # (B, C, H, W)
        return self.gamma * out + x

    def fused_kernel(self, batch: int, positions: int) -> str:
        """The computation ``fused=True`` runs for a (batch, N, N) map: ``"blocked"``, or ``"literal"``
        when one block would hold the whole map (B * N * N <= ``BLOCK_ENTRIES``), so that blocking
        would save no memory and only cost the recomputation. An explicit ``query_block`` always blocks."""
        if self.query_block is None and batch * positions * positions <= BLOCK_ENTRIES:
            return "literal"
        return "blocked"

    def _literal_out(self, x: torch.Tensor) -> torch.Tensor:
        """sum_i s_ji D_i through the (B, N, N) map: (B, C, H, W) -> (B, C, H, W)."""
        _, _, h, w = x.shape
        attention = self._map(x)  # (B, N, N)
        value = rearrange(self.value_conv(x), "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        out = value @ rearrange(attention, "b j i -> b i j")  # (B, C, N) @ (B, N, N) -> (B, C, N)
        return rearrange(out, "b c (h w) -> b c h w", h=h, w=w)  # (B, C, N) -> (B, C, H, W)

    def _fused_out(self, x: torch.Tensor) -> torch.Tensor:
        """sum_i s_ji D_i without the (B, N, N) map (queries in blocks): (B, C, H, W) -> (B, C, H, W)."""
        b, _, h, w = x.shape
        if self.fused_kernel(b, h * w) == "literal":
            return self._literal_out(x)
        query = rearrange(self.query_conv(x), "b c h w -> b (h w) c")  # (B, C', H, W) -> (B, N, C')
        key = rearrange(self.key_conv(x), "b c h w -> b c (h w)")  # (B, C', H, W) -> (B, C', N)
        value = rearrange(self.value_conv(x), "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        rows = self.query_block or query_block_rows(b, h * w)
        out = _BlockedPositionAttention.apply(query, key, value, rows)  # (B, N, C)
        return rearrange(out, "b (h w) c -> b c h w", h=h, w=w)  # (B, N, C) -> (B, C, H, W)


class ChannelAttention(nn.Module):
    """DANet channel attention module (CAM), Eqs. (3)-(4): attention among the C channel maps.

    Args:
        channels: optional. CAM has no projections, and its only parameter is ``gamma`` (the
            paper's beta, a scalar initialised to 0, named as in the official code), so it works
            for any C and needs no channel count. ``ChannelAttention(64)`` is accepted like the
            official ``CAM_Module(in_dim)``, which stores ``in_dim`` and never uses it; here a given
            count is checked against every input's channels. None (default): any C.
        variant: ``"paper"``: x_ji = softmax_i(A_j . A_i), Eq. (3). ``"official"``: the official
            ``CAM_Module``, softmax over ``max_i(energy) - energy`` (see below).

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

    Mixed precision:
        Under ``torch.autocast`` the energy ``a a^T`` is computed in float32 (outside autocast nothing
        changes). It sums over all N positions: 3 * N(0, 1) features on a 96 x 96 map give diagonal
        entries near 9 * 9216 = 82 944, beyond float16's 65 504, and the output was NaN; in bfloat16 the
        rounded energies moved the official variant's output by up to 0.17 of its largest magnitude
        (0.006 with the float32 energy; tests/test_autocast.py).
    """

    def __init__(self, channels: int | None = None, *, variant: str = "paper") -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = None if channels is None else check_positive_int("channels", channels, owner)
        self.variant = check_choice("variant", variant, CAM_VARIANTS, owner)
        self.gamma = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        counted = "" if self.channels is None else f"channels={self.channels}, "
        return f"{counted}variant={self.variant!r}"

    def _owner(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map of a validated x: (B, C, H, W) -> (B, C, C)."""
        a = rearrange(x, "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        if autocast_covers(x.device.type, x.dtype):
            # a sum over all N positions: in float16 it overflows (65504) and in bfloat16 it is rounded
            # too coarsely for the softmax (see "Mixed precision" in the class docstring)
            with torch.autocast(x.device.type, enabled=False):
                a32 = a.float()
                energy = a32 @ rearrange(a32, "b c n -> b n c")  # (B, C, N) @ (B, N, C) -> (B, C, C)
        else:
            energy = a @ rearrange(a, "b c n -> b n c")  # (B, C, N) @ (B, N, C) -> (B, C, C)
        if self.variant == "official":
            # exactly the official line; equals softmax(-energy) row by row
            energy = energy.amax(dim=-1, keepdim=True) - energy  # (B, C, 1) - (B, C, C) -> (B, C, C)
        return energy.softmax(dim=-1)  # Eq. (3): each row j sums to 1

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x of Eq. (3): (B, C, H, W) -> (B, C, C), rows sum to 1."""
        check_feature_map(x, self._owner(), self.channels)
        return self._map(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E = gamma * out + x, Eq. (4): (B, C, H, W) -> (B, C, H, W)."""
        _, _, h, w = check_feature_map(x, self._owner(), self.channels)
        attention = self._map(x)  # (B, C, C)
        a = rearrange(x, "b c h w -> b c (h w)")  # (B, C, H, W) -> (B, C, N)
        out = attention @ a  # (B, C, C) @ (B, C, N) -> (B, C, N)
        out = rearrange(out, "b c (h w) -> b c h w", h=h, w=w)  # (B, C, N) -> (B, C, H, W)
        return self.gamma.to(out.dtype) * out + x  # gamma is CAM's only weight: follow the input's dtype


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
        check_feature_map(x, self._owner(), self.channels, module=self)
        return self.pam.attention(x), self.cam.attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + alpha * PAM_out + beta * CAM_out: (B, C, H, W) -> (B, C, H, W)."""
        check_feature_map(x, self._owner(), self.channels, module=self)
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


#: official DANetHead submodule name -> the course's
OFFICIAL_HEAD_NAMES = {"sa": "pam", "sc": "cam"}


def _official_head_keys(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: rename the official ``sa.*``/``sc.*`` keys to ``pam.*``/``cam.*``."""
    for official, course in OFFICIAL_HEAD_NAMES.items():
        old, new = f"{prefix}{official}.", f"{prefix}{course}."
        for key in [k for k in state_dict if k.startswith(old)]:
            renamed = new + key[len(old):]
            if renamed in state_dict:
                raise ValueError(
                    f"{type(module).__name__}.load_state_dict: the state dict has both {key!r} (official name) and "
                    f"{renamed!r} (course name); keep one"
                )
            state_dict[renamed] = state_dict.pop(key)


class DualAttentionHead(nn.Module):
    """The DANet segmentation head (official ``DANetHead``): a PAM branch and a CAM branch, summed.

    Args:
        in_channels: C_in, the backbone's channels (2048 for ResNet); the branches work at
            C' = C_in // 4 channels, which must be >= 8 so that PAM's C' // 8 >= 1.
        num_classes: the number of output classes.
        cam_variant: CAM's ``variant`` (``"paper"`` or ``"official"``).
        fused: PAM's ``fused`` option.

    Layout: ``conv5a`` -> ``pam`` -> ``conv51`` and ``conv5c`` -> ``cam`` -> ``conv52`` (each conv a
    3x3 conv without bias, BN, ReLU); ``conv8`` (Dropout2d(0.1), 1x1 conv) classifies the sum of the
    two branches; ``conv6`` and ``conv7`` classify each branch alone. Every name is the official
    one except the two attention modules, which the official ``DANetHead`` calls ``sa`` (PAM) and
    ``sc`` (CAM); ``pam`` and ``cam`` are kept because the course's code and stored weights use
    them.

    Official weights: ``load_state_dict`` maps the official keys ``sa.*`` and ``sc.*`` to ``pam.*``
    and ``cam.*`` before loading, so a state dict of the official ``DANetHead`` (or of DANet's
    ``head.`` submodule, with that prefix stripped) loads with ``strict=True``. Build the head with
    ``cam_variant="official"`` to reproduce the official outputs: all three then match the official
    head's (``tests/test_reference_official_danet.py``). ``state_dict()`` keeps the course's names.

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
        self.register_load_state_dict_pre_hook(_official_head_keys)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"

    def _owner(self) -> str:
        return f"{type(self).__name__}(in_channels={self.in_channels})"

    def _check(self, x: torch.Tensor) -> None:
        b, _, h, w = check_feature_map(x, self._owner(), self.in_channels, module=self)
        bn = self.conv5a[1] if isinstance(self.conv5a, nn.Sequential) and len(self.conv5a) > 1 else None
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            check_batch_norm_values(bn, b * h * w, self._owner(), "each branch (B * H * W values per channel)")

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(PAM map (B, N, N) on conv5a(x), CAM map (B, C', C') on conv5c(x))."""
        self._check(x)
        return self.pam.attention(self.conv5a(x)), self.cam.attention(self.conv5c(x))

    def forward(
        self, x: torch.Tensor, return_branches: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W) -> logits (B, num_classes, H, W), or (fused, pam, cam) logits."""
        self._check(x)
        check_bool("return_branches", return_branches, self._owner())
        pam_feat = self.conv51(self.pam(self.conv5a(x)))  # (B, C_in, H, W) -> (B, C', H, W)
        cam_feat = self.conv52(self.cam(self.conv5c(x)))  # (B, C_in, H, W) -> (B, C', H, W)
        logits = self.conv8(pam_feat + cam_feat)  # (B, C', H, W) -> (B, num_classes, H, W)
        if not return_branches:
            return logits
        return logits, self.conv6(pam_feat), self.conv7(cam_feat)
