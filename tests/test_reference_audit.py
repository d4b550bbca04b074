"""What an independent audit of the reference modules found (issue 14), one test per defect.

Each test failed on the code before the fix (run against the parent commit) and passes after:

1. official DANet weights: ``test_reference_official_danet.py``;
2. HA-CNN hard attention: torchreid's two-step resampling and the block-input crop source;
3. HA-CNN hard attention on an empty batch;
4. CBAM's BatchNorm momentum (timm's 0.1 as an option; the timm parity is in ``test_parity_timm.py``);
5. DANet's PAM docstring on the width of B and C;
6. smaller: the ATTENTION table's channel limits, training-mode BatchNorm on one value per channel,
   ``danet.ChannelAttention(64)``, a float64 input to a float32 module, the default crop height.
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import course_lib
import reference_formulas as R
from course_lib.reference import ATTENTION, cbam, ctdnet, danet, hacnn, nonlocal_block, se
from test_reference_bad_input import check_rejects

# --------------------------------------------------------------------------------------------------
# 2. HardAttention: torchreid resamples in two steps and crops the block's input
# --------------------------------------------------------------------------------------------------


def torchreid_local_crops(source: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torchreid's HACNN local branch, region by region: ``stn(source, transform_theta(theta_i, i))``
    at the source's full size, then ``F.upsample(..., size, mode='bilinear', align_corners=True)``.
    theta (B, R, 2) -> (B, R, C_s, h, w). Written from torchreid's ``HACNN.forward`` (scale 1/R)."""
    b, r, _ = theta.shape
    crops = []
    for i in range(r):
        affine = torch.zeros(b, 2, 3, dtype=source.dtype)
        affine[:, :, :2] = torch.tensor([[1.0, 0.0], [0.0, 1.0 / r]], dtype=source.dtype)
        affine[:, :, -1] = theta[:, i]
        grid = F.affine_grid(affine, list(source.size()), align_corners=False)
        crop = F.grid_sample(source, grid, align_corners=False)
        crops.append(F.interpolate(crop, size, mode="bilinear", align_corners=True))
    return torch.stack(crops, dim=1)


def hard_block(resample: str = "torchreid") -> hacnn.HardAttention:
    # theta from a 48-channel block output, as HA-CNN's attention on inception1's output
    return R.randomize_(hacnn.HardAttention(48, resample=resample)).double()


def block_maps():
    g = torch.Generator().manual_seed(5)
    block_input = 3 * torch.randn(2, 12, 20, 8, generator=g, dtype=torch.float64)  # (B, 12, 2H, 2W)
    block_output = torch.randn(2, 48, 10, 4, generator=g, dtype=torch.float64)  # (B, 48, H, W)
    return block_input, block_output


def test_hard_attention_torchreid_mode_reproduces_torchreids_local_branch_crops():
    block_input, block_output = block_maps()
    m = hard_block()
    with torch.no_grad():
        got = m(block_output, source=block_input, crop_size=(24, 28))
        expected = torchreid_local_crops(block_input, m.attention(block_output), (24, 28))
    assert got.shape == (2, 4, 12, 24, 28)
    assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_hard_attention_direct_sampling_differs_from_torchreids_two_steps():
    """Why the option exists (and why the comparison above can fail): one bilinear step at (24, 28) is
    not two (full size, then resize)."""
    block_input, block_output = block_maps()
    with torch.no_grad():
        direct = hard_block("direct")(block_output, source=block_input, crop_size=(24, 28))
        two_step = hard_block("torchreid")(block_output, source=block_input, crop_size=(24, 28))
    assert (direct - two_step).abs().max() > 0.1


def test_hard_attention_crops_the_source_with_the_theta_of_x():
    block_input, block_output = block_maps()
    m = hard_block("direct")
    with torch.no_grad():
        crops = m(block_output, source=block_input)
        # the same crops as a module whose x is the source but whose theta is forced to that of x
        theta = m.attention(block_output)
        affine = torch.cat((torch.tensor([[1.0, 0.0], [0.0, 0.25]], dtype=theta.dtype).expand(2, 4, 2, 2),
                            theta.unsqueeze(-1)), dim=-1).flatten(0, 1)
        grid = F.affine_grid(affine, [8, 12, 5, 8], align_corners=False)
        expected = F.grid_sample(block_input.repeat_interleave(4, 0), grid, align_corners=False)
    assert crops.shape == (2, 4, 12, 5, 8)  # default crop: (round(20 / 4), 8) of the source
    assert_close(crops, expected.unflatten(0, (2, 4)), rtol=1e-12, atol=1e-12)


