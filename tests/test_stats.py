"""course_lib.stats against cases known by hand, and wrong implementations it must not agree with.

The wrong implementations sit beside the tests (``WRONG_MCNEMAR``, ``wrong_unpaired_interval``):
each test shows the right answer is reached AND that the wrong one misses it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from course_lib import stats


def correctness(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness of A and B with the given counts of each (A, B) outcome."""
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, dtype=bool)
    return a, b


# ---- McNemar ------------------------------------------------------------------------------
# By hand: 1 image only A gets right, 9 only B: n = 10 discordant, k = min = 1,
# p = 2 * (C(10, 0) + C(10, 1)) / 2^10 = 2 * 11 / 1024 = 0.021484375.
HAND_P = 22 / 1024


def _one_sided(n_a, n_b):
    return sum(math.comb(n_a + n_b, i) for i in range(min(n_a, n_b) + 1)) / 2 ** (n_a + n_b)


def _chi2_no_correction(n_a, n_b):
    return math.erfc(math.sqrt((n_a - n_b) ** 2 / (n_a + n_b)) / math.sqrt(2))


def _chi2_continuity(n_a, n_b):
    return math.erfc(math.sqrt((abs(n_a - n_b) - 1) ** 2 / (n_a + n_b)) / math.sqrt(2))


def _all_pairs_binomial(n_a, n_b, n_total):
    # counts the concordant images as ties inside the binomial: n = every image
    return min(1.0, 2 * sum(math.comb(n_total, i) for i in range(min(n_a, n_b) + 1)) / 2 ** n_total)


WRONG_MCNEMAR = {"one-sided": lambda a, b, n: _one_sided(a, b),
                 "chi-square without correction": lambda a, b, n: _chi2_no_correction(a, b),
                 "chi-square with continuity correction": lambda a, b, n: _chi2_continuity(a, b),
                 "binomial over all images": lambda a, b, n: _all_pairs_binomial(a, b, n)}


def test_mcnemar_exact_matches_the_hand_computed_p_value():
    a, b = correctness(both=80, only_a=1, only_b=9, neither=10)
    out = stats.mcnemar_exact(a, b)
    assert (out["baseline_wins"], out["variant_wins"]) == (1, 9)
    assert out["p_value"] == pytest.approx(HAND_P, rel=1e-12)


@pytest.mark.parametrize("name", list(WRONG_MCNEMAR))
def test_mcnemar_wrong_forms_miss_the_hand_value(name):
    """Each usual wrong form gives another number on the hand case, so the test above would catch it."""
    wrong = WRONG_MCNEMAR[name](1, 9, 100)
    assert abs(wrong - HAND_P) > 1e-3, f"{name} gives {wrong}, too close to the exact {HAND_P}"


def test_mcnemar_ignores_concordant_images_and_is_symmetric():
    a, b = correctness(both=5, only_a=3, only_b=12, neither=0)
    a2, b2 = correctness(both=500, only_a=3, only_b=12, neither=700)
    p = stats.mcnemar_exact(a, b)["p_value"]
    assert stats.mcnemar_exact(a2, b2)["p_value"] == p
    assert stats.mcnemar_exact(b, a)["p_value"] == p
    # by hand: n = 15, k = 3: 2 * (1 + 15 + 105 + 455) / 32768
    assert p == pytest.approx(2 * 576 / 32768, rel=1e-12)


def test_mcnemar_no_disagreement_and_a_tie_give_p_one():
    a, b = correctness(both=10, only_a=0, only_b=0, neither=3)
    assert stats.mcnemar_exact(a, b)["p_value"] == 1.0
    a, b = correctness(both=10, only_a=4, only_b=4, neither=3)
    assert stats.mcnemar_exact(a, b)["p_value"] == 1.0


def test_mcnemar_agrees_with_scipy_binomtest():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(20):
        n_a, n_b = (int(v) for v in rng.integers(0, 60, size=2))
        a, b = correctness(both=7, only_a=n_a, only_b=n_b, neither=2)
        want = scipy_stats.binomtest(min(n_a, n_b), n_a + n_b, 0.5).pvalue if n_a + n_b else 1.0
        assert stats.mcnemar_exact(a, b)["p_value"] == pytest.approx(want, rel=1e-9)


