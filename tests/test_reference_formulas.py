"""Every reference module against the paper's formula, recomputed independently in float64.

The formulas live in ``reference_formulas.py`` and share no code with ``course_lib``: they receive the
module's parameters as plain tensors. Each ``check_*`` function below is the whole property check; the
tests here run it on the reference modules, and ``test_mutants_are_caught.py`` runs the same function on
the wrong implementations in ``mutants.py`` to prove it fails there.

Inputs expose mix-ups: B > 1, H != W (both H > W and H < W), odd sizes, C not in {H, W}.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import reference_formulas as R
from course_lib.reference import cbam, ctdnet, danet, hacnn, se

SHAPES = [(2, 32, 7, 5), (3, 32, 5, 9)]
BN_MODES = ["eval", "train"]


# --------------------------------------------------------------------------------------------------
# Adapters: read a module's parameters as plain float64 tensors (by the documented attribute names)
# --------------------------------------------------------------------------------------------------


def matrix(conv: torch.nn.Module) -> torch.Tensor:
    """A 1x1 convolution's (or a Linear's) weight as a (C_out, C_in) float64 matrix."""
    w = R.f64(conv.weight)
    return w.reshape(w.shape[0], w.shape[1])


def bias(layer: torch.nn.Module) -> torch.Tensor | None:
    return R.f64(layer.bias)


def batch_norm(bn: torch.nn.Module):
    """The formula's BatchNorm for ``bn``: running statistics in eval mode, batch statistics in train."""
    if isinstance(bn, torch.nn.Identity):
        return R.identity
    use_running = not bn.training
    return R.BatchNorm(
        R.f64(bn.weight), R.f64(bn.bias),
        R.f64(bn.running_mean) if use_running else None,
        R.f64(bn.running_var) if use_running else None,
        bn.eps,
    )


def conv_block(block: torch.nn.Module) -> R.ConvBlock:
    conv = block.conv
    return R.ConvBlock(R.f64(conv.weight), R.f64(conv.bias), batch_norm(block.bn), conv.stride[0], conv.padding[0])


def prepare(module: torch.nn.Module, device, *, bn_mode: str = "eval", seed: int = 0) -> torch.nn.Module:
    """Random non-trivial weights and BN statistics, float64, on ``device``, in the requested mode."""
    R.randomize_(module, seed)
    module = module.to(device=device, dtype=torch.float64)
    return module.train(bn_mode == "train")


