"""The capstone's published run (course_lib/results/capstone.json, written by `make capstone`), which ships with
the student package so that chapter 09's section 11 can show the table of every module without training.

Current means: made with today's full budget and variant list, its table is what today's code computes from its
per-image results, one of its networks comes back when retrained, and the student bundle has it and can show it.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import sysconfig
from dataclasses import asdict

import nbformat
import numpy as np
import pytest

from course_lib import capstone as cap
from course_lib import stats
from course_lib.tools import bundle as bundle_mod
from course_lib.tools import notebooks as nbs

RECORD = json.loads(cap.PUBLISHED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def published():
    return cap.published_results()


def full_run_of_today(published) -> None:
    assert published["budget"] == cap.FULL and published["budget"].seeds == 3
    assert published["variants"] == list(cap.VARIANTS)
    assert sorted(published["correct"]) == sorted(cap.VARIANTS)
    for variant, correct in published["correct"].items():
        assert correct.shape == (3, cap.FULL.num_test) and correct.dtype == bool, variant


def table_from_todays_code(published) -> None:
    rows = {r["variant"]: r for r in published["rows"]}
    for variant, correct in published["correct"].items():
        per_seed = correct.mean(1)
        assert [float(a) for a in rows[variant]["acc_per_seed"].split()] == pytest.approx(per_seed, abs=5e-5)
        assert rows[variant]["acc_mean"] == pytest.approx(per_seed.mean())
    columns = stats.paired_columns([cap.RunResult(v, s, float(c[s].mean()), 0.0, 0.0, correct=c[s])
                                    for v, c in published["correct"].items() for s in range(3)])
    assert set(columns) == set(cap.VARIANTS) - {"none"}
    for variant, want in columns.items():
        for key, value in want.items():
            got = rows[variant][key]
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, (variant, key)
        assert len(want["paired_per_seed"].split()) == 3
    md = published["markdown"]
    assert "t-interval over seeds" in md and "| none |" in md and "Δ per seed" in md


def test_the_published_run_is_the_full_run_of_today(published):
    assert RECORD["budget"] == asdict(cap.FULL)
    full_run_of_today(published)


def test_the_table_is_what_todays_code_computes_from_the_per_image_results(published):
    table_from_todays_code(published)


def test_the_shipped_markdown_shows_each_seeds_difference_beside_both_intervals(published):
    se = next(r for r in published["rows"] if r["variant"] == "se")
    per_seed = " ".join(f"{d:+.1f}" for d in stats.per_seed_points(se))
    paired = published["markdown"].split("## Paired comparison", 1)[1]
    line = next(l for l in paired.splitlines() if l.startswith("| se | "))
    assert per_seed in line
    assert f"{100 * se['seed_low']:+.1f} .. {100 * se['seed_high']:+.1f} pt" in line
    assert f"{100 * se['paired_low']:+.1f} .. {100 * se['paired_high']:+.1f} pt" in line


@pytest.mark.slow
def test_a_published_network_comes_back_when_retrained(published):
    """The plain CNN, seed 0, retrained at the full budget: the same test images right (bit for bit on the CPU
    kernels and torch that made the run; a few images differ on others, so the bound is loose but far below
    what a changed data set, network or schedule moves)."""
    import torch

    from course_lib.data import load_cluttered_digits

    budget = cap.FULL
    train, test = load_cluttered_digits(budget.num_train, budget.num_test, canvas_size=budget.canvas_size,
                                        num_clutter=budget.num_clutter, fragment_size=budget.fragment_size,
                                        seed=budget.data_seed)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cap.seed_everything(0)
        model = cap.CapstoneNet("none")
        cap.fit(model, train, epochs=budget.epochs, seed=0, batch_size=budget.batch_size, lr=budget.lr,
                weight_decay=budget.weight_decay, device=torch.device("cpu"), progress=False)
        correct = (cap.predict(model, test.images) == test.labels).numpy()
    finally:
        torch.set_num_threads(before)
    shipped = published["correct"]["none"][0]
    assert abs(correct.mean() - shipped.mean()) <= 0.015, (correct.mean(), shipped.mean())
    assert (correct == shipped).mean() >= 0.95


def test_a_stale_record_is_caught(tmp_path):
    """Counter-tests: a record made with another budget or fewer variants, or whose table was not recomputed from
    its per-image results (one seed's results changed under it), fails the checks above."""
    def tampered(change) -> dict:
        record = json.loads(json.dumps(RECORD))
        change(record)
        path = tmp_path / "capstone.json"
        path.write_text(json.dumps(record))
        return cap.published_results(path)

    with pytest.raises(AssertionError):
        full_run_of_today(tampered(lambda r: r["budget"].update(epochs=r["budget"]["epochs"] + 1)))
    with pytest.raises(AssertionError):
        full_run_of_today(tampered(lambda r: r["variants"].pop()))

    def flip_images(record):  # seed 1 of se: its first 40 images now right, the table left as it was
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["correct"]["se/1"]), dtype=np.uint8))
        bits[:40] = 1
        record["correct"]["se/1"] = np.packbits(bits).tobytes().hex()

    with pytest.raises(AssertionError):
        table_from_todays_code(tampered(flip_images))
    with pytest.raises(FileNotFoundError, match="make capstone"):
        cap.published_results(tmp_path / "missing.json")


