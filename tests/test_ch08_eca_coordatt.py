"""Chapter 08 (ECA and Coordinate Attention): the stored values' meaning, the questions' keys against their plain
answers, the notebook's solution cells against the reference, the trained modules' figure, and the chapter's claims
(the ties of "nearest odd", ECA's locality, CA's row equivariance). The contracts every chapter keeps are in
tests/test_chapter_contracts.py."""
from __future__ import annotations

import math

import pytest
import torch

from chapter_cases import assert_follows_device_and_dtype, run_solution
from course_lib.tools import notebooks as nbs
from course_lib.checks import ch08_eca_coordatt as visible
from course_lib.checks.toolkit import expected, is_close
from course_lib.hidden import ch08_eca_coordatt as hidden
from course_lib.reference.coord_attention import CoordinateAttention
from course_lib.reference.eca import EfficientChannelAttention, adaptive_kernel_size
from course_lib.tools import checkpoints

CHAPTER = "08_eca_coordatt"
SOLUTIONS = ["q_why_no_reduction_solution", "adaptive_kernel_size_solution", "eca_solution",
             "q_eca_resnet50_parameters_solution", "q_shared_shape_solution", "directional_pool_solution",
             "coordinate_attention_solution", "attention_parameters_solution"]


@pytest.fixture(scope="module")
def solution_namespace() -> dict:
    """The notebook's solution cells, executed in order."""
    solution = run_solution(CHAPTER)
    assert [i for c, i in zip(solution.cells, solution.ids) if c.cell_type == "code"] == SOLUTIONS
    return solution.namespace


# ------------------------------------------------------------------------------------------------
# stored expected values and question keys
# ------------------------------------------------------------------------------------------------
def test_stored_diagnoses_differ_from_the_right_answer():
    E = expected("ch08_eca_coordatt")
    right = E["kernel"]["k"]
    for label, wrong in E["kernel"]["diagnoses"].items():
        assert label in visible.KERNEL_ADVICE and (wrong != right).any(), label
    for label, wrong in E["eca"]["gate_diagnoses"].items():
        assert label in visible.ECA_ADVICE and not is_close(wrong, E["eca"]["gate"]), label
    for label, (g_h, g_w) in E["ca"]["diagnoses"].items():
        assert label in visible.CA_ADVICE
        assert not (is_close(g_h, E["ca"]["g_h"]) and is_close(g_w, E["ca"]["g_w"])), label
    for case in E["counts"]:
        for key, wrong in case["wrong"].items():
            for label, value in wrong.items():
                assert (key, label) in visible.COUNT_ADVICE



def test_eca_resnet50_answer_is_the_sum_of_psi_over_the_blocks():
    stages = ((3, 256), (4, 512), (6, 1024), (3, 2048))
    assert hidden.ANSWERS["q_eca_resnet50_parameters"][1] == sum(
        n * sum(p.numel() for p in EfficientChannelAttention(c).parameters()) for n, c in stages)
    # the known wrong answers of the question are what the named mistakes compute
    assert sum(n * k for (n, _), k in zip(stages, (3, 5, 5, 7))) == 80  # the released kernels
    assert sum(n * adaptive_kernel_size(c // 4) for n, c in stages) == 74  # the bottleneck widths
    assert sum(adaptive_kernel_size(c) for _, c in stages) == 22  # one module per stage


def test_shared_shape_answer_is_what_the_reference_computes():
    m = CoordinateAttention(64).eval()
    seen = {}

    def record(module, inputs, output):
        seen["f"] = tuple(output.shape)

    m.act.register_forward_hook(record)
    m(torch.randn(2, 64, 12, 20))
    assert seen["f"] == hidden.ANSWERS["q_shared_shape"][1]


def test_table_2_supports_exactly_the_keyed_statements():
    top1 = {"none": 75.20, "se": 76.71, "var1": 76.00, "var2": 77.07, "var3": 77.42, "ns": 77.35, "eca": 77.43}
    statements = {"a": top1["var2"] > top1["se"], "b": False,  # ECA has k weights, SE thousands
                  "c": top1["var3"] > top1["se"], "d": top1["ns"] > top1["eca"], "e": top1["var1"] < top1["none"]}
    assert "".join(sorted(k for k, v in statements.items() if v)) == hidden.ANSWERS["q_why_no_reduction"][1]


def test_every_wrong_set_of_question_1_gets_the_same_hint():
    """Trial t78 (r3): the answer plus d or e got a hint naming that statement, and a or c alone a shown id saying
    "some, not all": elimination found the rest. Every wrong set now reads the same, whatever it misses or adds."""
    from itertools import combinations

    from course_lib.checks import CheckFailure
    from course_lib.checks.toolkit import UNSHOWN_MISTAKES

    q = visible.Q_WHY_NO_REDUCTION
    right = hidden.ANSWERS["q_why_no_reduction"][1]
    for n in range(1, 6):
        for picked in ("".join(c) for c in combinations("abcde", n)):
            if picked == right:
                continue
            with pytest.raises(CheckFailure) as err:
                q.check(picked)
            assert str(err.value) == f"{picked} is not right. {q.advice}", picked
            assert err.value.mistake in UNSHOWN_MISTAKES, picked


# ------------------------------------------------------------------------------------------------
# the notebook's solution equals the reference
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 6, 64, 128, 300, 2048])
def test_solution_kernel_size_matches_the_reference(solution_namespace, channels):
    for gamma, b in ((2, 1), (1, 0), (3, 2)):
        assert solution_namespace["adaptive_kernel_size"](channels, gamma, b) == adaptive_kernel_size(channels, gamma, b)