def test_hard_attention_refuses_a_source_of_another_batch_naming_both_shapes():
    m = hacnn.HardAttention(8)
    check_rejects(lambda: m(torch.randn(2, 8, 6, 4), source=torch.randn(3, 5, 12, 8)), ValueError,
                  "same batch size", "(3, 5, 12, 8)")
    check_rejects(lambda: m(torch.randn(2, 8, 6, 4), source=torch.randn(2, 5, 12, 8, dtype=torch.float64)),
                  ValueError, "dtype", "torch.float64")
    check_rejects(lambda: hacnn.HardAttention(8, resample="bicubic"), ValueError, "'torchreid'", "'bicubic'")


# --------------------------------------------------------------------------------------------------
# 3. HardAttention on an empty batch
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resample", ["direct", "torchreid"])
def test_hard_attention_returns_an_empty_result_for_an_empty_batch(resample):
    m = hacnn.HardAttention(8, resample=resample)
    assert m(torch.randn(0, 8, 10, 6)).shape == (0, 4, 8, 2, 6)
    assert m(torch.randn(0, 8, 10, 6), source=torch.randn(0, 3, 20, 12), crop_size=(24, 28)).shape == (0, 4, 3, 24, 28)
    assert m.affine(torch.randn(0, 8, 10, 6)).shape == (0, 4, 2, 3)


# --------------------------------------------------------------------------------------------------
# 4. CBAM's BatchNorm momentum
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.01, 0.1])
def test_cbam_spatial_batchnorm_moves_its_running_mean_by_bn_momentum(momentum):
    kwargs = {} if momentum == 0.01 else {"bn_momentum": momentum}  # 0.01: the default (the official code's)
    m = cbam.CBAM(32, batch_norm=True, **kwargs).double().train()
    x = torch.randn(4, 32, 7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        refined = x * m.channel_gate.attention(x)
        pooled = torch.cat((refined.mean(1, keepdim=True), refined.amax(1, keepdim=True)), 1)
        batch_mean = m.spatial_gate.conv(pooled).mean()
        m(x)
    assert m.spatial_gate.bn.momentum == momentum
    assert_close(m.spatial_gate.bn.running_mean, (momentum * batch_mean).reshape(1))  # from 0


def test_bn_momentum_is_validated_naming_cbam():
    check_rejects(lambda: cbam.CBAM(32, batch_norm=True, bn_momentum=1.5), ValueError, "[0, 1]", "1.5")
    check_rejects(lambda: cbam.SpatialAttention(bn_momentum="0.1"), TypeError, "[0, 1]", "'0.1'")


# --------------------------------------------------------------------------------------------------
# 5. DANet's PAM docstring on the width of B and C
# --------------------------------------------------------------------------------------------------


def test_pam_docstring_states_the_paper_code_difference_in_query_key_width():
    doc = " ".join(danet.PositionAttention.__doc__.split())
    assert "does not give the width" not in doc  # the paper does: B, C, D are all C x H x W
    for phrase in ("the paper defines B, C and D all as C x H x W maps", "C // 8", "#45", "BatchNorm and ReLU",
                   "reduction=1"):
        assert phrase in doc, phrase


# --------------------------------------------------------------------------------------------------
# 6. Smaller defects
# --------------------------------------------------------------------------------------------------

TABLE_ROW = re.compile(r'^\s*"(?P<name>\w+)"\s+``[^`]+``(?:\s+\((?P<limit>[^)]*)\))?\s*$')


def documented_limits() -> dict[str, str | None]:
    rows = {}
    for line in course_lib.reference.__doc__.splitlines():  # the table moved there with the layout of issue 24
        match = TABLE_ROW.match(line)
        if match:
            rows[match["name"]] = match["limit"]
    return rows


def accepts(limit: str | None, channels: int) -> bool:
    if limit is None or limit == "channels ignored":
        return True
    if (m := re.fullmatch(r"channels >= (\d+)", limit)) is not None:
        return channels >= int(m[1])
    if (m := re.fullmatch(r"channels divisible by (\d+)", limit)) is not None:
        return channels % int(m[1]) == 0
    raise AssertionError(f"the ATTENTION table states a limit this test cannot read: ({limit})")


def builds(factory, channels: int) -> bool:
    try:
        factory(channels)
    except ValueError:
        return False
    return True


def test_attention_table_states_exactly_the_channel_counts_each_factory_accepts():
    limits = documented_limits()
    assert set(limits) == set(ATTENTION), f"table rows {sorted(limits)} vs registry {sorted(ATTENTION)}"
    wrong = {name: [c for c in range(1, 49) if builds(ATTENTION[name], c) != accepts(limits[name], c)]
             for name in ATTENTION}
    wrong = {name: counts for name, counts in wrong.items() if counts}
    assert not wrong, f"the ATTENTION table misstates the accepted channel counts for (name: counts) {wrong}"


#: (module factory, input shape) that puts one value per channel into a training-mode BatchNorm
ONE_VALUE_PER_CHANNEL = {
    "cbam_official": (lambda: cbam.CBAM(32, variant="official"), (1, 32, 1, 1), "CBAM(channels=32)"),
    "cbam_spatial_bn": (lambda: cbam.SpatialAttention(batch_norm=True), (1, 32, 1, 1), "SpatialAttention(kernel_size=7)"),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(32, 16), (1, 32, 1, 1), "SpatialAttentionModule(in_channels=32)"),
    "hacnn_soft_b1": (lambda: hacnn.SoftAttention(32), (1, 32, 6, 5), "SoftAttention(channels=32)"),
    "hacnn_channel_b1": (lambda: hacnn.ChannelAttention(32), (1, 32, 6, 5), "ChannelAttention(channels=32)"),
    "hacnn_spatial_2x2": (lambda: hacnn.SpatialAttention(), (1, 32, 2, 2), "SpatialAttention()"),
    "danet_head": (lambda: danet.DualAttentionHead(32, 3), (1, 32, 1, 1), "DualAttentionHead(in_channels=32)"),
    "non_local": (lambda: nonlocal_block.NonLocalBlock(32), (1, 32, 1, 1), "NonLocalBlock(channels=32)"),
}


