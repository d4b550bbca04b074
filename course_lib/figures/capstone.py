"""Figures of the chapter 09 capstone (see :mod:`course_lib.capstone`).

Every ``plot_*`` function draws one figure and returns the arrays it drew, so tests can check the
data rather than the pixels. With ``path`` the figure is saved as PNG and closed; without it the
figure is left open for a notebook to show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from course_lib.figures.common import draw_box, finish, pyplot

__all__ = ["plot_accuracy", "plot_spatial_attention", "plot_channel_weights", "plot_pam_query", "draw_all"]


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Per-image min-max scaling to [0, 1] (constant maps become 0)."""
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1.0)).reshape(maps.shape)


def plot_accuracy(rows: Sequence[Mapping[str, Any]], path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Test accuracy per variant: mean ± std over seeds, each seed as a dot, the plain CNN as a dashed line."""
    plt = pyplot()
    names = np.array([r["variant"] for r in rows])
    mean = np.array([100 * r["acc_mean"] for r in rows])
    std = np.array([100 * r["acc_std"] for r in rows])
    per_seed = [np.array([100 * float(v) for v in str(r.get("acc_per_seed", "")).split()]) for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(rows)), 3.8))
    xs = np.arange(len(rows))
    # Points, not bars: the axis does not start at 0, and a bar's length would then mislead.
    colours = ["#777777" if n == "none" else "#4c72b0" for n in names]
    for x, m, s, seeds, colour in zip(xs, mean, std, per_seed, colours):
        ax.errorbar(x, m, yerr=s, fmt="o", color=colour, capsize=4, markersize=7)
        ax.plot(np.full(len(seeds), x + 0.18), seeds, ".", color="black", markersize=4)
    if "none" in names:
        ax.axhline(mean[list(names).index("none")], color="#777777", linestyle="--", linewidth=1)
    values = np.concatenate([mean - std, mean + std, *per_seed])
    pad = max(1.0, 0.1 * (values.max() - values.min()))
    ax.set_ylim(max(0.0, values.min() - pad), min(100.0, values.max() + pad))
    ax.set_xticks(xs, names, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Cluttered digits: test accuracy per variant\n(circle: mean ± std over seeds; dots: each seed; "
                 "dashed: no attention)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    finish(fig, path)
    return {"variants": names, "mean": mean, "std": std}


def plot_spatial_attention(images: np.ndarray, boxes: np.ndarray, maps: Mapping[str, np.ndarray],
                           path: str | Path | None = None,
                           scores: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Spatial maps over test images, with the digit's box drawn.

    Args:
        images: (n, H, W) in [0, 1]. boxes: (n, 4) (top, left, bottom, right).
        maps: row label -> (n, H, W) map at image resolution; each is min-max scaled per image for
            display (the returned arrays are those scaled maps).
        scores: optional row label -> number shown beside the label (e.g. mass in box).
    """
    plt = pyplot()
    images = np.asarray(images)
    n = len(images)
    shown = {name: _normalise(np.asarray(m, dtype=np.float64)) for name, m in maps.items()}
    fig, axes = plt.subplots(len(shown) + 1, n, figsize=(1.6 * n + 1.2, 1.6 * (len(shown) + 1)), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        draw_box(axes[0, j], boxes[j])
        for i, m in enumerate(shown.values(), start=1):
            axes[i, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
            axes[i, j].imshow(m[j], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            draw_box(axes[i, j], boxes[j])
    labels = ["input"] + [f"{k}\n{scores[k]:.2f}" if scores and k in scores else k for k in shown]
    for i, label in enumerate(labels):
        axes[i, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Spatial attention (bright = high, scaled per image); cyan box = the digit"
                 + ("; number = mass in box" if scores else ""), fontsize=9)
    finish(fig, path)
    return {"images": images, "boxes": np.asarray(boxes), **shown}


def plot_channel_weights(weights: Mapping[str, np.ndarray], path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Channel gates averaged per class: for each module, the mean gate (classes x channels) and
    the same minus each channel's mean over classes (what is class specific)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(weights), 2, figsize=(11, 2.2 * len(weights) + 0.6), squeeze=False)
    out: dict[str, np.ndarray] = {}
    for i, (name, w) in enumerate(weights.items()):
        w = np.asarray(w, dtype=np.float64)
        centred = w - w.mean(0, keepdims=True)
        out[name], out[f"{name}_centred"] = w, centred
        im = axes[i, 0].imshow(w, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[i, 0], fraction=0.03)
        span = max(np.abs(centred).max(), 1e-6)
        im = axes[i, 1].imshow(centred, aspect="auto", cmap="RdBu_r", vmin=-span, vmax=span)
        fig.colorbar(im, ax=axes[i, 1], fraction=0.03)
        axes[i, 0].set_title(f"{name}: mean channel gate per class", fontsize=9)
        axes[i, 1].set_title(f"{name}: minus each channel's mean over classes", fontsize=9)
        for ax in axes[i]:
            ax.set_ylabel("class")
            ax.set_yticks(range(w.shape[0]))
            ax.set_xlabel("channel")
    fig.tight_layout()
    finish(fig, path)
    return out


def plot_pam_query(images: np.ndarray, boxes: np.ndarray, maps: np.ndarray, queries: np.ndarray,
                   path: str | Path | None = None, title: str = "danet_pam") -> dict[str, np.ndarray]:
    """One PAM query per image (white cross, on the digit) and its attention over all positions."""
    plt = pyplot()
    n = len(images)
    shown = _normalise(np.asarray(maps, dtype=np.float64))
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 4.0), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(shown[j], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        for ax in axes[:, j]:
            draw_box(ax, boxes[j])
            ax.plot(queries[j, 1] - 0.5, queries[j, 0] - 0.5, "x", color="white", markersize=8, mew=2)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("attention\nof the query", fontsize=8)
    fig.suptitle(f"{title}: where one query on the digit (x) attends (row of the N x N map, scaled per image)",
                 fontsize=9)
    finish(fig, path)
    return {"images": np.asarray(images), "boxes": np.asarray(boxes), "maps": shown, "queries": np.asarray(queries)}


def draw_all(rows: Sequence[Mapping[str, Any]], models: Mapping[str, Any], test, out: str | Path,
             *, num_images: int = 6) -> list[str]:
    """Every capstone figure that the trained variants allow; returns the PNG paths written."""
    from course_lib import capstone as cap

    out = Path(out)
    written = []
    path = out / "accuracy.png"
    plot_accuracy(rows, path)
    written.append(str(path))

    images, boxes = test.images[:num_images], test.boxes[:num_images]
    maps, scores = {}, {}
    if "none" in models:
        maps["none: |features|"] = cap.spatial_maps(models["none"], images, control=True).numpy()
    lifts = {r["variant"]: r.get("att_mass_in_box") for r in rows}
    for name, model in models.items():
        m = cap.spatial_maps(model, images)
        if m is not None:
            maps[name] = m.numpy()
            if lifts.get(name) is not None and np.isfinite(lifts[name]):
                scores[name] = float(lifts[name])
    if maps:
        path = out / "spatial_attention.png"
        plot_spatial_attention(images[:, 0].numpy(), boxes.numpy(), maps, path, scores=scores)
        written.append(str(path))

    weights = {}
    for name, model in models.items():
        w = cap.channel_weights_per_class(model, test)
        if w is not None:
            weights[name] = w
    if weights:
        path = out / "channel_weights.png"
        plot_channel_weights(weights, path)
        written.append(str(path))

    for name in ("danet_pam", "danet_dual"):
        if name in models:
            q = cap.pam_query_maps(models[name], test, range(num_images))
            if q is not None:
                path = out / "pam_query.png"
                plot_pam_query(q["images"], q["boxes"], q["maps"], q["queries"], path, title=name)
                written.append(str(path))
                break
    return written
