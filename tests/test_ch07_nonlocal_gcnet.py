"""Chapter 07 (non-local block, GCNet): the named mistakes, the stored values' meaning, the notebook's solution cells
against the references, the questions' keys against their plain answers, and the trained-network helpers the
chapter uses. The contracts every chapter keeps are in tests/test_chapter_contracts.py."""
from __future__ import annotations

import math

import pytest
import torch

from chapter_cases import assert_diagnoses_differ, assert_follows_device_and_dtype, notebook, run_solution
from course_lib import learned
from course_lib.checks import CheckFailure
from course_lib.checks import ch07_nonlocal_gcnet as visible
from course_lib.checks.toolkit import expected
from course_lib.checks.questions import answer_key
from course_lib.hidden import ch07_nonlocal_gcnet as hidden
from course_lib.reference.gcnet import GlobalContextBlock
from course_lib.reference.nonlocal_block import NonLocalBlock
from course_lib.tools import checkpoints

CHAPTER = "07_nonlocal_gcnet"
QUESTIONS = ("q_nl_params", "q_zero_init_grads", "q_cost_ratio", "q_map_mib", "q_logit_std", "q_wz_trap")


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    solution = run_solution(CHAPTER)
    assert solution.code_ids() == {"nonlocal_block", "global_context_block", "cosine_distance", "gc_state_from_se",
                                   *(f"{q}_solution" for q in QUESTIONS)}
    return solution.namespace


def test_fused_reference_passes_too():
    class Fused(NonLocalBlock):
        def __init__(self, channels, reduction=2):
            super().__init__(channels, reduction, fused=True)

    visible.check_nl_forward(Fused)
    hidden.hidden_nl_forward(Fused)


def test_gc_reference_agrees_with_the_stored_values_under_the_notebook_names():
    """The reference GC block (official names) computes what the checks store under the paper's names."""
    E = expected("ch07_nonlocal_gcnet")
    for key in ("gc_context", "gc_forward"):
        data = E[key]
        ref = GlobalContextBlock(data["channels"], data["reduction"]).double().eval()
        ref.load_state_dict(data["weights"])
        x = data["x"].double()
        if key == "gc_context":
            torch.testing.assert_close(ref.attention(x), data["alpha"])
            torch.testing.assert_close(ref.context(x), data["context"])
        else:
            torch.testing.assert_close(ref(x), data["y"])
        assert set(visible.gc_names(data["weights"])) == {
            "conv_mask.weight", "conv_mask.bias", "w_v1.weight", "w_v1.bias", "norm.weight", "norm.bias",
            "w_v2.weight", "w_v2.bias"}


def test_identity_at_init_cannot_mask_a_wrong_branch():
    """A block that is the identity at initialisation but whose branch is wrong must fail: the value checks load
    nonzero BN statistics and a nonzero last layer."""
    class WrongBranch(NonLocalBlock):
        def __init__(self, channels, reduction=2):
            super().__init__(channels, reduction)

        def forward(self, x):
            return self.bn(self.w_z(self.g(x))) + x  # no attention at all

    with pytest.raises(CheckFailure):
        visible.check_nl_forward(WrongBranch)


def test_stored_inputs_have_distinct_b_c_n():
    E = expected("ch07_nonlocal_gcnet")
    for key in ("nl_attention", "nl_forward", "gc_context", "gc_forward"):
        b, c, h, w = E[key]["x"].shape
        assert len({b, c, h * w}) == 3 and h != w, key


def test_stored_diagnoses_differ_from_the_right_answer_and_are_named():
    E = expected("ch07_nonlocal_gcnet")
    assert_diagnoses_differ(((E["nl_attention"]["a"], E["nl_attention"]["diagnoses"]),
                             (E["nl_forward"]["y"], E["nl_forward"]["diagnoses"]),
                             (E["gc_context"]["alpha"], E["gc_context"]["alpha_diagnoses"]),
                             (E["gc_context"]["context"], E["gc_context"]["context_diagnoses"]),
                             (E["gc_forward"]["y"], E["gc_forward"]["diagnoses"]),
                             (E["cosine"]["d"], E["cosine"]["diagnoses"])), visible.ADVICE)


def test_solution_modules_match_the_references(solution_namespace):
    ns = solution_namespace
    ref = hidden.reference_nl(16, 4, seed=7).float()
    mine = ns["NonLocalBlock"](16, 4)
    mine.load_state_dict(ref.state_dict())  # the reference's names load 1:1
    mine.eval()
    x = torch.randn(2, 16, 5, 9)
    torch.testing.assert_close(mine.attention(x), ref.attention(x))
    torch.testing.assert_close(mine(x), ref(x))
    assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in ref.parameters())
    gref = hidden.reference_gc(32, 8, seed=9).float()
    gc = ns["GlobalContextBlock"](32, 8)
    gc.load_state_dict(visible.gc_names(gref.state_dict()))
    torch.testing.assert_close(gc(x.repeat(1, 2, 1, 1)), gref(x.repeat(1, 2, 1, 1)))
    assert sum(p.numel() for p in gc.parameters()) == sum(p.numel() for p in gref.parameters())


