"""Each chapter's time has one source, its section times (the **Time.** paragraph's parts), and two derived
places: the total the paragraph states and the README's chapter table (course_lib/tools/study_time.py).

Every test that says "they agree" has a counter-test on a copy of the tree where they do not.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.tools import notebooks as nbs
from course_lib.tools import study_time as st

REPO = nbs.REPO
CHAPTERS = nbs.chapters()


def _times(chapter: str, root: Path = REPO) -> st.StudyTime:
    return st.of_notebook(nbs.notebook_path(chapter, root).read_text(encoding="utf-8"), chapter)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_states_the_sum_of_its_section_times(chapter):
    times = _times(chapter)
    assert len(times.parts) >= 3, times.parts
    assert times.stated == times.total, f"{chapter}: states {times.stated}, its parts add up to {times.total}"


def test_readme_table_is_derived_from_the_chapters():
    stated = st.readme_times((REPO / "README.md").read_text(encoding="utf-8"))
    assert sorted(stated) == sorted(c[:2] for c in CHAPTERS)
    for chapter in CHAPTERS:
        assert stated[chapter[:2]] == _times(chapter).total, chapter


def test_the_documented_check_command_passes_on_the_repository():
    done = subprocess.run([sys.executable, "-m", "course_lib", "notebooks", "study-times", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "out of step" not in done.stdout


@pytest.fixture
def tree(tmp_path):
    """A copy of the solutions and the README, to plant disagreements in."""
    for chapter in CHAPTERS:
        target = nbs.notebook_path(chapter, tmp_path)
        target.parent.mkdir(parents=True)
        shutil.copy(nbs.notebook_path(chapter), target)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    return tmp_path


def _plant(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_header_total_that_disagrees_is_found_and_rewritten_in_its_paragraph_only(tree):
    chapter = "08_eca_coordatt"
    path = nbs.notebook_path(chapter, tree)
    right = _times(chapter, tree).total
    _plant(path, f"**Time.** About {right}:", "**Time.** About 90 minutes:")
    planted = path.read_text(encoding="utf-8")
    found = nbs.sync_study_times(root=tree, write=False)
    assert found == [f"solutions/{chapter}/{chapter}.ipynb: total time {right}"]
    assert path.read_text(encoding="utf-8") == planted  # --check writes nothing
    nbs.sync_study_times([chapter], root=tree)
    fixed = path.read_text(encoding="utf-8")
    assert _times(chapter, tree).stated == right
    before, after = json.loads(planted)["cells"], json.loads(fixed)["cells"]
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    lines_before, lines_after = before[changed[0]]["source"].split("\n"), after[changed[0]]["source"].split("\n")
    assert [l for l in lines_before if "Time." not in l and "min" not in l] == \
        [l for l in lines_after if "Time." not in l and "min" not in l]


def test_a_readme_time_that_disagrees_is_found_and_rewritten(tree):
    _plant(tree / "README.md", "| 03 CTDNet's SAM | 02 | 1 h |", "| 03 CTDNet's SAM | 02 | 45 min |")
    assert nbs.sync_study_times(root=tree, write=False) == ["README.md: chapter 03 45 min -> 1 h"]
    nbs.sync_study_times(root=tree)
    assert st.readme_times((tree / "README.md").read_text(encoding="utf-8"))["03"] == "1 h"


def test_changing_a_part_moves_the_total_and_the_readme(tree):
    chapter = "03_ctdnet_sam"
    before = _times(chapter, tree)
    what, minutes = before.parts[1]
    _plant(nbs.notebook_path(chapter, tree), f"{what}, {minutes} min;", f"{what}, {minutes + 20} min;")
    changed = nbs.sync_study_times(root=tree)
    assert any("total time" in c for c in changed) and any(c.startswith("README.md: chapter 03") for c in changed)
    assert _times(chapter, tree).stated == st.format_minutes(before.minutes + 20)
    assert st.readme_times((tree / "README.md").read_text(encoding="utf-8"))["03"] == st.format_minutes(
        before.minutes + 20)


@pytest.mark.parametrize("text, words", [
    ("**Time.** About 1 h: reading, 10 min; the exercises, 10–15 min. Note.", "whole minutes, no range"),
    ("**Time.** About 1 h: reading 10 min, the exercises 15 min. Note.", "', <N> min'"),
    ("**Time.** Two hours, more or less.", "About <total>"),
])
def test_a_paragraph_off_the_grammar_is_named(text, words):
    with pytest.raises(st.StudyTimeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        st.parse(text, "99_x")


def test_minutes_are_written_as_the_readme_writes_them():
    assert [st.format_minutes(m) for m in (45, 60, 75, 125)] == ["45 min", "1 h", "1 h 15 min", "2 h 5 min"]
