"""course_lib.capstone and course_lib.figures.capstone: the network, training, metrics, figures, CLI.

Training tests use tiny data on a 32x32 canvas and one CPU thread, so the file stays fast; each
check has beside it the wrong input it must reject.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import capstone as cap
from course_lib.figures import capstone as figs
from course_lib.data import load_cluttered_digits
from course_lib.reference import ATTENTION
from course_lib.tools import capstone_run


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: faster than two for these small convolutions, and fair to xdist workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small():
    return load_cluttered_digits(800, 200, canvas_size=32, num_clutter=2, seed=0)


class CentreGate(nn.Module):
    """A student-style spatial gate: sigmoid of a 1x1 conv; attention (B, 1, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


# ---------------------------------------------------------------------------------------------
# The network and its slot
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", cap.VARIANTS)
def test_every_variant_runs_forward_and_backward(variant):
    model = cap.CapstoneNet(variant, registry=ATTENTION)
    x = torch.rand(3, 1, 40, 56)  # H != W; the slot sees (3, 48, 10, 14)
    logits = model(x)
    assert logits.shape == (3, 10)
    logits.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_registry_names_are_all_in_the_capstone():
    import course_lib

    assert set(course_lib.ATTENTION) <= set(cap.VARIANTS)


@pytest.mark.parametrize("spec", [CentreGate, lambda c: CentreGate(c), CentreGate(48)],
                         ids=["class", "factory", "instance"])
def test_a_custom_module_plugs_in(spec):
    model = cap.CapstoneNet(spec)
    assert isinstance(model.attention, CentreGate)
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 10)
    assert set(cap.attention_outputs(model, torch.rand(2, 1, 48, 48))) == {"spatial"}


def test_same_seed_gives_the_same_backbone_for_every_variant():
    torch.manual_seed(5)
    a = cap.CapstoneNet("none")
    torch.manual_seed(5)
    b = cap.CapstoneNet("danet_pam", registry=ATTENTION)
    torch.testing.assert_close(a.backbone.state_dict(), b.backbone.state_dict())
    torch.testing.assert_close(a.classifier.state_dict(), b.classifier.state_dict())