def test_mcnemar_rejects_mismatched_or_bad_input():
    with pytest.raises(ValueError, match="same images"):
        stats.mcnemar_exact(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(ValueError, match="correctness"):
        stats.mcnemar_exact(np.array([0.3, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one seed"):
        stats.mcnemar_exact(np.ones((2, 5), bool), np.ones((2, 5), bool))


# ---- paired bootstrap ------------------------------------------------------------------------
def _correlated_pair(rng, n, p_a=0.85, delta=0.03, flip=0.06):
    """A and B that agree on most images; B is right on `delta` more of them in expectation."""
    a = rng.random(n) < p_a
    b = a.copy()
    u = rng.random(n)
    b[(u < flip / 2 + delta / 2) & ~a] = True  # B fixes some of A's errors ...
    b[(u < flip / 2 - delta / 2) & a] = False  # ... and breaks fewer of A's successes
    return a, b


def true_delta(p_a=0.85, delta=0.03, flip=0.06):
    return (1 - p_a) * (flip / 2 + delta / 2) - p_a * (flip / 2 - delta / 2)


def wrong_unpaired_interval(a, b):
    """The exercise's old yardstick: Δ ± 2 standard errors of the baseline's accuracy alone."""
    p = a.mean()
    half = 2 * math.sqrt(p * (1 - p) / len(a))
    return b.mean() - a.mean() - half, b.mean() - a.mean() + half


def test_bootstrap_interval_covers_a_known_difference_at_its_level():
    rng = np.random.default_rng(0)
    truth = true_delta()
    hits, widths = 0, []
    for rep in range(200):
        a, b = _correlated_pair(rng, 600)
        ci = stats.paired_bootstrap(a, b, resamples=400, seed=rep)
        hits += ci["low"] <= truth <= ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert 0.88 <= hits / 200 <= 0.99, f"coverage {hits / 200}"
    # the paired interval is far narrower than the baseline's-standard-error yardstick
    a, b = _correlated_pair(rng, 600)
    lo, hi = wrong_unpaired_interval(a, b)
    assert np.median(widths) < 0.6 * (hi - lo)


def test_bootstrap_interval_for_identical_models_is_zero():
    a, _ = correctness(both=50, only_a=10, only_b=0, neither=40)
    ci = stats.paired_bootstrap(a, a.copy(), resamples=200)
    assert (ci["delta"], ci["low"], ci["high"]) == (0.0, 0.0, 0.0)


def test_bootstrap_does_not_pair_images_wrongly():
    """An unpaired bootstrap (independent images for A and B) would give a wide interval here;
    with every image flipping the same way the paired interval is a point."""
    a, b = correctness(both=0, only_a=0, only_b=300, neither=0)  # B right on every image, A on none
    ci = stats.paired_bootstrap(a, b, resamples=200)
    assert ci["low"] == ci["high"] == ci["delta"] == 1.0


def test_bootstrap_over_seeds_widens_with_seed_to_seed_spread():
    """Same mean gain (20 of 800 images), once steady over 3 seeds, once from one lucky seed."""
    a = np.ones((3, 800), dtype=bool)
    a[:, :80] = False  # 80 errors per seed
    steady, spread = a.copy(), a.copy()
    steady[:, :20] = True  # every seed fixes 20 errors
    spread[0, :60] = True  # seed 0 fixes 60, seeds 1 and 2 none
    ci_steady = stats.paired_bootstrap(a, steady, resamples=1000)
    ci_spread = stats.paired_bootstrap(a, spread, resamples=1000)
    assert ci_steady["delta"] == pytest.approx(ci_spread["delta"])
    assert ci_steady["low"] > 0.01  # steady over seeds: clearly above 0
    assert ci_spread["low"] <= 0.0  # one lucky seed is not evidence (2 resampled seeds in 3 miss it)
    assert ci_spread["high"] - ci_spread["low"] > 2 * (ci_steady["high"] - ci_steady["low"])


@dataclass
class Run:
    variant: str
    seed: int
    correct: np.ndarray


def test_compare_and_table_from_run_results():
    rng = np.random.default_rng(5)
    base = [rng.random(400) < 0.8 for _ in range(2)]
    runs = [Run("none", s, base[s]) for s in range(2)] + [Run("se", s, base[s] | (rng.random(400) < 0.1))
                                                          for s in range(2)]
    paired = stats.paired_rows(runs)
    assert list(paired) == ["se"] and len(paired["se"]["p_values"]) == 2
    assert paired["se"]["low"] > 0
    columns = stats.paired_columns(runs)
    rows = [{"variant": "none"}, {"variant": "se", **columns["se"]}]
    lines = stats.paired_table(rows)
    assert sum(line.startswith("| se | +") for line in lines) == 1
    assert not any(line.startswith("| none |") for line in lines)


# ---- the bootstrap checks fail on wrong bootstraps -------------------------------------------
def wrong_unpaired_bootstrap(a, b, *, resamples=400, seed=0, level=0.95):
    """Resamples A's and B's images independently: the pairing is lost."""
    a, b = np.atleast_2d(a).astype(float), np.atleast_2d(b).astype(float)
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    d = [b[:, rng.integers(0, n, n)].mean() - a[:, rng.integers(0, n, n)].mean() for _ in range(resamples)]
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return {"delta": float((b - a).mean()), "low": float(lo), "high": float(hi)}


def wrong_images_only_bootstrap(a, b, *, resamples=400, seed=0, level=0.95):
    """Pairs the images but treats the seeds as fixed: training noise is left out."""
    diff = np.atleast_2d(b).astype(float) - np.atleast_2d(a).astype(float)
    rng = np.random.default_rng(seed)
    n = diff.shape[1]
    d = [diff[:, rng.integers(0, n, n)].mean() for _ in range(resamples)]
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return {"delta": float(diff.mean()), "low": float(lo), "high": float(hi)}


def bootstrap_passes(fn) -> bool:
    """The properties the tests above assert, for any bootstrap function ``fn``."""
    rng = np.random.default_rng(11)
    widths = [(lambda ci: ci["high"] - ci["low"])(fn(*_correlated_pair(rng, 600), resamples=300, seed=r))
              for r in range(20)]
    lo, hi = wrong_unpaired_interval(*_correlated_pair(rng, 600))
    a = np.ones((3, 800), dtype=bool)
    a[:, :80] = False
    spread = a.copy()
    spread[0, :60] = True
    return bool(np.median(widths) < 0.6 * (hi - lo) and fn(a, spread, resamples=1000)["low"] <= 0.0)


def test_bootstrap_checks_pass_the_module_and_fail_wrong_bootstraps():
    assert bootstrap_passes(stats.paired_bootstrap)
    assert not bootstrap_passes(wrong_unpaired_bootstrap)
    assert not bootstrap_passes(wrong_images_only_bootstrap)


# ---- the capstone's table ------------------------------------------------------------------------
def test_capstone_rows_and_table_carry_the_paired_comparison(tmp_path):
    import torch

    from course_lib import capstone as cap
    from course_lib.reference import ATTENTION

    budget = cap.Budget(num_train=200, num_test=100, epochs=1, seeds=2, canvas_size=32, num_clutter=3)
    results, models, (_, test) = cap.run_experiment(["none", "se"], budget, device="cpu", progress=False, registry=ATTENTION,
                                                    log=lambda _: None)
    for r in results:
        assert r.correct.shape == (100,) and r.accuracy == pytest.approx(r.correct.mean())
    rows = cap.summarise(results, models, (1, 32, 32))
    none, se = rows
    by = {(r.variant, r.seed): r.correct for r in results}
    assert se["paired_delta"] == pytest.approx(se["acc_mean"] - none["acc_mean"])
    assert se["paired_low"] <= se["paired_delta"] <= se["paired_high"]
    wins = " ".join(f"{int((by['se', s] & ~by['none', s]).sum())}/{int((by['none', s] & ~by['se', s]).sum())}"
                    for s in (0, 1))
    assert se["paired_wins"] == wins and len(se["paired_p"].split()) == 2
    assert none["paired_wins"] == "" and math.isnan(none["paired_delta"])
    _, md = cap.write_results(rows, tmp_path, budget=budget, wall_s=1.0, device=torch.device("cpu"))
    text = md.read_text()
    assert "## Paired comparison with `none`" in text and f"| {wins} |" in text
    assert (tmp_path / "results.csv").read_text().splitlines()[0].endswith("paired_wins,paired_p")


def test_table_text_says_what_the_interval_covers():
    one = {"variant": "se", "paired_delta": 0.01, "paired_low": -0.01, "paired_high": 0.03, "paired_wins": "30/10",
           "paired_p": "0.002", "paired_per_seed": "0.0100", "seed_low": float("nan"), "seed_high": float("nan")}
    three = {**one, "paired_wins": "30/10 5/4 9/9", "paired_p": "0.002 1 1", "paired_per_seed": "0.0100 0.0005 0.0000",
             "seed_low": -0.01, "seed_high": 0.02}
    text_one, text_three = " ".join(stats.paired_table([one])), " ".join(stats.paired_table([three]))
    assert "test-set noise" in text_one and "nothing about how another training run" in text_one
    assert "n/a (one seed)" in text_one
    assert "t-interval is the one to report" in text_three and "t_(2, 0.975)" in text_three
    # every seed's difference stands beside the intervals
    assert "| +1.0 +0.1 +0.0 | -1.0 .. +2.0 pt | -1.0 .. +3.0 pt |" in text_three


# ---- three seeds: the t-interval, and why the bootstrap over seeds is too narrow ------------------
# Issue 26's run of chapter 09: the gate minus the plain CNN on seeds 0, 1, 2, in points.
ISSUE_SEEDS = (-4.8, -0.6, -2.1)


def test_seed_interval_by_hand():
    # mean -2.5, sd = sqrt((2.3^2 + 1.9^2 + 0.4^2) / 2) = 2.128, t_(2, 0.975) = 4.303: -2.5 -+ 5.287
    ci = stats.seed_interval(ISSUE_SEEDS)
    assert ci["delta"] == pytest.approx(-2.5)
    assert (ci["low"], ci["high"]) == pytest.approx((-7.787, 2.787), abs=1e-3)
    assert ci["seeds"] == 3


def test_seed_interval_with_one_seed_has_no_width_and_bad_input_is_named():
    ci = stats.seed_interval([0.01])
    assert ci["delta"] == 0.01 and math.isnan(ci["low"]) and math.isnan(ci["high"])
    with pytest.raises(ValueError, match="one finite difference per seed"):
        stats.seed_interval([])
    with pytest.raises(ValueError, match="one finite difference per seed"):
        stats.seed_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        stats.seed_interval([0.1, 0.2], level=95)


def wrong_normal_seed_interval(deltas, level=0.95):
    """1.96 standard errors whatever the number of seeds: ignores that the sd itself is estimated from 3 values."""
    d = np.asarray(deltas, float)
    half = 1.959964 * d.std(ddof=1) / math.sqrt(d.size)
    return {"low": d.mean() - half, "high": d.mean() + half}


def test_seed_interval_covers_the_mean_as_promised_where_a_normal_yardstick_and_a_seed_bootstrap_do_not():
    """Three runs drawn from a spread of training outcomes: how often does each 95 % interval contain the true
    mean? The t-interval about 95 %; 1.96 standard errors and the percentile bootstrap over the three values
    (what `paired_bootstrap` does to the seeds) far less, which is why the chapter reports the t-interval."""
    rng = np.random.default_rng(0)
    hits = {"t": 0, "normal": 0, "bootstrap over seeds": 0}
    trials = 2000
    for _ in range(trials):
        d = rng.normal(0.0, 2.0, size=3)
        for name, (lo, hi) in {
            "t": (lambda c: (c["low"], c["high"]))(stats.seed_interval(d)),
            "normal": (lambda c: (c["low"], c["high"]))(wrong_normal_seed_interval(d)),
            "bootstrap over seeds": tuple(np.quantile(rng.choice(d, size=(400, 3)).mean(1), [0.025, 0.975])),
        }.items():
            hits[name] += lo <= 0.0 <= hi
    cover = {k: v / trials for k, v in hits.items()}
    assert 0.93 <= cover["t"] <= 0.97, cover
    assert cover["normal"] < 0.85 and cover["bootstrap over seeds"] < 0.80, cover


def test_the_issue_seeds_bootstrap_stays_inside_their_range_and_excludes_zero_where_the_t_interval_does_not():
    d = np.asarray(ISSUE_SEEDS)
    boot = np.quantile(np.random.default_rng(0).choice(d, size=(4000, 3)).mean(1), [0.025, 0.975])
    assert d.min() <= boot[0] and boot[1] <= d.max() and boot[1] < 0  # "a difference", from three values
    ci = stats.seed_interval(d)
    assert ci["low"] < 0 < ci["high"]  # not settled by three seeds


def test_compare_gives_each_seeds_difference_and_the_t_interval():
    rng = np.random.default_rng(5)
    a = rng.random((3, 500)) < 0.8
    b = a.copy()
    for k, flips in enumerate((30, 5, 12)):  # the variant loses `flips` images on seed k
        b[k, np.flatnonzero(a[k])[:flips]] = False
    c = stats.compare(a, b, resamples=200)
    assert c["per_seed"] == pytest.approx([-30 / 500, -5 / 500, -12 / 500])
    want = stats.seed_interval(c["per_seed"])
    assert (c["seed_low"], c["seed_high"]) == pytest.approx((want["low"], want["high"]))
    columns = stats.paired_columns([Run("none", k, a[k]) for k in range(3)] + [Run("se", k, b[k]) for k in range(3)])
    assert columns["se"]["paired_per_seed"] == "-0.0600 -0.0100 -0.0240"
