"""Figures of chapter 01 (Squeeze-and-Excitation): hand-made channels of a photo and the gate SE puts on them.

None of this imports the reference SE: the figures take the student's module as an argument.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .common import to_numpy

__all__ = ["CHANNEL_NAMES", "handmade_channels", "plot_channel_weights"]

#: What each channel of :func:`handmade_channels` measures, in order.
CHANNEL_NAMES = (
    "red", "green", "blue", "brightness", "darkness", "saturation",
    "vertical edges", "horizontal edges", "blur", "fine detail", "red - green", "blue - yellow",
    "top half", "bottom half", "left half", "right half",
)


def handmade_channels(image: torch.Tensor) -> torch.Tensor:
    """Sixteen feature channels computed by hand from an RGB photo: (1, 3, H, W) -> (1, 16, H, W).

    They stand in for the output of a convolutional stem, with channels a person can name (see
    :data:`CHANNEL_NAMES`): colours, brightness, saturation, edges, blur, colour opponents and four
    masks of where in the picture a thing is. Each channel is scaled to roughly [0, 1].
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"handmade_channels expects an RGB image of shape (1, 3, H, W); got {shape}")
    image = image.float()
    red, green, blue = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    gray = image.mean(1, keepdim=True)  # (1, 1, H, W)
    saturation = image.amax(1, keepdim=True) - image.amin(1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    vertical = F.conv2d(padded, sobel.view(1, 1, 3, 3)).abs()  # changes along W: vertical edges
    horizontal = F.conv2d(padded, sobel.t().reshape(1, 1, 3, 3)).abs()
    blur = F.avg_pool2d(F.pad(gray, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    detail = (gray - blur).abs()
    _, _, h, w = image.shape
    rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(1, 1, h, w)
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    top, left = (rows < h / 2).float(), (cols < w / 2).float()
    channels = [
        red, green, blue, gray, 1 - gray, saturation,
        vertical * 4, horizontal * 4, blur, detail * 4, (red - green) / 2 + 0.5, (blue - (red + green) / 2) / 2 + 0.5,
        top * gray, (1 - top) * gray, left * gray, (1 - left) * gray,
    ]
    return torch.cat(channels, dim=1)  # (1, 16, H, W)


def plot_channel_weights(se: torch.nn.Module, features: dict[str, torch.Tensor], *, axes=None,
                         names: tuple[str, ...] = CHANNEL_NAMES) -> dict[str, dict[str, np.ndarray]]:
    """For each named input (1, C, H, W): the squeezed means z (left) and the SE gate s (right), per channel.

    ``se`` is any module with ``attention(x) -> (B, C, 1, 1)`` (the student's SqueezeExcitation).
    Returns ``{name: {"z": (C,), "s": (C,)}}``, the plotted values.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
    plotted: dict[str, dict[str, np.ndarray]] = {}
    with torch.no_grad():
        for label, x in features.items():
            z = to_numpy(x.mean((2, 3))).reshape(-1)
            s = to_numpy(se.attention(x)).reshape(-1)
            plotted[label] = {"z": z, "s": s}
    count = len(plotted)
    width = 0.8 / max(count, 1)
    ticks = np.arange(len(names))
    for ax, key, title, ylabel in (
        (axes[0], "z", "squeeze: the mean of each channel, Eq. (2)", "$z_c$"),
        (axes[1], "s", "excitation: the gate of each channel, Eq. (3)", "$s_c$"),
    ):
        for index, (label, values) in enumerate(plotted.items()):
            ax.bar(ticks + (index - (count - 1) / 2) * width, values[key], width, label=label)
        ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[1].set_ylim(0, 1)
    axes[1].axhline(0.5, color="gray", linewidth=0.8, linestyle=":")
    return plotted