def test_slot_that_changes_the_shape_is_rejected():
    model = cap.CapstoneNet(lambda c: nn.Conv2d(c, c // 2, 1))
    with pytest.raises(ValueError, match=r"must map .* to the same shape; Conv2d returned \(2, 24, 12, 12\)"):
        model(torch.rand(2, 1, 48, 48))


def test_bad_attention_specs():
    with pytest.raises(ValueError, match="attention must be one of: none, conv_control, se, .*; got 'sse'"):
        cap.CapstoneNet("sse", registry=ATTENTION)
    # the student side has no registry of its own: a name without one says what to pass
    with pytest.raises(ValueError, match="attention 'se' is a name, and no registry was given: pass registry="):
        cap.CapstoneNet("se")
    with pytest.raises(TypeError, match="attention must be None, a name .*; got int 42"):
        cap.CapstoneNet(42)
    with pytest.raises(TypeError, match="must return an nn.Module .* got str"):
        cap.CapstoneNet(lambda c: "not a module")
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, H, W\); got \(2, 3, 48, 48\)"):
        cap.CapstoneNet()(torch.rand(2, 3, 48, 48))


@pytest.mark.parametrize("variant, keys", [
    ("none", set()),
    ("conv_control", set()),
    ("se", {"channel"}),
    ("cbam", {"channel", "spatial"}),
    ("ctdnet_sam", {"spatial"}),
    ("hacnn_soft", {"spatial"}),
    ("danet_pam", {"position", "spatial"}),
    ("danet_cam", {"channel_affinity"}),
    ("danet_dual", {"position", "spatial", "channel_affinity"}),
])
def test_attention_outputs_are_sorted_by_shape(variant, keys):
    model = cap.CapstoneNet(variant, registry=ATTENTION)
    out = cap.attention_outputs(model, torch.rand(2, 1, 48, 44))
    assert set(out) == keys
    shapes = {"channel": (2, 48), "spatial": (2, 12, 11), "position": (2, 132, 132),
              "channel_affinity": (2, 48, 48)}
    for key, value in out.items():
        assert tuple(value.shape) == shapes[key], key
    if "position" in out:  # rows are queries: each sums to 1 (a transposed map would fail)
        torch.testing.assert_close(out["position"].sum(-1), torch.ones(2, 132))
        torch.testing.assert_close(out["spatial"].flatten(1).sum(1), torch.ones(2))


class EveryQueryLooksAtOneKey(nn.Module):
    """A fake position attention: every query puts all its weight on key ``target``."""

    def __init__(self, channels: int, target: int = 5) -> None:
        super().__init__()
        self.target = target

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        a = torch.zeros(b, h * w, h * w)
        a[:, :, self.target] = 1.0  # (B, N queries, N keys): rows sum to 1
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_position_attention_map_is_the_attention_each_position_receives():
    # Averaging over queries (dim 1) puts all the mass on the key; averaging each row would be flat 1/N.
    model = cap.CapstoneNet(EveryQueryLooksAtOneKey)
    spatial = cap.attention_outputs(model, torch.rand(2, 1, 48, 44))["spatial"]  # (2, 12, 11)
    expected = torch.zeros(2, 12 * 11)
    expected[:, 5] = 1.0
    torch.testing.assert_close(spatial.flatten(1), expected)


# ---------------------------------------------------------------------------------------------
# Cost metrics
# ---------------------------------------------------------------------------------------------
def test_macs_of_the_plain_cnn_match_a_hand_count():
    # conv k*k*C_in*C_out per output pixel, linear C*classes; FlopCounterMode counts 2 flops per MAC.
    expected = (48 * 48 * 9 * 1 * 16 + 24 * 24 * 9 * 16 * 32 + 12 * 12 * 9 * 32 * 48 + 12 * 12 * 9 * 48 * 48
                + 48 * 10)
    macs = cap.count_macs(cap.CapstoneNet(), (1, 48, 48))
    assert macs == expected
    assert 2 * expected != macs  # reporting flops as MACs would fail


def test_macs_grow_with_the_attention_module():
    base = cap.count_macs(cap.CapstoneNet(), (1, 48, 48))
    pam = cap.count_macs(cap.CapstoneNet("danet_pam", registry=ATTENTION), (1, 48, 48))
    n, c, cq = 144, 48, 6  # positions, channels, query/key width C/8
    # query and key 1x1 convs (C -> C/8), value (C -> C), energy (N x C/8 @ C/8 x N), out (C x N @ N x N)
    assert pam - base == n * c * (2 * cq + c) + n * n * cq + c * n * n


def test_parameter_count_and_latency():
    model = cap.CapstoneNet()
    assert cap.count_parameters(model) == 16 * 9 + 32 * 16 * 9 + 48 * 32 * 9 + 48 * 48 * 9 + 2 * (16 + 32 + 48 + 48) + 48 * 10 + 10
    ms = cap.cpu_latency_ms(model, (1, 32, 32), repeats=5, warmup=1)
    assert 0.0 < ms < 1000.0


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_is_deterministic_for_a_seed(small):
    train = load_cluttered_digits(96, 10, canvas_size=32, num_clutter=2, seed=0)[0]
    runs = []
    for seed in (1, 1, 2):
        cap.seed_everything(seed)
        model = cap.CapstoneNet("cbam", registry=ATTENTION)
        losses = cap.fit(model, train, epochs=1, seed=seed, batch_size=32, device="cpu", progress=False)
        runs.append((_weights(model), losses))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])  # the comparison can tell runs apart


def test_a_short_training_run_beats_chance_clearly(small):
    train, test = small
    cap.seed_everything(0)
    model = cap.CapstoneNet()
    untrained = cap.evaluate(model, test)
    assert untrained < 0.5  # the threshold below rejects a network that did not learn
    losses = cap.fit(model, train, epochs=4, seed=0, device="cpu", progress=False)
    assert losses[-1] < losses[0]
    assert cap.evaluate(model, test) > 0.5


def test_fit_rejects_bad_epochs(small):
    with pytest.raises(ValueError, match="epochs must be an int >= 1; got 0"):
        cap.fit(cap.CapstoneNet(), small[0], epochs=0, seed=0, progress=False)


