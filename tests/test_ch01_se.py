"""Chapter 01 (Squeeze-and-Excitation): the named mistakes, the stored values' meaning, the notebook's solution cells
against the reference, the questions, and the figure helpers' data. The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from chapter_cases import RESNET50_STAGES as STAGES
from chapter_cases import assert_follows_device_and_dtype, run_solution
from chapter_cases import se_count_by_hand as _by_hand
from course_lib.checks import CheckFailure
from course_lib.checks import ch01_se as visible
from course_lib.checks.questions import answer_key
from course_lib.checks.toolkit import expected, is_close
from course_lib.hidden import ch01_se as hidden
from course_lib.figures import ch01 as figures
from course_lib.reference.se import SqueezeExcitation



@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    """The notebook's solution cells (and the plain cell defining RESNET50_STAGES), executed in order."""
    solution = run_solution("01_se")
    assert solution.ids == ["q_w1_shape_solution", "se_solution", "q_softmax_scale_solution", "written_sigmoid",
                            "se_parameter_count_solution", "q_stage_params_solution", "seresnet50_solution"]
    return solution.namespace


# ------------------------------------------------------------------------------------------------
# the named mistakes
# ------------------------------------------------------------------------------------------------
def test_softmax_gate_is_named():
    """The mistake the chapter's section 3 is about: both softmax variants are named."""
    class Softmax(SqueezeExcitation):
        dim = 1

        def attention(self, x):
            z = x.mean((2, 3), keepdim=True)
            return torch.softmax(self.fc2(self.relu(self.fc1(z))), dim=self.dim)

    class SoftmaxLast(Softmax):
        dim = -1

    for cls in (Softmax, SoftmaxLast):
        with pytest.raises(CheckFailure) as info:
            visible.check_se(cls)
        assert info.value.mistake == "softmax_gate"
        assert "sigmoid" in str(info.value)


def test_named_mistakes_are_caught_by_the_visible_check():
    """The catalog entries marked visible (the width rule, the float64 contract, the batch squeeze, a (B, C) gate in
    forward, the softmax gate, question 1's wrong shapes) fail the VISIBLE check, with their mistake id: a student
    sees the message before an instructor grades."""
    from catalog import ch01_se as cat

    marked = [impl for impl in cat.IMPLS if impl.extra.get("visible")]
    assert len(marked) >= 14
    for impl in marked:
        with pytest.raises(CheckFailure) as info:
            impl.exercise.visible(impl.load())
        assert info.value.mistake == impl.mistake, (impl.label, str(info.value))


def test_no_check_message_gives_away_question_2():
    """The softmax_gate advice names the mistake without question 2's quantity (1/C) or the written answer."""
    for text in (visible.ADVICE["softmax_gate"], visible.ADVICE["softmax_one"]):
        assert "1/C" not in text and "1 / C" not in text and "emphasised" not in text


# ------------------------------------------------------------------------------------------------
# stored expected values
# ------------------------------------------------------------------------------------------------
def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch01_se")
    for label, wrong in E["se"]["gate_diagnoses"].items():
        assert label in visible.ADVICE
        assert not is_close(wrong, E["se"]["gate"]), label
    assert not is_close(E["se"]["out_gate_added"], E["se"]["out"])
    right = E["seresnet50"]["extra"]
    for label, wrong in E["seresnet50"]["diagnoses"].items():
        differs = wrong != right
        # a hard-coded r = 16 gives the right answer for r = 16 only
        assert differs[1:].all() if label == "reduction_ignored" else differs.all(), label


def test_stored_headline_numbers():
    E = expected("ch01_se")
    assert E["seresnet50"]["extra"].tolist()[0] == 2_530_992
    assert round((25_557_032 + 2_530_992) / 1e6, 2) == 28.09
    assert E["seresnet50"]["diagnoses"]["missing_bias"].tolist()[0] == 2_514_944  # 2.515 M without biases


