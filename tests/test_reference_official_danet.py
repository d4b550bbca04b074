"""Official DANet weights load into ``danet.DualAttentionHead`` and give the official outputs (audit defect 1).

The official ``DANetHead`` names its attention branches ``sa`` and ``sc``; the course's head calls them
``pam`` and ``cam`` and maps the official keys when loading. ``tests/parity/official_danet.py`` is a
stand-in for the official head (same names and layers, forward in the official style); its random
weights and BatchNorm statistics are loaded with ``strict=True`` and all three outputs compared in
float64 (B > 1, H != W, odd sizes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import reference_formulas as R
from course_lib.reference import danet

sys.path.insert(0, str(Path(__file__).parent / "parity"))
from official_danet import OfficialDANetHead  # noqa: E402

IN_CHANNELS, CLASSES = 64, 5  # inner width 16, PAM query/key width 2


def official_head(seed: int = 0) -> OfficialDANetHead:
    head = OfficialDANetHead(IN_CHANNELS, CLASSES)
    R.randomize_(head, seed)  # random weights, nonzero gammas, non-trivial BatchNorm statistics
    return head.double().eval()


def official_input() -> torch.Tensor:
    return torch.randn(2, IN_CHANNELS, 7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_official_state_dict_has_sa_and_sc_keys():
    keys = official_head().state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"conv5a", "conv5c", "sa", "sc", "conv51", "conv52", "conv6", "conv7", "conv8"}
    assert sum(k.startswith(("sa.", "sc.")) for k in keys) == 8  # 7 PAM parameters and CAM's gamma


@pytest.mark.parametrize("fused", [False, True])
def test_official_weights_load_strictly_and_give_the_official_outputs(fused):
    official = official_head()
    head = danet.DualAttentionHead(IN_CHANNELS, CLASSES, cam_variant="official", fused=fused).double().eval()
    result = head.load_state_dict(official.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = official_input()
    with torch.no_grad():
        expected = official(x)
        got = head(x, return_branches=True)
    for name, a, e in zip(("fused", "PAM-only", "CAM-only"), got, expected):
        assert_close(a, e, rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n} logits vs the official head: {m}")


def test_loaded_weights_are_the_official_ones_under_course_names():
    official = official_head()
    head = danet.DualAttentionHead(IN_CHANNELS, CLASSES, cam_variant="official").double()
    head.load_state_dict(official.state_dict())
    assert torch.equal(head.pam.query_conv.weight, official.sa.query_conv.weight)
    assert torch.equal(head.cam.gamma, official.sc.gamma)
    assert set(head.state_dict()) == {k.replace("sa.", "pam.", 1).replace("sc.", "cam.", 1) if k[:3] in ("sa.", "sc.")
                                      else k for k in official.state_dict()}


def test_the_paper_cam_variant_does_not_reproduce_the_official_head():
    # counter-test: the comparison can fail; the official CAM is softmax(-energy), the paper's softmax(energy)
    official = official_head()
    head = danet.DualAttentionHead(IN_CHANNELS, CLASSES, cam_variant="paper").double().eval()
    head.load_state_dict(official.state_dict())
    x = official_input()
    with torch.no_grad():
        assert not torch.allclose(head(x, return_branches=True)[2], official(x)[2])


def test_a_state_dict_with_both_names_is_refused_naming_the_keys():
    state = official_head().state_dict()
    state["pam.gamma"] = state["sa.gamma"].clone()
    head = danet.DualAttentionHead(IN_CHANNELS, CLASSES).double()
    with pytest.raises(ValueError, match="'sa.gamma' .* and 'pam.gamma'"):
        head.load_state_dict(state)
