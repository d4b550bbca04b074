"""The numbers the "What a trained module learns" sections of chapters 01-08 state are the shipped
checkpoints' numbers: each quoted value, formatted as the text writes it, must appear in its section.

A checkpoint rebuilt with other numbers (or a text edited by hand) fails here until the text is
updated. The reproduction of the numbers from the checkpoint itself is tested in test_learned.py.
"""
from __future__ import annotations

import json

import pytest

from course_lib import learned
from course_lib.tools import notebooks as nbs

FORMATS = {
    "pct0": lambda v: f"{100 * v:.0f} %",
    "pct1": lambda v: f"{100 * v:.1f} %",
    "f0": lambda v: f"{v:.0f}",
    "f1": lambda v: f"{v:.1f}",
    "f2": lambda v: f"{v:.2f}",
    "f3": lambda v: f"{v:.3f}",
    "sf2": lambda v: f"{v:+.2f}",
}

# chapter -> (recipe, number key or "accuracy", format) for every number its section states
QUOTED: dict[str, list[tuple[str, str, str]]] = {
    "01_se": [("se", "accuracy", "pct1"), ("se", "image_std_1", "f3"), ("se", "class_share_1", "pct0"),
              ("se", "image_std_2", "f3"), ("se", "class_share_2", "pct0"), ("se", "gate_mean_3", "f2"),
              ("se", "class_share_3", "pct0")],
    "02_cbam": [("cbam", "accuracy", "pct1"), ("cbam", "att_mass_in_box", "pct0"), ("cbam", "att_box_area", "pct0"),
                ("cbam", "att_lift", "f2"), ("cbam", "att_pointing_hit", "pct0"),
                ("cbam", "ctrl_mass_in_box", "pct0"), ("cbam", "ctrl_lift", "f2"),
                ("cbam", "ctrl_pointing_hit", "pct0")],
    "03_ctdnet_sam": [("ctdnet_sam", "accuracy", "pct1"), ("ctdnet_sam", "att_mass_in_box", "pct0"),
                      ("ctdnet_sam", "att_lift", "f2"), ("ctdnet_sam", "att_pointing_hit", "pct0"),
                      ("ctdnet_sam", "ctrl_mass_in_box", "pct0"), ("ctdnet_sam", "ctrl_lift", "f2"),
                      ("cbam", "att_lift", "f2")],
    "04_hacnn": [("hacnn_soft", "accuracy", "pct1"), ("hacnn_soft", "att_mass_in_box", "pct0"),
                 ("hacnn_soft", "att_lift", "f2"),  # att_pointing_hit: argmax on a plateau, not quoted
                 ("hacnn_soft", "ctrl_lift", "f2"), ("hacnn_soft", "ctrl_pointing_hit", "pct0"),
                 ("hacnn_hard", "accuracy", "pct1"), ("hacnn_hard", "centre_1", "f0"), ("hacnn_hard", "centre_2", "f0"),
                 ("hacnn_hard", "centre_3", "f0"), ("hacnn_hard", "centre_4", "f0"),
                 ("hacnn_hard", "centre_image_std", "f1"), ("hacnn_hard", "on_digit", "pct0"),
                 ("hacnn_hard", "on_digit_initial", "pct0"), ("hacnn_hard", "box_area", "pct0")],
    "05_danet_pam": [("danet_pam", "accuracy", "pct1"), ("danet_pam", "row_max_median", "f3"),
                     ("danet_pam", "same_top_key", "pct0"), ("danet_pam", "top_key_in_box", "pct1"),
                     ("danet_pam", "row_cosine", "f2"), ("danet_pam", "gamma", "f2")],
    "06_danet_cam": [("danet_cam", "accuracy", "pct1"), ("danet_cam_official", "accuracy", "pct1"),
                     ("danet_cam", "row_max_mean", "f2"), ("danet_cam", "diagonal_mean", "f2"),
                     ("danet_cam", "gamma", "sf2"), ("danet_cam_official", "diagonal_mean", "f3"),
                     ("danet_cam_official", "row_max_mean", "f2"), ("danet_cam_official", "gamma", "sf2")],
    # chapter 07 measures GCNet's query-independence on its own non-local network and on chapter 05's PAM
    "07_nonlocal_gcnet": [("non_local", "accuracy", "pct1"), ("non_local", "row_max_median", "f3"),
                          ("non_local", "same_top_key", "pct0"), ("non_local", "top_key_in_box", "pct1"),
                          ("non_local", "branch_ratio", "f2"), ("non_local", "input_distance", "f3"),
                          ("non_local", "row_distance", "f3"), ("danet_pam", "input_distance", "f3"),
                          ("danet_pam", "row_distance", "f3"), ("danet_pam", "same_top_key", "pct0")],
    "08_eca_coordatt": [("eca", "accuracy", "pct1"), ("eca", "image_std_1", "f3"), ("eca", "class_share_1", "pct0"),
                        ("eca", "image_std_2", "f3"), ("eca", "class_share_2", "pct0"), ("eca", "image_std_3", "f3"),
                        ("eca", "gate_mean_3", "f2"), ("eca", "class_share_3", "pct0"),
                        ("se", "accuracy", "pct1"), ("se", "image_std_1", "f3"), ("se", "class_share_1", "pct0"),
                        ("se", "image_std_2", "f3"), ("se", "class_share_2", "pct0"), ("se", "image_std_3", "f3"),
                        ("se", "gate_mean_3", "f2"), ("se", "class_share_3", "pct0"),
                        ("coord_attention", "accuracy", "pct1"), ("coord_attention", "row_peak_hit", "pct0"),
                        ("coord_attention", "col_peak_hit", "pct0"), ("coord_attention", "row_share", "pct0"),
                        ("coord_attention", "row_lift", "f2"), ("coord_attention", "col_lift", "f2"),
                        ("coord_attention", "row_gate_range", "f3"), ("coord_attention", "row_gate_mean", "f2"),
                        ("coord_attention", "att_mass_in_box", "pct0"), ("coord_attention", "att_box_area", "pct0"),
                        ("coord_attention", "att_lift", "f2"), ("coord_attention", "att_pointing_hit", "pct0"),
                        ("coord_attention", "ctrl_lift", "f2"), ("cbam", "att_lift", "f2")],
    # the capstone interprets its own PAM's collapse against chapter 05's checkpoint
    "09_capstone": [("danet_pam", "row_max_median", "f3"), ("danet_pam", "same_top_key", "pct0"),
                    ("danet_pam", "top_key_in_box", "pct1")],
}
#: where a chapter's quoted numbers sit, when not under HEADING
SECTION_START = {"09_capstone": "**Is that one query's map, or everyone's?**"}