@pytest.mark.parametrize("case", list(ONE_VALUE_PER_CHANNEL))
def test_training_batchnorm_on_one_value_per_channel_is_named(case):
    factory, shape, owner = ONE_VALUE_PER_CHANNEL[case]
    m = factory().train()
    check_rejects(lambda: m(torch.randn(shape)), ValueError, "more than one value per channel", owner)
    with torch.no_grad():
        assert m.eval()(torch.randn(shape)).shape[0] == 1  # eval mode uses the running statistics: fine


def test_cam_accepts_a_channel_count_like_the_official_cam_module():
    m = danet.ChannelAttention(64)
    x = torch.randn(2, 64, 3, 5)
    assert_close(m(x), danet.ChannelAttention()(x))
    check_rejects(lambda: m(torch.randn(2, 32, 3, 5)), ValueError, "(B, 64, H, W)", "32 channels")
    check_rejects(lambda: danet.ChannelAttention(0), ValueError, ">= 1", "0")
    check_rejects(lambda: danet.ChannelAttention(64.0), TypeError, "positive int", "64.0")


#: modules with weights, built in float32
WEIGHTED = {
    "se": lambda: se.SqueezeExcitation(32),
    "cbam": lambda: cbam.CBAM(32),
    "cbam_spatial": lambda: cbam.SpatialAttention(),
    "ctdnet_sam": lambda: ctdnet.SpatialAttentionModule(32, 16),
    "hacnn_spatial": lambda: hacnn.SpatialAttention(),
    "hacnn_soft": lambda: hacnn.SoftAttention(32),
    "hacnn_hard": lambda: hacnn.HardAttention(32),
    "danet_pam": lambda: danet.PositionAttention(32),
    "danet_pam_fused": lambda: danet.PositionAttention(32, fused=True),
    "danet_dual": lambda: danet.DualAttention(32),
    "danet_head": lambda: danet.DualAttentionHead(32, 3),
}


@pytest.mark.parametrize("method", ["forward", "attention"])
@pytest.mark.parametrize("name", list(WEIGHTED))
def test_an_input_of_another_dtype_than_the_weights_is_named(name, method):
    m = WEIGHTED[name]().eval()
    x = torch.randn(2, 32, 7, 5, dtype=torch.float64)
    check_rejects(lambda: getattr(m, method)(x), TypeError, "torch.float32 weights", "torch.float64")


def test_cam_has_no_weights_and_follows_a_float64_input():
    assert danet.ChannelAttention()(torch.randn(2, 8, 3, 3, dtype=torch.float64)).dtype == torch.float64


def test_default_crop_height_is_documented_as_pythons_round_half_to_even():
    doc = " ".join(hacnn.HardAttention.__doc__.split())
    assert "rounds halves to even: H = 10, R = 4 gives 2" in doc
    assert hacnn.HardAttention(8)(torch.randn(1, 8, 10, 6)).shape[3] == 2
    assert hacnn.HardAttention(8)(torch.randn(1, 8, 18, 6)).shape[3] == 4
