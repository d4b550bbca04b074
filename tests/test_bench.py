"""`make bench`'s plumbing: the timing with torch.utils.benchmark, the tables, CSV and figure it writes,
the PAM verdict and its argument errors.

The figures themselves are measured by `make bench`, never asserted here (no timed tests). The real
command runs each configuration in a fresh interpreter; these tests run the same worker functions in
process, so the whole path from measurement to table takes seconds.
"""
from __future__ import annotations

import csv

import pytest

from course_lib.tools import bench

SMALL = {"threads": 1, "batch": 2, "channels": 32, "height": 5, "width": 7}


def test_timer_rounds_are_merged_per_module():
    calls = {"a": 0, "b": 0}

    def counting(key):
        def step():
            calls[key] += 1
        return step

    result = bench._timed({"a": counting("a"), "b": counting("b")}, {"rounds": 3, "min_seconds": 0.03, "threads": 1})
    assert result["threads"] == 1
    for key in ("a", "b"):
        assert result[f"{key}_ms"] > 0 and result[f"{key}_iqr_ms"] >= 0
        assert result[f"{key}_runs"] >= 3  # at least one block per round, all merged
        assert calls[key] > result[f"{key}_runs"]  # blocked_autorange warms up and runs blocks of several steps


def test_a_worker_measures_memory_and_time_and_the_pair_is_timed_together():
    result = bench._run_worker({"key": "se", "rounds": 1, "min_seconds": 0.0, **SMALL})
    assert result["time_ms"] > 0 and result["runs"] >= 1 and result["threads"] == 1 and "peak_extra_mib" in result
    memory = bench._run_worker({"key": "pam_fused", "memory_only": True, **SMALL})
    assert set(memory) == {"peak_extra_mib", "threads"}
    paired = bench._time_alternating({**SMALL, "rounds": 2, "min_seconds": 0.0, "keys": ["pam", "pam_fused"]})
    assert paired["pam_ms"] > 0 and paired["pam_fused_ms"] > 0


def test_every_builder_key_builds_and_unknown_keys_are_named():
    for name, (key, _, _) in bench.MODULE_ROWS.items():
        if name not in bench.TIMM_ROWS:
            assert bench._build(key, 64) is not None
    with pytest.raises(ValueError, match="unknown bench configuration 'nope'"):
        bench._build("nope", 64)


def _in_process(spec):
    return bench._time_alternating(spec) if "keys" in spec else bench._run_worker(spec)


def test_quick_run_writes_every_row_to_table_csv_and_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_measure", _in_process)
    assert bench.run(tmp_path, rounds=1, quick=True, threads=1, min_seconds=0.0) == 0
    table = (tmp_path / "bench.md").read_text()
    with open(tmp_path / "bench.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    has_timm = any(r["name"].startswith("timm") for r in rows)
    expected = [n for n in bench.MODULE_ROWS if has_timm or n not in bench.TIMM_ROWS]
    assert [r["name"] for r in rows if r["group"] == "modules"] == expected
    assert [r["n"] for r in rows if r["group"] == "pam"] == ["256", "1024"]
    assert all(float(r["time_ms"]) > 0 for r in rows if r["group"] == "modules")
    assert all(float(r["literal_ms"]) > 0 and float(r["fused_ms"]) > 0 for r in rows if r["group"] == "pam")
    for name in expected:
        assert f"| {name} |" in table
    assert "| 64 | 16^2 = 256 |" in table and "| 64 | 32^2 = 1024 |" in table
    assert "not checked by a --quick run" in table
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_pam_only_run_writes_just_the_pam_table(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_measure", _in_process)
    assert bench.run(tmp_path, rounds=1, quick=True, min_seconds=0.0, pam_only=True) == 0
    table = (tmp_path / "bench.md").read_text()
    assert "| module |" not in table and "memory-light / literal time" in table


def _pam_row(channels, side, time_ratio, memory_ratio, kernel="blocked", iqr=0.0):
    return {"channels": channels, "side": side, "time_ratio": time_ratio, "memory_ratio": memory_ratio,
            "kernel": kernel, "literal_ms": 100.0, "fused_ms": 100.0 * time_ratio, "literal_iqr_ms": iqr,
            "fused_iqr_ms": iqr}


@pytest.mark.parametrize("rows, verdict", [
    ([_pam_row(c, s, 0.9, 8.0) for c in (64, 512) for s in (32, 64, 96)], ": met"),
    ([_pam_row(c, s, 1.05 if (c, s) == (512, 32) else 0.9, 8.0) for c in (64, 512) for s in (32, 64, 96)],
     "NOT met - slower than literal at C=512, N=32^2 (1.05x)"),
    ([_pam_row(c, s, 0.9, 4.0 if s == 64 else 8.0) for c in (64, 512) for s in (32, 64, 96)],
     "NOT met - less than 5x lighter at N = 64^2 for C=64 (4.0x); C=512 (4.0x)"),
    # the same (literal) computation on both sides: a gap within the timings' spread is not "slower" ...
    ([_pam_row(c, s, 1.03 if s == 32 else 0.9, 8.0, "literal" if s == 32 else "blocked", iqr=10.0)
      for c in (64, 512) for s in (32, 64, 96)], ": met"),
    # ... a gap beyond it is
    ([_pam_row(c, s, 1.03 if s == 32 else 0.9, 8.0, "literal" if s == 32 else "blocked", iqr=2.0)
      for c in (64, 512) for s in (32, 64, 96)], "slower than literal at C=64, N=32^2 (1.03x); C=512, N=32^2 (1.03x)"),
    # a blocked path 3 % slower counts whatever the spread
    ([_pam_row(c, s, 1.03 if s == 64 else 0.9, 8.0, iqr=10.0) for c in (64, 512) for s in (32, 64, 96)],
     "slower than literal at C=64, N=64^2 (1.03x); C=512, N=64^2 (1.03x)"),
])
def test_pam_verdict_states_whether_the_target_is_met(rows, verdict):
    assert bench.pam_verdict(rows).endswith(verdict)


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds must be >= 1; got 0"),
    (["--min-seconds", "-1"], "--min-seconds must be >= 0; got -1.0"),
    (["--threads", "0"], "--threads must be >= 1; got 0"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
