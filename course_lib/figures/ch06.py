"""Figures of chapter 06 (DANet CAM): the C x C channel affinity of a small, readable feature stack.

The helpers return the arrays they draw, so tests can assert on the data.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

CHANNEL_NAMES = ("red", "green", "blue", "brightness", "darkness", "d/dx", "d/dy", "-d/dx")


def photo_channels(photo: torch.Tensor, norm: float = 3.0) -> torch.Tensor:
    """Eight named feature maps of a photo: (1, 3, H, W) -> (1, 8, H, W).

    Each map is centred and scaled to Euclidean norm ``norm`` over the positions, so the energy
    a a^T is ``norm**2`` times the cosine similarity of two maps (diagonal = norm**2).
    """
    if photo.dim() != 4 or photo.shape[:2] != (1, 3):
        raise ValueError(f"photo_channels: expected a (1, 3, H, W) photo, got shape {tuple(photo.shape)}")
    gray = photo.mean(1, keepdim=True)
    kx = torch.tensor([[[[-1.0, 0.0, 1.0]]]], dtype=photo.dtype)
    dx = F.conv2d(gray, kx, padding=(0, 1))
    dy = F.conv2d(gray, kx.transpose(2, 3), padding=(1, 0))
    maps = torch.cat([photo, gray, -gray, dx, dy, -dx], dim=1)
    maps = maps - maps.mean(dim=(2, 3), keepdim=True)
    return norm * maps / maps.flatten(2).norm(dim=2).clamp_min(1e-8)[..., None, None]


def affinity_panels(features: torch.Tensor, maps: Mapping[str, torch.Tensor],
                    names: tuple[str, ...] = CHANNEL_NAMES) -> dict:
    """Draw the energy a a^T and each (1, C, C) map in ``maps`` as heatmaps; return them as arrays."""
    import matplotlib.pyplot as plt

    a = features.flatten(2)
    energy = (a @ a.transpose(1, 2))[0]
    c = energy.shape[0]
    if len(names) != c:
        raise ValueError(f"affinity_panels: {len(names)} names for {c} channels")
    panels = {"energy a a^T": energy, **{k: v.detach()[0] for k, v in maps.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.9))
    out = {}
    for ax, (title, m) in zip(np.atleast_1d(axes), panels.items()):
        data = m.numpy()
        image = ax.imshow(data, cmap="viridis")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(c), names, rotation=60, fontsize=8)
        ax.set_yticks(range(c), names, fontsize=8)
        ax.set_xlabel("channel i (attended)")
        ax.set_ylabel("row j (output channel)")
        ax.set_title(title)
        out[title] = data
    fig.tight_layout()
    return out
