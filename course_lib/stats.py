"""Paired comparisons of two classifiers on the same test images (the capstone's table).

Two variants tested on the same images are not two independent measurements: most images are
right (or wrong) for both, and only the images on which they *disagree* say which one is better.
The standard error of one accuracy, sqrt(p (1 - p) / n), is the wrong yardstick for their
difference: it ignores that pairing (and can be far too wide when the two agree on almost every
image, or too narrow when they disagree often). This module gives the paired answers.

Notation, for a baseline A and a variant B on n images (one seed):

    ==========  =================================================
    n_b         images B gets right and A gets wrong ("B wins")
    n_a         images A gets right and B gets wrong ("A wins")
    Δ           accuracy of B minus accuracy of A = (n_b - n_a) / n
    ==========  =================================================

* :func:`mcnemar_exact`: McNemar's exact test. Under "A and B are equally good" each of the
  n_a + n_b discordant images is a fair coin, so min(n_a, n_b) follows Binomial(n_a + n_b, 1/2);
  the two-sided p-value is ``min(1, 2 P(X <= min(n_a, n_b)))``. Concordant images do not enter.
* :func:`paired_bootstrap`: a percentile interval for Δ, resampling *images* (the same resampled
  images for A and B, which keeps the pairing) and, given several seeds, also resampling *seeds*
  (seed k of B paired with seed k of A: they share initialisation and batch order). The interval
  then covers both the test set's sampling noise and the training run's, *if* there are enough seeds.
* :func:`seed_interval`: a t-interval over the per-seed differences Δ_1 .. Δ_s. With few seeds this is the
  honest one: a bootstrap over s seeds can only redraw those s values, so its interval stays within about the
  range of the Δ_k (the images' resampling widens it a little), however few there are. With s = 3 the t-interval's half-width is
  t_{2, 0.975} = 4.30 standard errors, where a normal yardstick would use 1.96: three values say little
  about how much a fourth training run would differ.

All inputs are boolean "was image i right" arrays: (n,) for one seed, (seeds, n) for several.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["mcnemar_exact", "paired_bootstrap", "seed_interval", "compare", "paired_rows", "paired_columns", "paired_table", "NO_PAIR"]


def _as_correct(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
    if a.dtype != bool:
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{what} should hold per-image correctness (bool or 0/1); got values "
                             f"{np.unique(a)[:5].tolist()}")
        a = a.astype(bool)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{what} should have shape (n,) or (seeds, n) with n >= 1; got {a.shape}")
    return a


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_correct(a, "baseline"), _as_correct(b, "variant")
    if a.shape != b.shape:
        raise ValueError(f"baseline and variant must be scored on the same images and seeds: shapes {a.shape} "
                         f"and {b.shape} differ")
    return a, b


def mcnemar_exact(baseline: Any, variant: Any) -> dict[str, float]:
    """McNemar's exact two-sided test on one seed's per-image correctness (n,) of two classifiers.

    Returns ``{"variant_wins": n_b, "baseline_wins": n_a, "p_value": p}``; p = 1 when they never
    disagree.
    """
    a, b = _pair(baseline, variant)
    if a.shape[0] != 1:
        raise ValueError(f"mcnemar_exact takes one seed, shape (n,); got {a.shape[0]} seeds. Test each seed, "
                         "or use paired_bootstrap for all of them.")
    n_b = int((b & ~a).sum())
    n_a = int((a & ~b).sum())
    n = n_a + n_b
    k = min(n_a, n_b)
    # exact: 2 * P(X <= k), X ~ Binomial(n, 1/2); summed in integers, divided once
    tail = sum(math.comb(n, i) for i in range(k + 1))
    p = min(1.0, 2.0 * tail / 2 ** n) if n else 1.0
    return {"variant_wins": float(n_b), "baseline_wins": float(n_a), "p_value": p}


def paired_bootstrap(baseline: Any, variant: Any, *, resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap interval for Δ = acc(variant) - acc(baseline), paired by image and seed.

    ``baseline``, ``variant``: (n,) or (seeds, n) bool, row k of both from the same seed. Each
    resample draws n images with replacement (the same ones for both) and, with several seeds,
    as many seeds with replacement (the same seed index for both), and takes the mean difference.
    Returns ``{"delta": observed Δ, "low": ..., "high": ..., "level": level}``.
    """
    a, b = _pair(baseline, variant)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int >= 100; got {resamples!r}")
    diff = b.astype(np.float64) - a.astype(np.float64)  # (seeds, n) in {-1, 0, 1}
    s, n = diff.shape
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // (n * s))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        images = rng.integers(0, n, size=(m, n))
        seeds = rng.integers(0, s, size=(m, s)) if s > 1 else np.zeros((m, 1), dtype=np.int64)
        per_seed = diff[:, images].mean(-1).T  # (s, m, n) -> (m, s): every seed on the same resampled images
        stats[start:start + m] = np.take_along_axis(per_seed, seeds, 1).mean(1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return {"delta": float(diff.mean()), "low": float(low), "high": float(high), "level": level}


def seed_interval(deltas: Sequence[float], *, level: float = 0.95) -> dict[str, float]:
    """t-interval for the mean of per-seed differences ``deltas`` (one Δ per seed, each on the same test images).

    mean ± t_{s-1, (1+level)/2} · sd / √s with s = len(deltas) and sd the sample standard deviation. It
    treats the seeds as a sample of training runs; with s = 1 there is no spread to estimate, and the
    interval is (nan, nan). Returns ``{"delta", "low", "high", "seeds", "level"}``.
    """
    from scipy import stats as scipy_stats  # scikit-learn's dependency; imported here to keep the module light

    d = np.asarray(deltas, dtype=np.float64).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"seed_interval needs one finite difference per seed; got {d.tolist()}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    mean, s = float(d.mean()), d.size
    if s == 1:
        return {"delta": mean, "low": float("nan"), "high": float("nan"), "seeds": 1, "level": level}
    half = float(scipy_stats.t.ppf((1.0 + level) / 2, s - 1)) * float(d.std(ddof=1)) / math.sqrt(s)
    return {"delta": mean, "low": mean - half, "high": mean + half, "seeds": s, "level": level}


def compare(baseline: Any, variant: Any, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every answer for (seeds, n) correctness: the per-seed differences, their t-interval over seeds, the
    bootstrap interval over images and seeds, and McNemar's p-value per seed."""
    a, b = _pair(baseline, variant)
    boot = paired_bootstrap(a, b, resamples=resamples, seed=seed)
    per_seed = (b.astype(np.float64) - a.astype(np.float64)).mean(1)  # (seeds,)
    over_seeds = seed_interval(per_seed)
    tests = [mcnemar_exact(a[k], b[k]) for k in range(a.shape[0])]
    return {**boot, "per_seed": per_seed.tolist(), "seed_low": over_seeds["low"], "seed_high": over_seeds["high"],
            "p_values": [t["p_value"] for t in tests],
            "variant_wins": [int(t["variant_wins"]) for t in tests],
            "baseline_wins": [int(t["baseline_wins"]) for t in tests]}


def paired_rows(results: Sequence[Any], baseline: str = "none", *, resamples: int = 2000) -> dict[str, dict[str, Any]]:
    """Variant -> :func:`compare` against ``baseline``, from capstone RunResults that carry ``correct``.

    Seeds are paired by their seed number; variants or seeds without per-image results are left out.
    """
    by = {}
    for r in results:
        if getattr(r, "correct", None) is not None:
            by.setdefault(r.variant, {})[r.seed] = np.asarray(r.correct, dtype=bool)
    if baseline not in by:
        return {}
    out = {}
    for variant, runs in by.items():
        if variant == baseline:
            continue
        seeds = sorted(set(runs) & set(by[baseline]))
        if seeds:
            out[variant] = compare(np.stack([by[baseline][s] for s in seeds]), np.stack([runs[s] for s in seeds]),
                                   resamples=resamples)
    return out


#: The paired columns of a row that has no comparison (the baseline itself, or no per-image results).
NO_PAIR: dict[str, Any] = {"paired_delta": float("nan"), "paired_low": float("nan"), "paired_high": float("nan"),
                           "paired_per_seed": "", "seed_low": float("nan"), "seed_high": float("nan"),
                           "paired_wins": "", "paired_p": ""}


def paired_columns(results: Sequence[Any], baseline: str = "none") -> dict[str, dict[str, Any]]:
    """Variant -> the columns the capstone's rows get: ``paired_delta``, ``paired_low``, ``paired_high`` (the
    bootstrap over images and seeds), ``paired_per_seed`` (each seed's Δ, space-separated), ``seed_low``,
    ``seed_high`` (the t-interval over seeds; nan with one seed), all fractions; ``paired_wins`` ("won/lost"
    per seed) and ``paired_p`` (McNemar p per seed)."""
    return {v: {"paired_delta": c["delta"], "paired_low": c["low"], "paired_high": c["high"],
                "paired_per_seed": " ".join(f"{d:.4f}" for d in c["per_seed"]),
                "seed_low": c["seed_low"], "seed_high": c["seed_high"],
                "paired_wins": " ".join(f"{w}/{l}" for w, l in zip(c["variant_wins"], c["baseline_wins"])),
                "paired_p": " ".join(f"{p:.2g}" for p in c["p_values"])}
            for v, c in paired_rows(results, baseline).items()}


def points(value: float) -> str:
    """A difference in percentage points as the tables print it, e.g. "+1.5" or "-0.8". The value is rounded to
    6 decimals first, so that the same difference computed two ways (n_b - n_a over n, or one accuracy minus the
    other, which lands a few ulps off -0.85) prints the same digit."""
    return f"{round(value, 6) + 0.0:+.1f}"


def per_seed_points(row: Mapping[str, Any]) -> list[float]:
    """A row's per-seed differences, in percentage points."""
    return [100 * float(d) for d in str(row.get("paired_per_seed", "")).split()]


def paired_table(rows: Sequence[Mapping[str, Any]], baseline: str = "none", *, reading: bool = True) -> list[str]:
    """Markdown lines for the rows that carry :func:`paired_columns`: Δ, each seed's Δ, the t-interval over
    seeds, the bootstrap interval, images won and lost and McNemar's p per seed, and how to read them."""
    show_reading = reading
    rows = [r for r in rows if r.get("paired_wins")]
    if not rows:
        return []
    seeds = max(len(str(r["paired_p"]).split()) for r in rows)

    def span(low: float, high: float) -> str:
        return "n/a (one seed)" if math.isnan(low) else f"{points(100 * low)} .. {points(100 * high)} pt"

    lines = [
        f"## Paired comparison with `{baseline}` (same test images, same seeds)",
        "",
        f"| variant | Δ accuracy (mean) | Δ per seed | 95 % t-interval over seeds | 95 % bootstrap (images and seeds) "
        f"| images won / lost vs {baseline} (per seed) | McNemar p (per seed) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_seed = " ".join(points(d) for d in per_seed_points(r))
        lines.append(f"| {r['variant']} | {points(100 * r['paired_delta'])} pt | {per_seed} | "
                     f"{span(r['seed_low'], r['seed_high'])} | {span(r['paired_low'], r['paired_high'])} | "
                     f"{r['paired_wins']} | {r['paired_p']} |")
    if seeds == 1:
        reading = ("With one seed there is one training run per variant: the bootstrap redraws the test images only, "
                   "so an interval that excludes 0 says that *this* run of the variant and *this* run of the "
                   "baseline differ beyond test-set noise. It says nothing about how another training run would "
                   "come out, and there is no spread over seeds to build a t-interval from.")
    else:
        reading = (f"Each seed gives one Δ; the t-interval is mean ± t_({seeds - 1}, 0.975) × sd / √{seeds} over "
                   f"those {seeds} values and speaks about training runs in general. The bootstrap redraws the "
                   f"test images and the seeds, but it can only redraw the {seeds} seeds there are, so its interval "
                   "stays within about the range of the Δ per seed: with few seeds it is too narrow "
                   "for the noise of training, and the t-interval is the one to report (an interval whose ends "
                   "disagree in sign between the two methods is not settled by these seeds).")
    if not show_reading:
        return lines
    lines += [
        "",
        "Δ is the variant's accuracy minus the baseline's. " + reading + " An interval that contains 0 is no "
        "evidence of a difference, in either direction. *Won / lost*: images only the variant gets right / only "
        "the baseline gets right; McNemar's exact test asks, per seed, whether that split could come from a fair "
        "coin (test-set noise only). With many variants, some p below 0.05 turn up by chance alone.",
    ]
    return lines