@pytest.mark.parametrize("channels,reduction", [(48, 4), (64, 32), (300, 32)])
def test_solution_modules_match_the_reference(solution_namespace, channels, reduction):
    x = torch.randn(2, channels, 6, 5)
    ref = EfficientChannelAttention(channels)
    mine = solution_namespace["EfficientChannelAttention"](channels)
    mine.load_state_dict(ref.state_dict())  # the solution keeps the official name conv
    torch.testing.assert_close(mine(x), ref(x))
    ref = CoordinateAttention(channels, reduction).eval()
    mine = solution_namespace["CoordinateAttention"](channels, reduction).eval()
    mine.load_state_dict(ref.state_dict())
    torch.testing.assert_close(mine(x), ref(x))
    for a, b in zip(mine.gates(x), ref.gates(x)):
        torch.testing.assert_close(a, b)


def test_solution_modules_follow_device_and_dtype(solution_namespace, device):
    x = torch.randn(2, 24, 5, 7, device=device, dtype=torch.float64)
    for name in ("EfficientChannelAttention", "CoordinateAttention"):
        assert_follows_device_and_dtype(solution_namespace[name](24).eval(), x)


# ------------------------------------------------------------------------------------------------
# the chapter's claims
# ------------------------------------------------------------------------------------------------
def test_nearest_odd_ties_at_128_and_2048_only_among_resnet_widths():
    ties = [c for c in (64, 128, 256, 512, 1024, 2048) if ((math.log2(c) + 1) / 2) % 2 == 0]
    assert ties == [128, 2048]
    assert [adaptive_kernel_size(c) for c in ties] == [5, 7]  # the course breaks them upwards
    variants = [hidden.kernel_variants(c, 2, 1)["nearest_odd_tie"] for c in ties]
    assert variants == [3, 5]


def test_listing_rule_is_nearest_odd_with_ties_up():
    """What the exercise asks (nearest odd, a tie goes up) is the paper's listing (floor, + 1 when even)."""
    for c in range(1, 5000):
        for gamma, b in ((2, 1), (1, 0), (3, 2), (1.5, 1)):
            t = (math.log2(c) + b) / gamma
            low = 2 * math.floor((t - 1) / 2) + 1
            nearest_up = low if t - low < low + 2 - t else low + 2
            assert nearest_up == adaptive_kernel_size(c, gamma, b), (c, gamma, b)


