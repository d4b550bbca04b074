"""Chapter 03 (CTDNet SAM): the stored values' meaning, the notebook's solution cells against the reference, the
layer finder, the questions, and the figure helpers' data. The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from chapter_cases import assert_diagnoses_differ, assert_follows_device_and_dtype, run_solution
from chapter_cases import sam_count_by_hand as _by_hand
from course_lib.checks import CheckFailure
from course_lib.checks import ch03_ctdnet_sam as visible
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch03_ctdnet_sam as hidden
from course_lib.reference.ctdnet import SpatialAttentionModule
from course_lib.figures import ch03 as figures



@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    """The notebook's solution cells, executed the way the notebook runs them (after the imports)."""
    solution = run_solution("03_ctdnet_sam")
    assert solution.code_ids() == {"sam", "parameter_count", "swap_pool_order", "q_stacked_shape_solution",
                                   "q_wide_window_solution", "q_kernel_flip_solution"}
    return solution.namespace


# ------------------------------------------------------------------------------------------------
# stored expected values
# ------------------------------------------------------------------------------------------------
def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch03_ctdnet_sam")
    assert_diagnoses_differ(((E["attention"]["a"], E["attention"]["diagnoses"]),
                             (E["attention"]["a2"], E["attention"]["diagnoses2"]),
                             (E["forward"]["eval"], E["forward"]["diagnoses"])), visible.ADVICE)


# ------------------------------------------------------------------------------------------------
# the notebook's solution equals the reference
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_solution_module_matches_the_reference(solution_namespace, mode):
    ref = hidden.reference(7, 5, seed=11).float().train(mode == "train")
    mine = solution_namespace["SpatialAttentionModule"](7, 5).train(mode == "train")
    mine.load_state_dict(ref.state_dict())  # the solution keeps the official names
    x = torch.randn(3, 7, 10, 9)
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))
    assert sum(p.numel() for p in mine.parameters()) == _by_hand(7, 5)


def test_solution_parameter_count_matches_the_reference(solution_namespace):
    count = solution_namespace["sam_parameter_count"]
    for c_in, c_out in ((128, 64), (3, 1), (17, 33)):
        assert count(c_in, c_out) == sum(p.numel() for p in SpatialAttentionModule(c_in, c_out).parameters())


def test_swap_pool_order_gives_the_same_gate(solution_namespace):
    swap = solution_namespace["swap_pool_order"]
    w = torch.randn(1, 2, 7, 7, dtype=torch.float64)
    avg, mx = torch.randn(2, 1, 8, 6, dtype=torch.float64), torch.randn(2, 1, 8, 6, dtype=torch.float64)
    lhs = torch.nn.functional.conv2d(torch.cat([mx, avg], 1), w, padding=3)
    rhs = torch.nn.functional.conv2d(torch.cat([avg, mx], 1), swap(w), padding=3)
    torch.testing.assert_close(lhs, rhs)
    torch.testing.assert_close(swap(swap(w)), w)


def test_solution_module_follows_device_and_dtype(solution_namespace, device):
    assert_follows_device_and_dtype(solution_namespace["SpatialAttentionModule"](6, 4).eval(),
                                    torch.randn(2, 6, 5, 7, device=device, dtype=torch.float64), shape=(2, 4, 5, 7))


# ------------------------------------------------------------------------------------------------
# the layer finder names the mistake
# ------------------------------------------------------------------------------------------------
def test_sam_layers_flags_cbam_style_gate():
    module = SpatialAttentionModule(8, 4)
    module.conv_atten = torch.nn.Conv2d(2, 1, 7, padding=3, bias=False)
    with pytest.raises(CheckFailure) as info:
        visible.sam_layers(module, 8, 4, what="m")
    assert info.value.mistake == "kernel_size"
    module = SpatialAttentionModule(8, 4)
    module.extra = torch.nn.BatchNorm2d(1)
    with pytest.raises(CheckFailure) as info:
        visible.sam_layers(module, 8, 4, what="m")
    assert info.value.mistake == "bn_in_attention"


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def test_hand_set_kernel_weights_max_up_and_mean_down():
    w = figures.hand_set_kernel(30.0, 0.5)
    assert w.shape == (1, 2, 3, 3)
    torch.testing.assert_close(w[0, 1], torch.full((3, 3), 30 / 9))
    torch.testing.assert_close(w[0, 0], torch.full((3, 3), -15 / 9))
    with pytest.raises(ValueError):
        figures.hand_set_kernel(-1.0)