def test_new_solution_blocks_are_the_identity(solution_namespace):
    x = torch.randn(2, 32, 6, 5)
    assert torch.equal(solution_namespace["NonLocalBlock"](32)(x), x)
    assert torch.equal(solution_namespace["GlobalContextBlock"](32)(x), x)
    assert torch.equal(NonLocalBlock(32)(x), x) and torch.equal(GlobalContextBlock(32)(x), x)


def test_solution_modules_follow_device_and_dtype(solution_namespace, device):
    for cls, args in ((solution_namespace["NonLocalBlock"], (8, 2)), (solution_namespace["GlobalContextBlock"], (16, 4))):
        assert_follows_device_and_dtype(cls(*args), torch.randn(2, args[0], 5, 3, device=device, dtype=torch.float64))


def test_question_keys_hash_the_hidden_answers():
    for qid, (kind, right, extra) in hidden.ANSWERS.items():
        question = getattr(visible, "Q_" + qid.removeprefix("q_").upper())
        assert question.kind == kind
        assert question.key == answer_key(qid, right, kind=kind, **extra), qid
        for wrong_key in question.wrong:
            assert wrong_key != question.key, qid


def test_question_answers_follow_from_their_ingredients():
    """The plain answers are what the reference modules and the definitions give."""
    assert hidden.ANSWERS["q_nl_params"][1] == sum(p.numel() for p in NonLocalBlock(256).parameters())
    n, c, inter = 56 * 56, 256, 128
    macs_nl = n * inter * n + n * n * inter  # (N x C') @ (C' x N) and (N x N) @ (N x C')
    assert hidden.ANSWERS["q_cost_ratio"][1] == macs_nl // (c * n)
    block = NonLocalBlock(8, sub_sample=True)
    a = block.attention(torch.randn(1, 8, 56, 56))
    assert a.numel() * 4 / 2**20 == pytest.approx(hidden.ANSWERS["q_map_mib"][1])
    g = torch.Generator().manual_seed(0)
    dots = (torch.randn(20000, 512, generator=g) * torch.randn(20000, 512, generator=g)).sum(-1)
    assert float(dots.std()) == pytest.approx(hidden.ANSWERS["q_logit_std"][1], rel=0.03)


def test_zero_init_gradients_reach_only_the_batch_norm():
    """Question 2's answer, by autograd on the reference block in training mode."""
    block = NonLocalBlock(16).train()
    x = torch.randn(2, 16, 5, 6)
    (block(x) * torch.randn_like(x)).sum().backward()
    nonzero = {name for name, p in block.named_parameters() if p.grad is not None and p.grad.abs().max() > 0}
    assert nonzero == {"bn.weight", "bn.bias"}
    assert set(hidden.ANSWERS["q_zero_init_grads"][1]) == {"d", "e"}


def test_wz_zero_under_a_default_batch_norm_is_the_identity_with_a_huge_first_gradient():
    """Question 2b's answer, by autograd on the reference block: W_z zero, BN at its defaults, training mode."""
    torch.manual_seed(0)
    block = NonLocalBlock(16).double()
    with torch.no_grad():
        block.bn.weight.fill_(1.0)
        block.w_z.weight.zero_()
        block.w_z.bias.zero_()
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    assert torch.equal(block.train()(x), x) and torch.equal(block.eval()(x), x)  # (a)
    paper = NonLocalBlock(16).double().train()
    (paper(x) * torch.randn_like(x)).sum().backward()
    bn_paper = max(paper.bn.weight.grad.abs().max(), paper.bn.bias.grad.abs().max())
    block.train()
    (block(x) * torch.randn_like(x)).sum().backward()
    assert block.w_z.weight.grad.abs().max() > 10 * bn_paper  # (c), so not (b)
    assert block.bn.weight.grad.abs().max() == 0  # not (d)
    assert block.w_z.bias.grad.abs().max() < 1e-9 * block.w_z.weight.grad.abs().max()  # not (e)
    assert set(hidden.ANSWERS["q_wz_trap"][1]) == {"a", "c"}


