"""Figures every chapter uses: a sample photo, a map over an image, a heatmap, a bar chart, and the helpers
every figure module shares (pyplot on demand, saving a figure, centring an image)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch


@functools.lru_cache(maxsize=4)
def photo(name: str) -> np.ndarray:
    """One of the two photos that ship with scikit-learn (no download), as ``load_sample_image`` gives it,
    read without importing scikit-learn."""
    from course_lib.data import sklearn_data_file

    path = sklearn_data_file("datasets", "images", name)
    if path is None:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    from PIL import Image

    with open(path, "rb") as fh:
        return np.asarray(Image.open(fh))


def sample_image(name: str = "china.jpg", size: tuple[int, int] = (96, 144)) -> torch.Tensor:
    """A real photo as a (1, 3, H, W) float tensor in [0, 1]; ``name`` is "china.jpg" or "flower.jpg"."""
    if name not in {"china.jpg", "flower.jpg"}:
        raise ValueError(f"sample_image: name must be 'china.jpg' or 'flower.jpg', got {name!r}")
    image = torch.from_numpy(photo(name).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def pyplot():
    """matplotlib.pyplot, imported on first use (headless machines fall back to Agg by themselves)."""
    import matplotlib.pyplot as plt

    return plt


def finish(fig, path: str | Path | None) -> None:
    """With ``path``: save ``fig`` as PNG and close it. Without: leave it open for a notebook to show."""
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        pyplot().close(fig)


#: the colour of a digit's box over a map (cyan: visible on gray images and on the jet colour map)
BOX_COLOUR = "#00e5ff"


def draw_box(ax, box, **kwargs) -> None:
    """Outline ``box`` = (top, left, bottom, right) in pixels on the axes ``ax``."""
    from matplotlib.patches import Rectangle

    top, left, bottom, right = (int(v) for v in box)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                           edgecolor=BOX_COLOUR, linewidth=1.5, **kwargs))


def centred(image: torch.Tensor) -> torch.Tensor:
    """Subtract each channel's mean over the image, as a BatchNorm would: (B, C, H, W) -> (B, C, H, W)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        raise ValueError(f"centred expects a (B, C, H, W) tensor; got {getattr(image, 'shape', type(image).__name__)}")
    return image - image.mean((2, 3), keepdim=True)


def to_numpy(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def show_map(image: torch.Tensor, attention_map: torch.Tensor, *, ax=None, title: str = "", alpha: float = 0.5,
             cmap: str = "jet") -> np.ndarray:
    """Overlay a (H, W) map (or (1, 1, H, W)) on an image ((3, H, W), (1, 3, H, W) or (H, W)); return the map."""
    import matplotlib.pyplot as plt

    amap = to_numpy(attention_map).squeeze()
    img = to_numpy(image).squeeze()
    if amap.ndim != 2:
        raise ValueError(f"show_map: expected a 2-D map after squeezing, got shape {amap.shape}")
    if img.ndim == 3:
        img = np.transpose(img, (1, 2, 0))
    if img.shape[:2] != amap.shape:
        raise ValueError(f"show_map: image is {img.shape[:2]} but the map is {amap.shape}; resize one first")
    ax = ax or plt.gca()
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(amap, cmap=cmap, alpha=alpha)
    ax.set_title(title)
    ax.axis("off")
    return amap


def heatmap(matrix: torch.Tensor | np.ndarray, *, ax=None, title: str = "", xlabel: str = "", ylabel: str = "",
            cmap: str = "viridis") -> np.ndarray:
    """Show a 2-D matrix with a colour bar; return it."""
    import matplotlib.pyplot as plt

    data = to_numpy(matrix).squeeze()
    if data.ndim != 2:
        raise ValueError(f"heatmap: expected a 2-D matrix after squeezing, got shape {data.shape}")
    ax = ax or plt.gca()
    image = ax.imshow(data, cmap=cmap)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return data


def bars(values: torch.Tensor | np.ndarray, *, ax=None, title: str = "", xlabel: str = "channel",
         ylabel: str = "weight") -> np.ndarray:
    """A bar per entry of a 1-D vector (e.g. SE channel weights); return the vector."""
    import matplotlib.pyplot as plt

    data = to_numpy(values).reshape(-1)
    ax = ax or plt.gca()
    ax.bar(np.arange(len(data)), data)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return data