def test_even_kernel_loses_a_channel():
    out = torch.nn.functional.conv1d(torch.zeros(1, 1, 8), torch.ones(1, 1, 4), padding=(4 - 1) // 2)
    assert out.shape[-1] == 7


def test_eca_gate_is_local_and_ca_is_row_equivariant():
    torch.manual_seed(0)
    eca = EfficientChannelAttention(16, 3).eval()
    x = torch.randn(1, 16, 4, 4)
    bumped = x.clone()
    bumped[:, 9] += 1.0
    moved = ((eca.attention(bumped) - eca.attention(x)).abs().reshape(-1) > 1e-7).nonzero().reshape(-1).tolist()
    assert moved == [8, 9, 10]
    ca = CoordinateAttention(16).eval()
    x = torch.randn(2, 16, 6, 9)
    rows = torch.randperm(6)
    with torch.no_grad():
        torch.testing.assert_close(ca(x[:, :, rows]), ca(x)[:, :, rows])
        pixels = torch.randperm(54)
        shuffled = x.flatten(2)[..., pixels].reshape(x.shape)
        assert not torch.allclose(ca(shuffled), ca(x).flatten(2)[..., pixels].reshape(x.shape), atol=1e-6)


def test_parameter_counts_quoted_in_the_text():
    counts = hidden.reference_counts(256)
    assert counts == {"se": 8464, "eca": 5, "ca": 6680}
    small = hidden.reference_counts(64)
    assert small["ca"] > small["se"]  # the floor of 8 makes CA dearer than SE at small C
    assert all(hidden.reference_counts(c)["ca"] < hidden.reference_counts(c)["se"] for c in (256, 512, 1024, 2048))


# ------------------------------------------------------------------------------------------------
# the trained modules
# ------------------------------------------------------------------------------------------------
def test_trained_modules_load_into_the_solution_classes_and_draw(solution_namespace, tmp_path, pyplot):
    from course_lib import learned
    from course_lib.figures import learned as figs

    data = learned.test_split()
    eca_net = learned.load_trained("eca", solution_namespace["EfficientChannelAttention"])
    ref_net = checkpoints.load_reference("eca")
    images = data.images[:50]
    torch.testing.assert_close(eca_net(images), ref_net(images), rtol=1e-5, atol=1e-5)
    drawn = figs.plot_se_by_depth(eca_net, data, tmp_path / "eca.png", name="ECA")
    assert drawn["class_share_3"] == pytest.approx(learned.read_checkpoint("eca")["numbers"]["class_share_3"])
    # the text: at depth 2 the two end channels (their windows reach into the zero padding) stand out
    mean_2 = drawn["depth_2"].mean(0)
    inner = sorted(mean_2[1:-1])
    assert min(mean_2[0], mean_2[-1]) > inner[len(inner) // 2] + 0.05
    ca_net = learned.load_trained("coord_attention", solution_namespace["CoordinateAttention"])
    torch.testing.assert_close(ca_net(images), checkpoints.load_reference("coord_attention")(images), rtol=1e-5, atol=1e-5)
    out = figs.plot_coord_gates(ca_net, data, tmp_path / "ca.png")
    assert out["maps"].shape == (6, 48, 48) and out["rows"].shape == (6, 12) and out["cols"].shape == (6, 12)
    assert (tmp_path / "ca.png").read_bytes()[:4] == b"\x89PNG"
    # the text: "in the third image both gates dip on the digit" (less of their mass on it than its share)
    share = 16 / 48
    assert out["row_mass"][2] < share and out["col_mass"][2] < share
    assert sum(m > share for m in out["row_mass"]) == 5 and sum(m > share for m in out["col_mass"]) == 5
    # the profiles drawn are the gates' channel means
    g_h, g_w = ca_net.attention.gates(ca_net.features(data.images[:6]))
    torch.testing.assert_close(torch.from_numpy(out["rows"]), g_h.mean(1)[..., 0].detach())
    torch.testing.assert_close(torch.from_numpy(out["cols"]), g_w.mean(1)[:, 0].detach())


def test_coord_profile_stats_are_exact_on_a_handmade_case():
    from course_lib.learned import _profile_stats

    profile = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 2.0, 0.0, 0.0]])  # cells of 4 px: centres 2, 6, 10, 14
    lo, hi = torch.tensor([8.0, 0.0]), torch.tensor([16.0, 4.0])  # image 1: cells 2-3; image 2: cell 0
    s = _profile_stats(profile, lo, hi, stride=4)
    assert s["mass"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["share"] == pytest.approx((0.5 + 0.25) / 2)
    assert s["peak_hit"] == pytest.approx(0.5)
    assert s["lift"] == pytest.approx((1.0 / 0.5 + 0.0) / 2)


# ------------------------------------------------------------------------------------------------
# nbgrader: auto-graded points only (the two written questions are left for manual grading)
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_autograde_counts_auto_graded_points_only(tmp_path):
    """Solution 100 % of the auto-graded points, untouched stub 0; the written answers score nothing
    automatically (nbgrader leaves them for a person). tests/test_chapters.py asserts 100 % of all points
    until the shared helpers learn about written questions."""
    from pathlib import Path

    grader = nbs.new_course(tmp_path, [CHAPTER])
    solution = nbs.autograde(grader, tmp_path, CHAPTER, "solution", nbs.notebook_path(CHAPTER))
    stub = nbs.autograde(grader, tmp_path, CHAPTER, "stub", Path(tmp_path) / nbs.RELEASE / CHAPTER / f"{CHAPTER}.ipynb")
    auto = {k: v for k, v in solution["cells"].items() if not k.startswith("written_")}
    written = {k: v for k, v in solution["cells"].items() if k.startswith("written_")}
    assert sorted(written) == ["written_channel_order", "written_rank_one"]
    assert all(v == (0.0, 2.0) for v in written.values()), written  # not scored automatically
    assert sum(v[1] for v in auto.values()) == 14
    assert all(v[0] == v[1] for v in auto.values()), auto
    assert stub["score"] == 0 and not any(v[0] for v in stub["cells"].values())