# --------------------------------------------------------------------------------------------
# from the student bundle: section 11 works with what a student has
# --------------------------------------------------------------------------------------------
SECTION_11 = r"""
import json, sys
from pathlib import Path
import nbformat
import course_lib, course_lib.capstone as cap
from IPython.core.interactiveshell import InteractiveShell

notebook, solutions = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
nb = nbformat.read(notebook, as_version=4)
shell = InteractiveShell.instance()
ran = []
wanted = {"bf0bff26", "paired_difference", "40295659"}
for cell in nb.cells:
    if cell.cell_type != "code":
        continue
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    is_published_cell = cell.source.startswith('correct = published["correct"]')
    if cell.get("id") in wanted or is_published_cell:
        result = shell.run_cell(solutions.get(grade_id, cell.source), store_history=False)
        ran.append({"id": cell.get("id"), "ok": result.success,
                    "error": repr(result.error_in_exec or result.error_before_exec)})
print(json.dumps({"course_lib": course_lib.__file__, "ran": ran}))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return bundle_mod.build(tmp_path_factory.mktemp("bundle") / "student")


def _from_bundle(bundle, tmp_path, args, **kwargs):
    site_packages = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle.out), site_packages]), "MPLBACKEND": "Agg",
           "PYTHONNOUSERSITE": "1"}
    return subprocess.run([sys.executable, "-S", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.mark.slow
def test_section_11_runs_from_the_student_bundle(bundle, tmp_path):
    assert (bundle.out / "course_lib" / "results" / "capstone.json").is_file()
    nb = nbformat.read(nbs.notebook_path("09_capstone"), as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    (tmp_path / "solutions.json").write_text(json.dumps(solutions))
    (tmp_path / "section11.py").write_text(SECTION_11)
    released = bundle.out / nbs.RELEASE / "09_capstone" / "09_capstone.ipynb"
    done = _from_bundle(bundle, tmp_path, [str(tmp_path / "section11.py"), str(released),
                                           str(tmp_path / "solutions.json")])
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["course_lib"].startswith(str(bundle.out)), report["course_lib"]
    assert len(report["ran"]) == 4 and all(c["ok"] for c in report["ran"]), report["ran"]


@pytest.mark.slow
def test_the_bundle_says_the_capstone_command_needs_the_repository(bundle, tmp_path):
    """Section 11 says the student package has no training command for the full experiment: the bundle's
    python -m course_lib says so instead of a traceback."""
    done = _from_bundle(bundle, tmp_path, ["-m", "course_lib", "capstone", "--quick"])
    assert done.returncode == 2
    assert "needs the full course repository" in done.stderr and "Traceback" not in done.stderr


def test_the_chapter_no_longer_says_what_result_to_expect_or_that_colab_has_the_reference():
    text = "\n".join(c.source for c in nbformat.read(nbs.notebook_path("09_capstone"), as_version=4).cells)
    flat = " ".join(text.split())
    assert "Expect, and report, no difference" not in flat and "likely answer: **no difference**" not in flat
    assert "a full checkout or Colab" not in flat
    assert "test-set noise only" in flat or "cover the noise of the test set, and nothing else" in flat
    assert "t-interval" in flat and "published_results()" in flat
    assert math.isclose(stats.seed_interval([-4.8, -0.6, -2.1])["low"], -7.787, abs_tol=1e-3)  # the text's example
    assert "−7.8 .. +2.8" in flat and "−4.8 .. −0.6" in flat


@pytest.mark.parametrize("argv", [["--quick", "--publish"], ["--publish", "--seeds", "1"],
                                  ["--publish", "--variants", "none", "se"]])
def test_only_the_full_run_is_published(argv, tmp_path):
    from course_lib.tools import capstone_run

    before = cap.PUBLISHED.read_bytes()
    with pytest.raises(SystemExit, match="only the full run"):
        capstone_run.main([*argv, "--out", str(tmp_path)])
    assert cap.PUBLISHED.read_bytes() == before
