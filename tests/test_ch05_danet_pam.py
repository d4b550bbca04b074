"""Chapter 05 (DANet PAM): the named mistakes, the stored values' meaning, the notebook's solution cells against the
reference, the questions, and the figure helper's data. The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from chapter_cases import assert_diagnoses_differ, assert_follows_device_and_dtype, run_solution
from course_lib.checks import CheckFailure
from course_lib.checks import ch05_danet_pam as visible
from course_lib.checks import toolkit
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch05_danet_pam as hidden
from course_lib.reference.danet import PositionAttention
from course_lib.figures import ch05 as figures



@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    solution = run_solution("05_danet_pam")
    assert solution.code_ids() == {"pam", "pam_einops"} | {f"{qid}_solution" for qid in hidden.ANSWERS}
    return solution.namespace


def test_fused_reference_passes_too(capsys):
    class Fused(PositionAttention):
        def __init__(self, channels, reduction=8):
            super().__init__(channels, reduction, fused=True)

    visible.check_pam_forward(Fused)
    hidden.hidden_pam_forward(Fused)


def test_zero_gamma_cannot_mask_a_wrong_branch():
    """A module whose branch is wrong but gamma stays 0 must fail (the checks force gamma = 1)."""
    class ZeroGamma(PositionAttention):
        def forward(self, x):
            return 0 * self.gamma * x.flip(-1) + x  # ignores the attention entirely

    with pytest.raises(CheckFailure):
        visible.check_pam_forward(ZeroGamma)


def test_stored_inputs_have_distinct_b_c_n():
    E = expected("ch05_danet_pam")
    for x in (E["attention"]["x"], E["forward"]["x"]):
        b, c, h, w = x.shape
        assert len({b, c, h * w}) == 3 and h != w


def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch05_danet_pam")
    assert_diagnoses_differ(((E["attention"]["a"], E["attention"]["diagnoses"]),
                             (E["forward"]["y"], E["forward"]["diagnoses"]),
                             (E["einops"]["out"], E["einops"]["diagnoses"])), visible.ADVICE)


def test_solution_module_matches_the_reference(solution_namespace):
    ref = hidden.reference(16, 4, seed=7, gamma=0.5).float()
    mine = solution_namespace["PositionAttention"](16, 4)
    mine.load_state_dict(ref.state_dict())  # the official names load 1:1
    x = torch.randn(2, 16, 5, 9)
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))
    q, k, v = ref.query_conv(x), ref.key_conv(x), ref.value_conv(x)
    torch.testing.assert_close(0.5 * solution_namespace["pam_einops"](q, k, v) + x, ref(x))
    assert sum(p.numel() for p in mine.parameters()) == toolkit.pam_parameter_count(16, 4)


def test_solution_module_follows_device_and_dtype(solution_namespace, device):
    assert_follows_device_and_dtype(solution_namespace["PositionAttention"](8, 2),
                                    torch.randn(2, 8, 5, 3, device=device, dtype=torch.float64))


def test_parameter_count_formula_matches_the_reference():
    for c, r in ((512, 8), (16, 4), (9, 3)):
        assert toolkit.pam_parameter_count(c, r) == sum(p.numel() for p in PositionAttention(c, r).parameters())


def test_query_maps_show_rows_of_the_map(pyplot):
    from course_lib.figures.common import sample_image

    photo = sample_image("flower.jpg", size=(24, 36))
    module = figures.set_colour_projections(PositionAttention(3, reduction=1))
    data = figures.query_maps(photo, module, [(12, 18), (2, 2)])
    full = module.attention(figures.centred(photo)).detach()[0]
    np.testing.assert_allclose(data["maps"][0], full[12 * 36 + 18].reshape(24, 36).numpy(), rtol=1e-6)
    np.testing.assert_allclose(data["row_sums"], 1.0, rtol=1e-5)
    # a pixel attends most to pixels of a colour like its own
    colours = figures.centred(photo)[0].reshape(3, -1)
    q = colours[:, 12 * 36 + 18]
    top = data["maps"][0].reshape(-1).argmax()
    assert torch.dot(colours[:, top], q) > 0
    with pytest.raises(ValueError):
        figures.query_maps(photo, module, [(30, 0)])
    with pytest.raises(ValueError):
        figures.set_colour_projections(PositionAttention(8, reduction=1))


def test_question_keys_are_the_hashes_of_the_hidden_answers():
    from course_lib.checks.questions import answer_key

    for qid, (kind, right, kw) in hidden.ANSWERS.items():
        question = getattr(visible, qid.upper())
        assert question.key == answer_key(qid, right, kind=kind, **kw), qid


def test_the_answers_follow_from_their_ingredients():
    """The plain answers are derived, not typed: the parameter count of the reference module, the map's bytes."""
    assert hidden.ANSWERS["q_pam_params"][1] == sum(p.numel() for p in PositionAttention(512).parameters())
    assert hidden.ANSWERS["q_map_mib"][1] == (768 // 8) ** 4 * torch.finfo(torch.float32).bits // 8 / 2**20
    fresh = PositionAttention(16, 4)
    x = torch.randn(2, 16, 5, 6)
    (fresh(x) * torch.randn_like(x)).sum().backward()
    nonzero = {name for name, p in fresh.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert nonzero == {"gamma"} and hidden.ANSWERS["q_zero_gamma_grads"][1] == "d"
    ref = hidden.reference(8, 2, seed=3, gamma=0.7)
    x = torch.randn(1, 8, 4, 5, dtype=torch.float64)
    perm = torch.randperm(20)
    shuffle = lambda t: t.flatten(2)[..., perm].view_as(t)  # noqa: E731
    torch.testing.assert_close(ref(shuffle(x)), shuffle(ref(x)))
    torch.testing.assert_close(ref.attention(shuffle(x)), ref.attention(x)[:, perm][:, :, perm])
    assert hidden.ANSWERS["q_equivariance"][1] == "ab"


# the float64 contract the notebook states ("the result has the input's dtype, computed in it") is checked
# visibly: a student who casts with .float() or computes a step in float32 learns it before grading
VISIBLY_CAUGHT = {
    "the output cast with .float()": ("dtype", ".float()"),
    "hard-coded float32 in forward": ("float32_inside", "float32 precision"),
    "hard-coded float32": ("dtype", ".float()"),
    "energy in float32, the map cast back to the input's dtype": ("float32_inside", "float32 precision"),
    "the map computed in float32, cast back": ("float32_inside", "float32 precision"),
}


@pytest.mark.parametrize("label", sorted(VISIBLY_CAUGHT))
def test_float64_mistakes_are_caught_by_the_visible_check(label):
    import catalog.ch05_danet_pam as entries

    impls = [i for i in entries.IMPLS if i.label == label]
    mistake, words = VISIBLY_CAUGHT[label]
    assert impls
    for impl in impls:  # "hard-coded float32" is an entry of the PAM's attention and of pam_einops
        with pytest.raises(CheckFailure) as info:
            impl.exercise.visible(impl.load())
        assert info.value.mistake == mistake == impl.mistake
        assert "float64" in str(info.value) and words in str(info.value), str(info.value)


def test_the_float64_runs_compare_strictly():
    """A float64 result that is right only to float32 precision fails: the stored values are float64."""
    E = expected("ch05_danet_pam")
    assert E["attention"]["a"].dtype == E["forward"]["y"].dtype == E["einops"]["out"].dtype == torch.float64


def test_equivariance_and_invariance_together_gets_its_own_hint():
    with pytest.raises(CheckFailure) as info:
        visible.check_q_equivariance("abc")
    assert info.value.mistake == "invariance"
    assert "contradict" in str(info.value) and visible.Q_EQUIVARIANCE.advice not in str(info.value)


@pytest.mark.parametrize("answer", ["b", "a", "c", "bc", "abc", "ac", "abcd", "abd", "bd", "cd", "abcd"])
def test_equivariance_hints_name_no_option(answer):
    """A hint names the misconception, never a statement by its letter (the trial found the answer by
    elimination from hints such as 'Of these, (c) is not true')."""
    with pytest.raises(CheckFailure) as info:
        visible.check_q_equivariance(answer)
    hint = str(info.value).split("is not right.", 1)[1]
    assert not any(f"({letter})" in hint for letter in "abcd"), hint
