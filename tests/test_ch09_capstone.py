"""Chapter 09 (capstone): the stored values' meaning, the paired cases, the questions, the notebook's solution cells
against the references, and the notebook's running modes (quick while nbgrader grades). The contracts every chapter
keeps are in tests/test_chapter_contracts.py."""
from __future__ import annotations

import math

import pytest
import torch

from chapter_cases import (assert_diagnoses_differ, assert_follows_device_and_dtype, judge_by_hand, notebook,
                           run_solution)
from course_lib import capstone as cap
from course_lib.tools import notebooks as nbs
from course_lib.checks import ch09_capstone as visible
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch09_capstone as hidden
from course_lib.data import make_cluttered_digits

CHAPTER = "09_capstone"
Reference = hidden.ChannelSpatialGate
QUESTION_IDS = ("q_split", "q_concordant", "q_paired_statements", "q_pam_rank")
SOLUTION_IDS = {"gate", "parameter_count", "paired_difference", "judge_localisation",
                *(f"{q}_solution" for q in QUESTION_IDS)}


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    """The notebook's solution cells, executed after the imports they rely on."""
    solution = run_solution(CHAPTER)
    assert solution.code_ids() == SOLUTION_IDS
    return solution.namespace


# ------------------------------------------------------------------------------------------------
# stored expected values
# ------------------------------------------------------------------------------------------------
def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch09_capstone")["gate"]
    assert_diagnoses_differ(((E["channel"], E["channel_diagnoses"]), (E["spatial"], E["spatial_diagnoses"]),
                             (E["out"], E["out_diagnoses"])), visible.ADVICE)


def test_stored_counts_equal_the_formula():
    for case in expected("ch09_capstone")["parameter_count"]:
        assert case["count"] == visible.gate_count_by_hand(case["channels"], case["reduction"])


def test_judge_maps_give_every_kind_of_verdict():
    """The check's made-up maps must not share an answer, or a hard-coded verdict would pass."""
    E = expected("ch09_capstone")["judge"]
    torch.manual_seed(0)  # the check seeds the backbone the same way
    net = cap.CapstoneNet(None).eval()
    verdicts, pointing = set(), set()
    for label, maps in E["maps"].items():
        net.attention = visible.GivenMap(maps)
        truth = visible.truth_of_localisation(net, E["images"], E["boxes"])
        verdicts.add((truth["finds_digit"], truth["beats_control"]))
        pointing.add((truth["finds_digit"], truth["att"]["pointing_hit"] > 0.5))
        assert abs(truth["lift"] - truth["control_lift"]) > 0.05
        if label.startswith("constant"):  # exactly 1: tells 'lift > 1' from 'lift >= 1' (student trial t093)
            assert truth["lift"] == 1.0 and not truth["finds_digit"]
        else:
            assert abs(truth["lift"] - 1.0) > 0.02
    assert {(True, True), (False, False), (True, False)} <= verdicts
    # the pointing game and the lift disagree both ways on some map (a verdict by pointing_hit fails)
    assert {(True, False), (False, True)} <= pointing


def test_paired_cases_tell_every_slip_from_the_right_answer():
    """On at least one case each known slip gives another p-value than McNemar's, so none passes the check."""
    caught = set()
    for baseline, variant in visible._pair_cases():
        right = visible.paired_by_hand(baseline, variant)["p_value"]
        for mistake, _, p in visible.paired_slips(baseline, variant):
            if not math.isclose(p, right, rel_tol=1e-3, abs_tol=1e-9):
                caught.add(mistake)
    assert caught == {visible.ONE_SIDED, visible.TAIL, visible.CONCORDANT, visible.NORMAL, visible.UNPAIRED,
                      visible.NOT_CAPPED, visible.LARGER_TAIL, visible.MID_P}


def test_paired_by_hand_equals_course_stats():
    from course_lib import stats

    for baseline, variant in visible._pair_cases():
        mine, theirs = visible.paired_by_hand(baseline, variant), stats.mcnemar_exact(baseline, variant)
        assert mine["p_value"] == pytest.approx(theirs["p_value"], rel=1e-12)
        assert (mine["variant_wins"], mine["baseline_wins"]) == (theirs["variant_wins"], theirs["baseline_wins"])


def test_paired_cases_cover_a_loss_an_even_split_and_no_disagreement():
    splits = [(visible.paired_by_hand(a, b)["variant_wins"], visible.paired_by_hand(a, b)["baseline_wins"])
              for a, b in visible._pair_cases()]
    assert any(w < l for w, l in splits) and any(w == l > 0 for w, l in splits) and (0, 0) in splits



def test_split_question_answer_is_the_smallest_significant_split():
    """q_split's answer from the formula: the smallest number of wins out of 16 with two-sided p < 0.05."""
    smallest = min(w for w in range(17) if visible._binomial_p(16 - w, w) < 0.05 and w > 8)
    assert smallest == hidden.ANSWERS["q_split"][1]
    assert visible._binomial_p(16 - (smallest - 1), smallest - 1) >= 0.05


def test_rank_question_answer():
    a = torch.zeros(144, 144)
    a[:, 37] = 1.0
    assert int(torch.linalg.matrix_rank(a)) == hidden.ANSWERS["q_pam_rank"][1]


def test_notebook_questions_have_their_cells():
    nb = notebook(CHAPTER)
    ids = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    for qid in QUESTION_IDS:
        assert ids[f"test_{qid}"].source.splitlines()[0] == f"check_{qid}({qid})"
        assert ids[f"test_{qid}"].metadata["nbgrader"]["points"] == 1
    written = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("written_")]
    assert len(written) == 2
    for cell in written:
        meta = cell.metadata["nbgrader"]
        assert cell.cell_type == "markdown" and meta["grade"] and meta["solution"] and meta["points"] == 2
        assert cell.source.startswith("### BEGIN SOLUTION") and "**Rubric (2 points):**" in cell.source


