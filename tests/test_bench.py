"""`make bench`'s plumbing: how long it times, the table, CSV and figure it writes, its argument errors.

The figures themselves are measured by `make bench`, never asserted here (no timed tests). The real
command runs each configuration in a fresh interpreter; these tests run the same worker functions in
process, so the whole path from measurement to table takes seconds.
"""
from __future__ import annotations

import csv

import pytest

from course_lib import bench


@pytest.mark.parametrize("times, spec, more", [
    ([], {"repeats": 1}, True),                                    # nothing timed yet
    ([0.1, 0.1], {"repeats": 2}, False),                           # enough steps, no time budget
    ([0.1] * 5, {"repeats": 5, "min_seconds": 1.0}, True),         # 0.5 s of a 1 s budget
    ([0.3] * 4, {"repeats": 5, "min_seconds": 1.0}, True),         # budget met, one step short
    ([0.3] * 5, {"repeats": 5, "min_seconds": 1.0}, False),        # both met
    ([1e-6] * bench.MAX_STEPS, {"repeats": 5, "min_seconds": 1.0}, False),  # the cap wins
])
def test_timing_runs_until_enough_steps_and_seconds(times, spec, more):
    assert bench._more(times, spec) is more


def test_a_worker_times_at_least_the_requested_steps():
    spec = {"key": "se", "repeats": 3, "min_seconds": 0.0, "threads": 1, "batch": 2, "channels": 32,
            "height": 5, "width": 7}
    result = bench._run_worker(spec)
    assert result["steps"] == 3 and result["time_ms"] > 0 and result["threads"] == 1
    paired = bench._time_alternating({**spec, "keys": ["pam", "pam_fused"]})
    assert set(paired) == {"pam_ms", "pam_fused_ms"} and min(paired.values()) > 0


def test_quick_run_writes_every_row_to_table_csv_and_figure(tmp_path, monkeypatch):
    def in_process(spec):
        return bench._time_alternating(spec) if "keys" in spec else bench._run_worker(spec)

    monkeypatch.setattr(bench, "_measure", in_process)
    assert bench.run(tmp_path, repeats=1, quick=True, threads=1, min_seconds=0.0) == 0
    table = (tmp_path / "bench.md").read_text()
    with open(tmp_path / "bench.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    has_timm = any(r["name"].startswith("timm") for r in rows)
    expected = [n for n in bench.MODULE_ROWS if has_timm or n not in bench.TIMM_ROWS]
    assert [r["name"] for r in rows if r["group"] == "modules"] == expected
    assert [(r["name"], r["n"]) for r in rows if r["group"] == "pam_scaling"] == [
        ("PAM literal", "256"), ("PAM fused", "256"), ("PAM literal", "1024"), ("PAM fused", "1024")]
    assert all(float(r["time_ms"]) > 0 for r in rows)
    for name in expected:
        assert f"| {name} |" in table
    assert "the target is defined at N = 64^2, which a --quick run does not reach" in table
    assert (tmp_path / "bench.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats must be >= 1; got 0"),
    (["--min-seconds", "-1"], "--min-seconds must be >= 0; got -1.0"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
