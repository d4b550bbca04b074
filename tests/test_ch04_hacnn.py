"""Chapter 04 (HA-CNN): the checks on the released stubs, the stored values' meaning, the notebook's solution cells
against the reference, the questions, and the figure helpers' data. The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from catalog import PRELUDE
from chapter_cases import assert_diagnoses_differ, notebook, run_solution
from course_lib.reference import hacnn
from course_lib.tools import notebooks as nbs
from course_lib.checks import CheckFailure
from course_lib.checks import ch04_hacnn as visible
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch04_hacnn as hidden
from course_lib.figures import ch04 as figures

CHAPTER = "04_hacnn"
CLASSES = ("SpatialAttention", "ChannelAttention", "SoftAttention", "HardAttention")


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    """The provided ConvBlock and the notebook's solution cells, executed in notebook order."""
    solution = run_solution(CHAPTER)
    assert [i for c, i in zip(solution.cells, solution.ids) if c.cell_type == "code"] == [
        "convblock", "q_fixed_entries_solution", "spatial_attention", "q_spatial_params_solution",
        "channel_attention", "soft_attention", "soft_map_interval", "q_initial_centre_solution", "hard_attention"]
    return solution.namespace


# ------------------------------------------------------------------------------------------------
# the checks fail on the released stubs (test_chapter_contracts.py runs them on the reference and on a plain stub)
# ------------------------------------------------------------------------------------------------
def test_checks_fail_on_stubs(solution_namespace):
    """The released stubs: every method the student writes raises NotImplementedError."""
    nb = notebook(CHAPTER, folder=nbs.RELEASE)
    namespace: dict = {}
    exec(compile(PRELUDE, "<prelude>", "exec"), namespace)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade_id", "").startswith("q_"):
            continue  # a question's answer cell: its stub raises NotImplementedError when run
        if cell.cell_type == "code" and (meta.get("solution") or meta.get("grade_id") == "convblock"):
            exec(compile(cell.source, "<stub>", "exec"), namespace)
    pairs = [
        (visible.check_spatial_attention, "SpatialAttention"), (visible.check_channel_attention, "ChannelAttention"),
        (visible.check_soft_attention, "SoftAttention"), (visible.check_soft_map_interval, "soft_map_interval"),
        (visible.check_hard_attention_theta, "HardAttention"), (visible.check_hard_attention_crops, "HardAttention"),
    ]
    for check, name in pairs:
        with pytest.raises(CheckFailure) as info:
            check(namespace[name])
        assert info.value.mistake == "not_implemented", (check.__name__, str(info.value))


# ------------------------------------------------------------------------------------------------
# stored expected values
# ------------------------------------------------------------------------------------------------
def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch04_hacnn")
    groups = [
        (E["spatial"]["s_odd"], E["spatial"]["diagnoses_odd"]),
        (E["spatial"]["s_even"], E["spatial"]["diagnoses_even"]),
        (E["channel"]["c"], E["channel"]["diagnoses"]),
        (E["soft"]["m"], E["soft"]["diagnoses"]),
        (E["hard"]["init4"], E["hard"]["init4_diagnoses"]),
        (E["hard"]["init3"], E["hard"]["init3_diagnoses"]),
        (E["hard"]["theta"], E["hard"]["theta_diagnoses"]),
        (E["hard"]["affine4"], E["hard"]["affine4_diagnoses"]),
        (E["hard"]["affine3"], E["hard"]["affine3_diagnoses"]),
        (E["hard"]["crops"], E["hard"]["crops_diagnoses"]),
    ]
    assert_diagnoses_differ(groups, visible.ADVICE)


def test_stored_soft_map_reaches_its_floor():
    """The visible SoftAttention check exercises the interesting part: some values exactly 0.5."""
    m = expected("ch04_hacnn")["soft"]["m"]
    assert float(m.min()) == 0.5 and float(m.max()) < 1 and 0.1 < float((m == 0.5).double().mean()) < 0.9


def test_stored_spatial_map_is_alive():
    """Both zero and positive values after the last ReLU, so a wrong resize changes the result."""
    for key in ("s_odd", "s_even"):
        s = expected("ch04_hacnn")["spatial"][key]
        assert float((s > 0).double().mean()) > 0.3