def test_gc_state_from_se_makes_the_gc_block_se_with_a_layernorm(solution_namespace):
    """Exercise 4: the solution's parameters in the reference GC block give SE with a LayerNorm, and SE itself
    differs (the LayerNorm is the one step no parameter removes)."""
    ref = GlobalContextBlock(32, 8).double()
    se = hidden.se_weights(32, 4, seed=1)
    state = solution_namespace["gc_state_from_se"](visible.gc_names(ref.state_dict()), *(se[k] for k in
                                                                                           ("w1", "b1", "w2", "b2")))
    with torch.no_grad():
        for name, official in hidden.GC_PARAMETERS.items():
            ref.get_parameter(official).copy_(state[name].reshape(ref.get_parameter(official).shape))
        x = 50 * torch.randn(2, 32, 5, 7, dtype=torch.float64)
        gc_mul = x * torch.sigmoid(ref(x) - x)
        torch.testing.assert_close(gc_mul, hidden.se_with_layernorm(x, se, 1e-5))
        y = x.mean((2, 3))
        plain = x * torch.sigmoid(torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(
            y, se["w1"], se["b1"])), se["w2"], se["b2"]))[..., None, None]
        assert (gc_mul - plain).abs().max() > 1e-3


def test_mean_cosine_distance_matches_learned_helper():
    v = torch.randn(3, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(hidden.cosine_distance(v), learned.mean_cosine_distance(v))
    pairs = [(1 - torch.cosine_similarity(v[:, i], v[:, j], dim=-1)) / 2 for i in range(7) for j in range(7) if i != j]
    torch.testing.assert_close(hidden.cosine_distance(v), torch.stack(pairs).mean(0))


def test_pam_as_non_local_computes_pams_map(solution_namespace):
    data = learned.test_split()
    images = data.images[:40]
    net = learned.pam_as_non_local(solution_namespace["NonLocalBlock"])
    pam = checkpoints.load_reference("danet_pam")
    with torch.inference_mode():
        torch.testing.assert_close(net.attention.attention(net.features(images)),
                                   pam.attention.attention(pam.features(images)), atol=1e-6, rtol=1e-5)


def test_pam_as_non_local_reports_an_unfinished_class(capsys):
    class Stub(torch.nn.Module):
        def __init__(self, channels, reduction=2):
            super().__init__()
            raise NotImplementedError()

    assert learned.pam_as_non_local(Stub) is None
    assert "not finished yet" in capsys.readouterr().out


def test_query_independence_figure_shows_the_stored_numbers(tmp_path, pyplot):
    from course_lib.figures.learned import plot_query_independence

    data = learned.test_split()
    nets = {"non-local": checkpoints.load_reference("non_local"), "DANet PAM": checkpoints.load_reference("danet_pam")}
    out = plot_query_independence(nets, data, path=tmp_path / "qi.png")
    assert (tmp_path / "qi.png").stat().st_size > 10_000
    for label, recipe in (("non-local", "non_local"), ("DANet PAM", "danet_pam")):
        stored = learned.read_checkpoint(recipe)["numbers"]
        assert out[label]["row_mean"] == pytest.approx(stored["row_distance"], rel=1e-6)
        assert out[label]["input_mean"] == pytest.approx(stored["input_distance"], rel=1e-6)
        # the chapter's claim: on average the attention rows are far more alike than the inputs, and every point
        # lies below the diagonal
        assert out[label]["row_mean"] < out[label]["input_mean"] / 5
        assert (out[label]["rows"] < out[label]["inputs"]).all()
    assert math.isclose(learned.read_checkpoint("danet_pam")["numbers"]["row_cosine"],
                        1 - 2 * learned.read_checkpoint("danet_pam")["numbers"]["row_distance"], rel_tol=1e-9)


def test_distance_distributions_show_the_numbers_the_chapter_quotes(tmp_path, pyplot):
    """Section 7's text quotes the spread of the per-image row distances; the figure's summary gives them."""
    from course_lib.figures.ch07 import plot_distance_distributions
    from course_lib.figures.learned import plot_query_independence

    data = learned.test_split()
    nets = {"non-local": checkpoints.load_reference("non_local"), "DANet PAM": checkpoints.load_reference("danet_pam")}
    shown = plot_query_independence(nets, data, path=tmp_path / "qi.png")
    spread = plot_distance_distributions(shown, path=tmp_path / "spread.png")
    assert (tmp_path / "spread.png").stat().st_size > 10_000
    nl, pam = spread["non-local"], spread["DANet PAM"]
    assert (f"{nl['share_shared']:.0%}", f"{nl['share_apart']:.1%}", f"{nl['row_max']:.2f}",
            f"{nl['share_below_half_input']:.1%}", f"{nl['input_min']:.3f}", f"{nl['row_median']:.3f}") == \
        ("57%", "17.6%", "0.30", "89.0%", "0.300", "0.000")
    assert (f"{pam['share_shared']:.0%}", f"{pam['share_apart']:.1%}", f"{pam['share_below_half_input']:.1%}",
            f"{pam['input_min']:.3f}") == ("82%", "1.2%", "99.9%", "0.275")
    text = next(c.source for c in notebook(CHAPTER).cells if c.get("id") == "learned-qi-after")
    for quoted in ("17.6 %", "57 %", "82 %", "1.2 %", "89.0 %", "99.9 %", "0.300", "0.275", "0.30,"):
        assert quoted in text, quoted