# ------------------------------------------------------------------------------------------------
# the notebook's solutions equal the references
# ------------------------------------------------------------------------------------------------
def test_solution_gate_matches_the_reference(solution_namespace):
    ref = hidden.reference(24, 6, seed=11).float()
    mine = solution_namespace["ChannelSpatialGate"](24, 6)
    mine.load_state_dict(ref.state_dict())  # the solution keeps the reference's names
    x = torch.randn(3, 24, 7, 9)
    for got, want in zip(mine.attention(x), ref.attention(x)):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(mine(x), ref(x))
    assert sum(p.numel() for p in mine.parameters()) == visible.gate_count_by_hand(24, 6)


def test_solution_count_gain_and_judge_match_the_references(solution_namespace):
    ns = solution_namespace
    for c, r in ((48, 4), (17, 3), (128, 16)):
        assert ns["gate_parameter_count"](c, r) == sum(p.numel() for p in Reference(c, r).parameters())
    for baseline, variant in visible._pair_cases():
        assert ns["paired_difference"](baseline, variant) == pytest.approx(visible.paired_by_hand(baseline, variant))
    data = make_cluttered_digits(10, seed=3)
    torch.manual_seed(1)
    net = cap.CapstoneNet(Reference).eval()
    assert ns["judge_localisation"](net, data.images, data.boxes) == judge_by_hand(net, data.images, data.boxes)


def test_solution_gate_follows_device_and_dtype(solution_namespace, device):
    module = solution_namespace["ChannelSpatialGate"](12)
    x = torch.randn(2, 12, 5, 7, device=device, dtype=torch.float64)
    assert_follows_device_and_dtype(module, x)
    c, s = module.attention(x)
    assert c.shape == (2, 12, 1, 1) and s.shape == (2, 1, 5, 7)


# ------------------------------------------------------------------------------------------------
# the notebook's running modes
# ------------------------------------------------------------------------------------------------
def _mode_cell() -> str:
    cells = [c.source for c in notebook(CHAPTER).cells if c.cell_type == "code" and "AUTOGRADING =" in c.source]
    assert len(cells) == 1
    return cells[0]


@pytest.mark.parametrize("env, want", [({"NBGRADER_EXECUTION": "autograde"}, "QUICK"),
                                       ({"NBGRADER_EXECUTION": "validate"}, "QUICK"), ({}, "DEFAULT")])
def test_training_uses_the_quick_budget_while_nbgrader_grades(monkeypatch, env, want):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace = {"torch": torch, "DEVICE": torch.device("cpu"), "FULL": cap.FULL, "QUICK": cap.QUICK, "Budget": cap.Budget}
    threads = torch.get_num_threads()
    exec(compile("import dataclasses, os\n" + _mode_cell(), "<mode cell>", "exec"), namespace)
    torch.set_num_threads(threads)  # the cell may pick one thread
    budget = namespace["BUDGET"]
    assert budget == (cap.QUICK if want == "QUICK" else namespace["DEFAULT"])
    default = namespace["DEFAULT"]
    # the default run is bigger than the quick one and smaller than the full one, and trains one seed
    assert cap.QUICK.num_train * cap.QUICK.epochs < default.num_train * default.epochs
    assert default.num_train * default.epochs * default.seeds < cap.FULL.num_train * cap.FULL.epochs * cap.FULL.seeds


def test_the_notebook_trains_only_the_plain_cnn_and_the_gate_while_grading():
    source = next(c.source for c in notebook(CHAPTER).cells if c.cell_type == "code" and "run_experiment(" in c.source)
    assert 'variants = {"gate": ChannelSpatialGate}\nif not AUTOGRADING:' in source
    assert "progress=not AUTOGRADING" in source


def test_given_map_module_reports_its_map():
    maps = torch.rand(3, 1, 12, 12)
    net = cap.CapstoneNet(visible.GivenMap(maps)).eval()
    images = torch.rand(3, 1, 48, 48)
    found = cap.attention_outputs(net, images)
    torch.testing.assert_close(found["spatial"], maps[:, 0])
    assert net(images).shape == (3, 10)


# ------------------------------------------------------------------------------------------------
# nbgrader: full auto-graded marks for the solution, 0 for the stub, the written answers left to a person
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_autograde_counts_auto_graded_points_and_leaves_written_answers(tmp_path):
    """tests/test_chapters.py asks for the full score, written answers included, until the grading helper
    teaches it to count auto-graded points only; this is the capstone's own version of that test."""
    from pathlib import Path

    grader = nbs.new_course(tmp_path, [CHAPTER])
    solution = nbs.autograde(grader, tmp_path, CHAPTER, "solution", nbs.notebook_path(CHAPTER))
    stub = nbs.autograde(grader, tmp_path, CHAPTER, "stub", Path(tmp_path) / nbs.RELEASE / CHAPTER / f"{CHAPTER}.ipynb")
    written = {k for k in solution["cells"] if k.startswith("written_")}
    assert written == {"written_paired", "written_claim"}
    auto = {k: v for k, v in solution["cells"].items() if k not in written}
    assert all(got == full for got, full in auto.values()), auto
    assert sum(full for _, full in auto.values()) == 9 + 4  # the exercises' 9 points, the 4 questions'
    assert all(solution["cells"][k] == (0.0, 2.0) for k in written)  # for the instructor to grade
    assert stub["score"] == 0 and not any(got for got, _ in stub["cells"].values())
