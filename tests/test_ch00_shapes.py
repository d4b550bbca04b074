"""Chapter 00: the solution notebook's code is the reference (so the two cannot drift), and the questions' keys
and answers. The contracts every chapter keeps (checks on the reference and on a stub, speed, stored values, the
solution passing every graded cell, the written question's rubric) are in tests/test_chapter_contracts.py."""
from __future__ import annotations

import pytest
import torch

from chapter_cases import run_solution
from course_lib.checks import ch00_shapes as visible
from course_lib.hidden import ch00_shapes as hidden
from course_lib.checks.questions import answer_key

NAMES = list(hidden.REFERENCES)


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    solution = run_solution("00_shapes")
    assert set(solution.ids) == {*NAMES, "q_broadcast_solution", "q_softmax_dim_solution", "q_bmm_shape_solution",
                                 "q_conv_params_solution", "written_sizes"}
    return solution.namespace


@pytest.mark.parametrize("name", NAMES)
def test_solution_cells_match_the_reference(solution_namespace, name):
    fn = solution_namespace[name]
    for inputs in hidden.visible.inputs()[name], hidden._random_inputs(name, 7, torch.float64):
        torch.testing.assert_close(fn(*inputs), hidden.REFERENCES[name](*inputs))


QUESTIONS = {"q_broadcast": visible.BROADCAST, "q_softmax_dim": visible.SOFTMAX_DIM, "q_bmm_shape": visible.BMM_SHAPE,
             "q_conv_params": visible.CONV_PARAMS}



#: The named wrong answers of each question in plain text (the check file holds only their salted hashes).
WRONG = {
    "q_broadcast": {"bd": "left_aligned", "bcd": "left_aligned", "ad": "silent_broadcast", "acde": "size_one_middle",
                    "abcd": "contradictory_statements", "cd": "mismatch_broadcast", "d": "mismatch_broadcast"},
    "q_softmax_dim": {1: "softmax_dim", 0: "softmax_dim", 3: "one_based_dim"},
    "q_bmm_shape": {(2, 35, 35): "transpose_side", (8, 8): "batch_dropped", (2, 8, 35): "missing_transpose",
                    (2, 35, 8): "operand_shape", (1, 8, 8): "batch_dropped", (2, 8): "product_dims"},
    "q_conv_params": {4 * 64 + 4: "kernel_ignored", 4 * 64 * 9: "missing_bias", 64 * 9 + 4: "param_count",
                      4 * 64 * 9 + 4 * 9: "conv_bias_count", 4 * 64 * 9 + 64: "conv_bias_count"},
}


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_question_wrong_keys_are_the_hashes_of_the_named_wrong_answers(qid):
    q = QUESTIONS[qid]
    want = {answer_key(qid, value, kind=q.kind, options=q.options, digits=q.digits): mistake
            for value, mistake in WRONG[qid].items()}
    assert {key: mistake for key, (mistake, _) in q.wrong.items()} == want


def _runs(x_shape, gate_shape):
    try:
        return torch.ones(x_shape) * torch.arange(1.0, 1 + torch.Size(gate_shape).numel()).reshape(gate_shape)
    except RuntimeError:
        return None


def test_question_answers_follow_from_torch():
    """The plain answers are what PyTorch does, not what someone remembered."""
    gate = torch.arange(1.0, 7.0).reshape(2, 3)
    truths = {
        "a": _runs((2, 3, 5, 7), (2, 3)) is None,
        "b": False,  # it raises (a), so it scales nothing
        "c": torch.equal(_runs((2, 3, 2, 3), (2, 3)), torch.ones(2, 3, 2, 3) * gate),  # pixel (i, j) by gate[i, j]
        "d": torch.equal(_runs((2, 3, 5, 7), (2, 3, 1, 1)), gate[:, :, None, None].expand(2, 3, 5, 7)),
        "e": _runs((2, 3, 5, 7), (2, 3, 1)) is not None,
    }
    assert "".join(k for k, v in sorted(truths.items()) if v) == hidden.ANSWERS["q_broadcast"][1]
    s = torch.randn(2, 4, 6).softmax(dim=hidden.ANSWERS["q_softmax_dim"][1])
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 4))
    q = torch.randn(2, 35, 8)
    assert tuple(torch.bmm(q.transpose(1, 2), q).shape) == hidden.ANSWERS["q_bmm_shape"][1]
    assert sum(p.numel() for p in torch.nn.Conv2d(64, 4, 3).parameters()) == hidden.ANSWERS["q_conv_params"][1]



# issue 26 (student trial): hints that answered the question
@pytest.mark.parametrize("answer", ["bd", "bcd", "ad", "acde", "d", "abcde", "a", "cd"])
def test_broadcast_hints_name_no_option(answer):
    """A wrong set's hint names the misconception, never a statement by its letter."""
    with pytest.raises(visible.CheckFailure) as info:
        visible.check_q_broadcast(answer)
    hint = str(info.value).split("is not right.", 1)[1]
    assert not any(f"({letter})" in hint for letter in "abcde"), hint


@pytest.mark.parametrize("qid, answer", [("q_conv_params", 2304), ("q_conv_params", 260), ("q_conv_params", 580),
                                         ("q_bmm_shape", (2, 35, 35)), ("q_bmm_shape", (2, 8, 35)),
                                         ("q_bmm_shape", (2, 35, 8))])
def test_question_hints_do_not_complete_the_answer(qid, answer):
    """No hint holds the numbers that finish the sum (the bias count) or the operands' shapes of the product."""
    with pytest.raises(visible.CheckFailure) as info:
        getattr(visible, f"check_{qid}")(answer)
    hint = str(info.value).split("is not right.", 1)[1]
    for piece in ("one per output channel", "3 * 3", "64 x 3 x 3", "(8, 35)", "(35, 8)", "35 pixels"):
        assert piece not in hint, hint


def test_a_wrong_dim_is_echoed_as_typed():
    with pytest.raises(visible.CheckFailure) as info:
        visible.check_q_softmax_dim(-2)
    assert str(info.value).split(": ", 1)[1].startswith("-2 is not right.") and info.value.mistake == "softmax_dim"


def test_a_whole_float_is_accepted_where_an_int_is_asked_as_the_text_says():
    visible.check_q_softmax_dim(2.0)
    visible.check_q_conv_params(2308.0)


def test_a_view_that_fails_on_a_transposed_input_is_told_so_in_plain_words():
    """x.view(B, C, H * W) runs on channels_last (§6) and fails on a transposed view: the message names that
    layout, and does not blame channels_last for it."""
    from course_lib.checks import CheckFailure

    def channel_descriptor(x):
        b, c = x.shape[:2]
        return x.view(b, c, -1).mean(-1)[:, :, None, None]

    channel_descriptor(torch.randn(2, 3, 5, 7).contiguous(memory_format=torch.channels_last))  # runs
    with pytest.raises(CheckFailure) as failure:
        visible.check_channel_descriptor(channel_descriptor)
    text = str(failure.value)
    assert failure.value.mistake == "memory_layout"
    assert "as a non-contiguous view (H and W transposed in memory) raised" in text
    assert "a view made by .transpose() or permute()" in text
    assert "laid out a non-contiguous" not in text and "which a channels_last tensor" not in text
