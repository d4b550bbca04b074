"""Chapter 02 (CBAM): the named mistakes, the stored values' meaning, the notebook's solution cells against the
reference, the questions, and the figure helpers' data. The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from chapter_cases import assert_diagnoses_differ, assert_follows_device_and_dtype, run_solution
from course_lib.tools import notebooks as nbs
from course_lib.reference.cbam import CBAM, ChannelAttention, SpatialAttention
from course_lib.checks import CheckFailure
from course_lib.checks import ch02_cbam as visible
from course_lib.checks.toolkit import expected
from course_lib.hidden import ch02_cbam as hidden
from course_lib.checks.questions import answer_key
from course_lib.figures import ch02 as figures

CHAPTER = "02_cbam"


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    solution = run_solution(CHAPTER)
    assert solution.ids == ["channel_attention", "spatial_attention", "q_spatial_params_solution",
                            "q_gate_order_solution", "cbam", "written_order", "q_cbam_params_solution"]
    return solution.namespace


def test_official_bias_is_accepted_and_official_pool_order_is_named():
    """Exercise 1 says a layer that keeps its bias is accepted (the checks zero it): the reference with the official
    code's MLP biases passes the visible and the hidden checks, alone and inside CBAM. The official [max; mean]
    order, with given weights, is named."""
    class Biased(ChannelAttention):
        def __init__(self, channels, reduction=16):
            super().__init__(channels, reduction, mlp_bias=True)

    class BiasedCBAM(CBAM):
        def __init__(self, channels, reduction=16, kernel_size=7):
            super().__init__(channels, reduction, kernel_size, mlp_bias=True)

    class MaxMean(SpatialAttention):
        def __init__(self, kernel_size=7):
            super().__init__(kernel_size, pool_order="max_avg")

    assert any(n.endswith("bias") for n, _ in Biased(40, 8).named_parameters())
    visible.check_channel_attention(Biased)
    hidden.hidden_channel_attention(Biased)
    visible.check_cbam(BiasedCBAM)
    hidden.hidden_cbam(BiasedCBAM)
    with pytest.raises(CheckFailure) as info:
        visible.check_spatial_attention(MaxMean)
    assert info.value.mistake == "pool_order"


def test_visible_module_does_not_import_the_references():
    tree = ast.parse(Path(visible.__file__).read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and ("cbam" in m.split(".")[-1] and not m.endswith("checks.ch02_cbam")) for m in names), names
    assert not any(m and m.split(".")[-1] in {"se", "cbam", "ctdnet", "hacnn", "danet"} for m in names), names


def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch02_cbam")
    for part, right, key in (("channel", "gate", "gate_diagnoses"), ("spatial", "gate", "gate_diagnoses"),
                             ("cbam", "out", "diagnoses")):
        assert_diagnoses_differ([(E[part][right], E[part][key])], visible.ADVICE)
    assert E["channel"]["channels"] // 16 != E["channel"]["channels"] // E["channel"]["reduction"]


def test_solution_module_matches_the_reference(solution_namespace):
    ref = CBAM(32, 8, 5)
    mine = solution_namespace["CBAM"](32, 8, 5)
    mine.load_state_dict(ref.state_dict())  # the solution keeps the reference's names
    x = torch.randn(3, 32, 9, 6)
    torch.testing.assert_close(mine(x), ref(x))
    torch.testing.assert_close(mine.channel_gate.attention(x), ref.channel_gate.attention(x))
    torch.testing.assert_close(mine.spatial_gate.attention(x), ref.spatial_gate.attention(x))
    assert sum(p.numel() for p in mine.parameters()) == 2 * 32 * 4 + 2 * 25


def test_solution_module_follows_device_and_dtype(solution_namespace, device):
    assert_follows_device_and_dtype(solution_namespace["CBAM"](16, 4),
                                    torch.randn(2, 16, 5, 7, device=device, dtype=torch.float64))


def test_hand_set_kernel_and_bad_input():
    w = figures.hand_set_spatial_kernel(7, 10.0, 2.0)
    assert w.shape == (1, 2, 7, 7)
    torch.testing.assert_close(w[0, 0], torch.full((7, 7), 20 / 49))
    torch.testing.assert_close(w[0, 1], torch.full((7, 7), 10 / 49))
    for bad in (4, 0, 2.0):
        with pytest.raises(ValueError):
            figures.hand_set_spatial_kernel(bad)
    with pytest.raises(ValueError):
        figures.centred(torch.zeros(3, 4))


def test_spatial_panels_returns_the_map_it_draws(pyplot):
    from course_lib.figures.common import sample_image

    photo = sample_image("flower.jpg", size=(44, 66))
    gate = SpatialAttention(7).eval()
    with torch.no_grad():
        gate.conv.weight.copy_(figures.hand_set_spatial_kernel())
    data = figures.spatial_panels(photo, gate)
    np.testing.assert_allclose(data["map"], gate.attention(figures.centred(photo)).detach()[0, 0].numpy(), rtol=1e-6)
    h, w = data["map"].shape
    assert data["map"][h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean() > data["map"][:, :8].mean() + 0.3


# ------------------------------------------------------------------------------------------------
# conceptual questions
# ------------------------------------------------------------------------------------------------
QUESTIONS = {"q_spatial_params": visible.SPATIAL_PARAMS, "q_gate_order": visible.GATE_ORDER,
             "q_cbam_params": visible.CBAM_PARAMS}



#: The named wrong answers of each question in plain text (the check file holds only their salted hashes).
WRONG = {
    "q_spatial_params": {7 * 7: "single_pool", 2 * 7 * 7 + 1: "extra_parameter", 2 * 7 * 7 + 2: "official_batch_norm",
                         2 * 7: "kernel_ignored"},
    "q_gate_order": {"bc": "spatial_on_input", "ae": "gates_commute", "ace": "spatial_on_input",
                     "acd": "spatial_on_input", "ac": "spatial_on_input", "acde": "spatial_on_input",
                     "abde": "gates_commute", "abd": "gates_commute", "a": "gates_commute",
                     "ad": "gated_max_fixed", "de": "spatial_on_input"},
    "q_cbam_params": {2 * 256 * 16 + 16 + 256 + 98: "official_mlp_bias", 2 * (2 * 256 * 16) + 98: "separate_mlps",
                      2 * 256 * 16: "param_count", 2 * 256 * 16 + 16 + 256 + 98 + 2: "official_mlp_bias",
                      2 * 256 * 16 + 2 * 98: "spatial_counted_twice", 2 * 256 * 16 + 49: "single_pool",
                      256 * 16 + 98: "mlp_one_layer", 2 * 256 * 16 + 99: "extra_parameter",
                      2 * (2 * 256 * 16 + 98): "separate_mlps"},
}


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_question_wrong_keys_are_the_hashes_of_the_named_wrong_answers(qid):
    q = QUESTIONS[qid]
    want = {answer_key(qid, value, kind=q.kind, options=q.options, digits=q.digits): mistake
            for value, mistake in WRONG[qid].items()}
    assert {key: mistake for key, (mistake, _) in q.wrong.items()} == want


def test_question_answers_follow_from_the_reference():
    assert sum(p.numel() for p in SpatialAttention(7).parameters()) == hidden.ANSWERS["q_spatial_params"][1]
    assert sum(p.numel() for p in CBAM(256, 16, 7).parameters()) == hidden.ANSWERS["q_cbam_params"][1]
    # (a), (d) and (e) hold and (b), (c) do not, on an input where the channel gate is far from uniform
    torch.manual_seed(0)
    block = CBAM(8, 2, 3).double().eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(3 * torch.randn_like(p))
    x = torch.randn(2, 8, 6, 9, dtype=torch.float64) * torch.linspace(0.2, 3.0, 8, dtype=torch.float64).reshape(1, 8, 1, 1)
    with torch.no_grad():
        mc = block.channel_gate.attention(x)
        refined = x * mc
        parallel = x * mc * block.spatial_gate.attention(x)
        spatial_first = block.channel_gate(block.spatial_gate(x))
        out = block(x)
    assert torch.allclose(block.spatial_gate.attention(refined), torch.sigmoid(block.spatial_gate.conv(
        torch.cat([refined.mean(1, keepdim=True), refined.amax(1, keepdim=True)], 1))))  # (a): pooled from F'
    assert not torch.allclose(out, parallel)  # not (b), not (c)
    assert not torch.allclose(out, spatial_first)  # (d)
    assert (refined.argmax(1) != x.argmax(1)).any()  # (e)
    assert hidden.ANSWERS["q_gate_order"][1] == "ade"


def test_chapter_states_one_bias_policy():
    """The paper's form (no MLP bias) is the default; the official biases are the option mlp_bias=True."""
    text = "\n".join(c.source for c in nbformat.read(nbs.notebook_path(CHAPTER), as_version=4).cells)
    assert "mlp_bias=True" in text and "as in the paper" not in text
    assert "w.flip(1)" not in text  # chapter 03's exercise
