"""Figures of chapter 03 (CTDNet's Spatial Attention Module).

They take the student's module (anything with ``attention(x)``), never the reference class, and return the
arrays they draw so that tests can check the data.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .common import centred, to_numpy


def hand_set_kernel(strength: float = 30.0, mean_share: float = 0.5) -> torch.Tensor:
    """A hand-set (1, 2, 3, 3) attention-conv weight: ``strength * (box3(max) - mean_share * box3(mean))``.

    Channel 0 of the stacked input is the channel mean, channel 1 the channel max (the SAM's [avg; max]).
    On features whose channels are centred (zero mean over the image, as after a BatchNorm), the max is high
    where some channel is well above its average: on a photo, the bright, saturated object. No training is
    involved: it stands in for what a trained SAM could learn, to make the figure readable.
    """
    if strength <= 0 or mean_share < 0:
        raise ValueError(f"hand_set_kernel: need strength > 0 and mean_share >= 0; got {strength}, {mean_share}")
    weight = torch.zeros(1, 2, 3, 3)
    weight[0, 0] = -strength * mean_share / 9  # input channel 0: the mean over channels
    weight[0, 1] = strength / 9  # input channel 1: the max over channels
    return weight



def sam_panels(image: torch.Tensor, module, *, axes=None) -> dict[str, np.ndarray]:
    """Draw photo | channel mean | channel max | map A | photo * A, where A = ``module.attention(centred(photo))``.

    ``image``: (1, C, H, W) in [0, 1] (C = 3 for a photo). Returns the arrays drawn.
    """
    import matplotlib.pyplot as plt

    if not (isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] == 1):
        raise ValueError(f"sam_panels: expected a (1, C, H, W) tensor, got {getattr(image, 'shape', image)!r}")
    features = centred(image)
    with torch.no_grad():
        amap = module.attention(features)
    if tuple(amap.shape) != (1, 1, *image.shape[2:]):
        raise ValueError(f"sam_panels: attention(x) should have shape (1, 1, H, W), got {tuple(amap.shape)}")
    data = {
        "image": to_numpy(image[0]).transpose(1, 2, 0),
        "mean": to_numpy(features.mean(1)[0]),
        "max": to_numpy(features.amax(1)[0]),
        "map": to_numpy(amap[0, 0]),
        "gated": to_numpy((image * amap)[0]).transpose(1, 2, 0).clip(0, 1),
    }
    if axes is None:
        _, axes = plt.subplots(1, 5, figsize=(17, 3.2))
    titles = {
        "image": "photo (the module gets it centred)",
        "mean": "mean over channels",
        "max": "max over channels",
        "map": "map A (hand-set 3x3 kernel)",
        "gated": "photo * A",
    }
    for ax, (key, array) in zip(axes, data.items()):
        if array.ndim == 3:
            ax.imshow(array)
        else:
            limits = {"vmin": 0, "vmax": 1} if key == "map" else {}
            shown = ax.imshow(array, cmap="magma", **limits)
            ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(titles[key], fontsize=10)
        ax.axis("off")
    return data


def footprint(fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, int, int, int]) -> np.ndarray:
    """Which input pixels one output pixel depends on: |d fn(x)[0, :, H//2, W//2] / dx| summed over channels.

    ``fn`` maps (B, C, H, W) to (B, C', H, W); the result is an (H, W) array, nonzero on the receptive field.
    """
    if len(shape) != 4:
        raise ValueError(f"footprint: shape must be (B, C, H, W); got {shape!r}")
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    y = fn(x)
    y[0, :, h // 2, w // 2].sum().backward()
    return to_numpy(x.grad[0].abs().sum(0))


def footprints(fns: dict[str, Callable[[torch.Tensor], torch.Tensor]], shape=(1, 8, 15, 15), *, axes=None):
    """Draw :func:`footprint` of each function side by side; return {name: (H, W) array}."""
    import matplotlib.pyplot as plt

    data = {name: footprint(fn, shape) for name, fn in fns.items()}
    if axes is None:
        _, axes = plt.subplots(1, len(data), figsize=(3.2 * len(data), 3.2))
    for ax, (name, array) in zip(np.atleast_1d(axes), data.items()):
        ax.imshow(array > 0, cmap="Greys", vmin=0, vmax=1)
        side = int((array > 0).any(0).sum()), int((array > 0).any(1).sum())
        ax.set_title(f"{name}\nreceptive field {side[1]}x{side[0]}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return data


def cbam_style_gate(kernel_size: int = 7, *, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A CBAM-style spatial gate as in CBAM's official code, with random weights, for :func:`footprints`.

    ``gate(x) = sigmoid(BN(conv_kxk([max_c(x); mean_c(x)])))``: (B, C, H, W) -> (B, 1, H, W), in float64, the
    BatchNorm in eval mode. Only its receptive field is meant to be looked at; the weights are not trained.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"cbam_style_gate: kernel_size must be odd and positive; got {kernel_size}")
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(1, 2, kernel_size, kernel_size, generator=generator, dtype=torch.float64)
    norm = torch.nn.BatchNorm2d(1).double().eval()

    def gate(x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)  # [max; mean]
        logits = torch.nn.functional.conv2d(pooled, weight.to(x), padding=kernel_size // 2)
        return torch.sigmoid(norm.to(x)(logits))

    return gate