def make_input(shape, device, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device)


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Float64 agreement: the two computations differ only in summation order."""
    assert_close(actual.detach().cpu(), expected, rtol=1e-9, atol=1e-10, msg=lambda m: f"{what}: {m}")


# --------------------------------------------------------------------------------------------------
# Property checks (one per module; shared with test_mutants_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_se_formula(m, x) -> None:
    p = (matrix(m.fc1), bias(m.fc1), matrix(m.fc2), bias(m.fc2))
    x64 = R.f64(x)
    close(m.attention(x), R.se_attention(x64, *p), "SE attention(x)")
    close(m(x), R.se_forward(x64, *p), "SE forward(x)")


def cbam_mlp(channel_gate) -> tuple:
    mlp = channel_gate.mlp
    return matrix(mlp[0]), bias(mlp[0]), matrix(mlp[2]), bias(mlp[2])


def check_cbam_channel_formula(m, x) -> None:
    x64 = R.f64(x)
    expected = R.cbam_channel_attention(x64, *cbam_mlp(m))
    close(m.attention(x), expected, "CBAM channel attention(x)")
    close(m(x), x64 * expected, "CBAM channel forward(x)")


def check_cbam_spatial_formula(m, x) -> None:
    """Uses the pool order and BatchNorm the module declares (``pool_order``, ``bn``)."""
    x64 = R.f64(x)
    expected = R.cbam_spatial_attention(x64, R.f64(m.conv.weight), pool_order=m.pool_order, bn=batch_norm(m.bn))
    close(m.attention(x), expected, f"CBAM spatial attention(x), pool_order={m.pool_order!r}")
    close(m(x), x64 * expected, "CBAM spatial forward(x)")


def check_cbam_formula(m, x) -> None:
    sg = m.spatial_gate
    out, mc, ms = R.cbam_forward(
        R.f64(x), cbam_mlp(m.channel_gate), R.f64(sg.conv.weight), pool_order=sg.pool_order, bn=batch_norm(sg.bn)
    )
    channel_map, spatial_map = m.attention(x)
    close(channel_map, mc, "CBAM attention(x)[0], the channel map")
    close(spatial_map, ms, "CBAM attention(x)[1], the spatial map (computed on F' = M_c * x)")
    close(m(x), out, "CBAM forward(x)")


#: What each CBAM variant must be made of: (MLP has bias, pool order, BatchNorm in the spatial gate).
CBAM_VARIANTS = {"paper": (False, "avg_max", False), "official": (True, "max_avg", True)}


def check_cbam_variant_config(m, variant: str) -> None:
    has_bias, order, has_bn = CBAM_VARIANTS[variant]
    got = (
        m.channel_gate.mlp[0].bias is not None and m.channel_gate.mlp[2].bias is not None,
        m.spatial_gate.pool_order,
        isinstance(m.spatial_gate.bn, torch.nn.BatchNorm2d),
    )
    assert got == (has_bias, order, has_bn), (
        f"CBAM(variant={variant!r}) should be (mlp bias, pool order, BN) = {(has_bias, order, has_bn)}; got {got}"
    )


def check_ctdnet_sam_formula(m, x) -> None:
    x64 = R.f64(x)
    atten_w = R.f64(m.conv_atten.weight)
    close(m.attention(x), R.ctdnet_sam_attention(x64, atten_w), "CTDNet SAM attention(x)")
    expected = R.ctdnet_sam_forward(x64, atten_w, R.f64(m.conv.weight), batch_norm(m.bn))
    close(m(x), expected, "CTDNet SAM forward(x)")


def hacnn_spatial_blocks(m) -> tuple:
    return conv_block(m.conv1), conv_block(m.conv2)


def hacnn_channel_blocks(m) -> tuple:
    return conv_block(m.conv1), conv_block(m.conv2)


def check_hacnn_spatial_formula(m, x) -> None:
    expected = R.hacnn_spatial_attention(R.f64(x), *hacnn_spatial_blocks(m))
    close(m.attention(x), expected, "HA-CNN spatial attention(x)")
    close(m(x), expected, "HA-CNN spatial forward(x)")


def check_hacnn_channel_formula(m, x) -> None:
    expected = R.hacnn_channel_attention(R.f64(x), *hacnn_channel_blocks(m))
    close(m.attention(x), expected, "HA-CNN channel attention(x)")
    close(m(x), expected, "HA-CNN channel forward(x)")


def check_hacnn_soft_formula(m, x) -> None:
    x64 = R.f64(x)
    expected = R.hacnn_soft_attention(
        x64, hacnn_spatial_blocks(m.spatial_attn), hacnn_channel_blocks(m.channel_attn), conv_block(m.conv)
    )
    close(m.attention(x), expected, "HA-CNN soft attention(x)")
    close(m(x), x64 * expected, "HA-CNN soft forward(x)")


def check_hacnn_hard_formula(m, x) -> None:
    """theta by the formula, then every crop by an independent bilinear sampler (align_corners=False)."""
    x64 = R.f64(x)
    r = m.num_regions
    theta = R.hacnn_hard_theta(x64, matrix(m.fc), bias(m.fc), r)
    close(m.attention(x), theta, "HA-CNN hard attention(x), theta")
    crops = m(x)
    h, w = max(1, round(x.shape[2] / r)), x.shape[3]
    assert tuple(crops.shape) == (x.shape[0], r, x.shape[1], h, w), f"crops have shape {tuple(crops.shape)}"
    for i in range(r):
        expected = R.hacnn_crop(
            x64, theta[:, i, 0], theta[:, i, 1], scale=(1.0, 1.0 / r), out_size=(h, w), align_corners=False
        )
        close(crops[:, i], expected, f"HA-CNN hard forward(x), crop of region {i}")


def pam_projections(m) -> tuple:
    return (matrix(m.query_conv), bias(m.query_conv), matrix(m.key_conv), bias(m.key_conv))


def check_pam_formula(m, x) -> None:
    x64 = R.f64(x)
    q_k = pam_projections(m)
    if not getattr(m, "fused", False):  # the fused path never forms the (B, N, N) map it could return
        close(m.attention(x), R.pam_attention(x64, *q_k), "DANet PAM attention(x)")
    expected = R.pam_forward(x64, *q_k, matrix(m.value_conv), bias(m.value_conv), R.f64(m.gamma))
    close(m(x), expected, f"DANet PAM forward(x), fused={getattr(m, 'fused', False)}")


def check_cam_formula(m, x, variant: str) -> None:
    x64 = R.f64(x)
    close(m.attention(x), R.cam_attention(x64, variant), f"DANet CAM attention(x), variant={variant!r}")
    close(m(x), R.cam_forward(x64, R.f64(m.gamma), variant), f"DANet CAM forward(x), variant={variant!r}")


# --------------------------------------------------------------------------------------------------
# The formulas' own primitives agree with torch (so a disagreement below is the module's, not ours)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), (1, 3)])
def test_formula_conv2d_matches_torch(stride, padding):
    x = make_input((2, 3, 7, 5), "cpu")
    w = make_input((4, 3, 3, 3), "cpu", seed=2)
    b = make_input((4,), "cpu", seed=3)
    assert_close(R.conv2d(x, w, b, stride=stride, padding=padding), F.conv2d(x, w, b, stride=stride, padding=padding))


def test_formula_resize_and_sampler_match_torch():
    x = make_input((2, 3, 4, 3), "cpu")
    assert_close(R.resize_bilinear_align_corners(x, (7, 5)), F.interpolate(x, (7, 5), mode="bilinear", align_corners=True))
    t = torch.tensor([[0.3, -0.5], [-0.2, 0.6]], dtype=torch.float64)
    theta = torch.tensor([[[1.0, 0.0, 0.3], [0.0, 0.25, -0.5]], [[1.0, 0.0, -0.2], [0.0, 0.25, 0.6]]], dtype=torch.float64)
    for ac in (False, True):
        grid = F.affine_grid(theta, [2, 3, 2, 3], align_corners=ac)
        mine = R.hacnn_crop(x, t[:, 0], t[:, 1], scale=(1.0, 0.25), out_size=(2, 3), align_corners=ac)
        assert_close(mine, F.grid_sample(x, grid, align_corners=ac))


# --------------------------------------------------------------------------------------------------
# The reference modules
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_se_matches_formula(shape, device):
    check_se_formula(prepare(se.SqueezeExcitation(32, reduction=4), device), make_input(shape, device))


@pytest.mark.parametrize("mlp_bias", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_cbam_channel_matches_formula(shape, mlp_bias, device):
    m = prepare(cbam.ChannelAttention(32, reduction=4, mlp_bias=mlp_bias), device)
    check_cbam_channel_formula(m, make_input(shape, device))


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize(("pool_order", "batch_norm", "kernel_size"), [("avg_max", False, 7), ("max_avg", True, 7), ("avg_max", True, 3)])
@pytest.mark.parametrize("shape", SHAPES)
def test_cbam_spatial_matches_formula(shape, pool_order, batch_norm, kernel_size, bn_mode, device):
    m = cbam.SpatialAttention(kernel_size, pool_order=pool_order, batch_norm=batch_norm)
    assert m.pool_order == pool_order
    check_cbam_spatial_formula(prepare(m, device, bn_mode=bn_mode), make_input(shape, device))


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cbam_matches_formula(shape, variant, bn_mode, device):
    m = cbam.CBAM(32, reduction=4, variant=variant)
    check_cbam_variant_config(m, variant)
    check_cbam_formula(prepare(m, device, bn_mode=bn_mode), make_input(shape, device))


def test_cbam_keyword_overrides_beat_the_variant():
    m = cbam.CBAM(32, variant="official", mlp_bias=False, pool_order="avg_max", batch_norm=False)
    check_cbam_variant_config(m, "paper")
    m = cbam.CBAM(32, variant="paper", mlp_bias=True, pool_order="max_avg", batch_norm=True)
    check_cbam_variant_config(m, "official")


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize(("shape", "out_channels"), [(SHAPES[0], 16), (SHAPES[1], 32)])
def test_ctdnet_sam_matches_formula(shape, out_channels, bn_mode, device):
    m = prepare(ctdnet.SpatialAttentionModule(shape[1], out_channels), device, bn_mode=bn_mode)
    check_ctdnet_sam_formula(m, make_input(shape, device))


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("shape", SHAPES + [(2, 32, 8, 6)])
def test_hacnn_spatial_matches_formula(shape, bn_mode, device):
    check_hacnn_spatial_formula(prepare(hacnn.SpatialAttention(), device, bn_mode=bn_mode), make_input(shape, device))


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hacnn_channel_matches_formula(shape, bn_mode, device):
    m = prepare(hacnn.ChannelAttention(32, reduction=16), device, bn_mode=bn_mode)
    check_hacnn_channel_formula(m, make_input(shape, device))


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hacnn_soft_matches_formula(shape, bn_mode, device):
    check_hacnn_soft_formula(prepare(hacnn.SoftAttention(32), device, bn_mode=bn_mode), make_input(shape, device))


@pytest.mark.parametrize(("shape", "num_regions"), [(SHAPES[0], 4), (SHAPES[1], 2), ((2, 32, 9, 4), 3)])
def test_hacnn_hard_matches_formula(shape, num_regions, device):
    m = prepare(hacnn.HardAttention(32, num_regions=num_regions), device)
    check_hacnn_hard_formula(m, make_input(shape, device))


def test_hacnn_hard_identity_translation_crops_the_whole_image():
    """A known translation: with one region, t = 0 and scale 1, the crop is x itself."""
    m = hacnn.HardAttention(32, num_regions=1).double()
    with torch.no_grad():
        m.fc.weight.zero_()
        m.fc.bias.zero_()
    x = make_input((2, 32, 7, 5), "cpu")
    assert_close(m(x)[:, 0], x)


def test_hacnn_hard_initial_bias_places_horizontal_stripes():
    """torchreid's bias for R = 4, before the tanh: t_y = -0.75, -0.25, 0.25, 0.75 and t_x = 0."""
    m = hacnn.HardAttention(32, num_regions=4).double()
    theta = m.attention(make_input((2, 32, 7, 5), "cpu"))
    expected = torch.tanh(torch.tensor([[0.0, -0.75], [0.0, -0.25], [0.0, 0.25], [0.0, 0.75]], dtype=torch.float64))
    assert_close(theta, expected.expand(2, 4, 2))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_pam_matches_formula(shape, fused, device):
    check_pam_formula(prepare(danet.PositionAttention(32, reduction=8, fused=fused), device), make_input(shape, device))


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cam_matches_formula(shape, variant, device):
    m = prepare(danet.ChannelAttention(variant=variant), device)
    # CAM's energy is a Gram matrix of raw features; scale x so the softmax is not one-hot.
    check_cam_formula(m, 0.2 * make_input(shape, device), variant)