HEADING = "## What a trained module learns"


def value(recipe: str, key: str) -> float:
    state = learned.read_checkpoint(recipe)
    return state["accuracy"] if key == "accuracy" else state["numbers"][key]


def quote(recipe: str, key: str, fmt: str) -> str:
    return FORMATS[fmt](value(recipe, key))


def section(chapter: str) -> str:
    """The markdown of the chapter's learned section: from its heading to the next level-2 heading."""
    cells = json.loads(nbs.notebook_path(chapter).read_text(encoding="utf-8"))["cells"]
    start = SECTION_START.get(chapter, HEADING)
    texts, inside = [], False
    for cell in cells:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and (src.startswith("## ") or src.startswith(start)):
            inside = src.startswith(start)
        if inside and cell["cell_type"] == "markdown":
            # a heading cell may carry the next section after a blank line: cut it there
            head, _, _ = src.partition("\n## ")
            texts.append(head)
    return "\n".join(texts)


@pytest.mark.parametrize("chapter", list(QUOTED))
def test_section_states_the_checkpoint_numbers(chapter):
    text = section(chapter)
    assert text, f"{chapter} has no section {HEADING!r}"
    missing = [(r, k, quote(r, k, f)) for r, k, f in QUOTED[chapter] if quote(r, k, f) not in text]
    assert not missing, f"{chapter}: the text does not state these checkpoint numbers as formatted: {missing}"


def test_a_changed_number_would_be_caught():
    """The check is not vacuous: a number one step off in its last digit is absent from the text."""
    recipe, key, fmt = QUOTED["05_danet_pam"][3]  # top_key_in_box, pct1
    assert key == "top_key_in_box"
    off = FORMATS[fmt](value(recipe, key) - 0.001)
    assert off not in section("05_danet_pam")
