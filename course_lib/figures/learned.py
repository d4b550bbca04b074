"""Figures of trained modules (chapters 01-08, section "What a trained module learns").

Each function takes a trained network from :func:`course_lib.learned.load_trained` (the student's
module inside) and test data, draws, and returns the arrays it drew. With ``path`` the figure is
saved as PNG and closed; without it the figure stays open for the notebook to show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib import capstone as cap
from course_lib.figures import capstone as cfigs
from course_lib.figures.common import draw_box, finish, pyplot
from course_lib import learned

__all__ = ["plot_se_by_depth", "plot_learned_spatial", "plot_pam_queries", "plot_cam_affinity", "plot_stripes",
           "plot_query_independence", "plot_coord_gates"]




def _probe(data, n: int = learned.PROBE):
    return data.images[:n], data.labels[:n]


def plot_se_by_depth(net: learned.DepthNet, data, path: str | Path | None = None, *, name: str = "SE") -> dict[str, Any]:
    """The SE gate per class at each depth, after the paper's figure of excitations across classes:
    one line per class (the gate averaged over that class's test images) against the channel index,
    the mean over all images in black. Lines on top of each other: the gate is the same for every
    class; lines apart: it depends on the class.

    Returns the per-class gates (``depth_d``, (10, C)) and the numbers ``learned.measure`` gives for a
    depth-gate recipe (``gate_mean_d``, ``gate_std_d``, ``image_std_d``, ``class_share_d``), from the same
    gates, so that a cell need not compute them twice."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    images, labels = _probe(data)
    gates = learned.depth_gates(net, images)
    fig, axes = plt.subplots(1, len(gates), figsize=(4.2 * len(gates), 3.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    out: dict[str, Any] = learned.depth_gate_numbers(gates, labels)
    for d, (ax, g) in enumerate(zip(axes[0], gates), start=1):
        per_class = np.stack([g[labels == k].mean(0).numpy() for k in range(10)])  # (10, C)
        share = out[f"class_share_{d}"]
        for k in range(10):
            ax.plot(per_class[k], color=colours(k), linewidth=1, label=str(k))
        ax.plot(g.mean(0).numpy(), color="black", linewidth=2, linestyle="--", label="all")
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("channel")
        ax.set_title(f"depth {d}: C = {g.shape[1]}\nclass share of the gate's variance {share:.0%}", fontsize=9)
        out[f"depth_{d}"] = per_class
    axes[0, 0].set_ylabel("mean gate s (per class)")
    axes[0, -1].legend(fontsize=6, ncol=2, loc="lower right", title="class", title_fontsize=7)
    fig.suptitle(f"Trained {name} gates on cluttered digits, per class and per depth "
                 "(1 = after stage 1, 3 = after stage 3)", fontsize=10)
    fig.tight_layout()
    finish(fig, path)
    return out


def plot_learned_spatial(net: cap.CapstoneNet, data, name: str, path: str | Path | None = None,
                         num_images: int = 6) -> dict[str, Any]:
    """The trained module's spatial map over test images against the control (the channel mean of
    |features| entering the module); the number beside a row is its mass in the digit's box on
    these images."""
    images, boxes = data.images[:num_images], data.boxes[:num_images]
    maps = {f"{name}:\nits map": learned.spatial_maps(net, images),
            "control:\n|features|": learned.spatial_maps(net, images, control=True)}
    scores = {k: cap.localisation(m, boxes)["mass_in_box"] for k, m in maps.items()}
    out = cfigs.plot_spatial_attention(images[:, 0].numpy(), boxes.numpy(), {k: m.numpy() for k, m in maps.items()},
                                       path, scores=scores)
    return {**out, "scores": scores}


def _cell_of(row: float, col: float, stride: int, h: int, w: int) -> int:
    r = min(max(int(row // stride), 0), h - 1)
    c = min(max(int(col // stride), 0), w - 1)
    return r * w + c


def plot_pam_queries(net: cap.CapstoneNet, data, index: int = 0, path: str | Path | None = None, *,
                     title: str = "Trained DANet PAM") -> dict[str, Any]:
    """Four queries of one test image (on the digit, on a clutter fragment, in two empty corners) and
    the row of the trained position attention of each, upsampled to the image. Any module whose
    ``attention(x)`` is a (B, N, N) map with one row per query works (PAM, the non-local block)."""
    plt = pyplot()
    image, box = data.images[index:index + 1], data.boxes[index]
    position = cap.attention_outputs(net, image)["position"][0]  # (N, N)
    n = position.shape[0]
    h = w = int(np.sqrt(n))
    stride = image.shape[-1] // w
    top, left, bottom, right = (int(v) for v in box)
    frag = data.clutter_boxes[index, 0]
    queries = {"on the digit": ((top + bottom) / 2, (left + right) / 2),
               "on a fragment": ((int(frag[0]) + int(frag[2])) / 2, (int(frag[1]) + int(frag[3])) / 2),
               "top-left corner": (2.0, 2.0),
               "bottom-right corner": (image.shape[-2] - 3.0, image.shape[-1] - 3.0)}
    cells = {k: _cell_of(r, c, stride, h, w) for k, (r, c) in queries.items()}
    rows = torch.stack([position[q] for q in cells.values()]).reshape(-1, 1, h, w)
    up = torch.nn.functional.interpolate(rows, size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    fig, axes = plt.subplots(1, len(queries) + 1, figsize=(2.2 * (len(queries) + 1), 2.7))
    axes[0].imshow(image[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    draw_box(axes[0], box)
    axes[0].set_title("input", fontsize=8)
    for ax, (label, (r, c)), m, q in zip(axes[1:], queries.items(), up, cells.values()):
        ax.imshow(image[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.imshow((m / m.max()).numpy(), cmap="inferno", alpha=0.65, vmin=0, vmax=1)
        draw_box(ax, box)
        qr, qc = (q // w + 0.5) * stride, (q % w + 0.5) * stride
        ax.plot(qc - 0.5, qr - 0.5, "x", color="white", markersize=9, mew=2)
        ax.set_title(f"query {label}\nlargest weight {float(position[q].max()):.2f}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: where four different queries (x) look (each row scaled to its maximum)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    finish(fig, path)
    return {"rows": rows[:, 0].numpy(), "queries": cells, "top_keys": {k: int(position[q].argmax())
                                                                       for k, q in cells.items()}}


def plot_cam_affinity(nets: dict[str, cap.CapstoneNet], data, path: str | Path | None = None) -> dict[str, Any]:
    """The trained CAM's (C, C) channel affinity averaged over test images, one panel per form.
    Row j: how much channel j's output borrows from each channel i."""
    plt = pyplot()
    images, _ = _probe(data)
    fig, axes = plt.subplots(1, len(nets), figsize=(4.4 * len(nets), 4.0), squeeze=False)
    out: dict[str, Any] = {}
    for ax, (label, net) in zip(axes[0], nets.items()):
        a = cap.attention_outputs(net, images)["channel_affinity"].mean(0).numpy()  # (C, C)
        gamma = float(net.attention.gamma.detach().reshape(-1)[0])
        im = ax.imshow(a, cmap="magma", vmin=0, vmax=max(float(a.max()), 1e-6))
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"{label}: mean map, gamma = {gamma:+.2f}", fontsize=9)
        ax.set_xlabel("channel i (borrowed from)")
        ax.set_ylabel("channel j (row)")
        out[label] = a
    fig.suptitle("Trained DANet CAM on cluttered digits: channel affinity (rows sum to 1)", fontsize=10)
    fig.tight_layout()
    finish(fig, path)
    return out


def plot_stripes(net: learned.StripeNet, data, path: str | Path | None = None, num_images: int = 6) -> dict[str, Any]:
    """HA-CNN's hard-attention stripes on test images: where the initialisation puts them (dashed)
    and where the trained module puts them (solid, one colour per region)."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    images, boxes = data.images[:num_images], data.boxes[:num_images]
    learnt = learned.stripe_boxes(net, images).numpy()
    initial = learned.stripe_boxes(net, images, initial=True).numpy()
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, num_images, figsize=(1.9 * num_images, 2.5))
    for j, ax in enumerate(axes):
        ax.imshow(images[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        draw_box(ax, boxes[j])
        for i, (ini, lea) in enumerate(zip(initial[j], learnt[j])):
            for (top, left, bottom, right), style in ((ini, "--"), (lea, "-")):
                ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                       edgecolor=colours(i), linestyle=style, linewidth=1.3))
        ax.set_xlim(-0.5, images.shape[-1] - 0.5)
        ax.set_ylim(images.shape[-2] - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Trained HA-CNN hard attention: the 4 stripes, initial (dashed) and learnt (solid); cyan box = the digit",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    finish(fig, path)
    return {"learnt": learnt, "initial": initial}


@torch.inference_mode()
def plot_query_independence(nets: dict[str, cap.CapstoneNet], data, distance=None, path: str | Path | None = None,
                            num_images: int = learned.PROBE) -> dict[str, Any]:
    """GCNet's measurement on trained (B, N, N) position maps: for each test image, the mean cosine distance
    between the attention rows of two different queries (y) against the same distance between the module's
    input features at two positions (x). Points far below the diagonal: the maps are much more alike than
    the features they are computed from, i.e. attention that hardly depends on the query.

    ``distance`` maps (B, N, D) to (B,) (the notebook passes the student's ``mean_cosine_distance``;
    default :func:`course_lib.learned.mean_cosine_distance`)."""
    plt = pyplot()
    distance = learned.mean_cosine_distance if distance is None else distance
    images = data.images[:num_images]
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    colours = plt.get_cmap("tab10")
    out: dict[str, Any] = {}
    top = 0.0
    for k, (label, net) in enumerate(nets.items()):
        net.eval()
        rows, inputs = [], []
        for i in range(0, len(images), 250):
            f = net.features(images[i:i + 250])  # (b, C, h, w), the module's input
            maps = net.attention.attention(f).double()  # (b, N, N)
            rows.append(torch.as_tensor(distance(maps)).double().reshape(-1))
            inputs.append(torch.as_tensor(distance(f.double().flatten(2).transpose(1, 2))).double().reshape(-1))
        r, x = torch.cat(rows).numpy(), torch.cat(inputs).numpy()
        ax.scatter(x, r, s=5, alpha=0.4, color=colours(k),
                   label=f"{label}: maps {r.mean():.3f}, inputs {x.mean():.3f} (means)")
        top = max(top, float(x.max()), float(r.max()))
        out[label] = {"rows": r, "inputs": x, "row_mean": float(r.mean()), "input_mean": float(x.mean())}
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="maps as different as the inputs")
    ax.set_xlabel("inputs: mean cosine distance between positions")
    ax.set_ylabel("attention rows: mean cosine distance between queries")
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(0, top * 1.05)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Query-independence of trained position attention\n(one point per test image)", fontsize=9)
    fig.tight_layout()
    finish(fig, path)
    return out


def plot_coord_gates(net: cap.CapstoneNet, data, path: str | Path | None = None, num_images: int = 6) -> dict[str, Any]:
    """Trained Coordinate Attention on test images. Top row: the image with the channel mean of the map
    g^h * g^w over it (upsampled, scaled per image) and the digit's box. Below: the channel means of the
    two gates, g^h along the rows and g^w along the columns, with the digit's rows / columns shaded.
    The numbers beside a profile: the share of its mass (minus its minimum) on the digit's rows/columns."""
    plt = pyplot()
    images, boxes = data.images[:num_images], data.boxes[:num_images]
    maps = learned.spatial_maps(net, images).numpy()  # (n, H, W) channel mean of g^h * g^w, upsampled
    rows, cols = learned.coord_profiles(net, images)  # (n, h), (n, w)
    stride = images.shape[-1] // rows.shape[1]
    centres = (np.arange(rows.shape[1]) + 0.5) * stride
    fig, axes = plt.subplots(3, num_images, figsize=(1.9 * num_images, 5.6),
                             gridspec_kw={"height_ratios": [2.2, 1, 1]})
    out: dict[str, Any] = {"maps": maps, "rows": rows.numpy(), "cols": cols.numpy(), "row_mass": [], "col_mass": []}
    lo_all = float(min(rows.min(), cols.min()))
    hi_all = float(max(rows.max(), cols.max()))
    pad = 0.05 * max(hi_all - lo_all, 1e-3)
    for j in range(num_images):
        top, left, bottom, right = (int(v) for v in boxes[j])
        ax = axes[0, j]
        m = maps[j]
        scaled = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
        ax.imshow(images[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.imshow(scaled, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        draw_box(ax, boxes[j])
        ax.set_xticks([])
        ax.set_yticks([])
        for k, (profile, lo, hi, label) in enumerate(((rows[j], top, bottom, "g^h by row"),
                                                      (cols[j], left, right, "g^w by column"))):
            a = axes[1 + k, j]
            inside = (centres >= lo) & (centres < hi)
            p = profile.numpy() - float(profile.min())
            mass = float(p[inside].sum() / p.sum()) if p.sum() > 0 else float(inside.mean())
            out["row_mass" if k == 0 else "col_mass"].append(mass)
            a.axvspan(lo - 0.5, hi - 0.5, color="tab:cyan", alpha=0.25, linewidth=0)
            a.plot(centres, profile.numpy(), marker="o", markersize=2.5, linewidth=1.2, color="black")
            a.set_xlim(-0.5, images.shape[-1] - 0.5)
            a.set_ylim(lo_all - pad, hi_all + pad)
            a.set_title(f"{label}: {mass:.0%} on digit", fontsize=7)
            a.tick_params(labelsize=6)
            if j:
                a.set_yticklabels([])
    axes[1, 0].set_ylabel("mean g^h", fontsize=7)
    axes[2, 0].set_ylabel("mean g^w", fontsize=7)
    fig.suptitle("Trained Coordinate Attention on cluttered digits: the map g^h g^w (top; cyan box = the digit) and "
                 "its two gates, averaged over channels (shaded: the digit's rows / columns)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    finish(fig, path)
    return out
