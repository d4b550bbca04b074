"""Figures of chapter 07 (the non-local block and GCNet).

``plot_distance_distributions`` draws what a mean hides in GCNet's measurement: how the per-image distances
between attention rows are spread. It takes the arrays :func:`course_lib.figures.learned.plot_query_independence`
returns (computed with the student's ``mean_cosine_distance``) and returns the numbers it draws.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .common import finish, pyplot

#: a row distance below this counts as "one row shared by every query" (the rows are one-hot and agree)
SHARED = 1e-3
#: the threshold the chapter's text quotes for a clearly query-dependent image
APART = 0.1


def distance_summary(rows: np.ndarray, inputs: np.ndarray) -> dict[str, float]:
    """The numbers the chapter quotes for one network: per-image row distances and input distances."""
    rows, inputs = np.asarray(rows, dtype=float), np.asarray(inputs, dtype=float)
    if rows.shape != inputs.shape or rows.ndim != 1 or rows.size == 0:
        raise ValueError(f"distance_summary: rows and inputs should be two 1-D arrays of the same length, one number "
                         f"per image; got shapes {rows.shape} and {inputs.shape}")
    return {"row_mean": float(rows.mean()), "row_median": float(np.median(rows)), "row_max": float(rows.max()),
            "share_shared": float((rows < SHARED).mean()), "share_apart": float((rows > APART).mean()),
            "share_below_half_input": float((rows < inputs / 2).mean()), "input_mean": float(inputs.mean()),
            "input_min": float(inputs.min())}


def plot_distance_distributions(shown: Mapping[str, Mapping[str, Any]], path: str | Path | None = None
                                ) -> dict[str, dict[str, float]]:
    """Empirical distribution functions (the share of images at or below each distance) of the attention rows'
    and of the inputs' mean cosine distance, one pair of curves per network. ``shown``: label -> {"rows": (n,),
    "inputs": (n,)}, as plot_query_independence returns it. Returns label -> :func:`distance_summary`."""
    if not shown:
        raise ValueError("plot_distance_distributions: no network to draw (shown is empty)")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    colours = plt.get_cmap("tab10")
    out = {}
    for k, (label, data) in enumerate(shown.items()):
        rows, inputs = np.sort(np.asarray(data["rows"], dtype=float)), np.sort(np.asarray(data["inputs"], dtype=float))
        share = np.arange(1, rows.size + 1) / rows.size
        summary = distance_summary(data["rows"], data["inputs"])
        out[label] = summary
        ax.step(rows, share, where="post", color=colours(k), linewidth=1.8,
                label=f"{label}: attention rows ({summary['share_shared']:.0%} of images below {SHARED:g}, "
                      f"{summary['share_apart']:.1%} above {APART:g})")
        ax.step(inputs, share, where="post", color=colours(k), linestyle="--", linewidth=1.2,
                label=f"{label}: inputs (smallest {summary['input_min']:.2f})")
    ax.axvline(APART, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlim(-0.005, max(max(float(np.max(d["inputs"])) for d in shown.values()), 0.2) * 1.05)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean cosine distance of one image (rows: between queries; inputs: between positions)")
    ax.set_ylabel("share of images at or below it")
    ax.set_title("How the per-image distances are spread (the scatter's two axes, one at a time)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.06, 0.04))
    fig.tight_layout()
    finish(fig, path)
    return out