# ------------------------------------------------------------------------------------------------
# the notebook's solution equals the reference
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,reduction", [(32, 4), (48, 16), (7, 3)])
def test_solution_module_matches_the_reference(solution_namespace, channels, reduction):
    ref = SqueezeExcitation(channels, reduction)
    mine = solution_namespace["SqueezeExcitation"](channels, reduction)
    mine.load_state_dict(ref.state_dict())  # the solution keeps the reference's names fc1/fc2
    x = torch.randn(3, channels, 6, 5)
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))
    assert sum(p.numel() for p in mine.parameters()) == _by_hand(channels, reduction)


def test_solution_counts_match_the_reference(solution_namespace):
    count = solution_namespace["se_parameter_count"]
    for c, r in ((256, 16), (2048, 16), (100, 7), (5, 5)):
        assert count(c, r) == sum(p.numel() for p in SqueezeExcitation(c, r).parameters())
    assert solution_namespace["seresnet50_extra_parameters"]() == 2_530_992


def test_solution_module_follows_device_and_dtype(solution_namespace, device):
    assert_follows_device_and_dtype(solution_namespace["SqueezeExcitation"](24, 4),
                                    torch.randn(2, 24, 5, 7, device=device, dtype=torch.float64))


def test_linear_and_1x1_conv_are_the_same_map():
    fc = torch.nn.Linear(16, 4).double()
    conv = torch.nn.Conv2d(16, 4, 1).double()
    with torch.no_grad():
        conv.weight.copy_(fc.weight.reshape(4, 16, 1, 1))
        conv.bias.copy_(fc.bias)
    z = torch.randn(3, 16, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(fc(z.flatten(1)).reshape(3, 4, 1, 1), conv(z))


# ------------------------------------------------------------------------------------------------
# conceptual questions
# ------------------------------------------------------------------------------------------------
QUESTIONS = {"q_w1_shape": visible.W1_SHAPE, "q_softmax_scale": visible.SOFTMAX_SCALE,
             "q_stage_params": visible.STAGE_PARAMS}



#: The wrong answers whose messages the visible questions name, in plain text (the check file holds their hashes).
WRONG = {
    "q_w1_shape": {(512, 32, 1, 1): "weight_transposed", (32, 512): "linear_weight_shape",
                   (8, 32, 1, 1): "activation_shape", (32, 512, 28, 14): "kernel_size", (512, 32): "weight_transposed",
                   (32, 512, 1): "kernel_axes", (31, 512, 1, 1): "hidden_width_count"},
    "q_softmax_scale": {0.5: "sigmoid_value", 1: "softmax_size_one", 512: "softmax_inverse"},
    "q_stage_params": {6 * 2 * 1024 * 64: "missing_bias", 2 * 1024 * 64 + 64 + 1024: "se_per_stage",
                       6 * (2 * 1024 * 64 + 64): "missing_bias", 6 * (2 * 1024 * 64 + 1024): "missing_bias",
                       6 * (2 * 256 * 16 + 16 + 256): "bottleneck_width", 4 * (2 * 512 * 32 + 32 + 512): "stage_index",
                       6 * (2 * 1024 * 256 + 256 + 1024): "hidden_is_bottleneck",
                       3 * (2 * 1024 * 64 + 64 + 1024): "block_count", 6 * (2 * 1024 * 64 + 2 * 1024): "bias_count"},
}


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_question_wrong_keys_are_the_hashes_of_the_named_wrong_answers(qid):
    q = QUESTIONS[qid]
    want = {answer_key(qid, value, kind=q.kind, digits=q.digits): mistake for value, mistake in WRONG[qid].items()}
    assert {key: mistake for key, (mistake, _) in q.wrong.items()} == want


def test_question_answers_follow_from_the_reference():
    """The plain answers are computed, not remembered: from the reference module and the stages."""
    assert tuple(SqueezeExcitation(512, 16).fc1.weight.shape) == hidden.ANSWERS["q_w1_shape"][1]  # a 1x1 conv
    assert torch.softmax(torch.zeros(512), dim=0)[0].item() == pytest.approx(hidden.ANSWERS["q_softmax_scale"][1])
    blocks, channels = STAGES[2]
    assert blocks * _by_hand(channels) == hidden.ANSWERS["q_stage_params"][1] == 792_960
    assert blocks * sum(p.numel() for p in SqueezeExcitation(channels).parameters()) == 792_960


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def test_handmade_channels_shape_and_range():
    from course_lib.figures.common import sample_image

    feats = figures.handmade_channels(sample_image("flower.jpg", size=(40, 60)))
    assert feats.shape == (1, len(figures.CHANNEL_NAMES), 40, 60)
    assert torch.isfinite(feats).all() and feats.min() >= 0  # edges and detail (x 4) reach about 2.4
    with pytest.raises(ValueError):
        figures.handmade_channels(torch.zeros(2, 3, 8, 8))


def test_plot_channel_weights_returns_what_it_draws(pyplot):
    from course_lib.figures.common import sample_image

    se = SqueezeExcitation(16, 4).eval()
    feats = {"a": figures.handmade_channels(sample_image("china.jpg", size=(30, 40)))}
    data = figures.plot_channel_weights(se, feats)
    np.testing.assert_allclose(data["a"]["s"], se.attention(feats["a"]).detach().reshape(-1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(data["a"]["z"], feats["a"].mean((2, 3)).reshape(-1).numpy(), rtol=1e-6)


# issue 26 (student trial): what passed or was printed
def test_rounding_the_hidden_width_to_the_nearest_int_is_named():
    """round(C / r) passed every check while the only fractional case was 36 / 8 = 4.5 (round gives 4)."""
    def rounded(channels, reduction=16):
        hidden_width = round(channels / reduction)
        return 2 * channels * hidden_width + hidden_width + channels

    with pytest.raises(CheckFailure) as info:
        visible.check_se_parameter_count(rounded)
    assert info.value.mistake == "hidden_width"


def test_a_table_of_the_checked_counts_is_caught_and_no_message_prints_a_count():
    table = {16: 2530992, 8: 5046880, 32: 1273048}
    with pytest.raises(CheckFailure) as info:
        visible.check_seresnet50_extra_parameters(lambda reduction=16: table[reduction])
    assert info.value.mistake == "lookup_table"

    def wrong(channels, reduction=16):
        return 2 * channels * (channels // reduction)  # no biases

    with pytest.raises(CheckFailure) as info:
        visible.check_se_parameter_count(wrong)
    right = _by_hand(32, 4)
    assert str(right) not in str(info.value) and "expected" not in str(info.value)


def test_numpy_and_tensor_integers_are_accepted_as_the_text_says():
    visible.check_se_parameter_count(lambda c, r=16: np.int64(_by_hand(c, r)))
    visible.check_se_parameter_count(lambda c, r=16: torch.tensor(_by_hand(c, r)))


class _SoftmaxGate(torch.nn.Module):
    """The mistake the chapter names in §3's aside: a softmax over the channels where Eq. (3) has a sigmoid."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = torch.nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = torch.nn.Conv2d(channels // reduction, channels, 1)

    def attention(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))), dim=1)

    def forward(self, x):
        return x * self.attention(x)


def test_the_student_sees_the_mistake_ids_the_chapter_names():
    """The chapter says the check of exercise 1 names a softmax gate `softmax_gate` and a missing bias
    `missing_bias`: the message the student reads ends with that id."""
    with pytest.raises(CheckFailure) as failure:
        visible.check_se(_SoftmaxGate)
    assert str(failure.value).endswith("(mistake: softmax_gate — see the glossary)")
    with pytest.raises(CheckFailure) as failure:
        visible.check_se_parameter_count(lambda channels, reduction=16: 2 * channels * (channels // reduction))
    assert str(failure.value).endswith("(mistake: missing_bias — see the glossary)")


def test_a_question_s_generic_verdict_shows_no_id():
    """A wrong answer with no message of its own shows no id: for a set of statements, "missing_choice" or
    "extra_choice" would tell how far it is from the answer."""
    with pytest.raises(CheckFailure) as failure:
        visible.check_q_w1_shape((7, 7, 7, 7))
    assert "(mistake:" not in str(failure.value)