def test_pick_device():
    assert cap.pick_device("cpu") == torch.device("cpu")
    assert cap.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda'; got 'gpu'"):
        cap.pick_device("gpu")


# ---------------------------------------------------------------------------------------------
# Does the map find the digit: the metric
# ---------------------------------------------------------------------------------------------
def test_localisation_scores_a_map_on_the_box_above_one_and_a_blind_map_at_one():
    boxes = torch.tensor([[4, 8, 20, 24], [10, 0, 26, 16]])
    on_box = torch.zeros(2, 32, 32)
    for i, (t, l, b, r) in enumerate(boxes.tolist()):
        on_box[i, t:b, l:r] = 1.0
    score = cap.localisation(on_box, boxes)
    assert score["mass_in_box"] == pytest.approx(1.0)
    assert score["box_area"] == pytest.approx(256 / 1024)
    assert score["lift"] == pytest.approx(4.0)
    assert score["pointing_hit"] == 1.0
    gate = cap.localisation(0.5 + 0.5 * on_box, boxes)  # a sigmoid gate's floor of 0.5 does not count
    assert gate["mass_in_box"] == pytest.approx(1.0)
    blind = cap.localisation(torch.full((2, 32, 32), 0.7), boxes)  # a constant gate: no preference
    assert blind["mass_in_box"] == pytest.approx(blind["box_area"]) and blind["lift"] == pytest.approx(1.0)
    off_box = cap.localisation(1.0 - on_box, boxes)
    assert off_box["mass_in_box"] == pytest.approx(0.0) and off_box["pointing_hit"] == 0.0


def test_spatial_maps_are_upsampled_to_the_image():
    model = cap.CapstoneNet("ctdnet_sam", registry=ATTENTION)
    images = torch.rand(3, 1, 48, 40)
    maps = cap.spatial_maps(model, images)
    assert maps.shape == (3, 48, 40)
    assert cap.spatial_maps(cap.CapstoneNet("se", registry=ATTENTION), images) is None
    assert cap.spatial_maps(cap.CapstoneNet("none"), images, control=True).shape == (3, 48, 40)


def test_pam_query_sits_on_the_digit(small):
    _, test = small
    model = cap.CapstoneNet("danet_pam", registry=ATTENTION)
    q = cap.pam_query_maps(model, test, range(5))
    assert q["maps"].shape == (5, 32, 32) and q["queries"].shape == (5, 2)
    for (r, c), (top, left, bottom, right) in zip(q["queries"], q["boxes"]):
        assert top <= r < bottom and left <= c < right
    assert cap.pam_query_maps(cap.CapstoneNet("se", registry=ATTENTION), test, range(5)) is None


def test_channel_weights_per_class(small):
    _, test = small
    w = cap.channel_weights_per_class(cap.CapstoneNet("se", registry=ATTENTION), test)
    assert w.shape == (10, 48) and ((w > 0) & (w < 1)).all()
    assert cap.channel_weights_per_class(cap.CapstoneNet("ctdnet_sam", registry=ATTENTION), test) is None


