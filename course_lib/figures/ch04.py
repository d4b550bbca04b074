"""Figures of chapter 04 (HA-CNN): the soft map over an image and the hard regions drawn on it.

The functions take the student's modules (by the attribute names the notebook gives them), never the reference
classes, and return the arrays they draw.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .common import sample_image, to_numpy


def _check_image(owner: str, image) -> None:
    if not (isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] == 1 and image.is_floating_point()):
        raise ValueError(f"{owner}: expected a (1, C, H, W) float tensor; got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")


def person_crop(size: tuple[int, int] = (160, 64)) -> torch.Tensor:
    """A tall crop of scikit-learn's china.jpg (the pagoda), resized to ``size``: (1, 3, H, W) in [0, 1].

    HA-CNN works on 160x64 person images; no person photo ships with the course, so a tall, person-like
    crop of the sample photo stands in (head-to-toe structure: spire, roofs, base).
    """
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"person_crop: size must be a pair of positive ints (H, W); got {size!r}")
    full = sample_image("china.jpg", size=(427, 640))
    crop = full[:, :, 30:427, 135:315]  # the pagoda, 397 x 180 pixels
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def edge_features(image: torch.Tensor, orientations: int = 8, scales: tuple[int, ...] = (1, 2)) -> torch.Tensor:
    """A small bank of rectified oriented gradients, like a first conv layer: (1, 3, H, W) -> (1, O*S, H, W).

    For each scale s the grey image is box-blurred over (2s+1)x(2s+1); for each of the O orientations a the
    channel is relu(cos(a) d/dx + sin(a) d/dy). With the defaults: 16 channels.
    """
    _check_image("edge_features", image)
    grey = image.mean(1, keepdim=True)
    channels = []
    for s in scales:
        blurred = F.avg_pool2d(grey, 2 * s + 1, stride=1, padding=s, count_include_pad=False)
        dx = F.pad(blurred[..., :, 2:] - blurred[..., :, :-2], (1, 1, 0, 0), mode="replicate") / 2
        dy = F.pad(blurred[..., 2:, :] - blurred[..., :-2, :], (0, 0, 1, 1), mode="replicate") / 2
        for k in range(orientations):
            a = 2 * math.pi * k / orientations
            channels.append(F.relu(math.cos(a) * dx + math.sin(a) * dy))
    features = torch.cat(channels, dim=1)
    return features / features.amax().clamp_min(1e-12)


def set_demo_weights(soft, features: torch.Tensor, *, open_share: float = 0.4, top: float = 4.0) -> dict[str, float]:
    """Hand-set the weights of a SoftAttention (torchreid names) so that its map follows local edge density.

    spatial_attn: conv1 = 3x3 box filter, conv2 = a gain g; channel_attn: the average of the squeezed channels,
    the same for every channel; conv: identity minus a threshold t; BatchNorms at their identity state. Then
    M = sigmoid(relu(S * C - t)): exactly 0.5 where S * C < t. g and t are read off ``features`` so that
    ``open_share`` of the positions pass the threshold and the top 5 % reach about ``top`` before the sigmoid.
    Returns {"gain": g, "threshold": t}.
    """
    if not 0 < open_share < 1:
        raise ValueError(f"set_demo_weights: open_share must be in (0, 1); got {open_share}")
    state = dict(soft.named_parameters()) | dict(soft.named_buffers())
    c = soft.conv.conv.weight.shape[0]
    hidden = soft.channel_attn.conv1.conv.weight.shape[0]
    values = {
        "spatial_attn.conv1.conv.weight": torch.full((1, 1, 3, 3), 1 / 9),
        "spatial_attn.conv2.conv.weight": torch.ones(1, 1, 1, 1),
        "channel_attn.conv1.conv.weight": torch.full((hidden, c, 1, 1), 1 / c),
        "channel_attn.conv2.conv.weight": torch.full((c, hidden, 1, 1), 1 / hidden),
        "conv.conv.weight": torch.eye(c).reshape(c, c, 1, 1),
    }
    with torch.no_grad():
        for name, tensor in state.items():
            if name in values:
                tensor.copy_(values[name])
            elif name.endswith("conv.bias") or name.endswith("bn.bias") or name.endswith("running_mean"):
                tensor.zero_()
            elif name.endswith("bn.weight") or name.endswith("running_var"):
                tensor.fill_(1.0)
        soft.eval()
        product = (soft.spatial_attn(features) * soft.channel_attn(features)).reshape(-1).double()
        high = float(torch.quantile(product, 0.95).clamp_min(1e-12))
        gain = top / high
        threshold = gain * float(torch.quantile(product, 1 - open_share))
        state["spatial_attn.conv2.conv.weight"].fill_(gain)
        state["conv.conv.bias"].fill_(-threshold)
    return {"gain": gain, "threshold": threshold}


def soft_panels(image: torch.Tensor, features: torch.Tensor, soft, *, axes=None) -> dict[str, np.ndarray]:
    """photo | spatial map S | channel-mean of M over the photo | histogram of M, for ``soft.attention(features)``."""
    import matplotlib.pyplot as plt

    _check_image("soft_panels", image)
    if features.dim() != 4 or features.shape[0] != 1 or features.shape[2:] != image.shape[2:]:
        raise ValueError(f"soft_panels: features must be (1, C, H, W) with the image's H, W {tuple(image.shape[2:])}; "
                         f"got {tuple(features.shape)}")
    with torch.no_grad():
        s = soft.spatial_attn(features)
        m = soft.attention(features)
    data = {
        "image": to_numpy(image[0]).transpose(1, 2, 0),
        "spatial": to_numpy(s[0, 0]),
        "soft_mean": to_numpy(m[0].mean(0)),
        "soft_values": to_numpy(m).reshape(-1),
    }
    if axes is None:
        fig, axes = plt.subplots(1, 4, figsize=(13.5, 4.2), gridspec_kw={"width_ratios": [1, 1, 1, 2.2]})
        fig.subplots_adjust(wspace=0.45)
    axes[0].imshow(data["image"])
    axes[0].set_title("input (160x64)", fontsize=10)
    shown = axes[1].imshow(data["spatial"], cmap="magma")
    axes[1].figure.colorbar(shown, ax=axes[1], fraction=0.09, pad=0.04)
    axes[1].set_title("spatial map S", fontsize=10)
    axes[2].imshow(data["image"])
    floor = float(data["soft_values"].min())  # the smallest value the map took (exercise 4 says which it can take)
    shown = axes[2].imshow(data["soft_mean"], cmap="jet", alpha=0.55, vmin=floor, vmax=1.0)
    axes[2].figure.colorbar(shown, ax=axes[2], fraction=0.09, pad=0.04)
    axes[2].set_title("soft map M\n(mean over channels)", fontsize=10)
    for ax in axes[:3]:
        ax.axis("off")
    axes[3].hist(data["soft_values"], bins=50, range=(0.0, 1.0), color="tab:blue", log=True)
    axes[3].axvspan(0.0, floor, color="tab:red", alpha=0.12)
    axes[3].axvline(floor, color="tab:red", lw=1)
    axes[3].set_xlabel("value of M")
    axes[3].set_ylabel("count (log scale)")
    axes[3].yaxis.tick_right()
    axes[3].yaxis.set_label_position("right")
    axes[3].set_title(f"every value of M: none below {floor:.3f}", fontsize=10)
    return data


def region_boxes(affine: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Pixel boxes (top, left, bottom, right) of the regions that ``affine`` samples, for align_corners=False.

    ``affine``: (R, 2, 3) or (B, R, 2, 3) matrices [[s_x, 0, t_x], [0, s_y, t_y]]. In normalised coordinates the
    crop covers [t - s, t + s] on each axis; pixel edges sit at (u + 1) / 2 * size. Returns (..., R, 4).
    """
    if tuple(affine.shape[-2:]) != (2, 3):
        raise ValueError(f"region_boxes: expected (..., R, 2, 3) affine matrices; got shape {tuple(affine.shape)}")
    a = to_numpy(affine).astype(np.float64)
    sx, tx, sy, ty = a[..., 0, 0], a[..., 0, 2], a[..., 1, 1], a[..., 1, 2]
    top = (ty - sy + 1) / 2 * height
    bottom = (ty + sy + 1) / 2 * height
    left = (tx - sx + 1) / 2 * width
    right = (tx + sx + 1) / 2 * width
    return np.stack([top, left, bottom, right], axis=-1)


