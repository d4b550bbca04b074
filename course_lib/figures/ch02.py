"""Figures of chapter 02 (CBAM): the spatial gate over a photo.

Nothing here imports the reference CBAM: the figures take the student's module as an argument.
"""
from __future__ import annotations

import numpy as np
import torch

from .common import centred, to_numpy

__all__ = ["centred", "hand_set_spatial_kernel", "spatial_panels"]



def hand_set_spatial_kernel(kernel_size: int = 7, strength: float = 10.0, mean_weight: float = 2.0) -> torch.Tensor:
    """A (1, 2, k, k) weight for [mean; max] input maps: a box filter of ``mean_weight * strength`` on the mean
    map (input channel 0) and of ``strength`` on the max map (input channel 1), each divided by k * k."""
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int; got {kernel_size!r}")
    if not strength > 0:
        raise ValueError(f"strength must be > 0; got {strength!r}")
    box = torch.full((kernel_size, kernel_size), 1.0 / kernel_size**2)
    return torch.stack([mean_weight * strength * box, strength * box]).unsqueeze(0)


def spatial_panels(image: torch.Tensor, module: torch.nn.Module, *, axes=None) -> dict[str, np.ndarray]:
    """Photo, the two channel-pooled maps, and ``module.attention`` over the photo (centred per channel).

    ``module`` is any spatial gate with ``attention(x) -> (1, 1, H, W)``. Returns the drawn arrays.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 3.4), constrained_layout=True)
    x = centred(image)
    with torch.no_grad():
        avg, mx = x.mean(1)[0], x.amax(1)[0]
        attention_map = module.attention(x)[0, 0]
    data = {"image": to_numpy(image[0].permute(1, 2, 0)), "mean": to_numpy(avg), "max": to_numpy(mx),
            "map": to_numpy(attention_map)}
    axes[0].imshow(data["image"])
    axes[0].set_title("input")
    for ax, key, title in ((axes[1], "mean", "mean over channels"), (axes[2], "max", "max over channels")):
        shown = ax.imshow(data[key], cmap="gray")
        ax.set_title(title)
        plt.colorbar(shown, ax=ax, shrink=0.8)
    axes[3].imshow(data["image"])
    shown = axes[3].imshow(data["map"], cmap="jet", alpha=0.55, vmin=0, vmax=1)
    axes[3].set_title("spatial map $M_s$ over the input")
    plt.colorbar(shown, ax=axes[3], shrink=0.8)
    for ax in axes:
        ax.axis("off")
    return data
