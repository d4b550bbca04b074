"""Chapter 06 (DANet CAM): the named mistakes, the stored values' meaning, the notebook's solution cells against the
reference, the blog's code as printed, the questions, and the figure helpers' data. The contracts every chapter
keeps are in tests/test_chapter_contracts.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog import PRELUDE
from chapter_cases import (assert_diagnoses_differ, assert_follows_device_and_dtype,
                           notebook, run_solution)
from course_lib.tools import notebooks as nbs
from course_lib.checks import CheckFailure
from course_lib.checks import ch06_danet_cam as visible
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch06_danet_cam as hidden
from course_lib.reference.danet import ChannelAttention, DualAttentionHead, PositionAttention
from course_lib.figures import ch06 as figures

CHAPTER = "06_danet_cam"


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    solution = run_solution(CHAPTER)
    assert solution.code_ids() == {"cam", "most_attended", "blog", "dual_attention"} | {
        f"{qid}_solution" for qid in hidden.ANSWERS}
    return solution.namespace


def test_variants_are_not_interchangeable():
    """The paper module must fail the official check and the reverse (cam_variant named)."""
    class PaperOnly(ChannelAttention):
        def __init__(self, *, variant="paper"):
            super().__init__(variant="paper")

    with pytest.raises(CheckFailure) as info:
        visible.check_cam_official(PaperOnly)
    assert info.value.mistake == "cam_variant"
    class PaperBlog(ChannelAttention):
        def __init__(self, in_dim):
            super().__init__(variant="paper")

    with pytest.raises(CheckFailure) as info:
        visible.check_blog_cam(PaperBlog)
    assert info.value.mistake == "cam_variant"


def test_stored_maps_are_soft_and_the_diagnoses_differ():
    E = expected("ch06_danet_cam")
    for variant in ("paper", "official"):
        assert E[variant]["a"].max() < 0.9  # not one-hot: a transpose would be visible in the values
        assert_diagnoses_differ(((E[variant]["a"], E[variant]["a_diagnoses"]),
                                 (E[variant]["y"], E[variant]["y_diagnoses"])), visible.ADVICE)
    assert not torch.equal(E["most"]["paper"], E["most"]["official"])


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_solution_module_matches_the_reference(solution_namespace, variant):
    ref = ChannelAttention(variant=variant)
    mine = solution_namespace["ChannelAttention"](variant=variant)
    with torch.no_grad():
        ref.gamma.fill_(0.5)
        mine.gamma.fill_(0.5)
    x = torch.randn(3, 6, 4, 5) * 0.3
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))
    if variant == "official":
        blog = solution_namespace["CAM_Module"](6)
        with torch.no_grad():
            blog.gamma.fill_(0.5)
        torch.testing.assert_close(blog(x), ref(x))


def test_solution_rejects_a_bad_variant(solution_namespace):
    with pytest.raises(ValueError, match="official"):
        solution_namespace["ChannelAttention"](variant="softmax")


def test_solution_module_follows_device_and_dtype(solution_namespace, device):
    assert_follows_device_and_dtype(solution_namespace["ChannelAttention"](variant="official"),
                                    torch.randn(2, 5, 3, 4, device=device, dtype=torch.float64))


def test_photo_channels_and_affinity_panels(pyplot):
    from course_lib.figures.common import sample_image

    photo = sample_image("china.jpg", size=(24, 36))
    feats = figures.photo_channels(photo)
    assert feats.shape == (1, 8, 24, 36)
    np.testing.assert_allclose(feats.flatten(2).norm(dim=2).numpy(), 3.0, rtol=1e-5)
    maps = {"paper": ChannelAttention().attention(feats),
            "official": ChannelAttention(variant="official").attention(feats)}
    data = figures.affinity_panels(feats, maps)
    np.testing.assert_allclose(data["paper"], maps["paper"][0].numpy())
    # brightness (3) vs darkness (4): exact negatives; the official map picks darkness for brightness
    assert figures.CHANNEL_NAMES[int(data["official"][3].argmax())] == "darkness"
    assert figures.CHANNEL_NAMES[int(data["paper"][3].argmax())] != "darkness"
    with pytest.raises(ValueError):
        figures.photo_channels(torch.zeros(1, 4, 5, 5))


def test_blog_cells_hold_the_broken_code_outside_the_solution():
    """The release gives the student the blog's code as printed (typos included), not an empty stub."""
    released = notebook(CHAPTER, folder=nbs.RELEASE)
    sources = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in released.cells}
    assert "attetion = self.softmax(energy)" in sources["blog"]
    assert "attention.permute(0, 2, 1)" in sources["blog"]
    assert "heigh, width)" in sources["blog"]
    assert sources["blog"].rstrip().endswith("raise NotImplementedError()")