def row_coverage(boxes: np.ndarray, height: int) -> dict[str, float]:
    """Share of the image's rows inside no stripe, exactly one, and more than one (the boxes of one image)."""
    rows = np.arange(height) + 0.5  # pixel centres
    inside = ((rows[:, None] >= boxes[:, 0]) & (rows[:, None] < boxes[:, 2])).sum(1)
    return {"uncovered": float((inside == 0).mean()), "once": float((inside == 1).mean()),
            "overlapped": float((inside > 1).mean())}


def draw_regions(image: torch.Tensor, boxes: np.ndarray, *, ax=None, title: str = "", dashed: np.ndarray | None = None):
    """The image with one coloured rectangle per region (and optional dashed reference boxes); returns ``boxes``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    ax = ax or plt.gca()
    ax.imshow(to_numpy(image[0]).transpose(1, 2, 0), extent=(0, image.shape[-1], image.shape[-2], 0))
    colours = plt.cm.tab10.colors
    if dashed is not None:
        for top, left, bottom, right in dashed:
            ax.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, ls="--", lw=1.2, ec="yellow"))
    for i, (top, left, bottom, right) in enumerate(boxes):
        colour = colours[i % len(colours)]
        ax.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, lw=2, ec=colour))
        ax.text(left + 2, top + 8, str(i), color=colour, fontsize=9, weight="bold")  # region i, 0-based as in §9
    ax.set_xlim(-2, image.shape[-1] + 2)
    ax.set_ylim(image.shape[-2] + 2, -2)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return boxes


def draw_crops(crops: torch.Tensor, *, axes=None, title: str = "crop"):
    """Show the R crops of one image, (R, 3, h, w) or (1, R, 3, h, w); return them as an array."""
    import matplotlib.pyplot as plt

    data = to_numpy(crops.reshape(-1, *crops.shape[-3:])).transpose(0, 2, 3, 1).clip(0, 1)
    if axes is None:
        _, axes = plt.subplots(len(data), 1, figsize=(2.4, 1.3 * len(data)))
    for i, (ax, crop) in enumerate(zip(np.atleast_1d(axes), data)):
        ax.imshow(crop)
        ax.set_title(f"{title} {i}", fontsize=8, pad=2)  # region i, 0-based as in §9
        ax.axis("off")
    return data
