"""Smaller findings of issue 29 against the official code, one test (or a few) each.

* Non-local: the official code scales theta^T phi only before its softmax
  (facebookresearch/video-nonlocal-net, ``lib/models/nonlocal_helper.py`` lines 84-101); the dot-product
  form now refuses a scale, and the softmax forms keep it. Its initialisation (every convolution
  Gaussian with std 0.01, ``NONLOCAL.CONV_INIT_STD`` in ``lib/core/config.py`` line 198) is
  ``init="official"``.
* ECA: what an even kernel does with the official padding (C - 1 outputs), and the docstring says it.
* Coordinate Attention: the released checkpoint's model file, ``mbv2_ca.py`` (houqb/CoordAttention),
  names the gate convolutions ``conv2``/``conv3``; renamed by ``MBV2_CA_KEYS`` its weights load and give
  the same output.
* GlobalContextBlock's eps must be finite: in ``test_reference_nonlocal_gcnet.py`` (BAD_OPTIONS).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from course_lib.reference import coord_attention, eca, nonlocal_block
from course_lib.reference.nonlocal_block import NonLocalBlock


def doc(obj) -> str:
    return " ".join(obj.__doc__.split())


# --------------------------------------------------------------------------------------------------
# Non-local: scale only before the softmax
# --------------------------------------------------------------------------------------------------


def test_nonlocal_dot_product_refuses_a_scale():
    with pytest.raises(ValueError, match=r"NonLocalBlock: scale multiplies theta\^T phi before the softmax.*"
                                         r"scale must be 1 with pairwise='dot_product'; got scale=0\.25"):
        NonLocalBlock(32, pairwise="dot_product", scale=0.25)
    NonLocalBlock(32, pairwise="dot_product", scale=1)  # the default is accepted


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian"])
def test_nonlocal_scale_still_multiplies_the_softmax_logits(pairwise):
    torch.manual_seed(0)
    scaled = NonLocalBlock(16, pairwise=pairwise, scale=0.3).double()
    plain = NonLocalBlock(16, pairwise=pairwise).double()
    plain.load_state_dict(scaled.state_dict())
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    query, key, _ = plain._project(x)
    logits = query @ key.transpose(1, 2)
    assert_close(scaled.attention(x), (0.3 * logits).softmax(-1))
    assert_close(plain.attention(x), logits.softmax(-1))


def test_nonlocal_docstring_says_where_the_official_scale_applies():
    text = doc(NonLocalBlock)
    assert "applies its scale only inside its softmax branch" in text
    assert "lines 84-91" in text and "lines 92-101" in text


# --------------------------------------------------------------------------------------------------
# Non-local: the official initialisation
# --------------------------------------------------------------------------------------------------


def test_nonlocal_official_init_is_gaussian_std_001_with_zero_biases_and_zero_bn():
    torch.manual_seed(0)
    m = NonLocalBlock(256, init="official")  # 128 x 256 weights per projection: a tight estimate of the std
    for name in ("theta", "phi", "g", "w_z"):
        conv = getattr(m, name)
        std = conv.weight.std().item()
        assert 0.0095 < std < 0.0105, f"{name}: std {std}"
        assert abs(conv.weight.mean().item()) < 0.001, name
        assert torch.count_nonzero(conv.bias) == 0, name
    assert torch.count_nonzero(m.bn.weight) == 0 and torch.count_nonzero(m.bn.bias) == 0
    x = torch.randn(2, 256, 5, 3)
    assert_close(m.eval()(x), x)  # with BN the block still starts as the identity
    assert m.init == "official" and "init='official'" in repr(m)
    assert nonlocal_block.OFFICIAL_INIT_STD == 0.01


def test_nonlocal_official_init_without_bn_keeps_the_official_nonzero_w_z():
    torch.manual_seed(0)
    m = NonLocalBlock(32, batch_norm=False, init="official")
    assert 0.005 < m.w_z.weight.std().item() < 0.015  # USE_ZERO_INIT_CONV = False in the official config
    assert torch.count_nonzero(NonLocalBlock(32, batch_norm=False).w_z.weight) == 0  # the default zeroes it


def test_nonlocal_default_init_is_unchanged_msra():
    """The default draws the same numbers as before the option existed (He-normal theta, phi, g)."""
    torch.manual_seed(0)
    m = NonLocalBlock(32)
    torch.manual_seed(0)  # the module builds theta, phi, g and w_z, then re-draws theta, phi and g
    theta, phi, g, w_z = (nn.Conv2d(32, 16, 1), nn.Conv2d(32, 16, 1), nn.Conv2d(32, 16, 1), nn.Conv2d(16, 32, 1))
    for conv in (theta, phi, g):
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    for name, conv in (("theta", theta), ("phi", phi), ("g", g), ("w_z", w_z)):
        assert torch.equal(getattr(m, name).weight, conv.weight), name
    assert m.init == "msra"


def test_nonlocal_init_is_checked():
    with pytest.raises(ValueError, match=r"NonLocalBlock: init must be one of 'msra', 'official'; got 'xavier'"):
        NonLocalBlock(32, init="xavier")


# --------------------------------------------------------------------------------------------------
# ECA: an even kernel
# --------------------------------------------------------------------------------------------------


class OfficialEcaLayer(nn.Module):
    """BangguWu/ECANet ``models/eca_module.py`` (``eca_layer``, lines 12-28), transcribed."""

    def __init__(self, k_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(x, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * torch.sigmoid(y).expand_as(x)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_an_even_eca_kernel_gives_one_value_fewer_than_the_channels(k):
    channels = 16
    official = OfficialEcaLayer(k)
    y = official.conv(torch.randn(2, 1, channels))
    assert y.shape == (2, 1, channels - 1)  # C + 2 ((k - 1) // 2) - k + 1 = C - 1
    with pytest.raises(RuntimeError):  # the official layer then fails at expand_as
        official(torch.randn(2, channels, 5, 3))
    with pytest.raises(ValueError, match=rf"EfficientChannelAttention: kernel_size must be odd.*got {k}"):
        eca.EfficientChannelAttention(channels, k)
    assert OfficialEcaLayer(k + 1)(torch.randn(2, channels, 5, 3)).shape == (2, channels, 5, 3)  # odd k: fine


def test_eca_docstring_states_the_c_minus_1_length():
    text = doc(eca.EfficientChannelAttention)
    assert "shift the output by one channel" not in text
    assert "C + 2 ((k - 1) // 2) - k + 1 = C - 1 values" in text


# --------------------------------------------------------------------------------------------------
# Coordinate Attention: the released checkpoint's names
# --------------------------------------------------------------------------------------------------


class Mbv2CaCoordAtt(nn.Module):
    """houqb/CoordAttention ``mbv2_ca.py`` (``CoordAtt``, lines 37-71), transcribed; h_swish is
    ``nn.Hardswish`` (x * ReLU6(x + 3) / 6, lines 17-31)."""

    def __init__(self, inp: int, oup: int, groups: int = 32) -> None:
        super().__init__()
        mip = max(8, inp // groups)
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.conv3 = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.relu = nn.Hardswish()

    def forward(self, x):
        identity = x
        _, _, h, w = x.size()
        x_h = F.adaptive_avg_pool2d(x, (None, 1))
        x_w = F.adaptive_avg_pool2d(x, (1, None)).permute(0, 1, 3, 2)
        y = self.relu(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        x_h = self.conv2(x_h).sigmoid().expand(-1, -1, h, w)
        x_w = self.conv3(x_w).sigmoid().expand(-1, -1, h, w)
        return identity * x_w * x_h


def test_mbv2_ca_weights_do_not_copy_1_to_1_but_load_after_renaming():
    torch.manual_seed(0)
    official = Mbv2CaCoordAtt(64, 64).double().eval()
    with torch.no_grad():
        official.bn1.running_mean.normal_(0, 0.3)
        official.bn1.running_var.uniform_(0.5, 1.5)
        official.bn1.weight.uniform_(0.5, 1.5)
    ours = coord_attention.CoordinateAttention(64).double().eval()
    state = official.state_dict()
    with pytest.raises(RuntimeError, match="conv2"):  # the released names are not this module's
        ours.load_state_dict(state)
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        renamed[f"{coord_attention.MBV2_CA_KEYS.get(head, head)}.{rest}"] = value
    ours.load_state_dict(renamed, strict=True)
    x = torch.randn(2, 64, 7, 5, dtype=torch.float64)
    assert_close(ours(x), official(x), rtol=1e-12, atol=1e-12)


def test_coord_attention_docstring_names_the_released_model_file():
    text = doc(coord_attention.CoordinateAttention)
    assert "conv2" in text and "conv3" in text and "mbv2_ca.py" in text
    assert "do not copy 1:1" in text