def test_the_unrepaired_blog_code_fails_with_a_name_error(solution_namespace, capsys):
    """The blog's classes as printed (the part of the cell before the solution) fail the checks with name_error,
    and the cell's symptom loop prints both NameErrors."""
    (cell,) = [c for c in notebook(CHAPTER).cells if c.metadata.get("nbgrader", {}).get("grade_id") == "blog"]
    namespace: dict = {}
    exec(compile(PRELUDE, "<prelude>", "exec"), namespace)
    exec(compile(cell.source.split("### BEGIN SOLUTION")[0], "<blog as printed>", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "PAM_Module as printed: NameError" in printed and "CAM_Module as printed: NameError" in printed
    for name, check in (("PAM_Module", visible.check_blog_pam), ("CAM_Module", visible.check_blog_cam)):
        with pytest.raises(CheckFailure) as info:
            check(namespace[name])
        assert info.value.mistake == "name_error"
        assert "is not defined" in str(info.value)


def test_question_keys_are_the_hashes_of_the_hidden_answers():
    from course_lib.checks.questions import answer_key

    for qid, (kind, right, kw) in hidden.ANSWERS.items():
        assert getattr(visible, qid.upper()).key == answer_key(qid, right, kind=kind, **kw), qid


def test_the_answers_follow_from_their_ingredients():
    """Each plain answer is what the reference module and the definitions give, not a typed constant."""
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    a = x.flatten(2)
    e = a @ a.transpose(1, 2)
    ref = ChannelAttention(variant="official")
    torch.testing.assert_close(ref.attention(x), (-e).softmax(-1))  # q_official_form: (b) softmax(-e)
    assert hidden.ANSWERS["q_official_form"][1] == "b"
    # q_symmetric: (a) the column softmax is s^T; (c) s^T-map with a transpose gives the right output; (d) false
    s = e.softmax(-1)
    torch.testing.assert_close(e.softmax(1), s.transpose(1, 2))
    torch.testing.assert_close(e.softmax(1).transpose(1, 2) @ a, s @ a)
    m = e.amax(-1, keepdim=True) - e
    assert not torch.allclose(m, m.transpose(1, 2))
    assert hidden.ANSWERS["q_symmetric"][1] == "ac"
    # q_diagonal: (b) equal norms -> the diagonal wins; (c) a doubled channel beats the diagonal
    unit = a / a.norm(dim=-1, keepdim=True)
    eu = unit @ unit.transpose(1, 2)
    assert torch.equal(eu.argmax(-1), torch.arange(6).expand(2, 6))
    doubled = a.clone()
    doubled[:, 1] = 2 * doubled[:, 0]
    ed = doubled @ doubled.transpose(1, 2)
    assert (ed[:, 0, 1] > ed[:, 0, 0]).all()
    assert hidden.ANSWERS["q_diagonal"][1] == "bc"
    # q_cost_ratio: count the multiply-adds of the two products of each module with a FLOP counter
    from torch.utils.flop_counter import FlopCounterMode

    def flops(module, x):
        with FlopCounterMode(display=False) as counter:
            module(x)
        return {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}

    n_side, c = 12, 32  # a small case: the ratio formula N (C + C') / (2 C^2) must hold for it too
    pam = PositionAttention(c)
    x = torch.randn(1, c, n_side, n_side)
    pam_bmm = flops(pam, x).get("aten.bmm", 0) // 2
    cam_bmm = sum(v for k, v in flops(ChannelAttention(), x).items() if k in ("aten.bmm", "aten.mm")) // 2
    n = n_side * n_side
    assert pam_bmm == n * n * (c + c // 8) and cam_bmm == 2 * c * c * n
    assert hidden.ANSWERS["q_cost_ratio"][1] == 96**2 * (512 + 64) / (2 * 512**2)


def test_dual_attention_check_names_a_double_residual():
    with pytest.raises(CheckFailure) as info:
        visible.check_dual_attention(lambda x, pam, cam: pam(x) + cam(x))
    assert info.value.mistake == "residual_twice"


def test_head_parameter_count_by_hand_matches_the_reference():
    """The notebook's hand count of the DANet head (C_in = 2048, 19 classes) is the reference head's."""
    by_hand = 2 * (2048 * 512 * 9 + 2 * 512) + 328_321 + 1 + 2 * (512 * 512 * 9 + 2 * 512) + 3 * (512 * 19 + 19)
    assert by_hand == 23_954_619
    assert sum(p.numel() for p in DualAttentionHead(2048, 19).parameters()) == by_hand


@pytest.mark.parametrize("label, mistake", [("the output cast with .float()", "dtype"),
                                            ("hard-coded float32", "dtype"),
                                            ("energy in float32, the map cast back to the input's dtype",
                                             "float32_inside")])
def test_float64_mistakes_are_caught_by_the_visible_check(label, mistake):
    """Exercise 2 states that a float64 input gives a float64 result: the visible check runs float64 too."""
    import catalog.ch06_danet_cam as entries

    impl, = [i for i in entries.IMPLS if i.label == label]
    with pytest.raises(CheckFailure) as info:
        impl.exercise.visible(impl.load())
    assert info.value.mistake == mistake == impl.mistake and "float64" in str(info.value), str(info.value)