# ------------------------------------------------------------------------------------------------
# the notebook's solution equals the reference
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("size", [(8, 6), (9, 7), (1, 1)])
def test_solution_soft_attention_matches_the_reference(solution_namespace, mode, size):
    ref = hidden._randomise(hacnn.SoftAttention(32), seed=7).train(mode == "train")
    mine = solution_namespace["SoftAttention"](32).train(mode == "train")
    mine.load_state_dict(ref.state_dict())  # the same names as torchreid / the reference
    x = torch.randn(3, 32, *size)
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))


@pytest.mark.parametrize("regions,crop", [(4, None), (3, (5, 4)), (1, None)])
def test_solution_hard_attention_matches_the_reference(solution_namespace, regions, crop):
    ref = hidden.hard_reference(10, regions, seed=3).float()
    mine = solution_namespace["HardAttention"](10, regions)
    init = hacnn.HardAttention(10, regions)
    torch.testing.assert_close(mine.fc.bias, init.fc.bias)
    assert not mine.fc.weight.any()
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 10, 13, 6)
    kwargs = {} if crop is None else {"crop_size": crop}
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine.affine(x), ref.affine(x))
    torch.testing.assert_close(mine(x, **kwargs), ref(x, **kwargs))


def test_initial_centres_are_tanh_of_the_bias(solution_namespace):
    theta = solution_namespace["HardAttention"](5).attention(torch.randn(2, 5, 8, 4))
    centres = [math.tanh(v) for v in (-0.75, -0.25, 0.25, 0.75)]
    torch.testing.assert_close(theta[:, :, 1], torch.tensor([centres, centres]))
    assert torch.equal(theta[:, :, 0], torch.zeros(2, 4))


def test_solution_modules_follow_device_and_dtype(solution_namespace, device):
    ns = solution_namespace
    x = torch.randn(2, 16, 9, 7, device=device, dtype=torch.float64)
    for module in (ns["SpatialAttention"](), ns["ChannelAttention"](16), ns["SoftAttention"](16),
                   ns["HardAttention"](16)):
        out = module.to(device=device, dtype=torch.float64).eval()(x)
        assert out.device == x.device and out.dtype == torch.float64


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def test_person_crop_and_features_shapes():
    image = figures.person_crop()
    assert image.shape == (1, 3, 160, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
    features = figures.edge_features(image)
    assert features.shape == (1, 16, 160, 64) and float(features.min()) >= 0 and float(features.max()) == 1


def test_region_boxes_of_the_initial_stripes():
    affine = hacnn.HardAttention(3, 4).affine(torch.zeros(1, 3, 160, 64))[0]
    boxes = figures.region_boxes(affine, 160, 64)
    centres = [math.tanh(v) for v in (-0.75, -0.25, 0.25, 0.75)]
    for (top, left, bottom, right), c in zip(boxes, centres):
        assert (left, right) == (0.0, 64.0)
        assert bottom - top == pytest.approx(40.0)  # 1/R of the height
        assert (top + bottom) / 2 == pytest.approx((c + 1) / 2 * 160)
    coverage = figures.row_coverage(boxes, 160)
    assert coverage["uncovered"] == pytest.approx(0.1125) and coverage["overlapped"] == pytest.approx(0.1125)


def test_region_boxes_match_grid_sample():
    """A box drawn by region_boxes is where grid_sample reads: crop a ramp and compare."""
    h, w = 40, 8
    ramp = torch.arange(h, dtype=torch.float64).reshape(1, 1, h, 1).expand(1, 1, h, w).contiguous()
    affine = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.25, 0.3]]], dtype=torch.float64)
    grid = torch.nn.functional.affine_grid(affine, [1, 1, 10, w], align_corners=False)
    crop = torch.nn.functional.grid_sample(ramp, grid, align_corners=False)
    top, _, bottom, _ = figures.region_boxes(affine, h, w)[0]
    # the crop's first and last rows sample pixel centres half a crop-pixel inside the box
    step = (bottom - top) / 10
    assert float(crop[0, 0, 0, 0]) == pytest.approx(top + step / 2 - 0.5)
    assert float(crop[0, 0, -1, 0]) == pytest.approx(bottom - step / 2 - 0.5)


def test_soft_panels_values_respect_the_floor(pyplot):
    image = figures.person_crop((80, 32))
    features = figures.edge_features(image)
    soft = hacnn.SoftAttention(16)
    settings = figures.set_demo_weights(soft, features, open_share=0.4)
    data = figures.soft_panels(image, features, soft)
    values = data["soft_values"]
    assert values.min() == 0.5 and values.max() < 1
    assert 0.5 < float(np.mean(values == 0.5)) < 0.7  # about 1 - open_share at exactly 0.5
    assert settings["gain"] > 0 and settings["threshold"] > 0


