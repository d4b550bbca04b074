"""The question toolkit (course_lib/checks/questions.py): right answers in any reasonable form pass, wrong ones
never do, known wrong answers get their own hint, and the key does not contain the answer."""
from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import pytest
import torch

from course_lib.checks import CheckFailure
from course_lib.checks.questions import Question, answer_key, canonical, define_question_checks, expect_plain


def question(kind, right, wrong=(), **kw):
    extra = {k: v for k, v in kw.items() if k in ("options", "digits")}
    return Question("q_demo", kind, answer_key("q_demo", right, kind=kind, **extra),
                    wrong={answer_key("q_demo", w, kind=kind, **extra): ("softmax_dim", f"hint for {w!r}")
                           for w in wrong}, advice="generic advice", **kw)


@pytest.mark.parametrize("kind, right, same", [
    ("int", 2, [2, 2.0, torch.tensor(2)]),
    ("shape", (2, 64, 1, 1), [[2, 64, 1, 1], torch.Size([2, 64, 1, 1]), (2, 64, 1.0, 1)]),
    ("choice", "b", ["B", " b ", {"b"}, ("b",), ["B"]]),
    ("choices", "ac", [{"a", "c"}, "CA", ["c", "a"], "a, c", "a and c", "A AND C"]),
    ("choices", "acd", ["a, c and d", "a, c, and d", "a,c,and d", "c and a and d"]),
    ("float", 0.1234, [0.1234, 0.12341, 0.1229, torch.tensor(0.1234)]),
    ("bool", True, [True, "yes", "True"]),
])
def test_right_answer_in_any_reasonable_form_passes(kind, right, same):
    q = question(kind, right, options="abcd" if kind.startswith("choice") else None)
    for value in same:
        q.check(value)


@pytest.mark.parametrize("kind, right, wrong, other", [
    ("int", 2, 1, 3),
    ("shape", (2, 64, 1, 1), (2, 64), (2, 1, 1, 64)),
    ("choice", "b", "a", "c"),
    ("choices", "ac", "a", "bd"),
    ("float", 0.1234, 0.5, 0.13),
    ("bool", True, False, None),
])
def test_wrong_answers_fail_known_ones_with_their_hint(kind, right, wrong, other):
    q = question(kind, right, wrong=[wrong], options="abcd" if kind.startswith("choice") else None)
    with pytest.raises(CheckFailure) as known:
        q.check(wrong)
    assert known.value.mistake == "softmax_dim" and "hint for" in str(known.value)
    if other is not None:
        with pytest.raises(CheckFailure) as unknown:
            q.check(other)
        assert unknown.value.mistake == "wrong_answer" and "generic advice" in str(unknown.value)


def test_a_near_set_is_named_but_not_told_its_distance():
    """A set one statement from the answer keeps its mistake id (missing_choice / extra_choice, for the records)
    and gets the question's general advice, or its own text for that misconception: never 'one away', which would
    turn the question into a search by elimination (issue 26)."""
    plain = question("choices", "ac", options="abcd")
    for near, mistake in (("abc", "extra_choice"), ("a", "missing_choice"), ("c", "missing_choice")):
        with pytest.raises(CheckFailure) as info:
            plain.check(near)
        assert info.value.mistake == mistake
        assert str(info.value) == f"{near} is not right. generic advice"
    own = dataclasses.replace(plain, near={"extra_choice": "a misconception's text"})
    with pytest.raises(CheckFailure) as info:
        own.check("acd")
    assert info.value.mistake == "extra_choice" and str(info.value) == "acd is not right. a misconception's text"


@pytest.mark.parametrize("kind, bad", [("int", "two"), ("int", 2.5), ("shape", 5), ("choice", "e"),
                                       ("choice", "ab"), ("choices", "az"), ("float", "x"),
                                       ("float", "9.379"), ("bool", 1),
                                       ("float", True), ("int", True)])
def test_wrong_form_is_named(kind, bad):
    q = question(kind, {"int": 2, "shape": (1,), "choice": "a", "choices": "a", "float": 1.0, "bool": True}[kind],
                 options="abcd" if kind.startswith("choice") else None)
    with pytest.raises(CheckFailure) as err:
        q.check(bad)
    assert err.value.mistake == "answer_form"


@pytest.mark.parametrize("placeholder", [None, ...])
def test_placeholder_is_unanswered(placeholder):
    with pytest.raises(CheckFailure) as err:
        question("int", 2).check(placeholder)
    assert err.value.mistake == "unanswered"


def test_key_hides_the_answer_and_depends_on_the_question():
    key = answer_key("q_demo", 2048, kind="int")
    assert "2048" not in key
    assert key != answer_key("q_other", 2048, kind="int")
    assert key != answer_key("q_demo", 2047, kind="int")