def pam_parameters(m) -> tuple:
    return (*pam_projections(m), matrix(m.value_conv), bias(m.value_conv), R.f64(m.gamma))


def check_dual_formula(m, x) -> None:
    x64 = R.f64(x)
    pam_map, cam_map = m.attention(x)
    close(pam_map, R.pam_attention(x64, *pam_projections(m.pam)), "DualAttention attention(x)[0], the PAM map")
    close(cam_map, R.cam_attention(x64, m.cam.variant), "DualAttention attention(x)[1], the CAM map")
    expected = R.dual_forward(x64, pam_parameters(m.pam)[:-1], R.f64(m.pam.gamma), R.f64(m.cam.gamma), m.cam.variant)
    close(m(x), expected, "DualAttention forward(x)")


def head_parameters(m) -> dict:
    def cbr(seq):  # Sequential(conv3x3, BN, ReLU)
        return R.f64(seq[0].weight), batch_norm(seq[1])

    def classifier(seq):  # Sequential(Dropout2d, conv1x1)
        return matrix(seq[1]), bias(seq[1])

    return {
        "conv5a": cbr(m.conv5a), "conv5c": cbr(m.conv5c), "conv51": cbr(m.conv51), "conv52": cbr(m.conv52),
        "pam": pam_parameters(m.pam), "cam_gamma": R.f64(m.cam.gamma),
        "conv6": classifier(m.conv6), "conv7": classifier(m.conv7), "conv8": classifier(m.conv8),
    }


def check_head_formula(m, x) -> None:
    """Eval mode only: Dropout2d is random in train mode."""
    fused, pam_logits, cam_logits = R.danet_head_forward(R.f64(x), head_parameters(m), m.cam.variant)
    close(m(x), fused, "DualAttentionHead forward(x)")
    got = m(x, return_branches=True)
    for name, a, e in zip(("fused", "PAM-only", "CAM-only"), got, (fused, pam_logits, cam_logits)):
        close(a, e, f"DualAttentionHead forward(x, return_branches=True), {name} logits")


@pytest.mark.parametrize("cam_variant", ["paper", "official"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_dual_attention_matches_formula(shape, fused, cam_variant, device):
    m = prepare(danet.DualAttention(32, reduction=8, cam_variant=cam_variant, fused=fused), device)
    check_dual_formula(m, 0.2 * make_input(shape, device))


@pytest.mark.parametrize("cam_variant", ["paper", "official"])
def test_dual_attention_head_matches_formula(cam_variant, device):
    m = prepare(danet.DualAttentionHead(48, num_classes=5, cam_variant=cam_variant), device)
    check_head_formula(m, make_input((2, 48, 7, 5), device))