def test_draw_regions_and_crops_return_their_data(pyplot):
    image = figures.person_crop((40, 16))
    hard = hacnn.HardAttention(3)
    boxes = figures.region_boxes(hard.affine(image)[0].detach(), 40, 16)
    assert figures.draw_regions(image, boxes) is boxes
    crops = figures.draw_crops(hard(image)[0].detach())
    assert crops.shape == (4, 10, 16, 3)


def test_figure_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="pair of positive ints"):
        figures.person_crop((160,))
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        figures.edge_features(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(\.\.\., R, 2, 3\)"):
        figures.region_boxes(torch.zeros(4, 3, 3), 10, 10)


# ------------------------------------------------------------------------------------------------
# the conceptual questions: keys, plain answers, and the answers derived from the reference modules
# ------------------------------------------------------------------------------------------------
QUESTIONS = {"q_fixed_entries": visible.FIXED_ENTRIES, "q_spatial_params": visible.SPATIAL_PARAMS,
             "q_initial_centre": visible.INITIAL_CENTRE}



def test_question_answers_follow_from_the_reference():
    assert sum(p.numel() for p in hacnn.SpatialAttention().parameters()) == hidden.ANSWERS["q_spatial_params"][1]
    module = hacnn.HardAttention(8, 4)
    theta = module.attention(torch.randn(3, 8, 6, 5)).detach()
    assert theta[:, 0, 1].tolist() == pytest.approx([hidden.ANSWERS["q_initial_centre"][1]] * 3)
    # the fixed entries: a, b, d, e are the same for every image and region; c and f are the translations
    a = module.affine(torch.randn(3, 8, 6, 5)).detach().reshape(3, 4, 6)
    letters = "abcdef"
    with torch.no_grad():
        module.fc.weight.normal_()
    b = module.affine(torch.randn(3, 8, 6, 5)).detach().reshape(3, 4, 6)
    fixed = "".join(letters[k] for k in range(6) if torch.equal(a[..., k], b[..., k])
                    and bool((a[..., k] == a[0, 0, k]).all()))
    assert fixed == hidden.ANSWERS["q_fixed_entries"][1]


def test_soft_demo_is_what_the_text_says(solution_namespace, pyplot):
    """Section 8's text: nothing below 0.5, 60 % of the values at exactly 0.5 (40 % pass the threshold); section 10's:
    11 % of the rows uncovered and 11 % overlapped by the initial stripes."""
    person = figures.person_crop()
    features = figures.edge_features(person)
    soft = solution_namespace["SoftAttention"](16)
    weights = figures.set_demo_weights(soft, features)
    assert set(weights) == {"gain", "threshold"} and weights["gain"] > 0
    data = figures.soft_panels(person, features, soft)
    values = data["soft_values"]
    assert values.min() >= 0.5 and round(float((values == 0.5).mean()), 2) == 0.60
    hard = solution_namespace["HardAttention"](3, 4)
    boxes = figures.region_boxes(hard.affine(person)[0].detach(), *person.shape[2:])
    rows = figures.row_coverage(boxes, person.shape[2])
    assert round(rows["uncovered"], 2) == round(rows["overlapped"], 2) == 0.11


def test_the_course_module_names_both_numbers_when_reduction_does_not_divide(solution_namespace):
    """The stub says the course's ChannelAttention raises a ValueError naming both numbers (the checks never build
    such a module, so a student's may do anything there)."""
    with pytest.raises(ValueError) as info:
        solution_namespace["ChannelAttention"](24, 16)
    assert "24" in str(info.value) and "16" in str(info.value)


def test_soft_map_interval_keys_agree_with_the_hidden_answer():
    """The visible check holds the interval's ends as hashes only; it accepts exactly what the hidden check does."""
    def right():
        return (0.5, 1.0)
    hidden.hidden_soft_map_interval(right)
    visible.check_soft_map_interval(right)
    for wrong in ((0.0, 1.0), (0.5, 0.99), (0.25, 1.0), (0.0, 0.5)):
        for check in (visible.check_soft_map_interval, hidden.hidden_soft_map_interval):
            with pytest.raises(CheckFailure) as info:
                check(lambda w=wrong: w)
            assert info.value.mistake == "sigmoid_range"