def test_plain_hidden_comparison():
    expect_plain("q_demo", "B", "b", kind="choice", options="abcd")
    expect_plain("q_demo", 0.12341, 0.1234, kind="float")
    with pytest.raises(CheckFailure):
        expect_plain("q_demo", 3, 2, kind="int")


def test_key_command_prints_the_key():
    for command in (["-m", "course_lib", "question-key"],):
        out = subprocess.run([sys.executable, *command, "q_demo", "shape", "(2, 3)"], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == answer_key("q_demo", (2, 3), kind="shape")
    out = subprocess.run([sys.executable, "-m", "course_lib", "question-key", "q_demo", "choices", "ca", "--options",
                          "abcd"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == answer_key("q_demo", "ac", kind="choices", options="abcd")
    out = subprocess.run([sys.executable, "-m", "course_lib", "question-key", "q_demo", "float", "0.333333",
                          "--digits", "4"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == answer_key("q_demo", 1 / 3, kind="float", digits=4)
    assert canonical([2, 3], "shape") == "(2, 3)"


def test_prepare_maps_the_answer_before_it_is_hashed():
    q = Question("q_demo", "int", answer_key("q_demo", 2, kind="int"), prepare=lambda v: v + 3 if v == -1 else v)
    q.check(2)
    q.check(-1)
    with pytest.raises(CheckFailure):
        q.check(-2)


def test_define_question_checks_defines_one_exercise_per_question(capsys):
    first = question("int", 2, wrong=[1], doc="What the demo asks.")
    second = Question("q_other", "choice", answer_key("q_other", "b", kind="choice", options="abc"), options="abc")
    namespace = {"__name__": "demo_chapter"}
    assert define_question_checks(namespace, first, second) == ["check_q_demo", "check_q_other"]
    check = namespace["check_q_demo"]
    assert (check.exercise_name, check.question, check.__doc__, check.__module__) == (
        "q_demo", first, "What the demo asks.", "demo_chapter")
    assert namespace["check_q_other"].__doc__ == "Question q_other."
    check(2.0)
    namespace["check_q_other"]("B")
    assert capsys.readouterr().out.count("[ok]") == 2
    with pytest.raises(CheckFailure) as known:
        check(1)
    assert known.value.mistake == "softmax_dim" and str(known.value).startswith("q_demo: 1 is not right.")
    with pytest.raises(TypeError):
        define_question_checks(namespace, "q_demo")


# --------------------------------------------------------------------------------------------
# The chapters' questions. Their known wrong answers are stored as hashes only (in plain text beside their hints
# they would point to the right answers); here are the plain values, so that a maintainer can read which wrong
# answer each hint is for, and a test proves that each key is the hash of its value and carries its mistake.
# --------------------------------------------------------------------------------------------
WRONG = {
    "ch00_shapes": {
        "q_broadcast": {"bd": "left_aligned", "bcd": "left_aligned", "ad": "silent_broadcast",
                        "acde": "size_one_middle", "abcd": "contradictory_statements", "cd": "mismatch_broadcast",
                        "d": "mismatch_broadcast"},
        "q_softmax_dim": {1: "softmax_dim", 0: "softmax_dim", 3: "one_based_dim"},
        "q_bmm_shape": {(2, 35, 35): "transpose_side", (8, 8): "batch_dropped", (2, 8, 35): "missing_transpose",
                        (2, 35, 8): "operand_shape", (1, 8, 8): "batch_dropped", (2, 8): "product_dims"},
        "q_conv_params": {4 * 64 + 4: "kernel_ignored", 4 * 64 * 9: "missing_bias", 64 * 9 + 4: "param_count",
                          4 * 64 * 9 + 4 * 9: "conv_bias_count", 4 * 64 * 9 + 64: "conv_bias_count"},
    },
    "ch01_se": {
        "q_w1_shape": {(512, 32, 1, 1): "weight_transposed", (32, 512): "linear_weight_shape",
                       (8, 32, 1, 1): "activation_shape", (32, 512, 28, 14): "kernel_size",
                       (512, 32): "weight_transposed", (32, 512, 1): "kernel_axes",
                       (31, 512, 1, 1): "hidden_width_count"},
        "q_softmax_scale": {0.5: "sigmoid_value", 1: "softmax_size_one", 512: "softmax_inverse"},
        "q_stage_params": {6 * 2 * 1024 * 64: "missing_bias", 2 * 1024 * 64 + 64 + 1024: "se_per_stage",
                           6 * (2 * 1024 * 64 + 64): "missing_bias", 6 * (2 * 1024 * 64 + 1024): "missing_bias",
                           6 * (2 * 256 * 16 + 16 + 256): "bottleneck_width",
                           4 * (2 * 512 * 32 + 32 + 512): "stage_index",
                           6 * (2 * 1024 * 256 + 256 + 1024): "hidden_is_bottleneck",
                           3 * (2 * 1024 * 64 + 64 + 1024): "block_count",
                           6 * (2 * 1024 * 64 + 2 * 1024): "bias_count"},
    },
    "ch02_cbam": {
        "q_spatial_params": {7 * 7: "single_pool", 2 * 7 * 7 + 1: "extra_parameter",
                             2 * 7 * 7 + 2: "official_batch_norm", 2 * 7: "kernel_ignored"},
        "q_gate_order": {"bc": "spatial_on_input", "ae": "gates_commute", "ace": "spatial_on_input",
                         "acd": "spatial_on_input", "ac": "spatial_on_input", "acde": "spatial_on_input",
                         "abde": "gates_commute", "abd": "gates_commute", "a": "gates_commute",
                         "ad": "gated_max_fixed", "de": "spatial_on_input"},
        "q_cbam_params": {2 * 256 * 16 + 16 + 256 + 98: "official_mlp_bias", 2 * (2 * 256 * 16) + 98: "separate_mlps",
                          2 * 256 * 16: "param_count", 2 * 256 * 16 + 16 + 256 + 98 + 2: "official_mlp_bias",
                          2 * 256 * 16 + 2 * 98: "spatial_counted_twice", 2 * 256 * 16 + 49: "single_pool",
                          256 * 16 + 98: "mlp_one_layer", 2 * 256 * 16 + 99: "extra_parameter",
                          2 * (2 * 256 * 16 + 98): "separate_mlps"},
    },
    "ch03_ctdnet_sam": {
        "q_stacked_shape": {(2, 256, 44, 44): "pooled_features", (2, 2, 1, 1): "pooled_spatially",
                            (2, 1, 44, 44): "one_pooled_map"},
        "q_wide_window": {7: "window_one_conv", 10: "window_added", 21: "window_multiplied", 5: "kernel_size"},
        "q_kernel_flip": {"d": "flip_is_swap", "ad": "flip_is_swap", "ac": "extra_choice"},
    },
    "ch04_hacnn": {
        "q_fixed_entries": {"cf": "learnt_entries", "ae": "shear_entries", "bd": "scale_entries",
                            "abcdef": "learnt_entries"},
        "q_spatial_params": {14: "convblock_bias", 11: "convblock_bn", 10: "convblock_bn", 20: "bn_buffers",
                             22: "bn_buffers", 12: "one_convblock", 18: "bn_buffers", 8: "kernel_ignored"},
        "q_initial_centre": {-0.75: "bias_after_tanh", 0.635: "region_order", -0.245: "region_order",
                             -0.25: "region_order", -0.64: "rounding", -0.973: "inverse_tanh"},
    },
    "ch05_danet_pam": {
        "q_pam_params": {327681: "missing_bias", 328320: "param_count", 327680: "param_count", 98497: "param_count",
                         3 * (512 * 512 + 512) + 1: "qk_full_width", 2 * (512 * 64 + 512) + 512 * 512 + 512 + 1:
                         "conv_bias_count"},
        "q_zero_gamma_grads": {"abcd": "zero_gamma_gradient", "abc": "zero_gamma_gradient",
                               "c": "zero_gamma_gradient", "cd": "zero_gamma_gradient"},
        "q_map_mib": {339.738624: "memory_units", 0.03515625: "map_size", 1327104.0: "output_stride",
                      81: "bytes_per_number", 648: "bytes_per_number", 20.25: "output_stride",
                      0.31640625: "memory_units"},
        "q_equivariance": {"b": "equivariance", "a": "equivariance", "c": "invariance", "bc": "invariance",
                           "abc": "invariance", "ac": "invariance", "abcd": "invariance", "abd": "equivariance",
                           "bd": "equivariance"},
    },
    "ch06_danet_cam": {
        "q_official_form": {"a": "official_form", "c": "official_form", "d": "official_form"},
        "q_diagonal": {"a": "diagonal", "ab": "diagonal", "abc": "diagonal", "b": "diagonal", "c": "diagonal",
                       "bcd": "diagonal", "ad": "diagonal", "bd": "diagonal", "cd": "diagonal"},
        "q_symmetric": {"a": "symmetric", "c": "symmetric", "b": "symmetric", "abc": "symmetric",
                        "acd": "symmetric", "ad": "symmetric"},
        "q_cost_ratio": {2.25: "cost_ratio", 20.25: "cost_ratio", 324: "cost_ratio", 1 / 10.125: "cost_ratio",
                         9: "cost_ratio", 18: "cost_ratio", 0.105: "cost_ratio", 1.125: "cost_ratio",
                         11.25: "cost_ratio"},
    },
    "ch07_nonlocal_gcnet": {
        "q_nl_params": {131712: "missing_norm", 132736: "param_count", 263680: "missing_bottleneck",
                        131072: "missing_bias"},
        "q_cost_ratio": {9834496: "cost_ratio", 1568: "cost_ratio", 6272: "cost_ratio"},
        "q_map_mib": {37.515625: "map_size", 2.3447265625: "map_size", 9.834496: "memory_units",
                      0.01171875: "map_size"},
        "q_zero_init_grads": {"e": "zero_init_gradient", "cde": "zero_init_gradient",
                              "abcde": "zero_init_gradient"},
        "q_logit_std": {512: "logit_scale", 1: "logit_scale", 1 / 512 ** 0.5: "logit_scale"},
        "q_wz_trap": {"a": "zero_init_gradient", "ab": "zero_init_gradient", "acd": "zero_init_gradient",
                      "ace": "zero_init_gradient", "c": "not_identity"},
    },
    "ch08_eca_coordatt": {
        "q_eca_resnet50_parameters": {80: "release_kernels", 48: "fixed_kernel", 74: "bottleneck_width",
                                      22: "per_stage"},
        "q_why_no_reduction": {},  # trial t78 (r3): no wrong set has a hint of its own (test_ch08)
        "q_shared_shape": {(2, 2, 32, 1): "min_hidden", (2, 64, 32, 1): "shape", (2, 8, 240, 1): "shape",
                           (2, 8, 12, 20): "shape", (2, 4, 32, 1): "min_hidden"},
    },
    "ch09_capstone": {
        "q_split": {12: "split_one_sided", 9: "split_majority", 8: "split_majority"},
        "q_concordant": {"a": "more_data_smaller_p", "c": "smaller_delta_larger_p"},
        "q_paired_statements": {"acde": "paired_statement", "abce": "paired_statement"},
        "q_pam_rank": {144: "pam_identity", 0: "pam_rank", 143: "pam_rank"},
    },
}


def chapter_questions() -> dict[str, dict[str, Question]]:
    """chapter -> qid -> Question, found through the generated checks (``check_<qid>.question``)."""
    found = {}
    for chapter in WRONG:
        module = importlib.import_module(f"course_lib.checks.{chapter}")
        found[chapter] = {value.question.qid: value.question for name, value in vars(module).items()
                          if name.startswith("check_q_") and hasattr(value, "question")}
    return found


def test_every_question_check_is_generated_from_its_question():
    """No hand-written wrapper is left: each chapter's check_q_* is made by define_question_checks, and each
    Question a chapter module holds has its check."""
    for chapter in WRONG:
        module = importlib.import_module(f"course_lib.checks.{chapter}")
        checks = {name: value for name, value in vars(module).items() if name.startswith("check_q_")}
        assert checks, chapter
        for name, check in checks.items():
            assert getattr(check, "question", None) is not None, f"{chapter}.{name} is written by hand"
            assert name == f"check_{check.question.qid}" and check.exercise_name == check.question.qid
            assert check.__module__ == module.__name__ and check.__doc__ == check.question.doc != "", name
        held = [v for v in vars(module).values() if isinstance(v, Question)]
        held += [q for d in vars(module).values() if isinstance(d, dict) for q in d.values() if isinstance(q, Question)]
        assert {q.qid for q in held} == {c.question.qid for c in checks.values()}, chapter


def test_known_wrong_answers_are_the_hashes_of_the_listed_values():
    questions = chapter_questions()
    assert {c: set(qs) for c, qs in questions.items()} == {c: set(qs) for c, qs in WRONG.items()}
    for chapter, table in WRONG.items():
        for qid, wrong in table.items():
            q = questions[chapter][qid]
            want = {answer_key(qid, value, kind=q.kind, options=q.options, digits=q.digits): mistake
                    for value, mistake in wrong.items()}
            assert {key: mistake for key, (mistake, _) in q.wrong.items()} == want, f"{chapter} {qid}"
            for value, mistake in wrong.items():  # and the check names that mistake for that value
                with pytest.raises(CheckFailure) as err:
                    q.check(value)
                if mistake == "wrong_answer" and q.kind == "choices":  # a near set takes the near-set id
                    near = q._near_set(canonical(value, q.kind, options=q.options))
                    mistake = near[0] if near else mistake
                assert err.value.mistake == mistake, (chapter, qid, value)