def test_sam_panels_returns_the_map_it_draws(pyplot):
    from course_lib.figures.common import sample_image

    photo = sample_image("flower.jpg", size=(44, 66))
    module = SpatialAttentionModule(3, 4).eval()
    with torch.no_grad():
        module.conv_atten.weight.copy_(figures.hand_set_kernel())
    data = figures.sam_panels(photo, module)
    expected_map = module.attention(figures.centred(photo)).detach()[0, 0].numpy()
    np.testing.assert_allclose(data["map"], expected_map, rtol=1e-6)
    assert data["map"].min() > 0 and data["map"].max() <= 1
    # the flower (centre) is attended more than the corners
    h, w = data["map"].shape
    assert data["map"][h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean() > data["map"][:5, :5].mean() + 0.3


def test_footprints_are_3_5_and_7_pixels_wide():
    module = SpatialAttentionModule(4, 2).double().eval()
    conv7 = torch.nn.Conv2d(2, 1, 7, padding=3, bias=False).double()
    sizes = {}
    for name, fn in {"att": module.attention, "fwd": module,
                     "cbam": lambda x: conv7(torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1))}.items():
        fp = figures.footprint(fn, (1, 4, 15, 15))
        sizes[name] = (int((fp > 0).any(1).sum()), int((fp > 0).any(0).sum()))
    assert sizes == {"att": (3, 3), "fwd": (5, 5), "cbam": (7, 7)}


def test_registry_sam_keeps_the_channel_count():
    from course_lib.reference import ATTENTION

    module = ATTENTION["ctdnet_sam"](16).eval()
    assert module(torch.randn(2, 16, 5, 3)).shape == (2, 16, 5, 3)
    copy.deepcopy(module)


# ------------------------------------------------------------------------------------------------
# the conceptual questions: keys, plain answers, and the answers derived from their ingredients
# ------------------------------------------------------------------------------------------------
QUESTIONS = {"q_stacked_shape": visible.STACKED_SHAPE, "q_wide_window": visible.WIDE_WINDOW,
             "q_kernel_flip": visible.KERNEL_FLIP}



def test_question_answers_follow_from_the_module():
    module = SpatialAttentionModule(128, 64)
    x = torch.randn(2, 128, 44, 44)
    stacked = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    assert tuple(stacked.shape) == hidden.ANSWERS["q_stacked_shape"][1]
    wide = SpatialAttentionModule(4, 2).double().eval()
    wide.conv_atten = torch.nn.Conv2d(2, 1, 7, padding=3, bias=False).double()  # CBAM's 7x7 gate, the 3x3 projection
    fp = figures.footprint(wide, (1, 4, 21, 21))
    assert int((fp > 0).any(0).sum()) == int((fp > 0).any(1).sum()) == hidden.ANSWERS["q_wide_window"][1]
    del module