# ---------------------------------------------------------------------------------------------
# Figures return what they draw
# ---------------------------------------------------------------------------------------------
def test_figures_return_their_arrays(tmp_path):
    rng = np.random.default_rng(0)
    images, boxes = rng.random((3, 32, 32)), np.array([[0, 0, 16, 16]] * 3)
    drawn = figs.plot_spatial_attention(images, boxes, {"a": 5 * rng.random((3, 32, 32)) + 2}, tmp_path / "s.png")
    assert drawn["a"].shape == (3, 32, 32)
    assert drawn["a"].min() == 0.0 and drawn["a"].max() == 1.0  # scaled per image for display
    weights = figs.plot_channel_weights({"se": rng.random((10, 8))}, tmp_path / "c.png")
    np.testing.assert_allclose(weights["se_centred"].sum(0), 0.0, atol=1e-12)
    acc = figs.plot_accuracy([{"variant": "none", "acc_mean": 0.9, "acc_std": 0.01, "acc_per_seed": "0.9"}],
                             tmp_path / "a.png")
    np.testing.assert_allclose(acc["mean"], [90.0])
    for name in ("s.png", "c.png", "a.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def test_cli_quick_writes_tables_and_figures(tmp_path, capsys):
    out = tmp_path / "capstone"
    rc = capstone_run.main(["--quick", "--out", str(out), "--epochs", "1", "--num-train", "200", "--num-test", "100",
                   "--no-progress"])
    assert rc == 0
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in rows] == list(cap.QUICK_VARIANTS)
    for r in rows:
        assert 0.0 <= float(r["acc_mean"]) <= 1.0 and int(r["params"]) > 0 and int(r["macs"]) > 0
        assert float(r["latency_ms"]) > 0
    assert math.isnan(float(rows[0]["att_lift"])) and not math.isnan(float(rows[2]["att_lift"]))  # none vs cbam
    md = (out / "results.md").read_text()
    assert "| variant | test accuracy (mean ± std) |" in md and "| cbam |" in md and "Does the spatial map" in md
    for name in ("accuracy.png", "spatial_attention.png", "channel_weights.png", "pam_query.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert torch.get_num_threads() == 1  # main restores the caller's thread count


@pytest.mark.parametrize("argv, words", [
    (["--variants", "none", "sse"], "unknown variant(s) ['sse']"),
    (["--seeds", "0"], "--seeds must be >= 1; got 0"),
    (["--threads", "0"], "--threads must be >= 1; got 0"),
])
def test_cli_rejects_bad_arguments(tmp_path, argv, words):
    with pytest.raises(SystemExit) as info:
        capstone_run.main(["--out", str(tmp_path), *argv])
    assert words in str(info.value.code)


def test_dispatcher_knows_the_capstone():
    from course_lib.__main__ import COMMANDS

    assert COMMANDS["capstone"][0] == "course_lib.tools.capstone_run:main"


def test_diagnose_flags_a_collapsed_channel_gate(small):
    _, test = small
    healthy = cap.CapstoneNet("cbam", registry=ATTENTION)
    assert cap.diagnose({"cbam": healthy}, test) == []
    dead = cap.CapstoneNet("cbam", registry=ATTENTION)
    with torch.no_grad():  # every hidden unit of W_0 gets a negative input from non-negative features
        dead.attention.channel_gate.mlp[0].weight.fill_(-1.0)
    notes = cap.diagnose({"cbam": dead}, test)
    assert len(notes) == 1 and "constant (0.500" in notes[0] and "dead" in notes[0]


class FlatForEvenImages(nn.Module):
    """A fake channel gate that has collapsed for every other image: 0.5 on every channel there."""

    def __init__(self, channels: int) -> None:  # CapstoneNet builds its slot with the channel count
        super().__init__()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        varying = torch.sigmoid(torch.linspace(-2, 2, c, dtype=x.dtype, device=x.device)).expand(b, c)
        even = (torch.arange(b, device=x.device) % 2 == 0)[:, None]
        return torch.where(even, torch.full_like(varying, 0.5), varying)[:, :, None, None]  # (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


def test_diagnose_flags_a_gate_that_collapsed_for_some_images(small):
    _, test = small
    notes = cap.diagnose({"fake": cap.CapstoneNet(FlatForEvenImages)}, test)
    assert len(notes) == 1 and "for 50 % of the test images" in notes[0] and "flat (0.500" in notes[0], notes
    # below the threshold it stays quiet: flat for 50 % is not flat for 60 %
    assert cap.diagnose({"fake": cap.CapstoneNet(FlatForEvenImages)}, test, partial=0.6) == []


def test_pam_query_map_is_the_query_row(small):
    # The fake map sends every query to key 5 = cell (0, 5) of the 8x8 slot: pixels rows 0-3, cols 20-23.
    _, test = small
    q = cap.pam_query_maps(cap.CapstoneNet(EveryQueryLooksAtOneKey), test, range(4))
    for m in q["maps"]:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert 0 <= r < 4 and 20 <= c < 24, (r, c)


# ------------------------------------------------------------------------------------------------
# load_my_class: a student's class from the student's own notebook of an earlier chapter
# ------------------------------------------------------------------------------------------------
def _write_notebook(path, *sources):
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


GATE_CELL = '''
class MyGate(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.inner = Helper(channels)

    def forward(self, x):
        return x * torch.sigmoid(self.inner(x)) * SCALE
'''
HELPER_CELL = '''
class Helper(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        return self.conv(x)
'''


def test_load_my_class_finds_the_class_beside_this_notebook(tmp_path, monkeypatch):
    """From notebooks/09_capstone/ it reads ../01_x/01_x.ipynb, with that notebook's imports, helper classes
    and constants, and runs nothing else of it."""
    _write_notebook(tmp_path / "01_x" / "01_x.ipynb", "import torch\nimport torch.nn as nn\nSCALE = 2.0",
                    HELPER_CELL, GATE_CELL, "raise RuntimeError('training must not run')\nprint('side effect')")
    (tmp_path / "09_capstone").mkdir()
    monkeypatch.chdir(tmp_path / "09_capstone")
    cls = cap.load_my_class("01_x", "MyGate")
    net = cap.CapstoneNet(cls)
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    assert cap.load_my_class("01_x", "MyGate") is not cls  # a fresh namespace each time
    assert "Helper" not in vars(cap) and "SCALE" not in vars(cap)  # nothing leaks into the library


def test_load_my_class_takes_the_last_definition(tmp_path):
    path = _write_notebook(tmp_path / "n.ipynb", "import torch.nn as nn",
                           "class A(nn.Module):\n    kind = 'first'", "class A(nn.Module):\n    kind = 'second'")
    assert cap.load_my_class("any", "A", path=path).kind == "second"


def test_load_my_class_names_the_places_it_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        cap.load_my_class("01_se", "SqueezeExcitation")
    message = str(info.value)
    assert "01_se.ipynb" in message and str(tmp_path.parent / "01_se" / "01_se.ipynb") in message


def test_load_my_class_on_colab_says_the_other_notebook_is_absent(tmp_path, monkeypatch):
    import sys
    import types

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(FileNotFoundError, match="On Colab only the notebook you opened"):
        cap.load_my_class("05_danet_pam", "PositionAttention")


def test_load_my_class_without_the_class_names_file_and_class(tmp_path):
    path = _write_notebook(tmp_path / "n.ipynb", "import torch.nn as nn", "class Other(nn.Module):\n    pass")
    with pytest.raises(LookupError, match=r"defines `class SqueezeExcitation`") as info:
        cap.load_my_class("01_se", "SqueezeExcitation", path=path)
    assert str(path) in str(info.value)


def test_load_my_class_refuses_an_untouched_stub_and_a_stub_it_uses(tmp_path):
    stub = "class Helper(nn.Module):\n    def forward(self, x):\n        # YOUR CODE HERE\n        raise NotImplementedError()"
    path = _write_notebook(tmp_path / "n.ipynb", "import torch\nimport torch.nn as nn\nSCALE = 1.0", stub, GATE_CELL)
    with pytest.raises(NotImplementedError, match=r"Helper \(which MyGate uses\)"):
        cap.load_my_class("01_x", "MyGate", path=path)
    with pytest.raises(NotImplementedError, match="still raises NotImplementedError"):
        cap.load_my_class("01_x", "Helper", path=path)


def test_load_my_class_reports_a_failing_import(tmp_path):
    path = _write_notebook(tmp_path / "n.ipynb", "import no_such_module_here", "class A:\n    pass")
    with pytest.raises(ImportError, match="import no_such_module_here"):
        cap.load_my_class("x", "A", path=path)


def test_load_my_class_rejects_bad_arguments():
    with pytest.raises(TypeError, match="two strings"):
        cap.load_my_class("01_se", 3)


@pytest.mark.parametrize("tree, works", [("solutions", True), ("notebooks", False)])
def test_load_my_class_on_the_course_notebooks(monkeypatch, tree, works):
    """The instructor's chapter 01 gives a working class; the student release gives the stub's clear error."""
    from course_lib.tools import notebooks as nbs

    monkeypatch.chdir(nbs.REPO / tree / "09_capstone")
    if works:
        cls = cap.load_my_class("01_se", "SqueezeExcitation")
        assert cap.CapstoneNet(cls)(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    else:
        with pytest.raises(NotImplementedError, match="01_se.ipynb still raises NotImplementedError"):
            cap.load_my_class("01_se", "SqueezeExcitation")
