"""Figures of chapter 05 (DANet PAM): where one query pixel looks.

The helpers take the student's own module (any class with ``query_conv``, ``key_conv`` and ``attention``)
and return the arrays they draw, so tests can assert on the data.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .common import centred



def set_colour_projections(module: nn.Module, scale: float = 12.0) -> nn.Module:
    """Hand-set a 3-channel PAM (reduction=1) so that energy[j, i] = scale * <colour_j, colour_i>.

    query_conv and key_conv become ``sqrt(scale)`` times the identity (no bias), so pixels whose centred
    colours point the same way and are strong get a large energy: similar colours attend to each other.
    """
    if scale <= 0:
        raise ValueError(f"set_colour_projections: scale must be > 0, got {scale}")
    for name in ("query_conv", "key_conv"):
        conv = getattr(module, name, None)
        if not isinstance(conv, nn.Conv2d) or tuple(conv.weight.shape[:2]) != (3, 3):
            raise ValueError(f"set_colour_projections: expected {name} = Conv2d(3, 3, 1) (PositionAttention(3, "
                             f"reduction=1)), got {conv!r}")
        with torch.no_grad():
            conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1) * scale ** 0.5)
            if conv.bias is not None:
                conv.bias.zero_()
    return module


def query_maps(photo: torch.Tensor, module: nn.Module, queries: Sequence[tuple[int, int]]) -> dict:
    """The attention row of each (row, col) query pixel, as (H, W) maps; draws them over the photo."""
    import matplotlib.pyplot as plt

    _, _, h, w = photo.shape
    for r, c in queries:
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"query_maps: query {(r, c)} is outside the {h} x {w} image")
    with torch.no_grad():
        a = module.attention(centred(photo))[0]  # (N, N)
    maps = [a[r * w + c].reshape(h, w).numpy() for r, c in queries]
    fig, axes = plt.subplots(1, len(queries) + 1, figsize=(3.2 * (len(queries) + 1), 2.6))
    img = photo[0].permute(1, 2, 0).numpy()
    axes[0].imshow(img)
    axes[0].set_title("photo and query pixels")
    for k, (r, c) in enumerate(queries):
        axes[0].plot(c, r, marker="x", color="white", markersize=10, mew=3)
        axes[0].plot(c, r, marker="x", color=f"C{k}", markersize=8, mew=2)
        axes[k + 1].imshow(img)
        axes[k + 1].imshow(maps[k] / maps[k].max(), cmap="magma", alpha=0.75)
        axes[k + 1].plot(c, r, marker="x", color=f"C{k}", markersize=8, mew=2)
        axes[k + 1].set_title(f"row of query {(r, c)}\n(max weight {maps[k].max():.2g})")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return {"maps": np.stack(maps), "row_sums": np.array([m.sum() for m in maps])}