def test_kernel_flip_statements():
    """Question 3: (a) holds for every weight and input; (b), (c) and (d) fail on a random example."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64)
    p = torch.randn(2, 2, 9, 7, generator=g, dtype=torch.float64)
    conv = lambda inp, weight: torch.nn.functional.conv2d(inp, weight, padding=1)  # noqa: E731
    w_lr, mirror = w.flip(-1), (lambda t: t.flip(-1))  # noqa: E731
    statements = {
        "a": torch.allclose(conv(p, w_lr), mirror(conv(mirror(p), w))),
        "b": torch.allclose(conv(p, w_lr), conv(p, w)),
        "c": torch.allclose(conv(p, w_lr), mirror(conv(p, w))),
        "d": torch.allclose(conv(p.flip(1), w_lr), conv(p, w)),
    }
    assert "".join(k for k, v in statements.items() if v) == hidden.ANSWERS["q_kernel_flip"][1]


def test_cbam_style_gate_sees_7x7():
    fp = figures.footprint(figures.cbam_style_gate(kernel_size=7), (1, 4, 15, 15))
    assert (int((fp > 0).any(1).sum()), int((fp > 0).any(0).sum())) == (7, 7)
    with pytest.raises(ValueError, match="cbam_style_gate"):
        figures.cbam_style_gate(kernel_size=4)


def test_hand_set_gate_on_the_photo_is_what_the_text_says(pyplot):
    """Section 6's text: the flower at about 1, the background patchy (not near 0), median above 0.8, less than a
    fifth of the map below 0.3, the minimum near 0.05."""
    from course_lib.figures.common import sample_image

    photo = sample_image("flower.jpg", size=(88, 132))
    module = SpatialAttentionModule(3, 8).eval()
    with torch.no_grad():
        module.conv_atten.weight.copy_(figures.hand_set_kernel())
    data = figures.sam_panels(photo, module)
    amap = data["map"]
    h, w = amap.shape
    assert amap[h // 3: 2 * h // 3, 2 * w // 5: 3 * w // 5].min() > 0.95  # the flower's centre: open
    assert np.median(amap) > 0.8
    assert 0.1 < (amap < 0.3).mean() < 0.2
    assert 0.03 < amap.min() < 0.08
    assert (amap > 0.9).mean() > 0.4  # much of the background is open too


# ------------------------------------------------------------------------------------------------
# issue 26, second trial
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c_in, c_out", [(12, 1), (5, 2), (2, 1), (1, 1), (12, 6), (3, 8)])
def test_sam_layers_finds_every_role_for_any_width(c_in, c_out):
    """Section 4: 'any attribute names will do, because the checks find the layers by their shapes', for any
    out_channels, 1 and 2 included (a BatchNorm over 1 or 2 channels may be the projection's)."""
    module = SpatialAttentionModule(c_in, c_out)
    found = visible.sam_layers(module, c_in, c_out, what="m")
    assert found["att"] is module.conv_atten.weight
    assert found["conv"] is module.conv.weight
    assert found["bn"] is module.bn


@pytest.mark.parametrize("c_out", [1, 2, 6])
def test_sam_layers_still_names_a_batchnorm_in_the_gate(c_out):
    module = SpatialAttentionModule(12, c_out)
    module.bn_atten = torch.nn.BatchNorm2d(1)  # CBAM's BatchNorm(1) in the gate, beside the projection's
    with pytest.raises(CheckFailure) as info:
        visible.sam_layers(module, 12, c_out, what="m")
    assert info.value.mistake == "bn_in_attention"


def test_every_counting_slip_gets_its_own_message_at_every_probe():
    """Exercise 2: at each probe size the slips give different counts, none equal to the right one, so a
    BatchNorm counted over the input channels is never told it counted the running statistics (2*128 = 4*64 at
    SAM(128, 64) was such a coincidence); no failure message prints the right count."""
    for c_in, c_out in visible.COUNT_PROBES:
        right = visible.sam_count_by_hand(c_in, c_out)
        counts = [wrong(c_in, c_out) for wrong, _ in visible._WRONG_COUNTS]
        assert len(set(counts)) == len(counts) and right not in counts, (c_in, c_out, counts)
    for wrong, advice in visible._WRONG_COUNTS:
        with pytest.raises(CheckFailure) as info:
            visible.check_sam_parameter_count(lambda i, o, wrong=wrong: wrong(i, o))
        text = str(info.value)
        assert advice in text
        assert all(str(visible.sam_count_by_hand(i, o)) not in text for i, o in visible.COUNT_PROBES)


def test_near_sets_of_question_3_get_no_distance():
    """'ab' and '' are one statement from the answer: their messages are the general advice, never 'one away'."""
    for answer, mistake in (("ab", "extra_choice"), ("", "missing_choice")):
        with pytest.raises(CheckFailure) as info:
            visible.KERNEL_FLIP.check(answer)
        assert info.value.mistake == mistake
        assert visible.KERNEL_FLIP.advice in str(info.value)
        assert "one that" not in str(info.value) and "holds every" not in str(info.value)


def test_shipped_check_file_names_no_grader_internals():
    from pathlib import Path

    text = Path(visible.__file__).read_text(encoding="utf-8")
    for internal in ("course_lib.reference", "hidden/", "tests/", "reference.ctdnet"):
        assert internal not in text, internal
