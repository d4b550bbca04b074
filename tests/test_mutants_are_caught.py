"""Every property check of the reference-module tests fails on the mistake it exists to catch.

Each case runs the very ``check_*`` function that a real test runs on a reference module, prepared
the same way, on a wrong implementation from ``mutants.py``, and asserts that the check fails. A
check that passed here would be a test that cannot fail. (The timm-parity check's mutants live in
``test_parity_timm.py``, beside the fixture that runs timm once per session.)
"""
from __future__ import annotations

import pytest
import torch

import mutants as M
import test_reference_bad_input as TB
import test_reference_formulas as TF
import test_reference_gradients as TG
import test_reference_invariants as TI
import reference_formulas as R


def expect_failure(check, *args, **kwargs) -> BaseException:
    """Run a property check that must fail: an assertion (or a torch error on a broken shape)."""
    try:
        check(*args, **kwargs)
    except (AssertionError, RuntimeError) as err:
        return err
    raise AssertionError(f"{check.__name__} passed on a wrong implementation; it cannot catch this mistake")


def formula_input(index: int = 0) -> torch.Tensor:
    return TF.make_input(TF.SHAPES[index], "cpu")


def prepared(module, bn_mode: str = "eval"):
    return TF.prepare(module, "cpu", bn_mode=bn_mode)


# --------------------------------------------------------------------------------------------------
# Formula checks (test_reference_formulas.py)
# --------------------------------------------------------------------------------------------------

FORMULA_CASES = {
    "se_no_sigmoid": lambda: (TF.check_se_formula, prepared(M.SENoSigmoid(32, 4)), formula_input()),
    "se_max_squeeze": lambda: (TF.check_se_formula, prepared(M.SEMaxSqueeze(32, 4)), formula_input()),
    "se_squeezes_wrong_axes": lambda: (TF.check_se_formula, prepared(M.SESqueezesWrongAxes(32, 4)), formula_input()),
    "cbam_channel_two_mlps": lambda: (TF.check_cbam_channel_formula, prepared(M.CBAMChannelTwoMLPs(32, 4)), formula_input()),
    "cbam_channel_pools_height_square": lambda: (
        TF.check_cbam_channel_formula, prepared(M.CBAMChannelPoolsHeightSquare(32, 4)), formula_input(1)),
    "cbam_spatial_swapped_pools": lambda: (
        TF.check_cbam_spatial_formula, prepared(M.CBAMSpatialSwappedPools(7, pool_order="max_avg")), formula_input()),
    "cbam_spatial_skips_bn": lambda: (
        TF.check_cbam_spatial_formula, prepared(M.CBAMSpatialSkipsBN(7, batch_norm=True)), formula_input()),
    "cbam_parallel_gates": lambda: (TF.check_cbam_formula, prepared(M.CBAMParallelGates(32, 4)), formula_input()),
    "ctdnet_sam_max_avg": lambda: (TF.check_ctdnet_sam_formula, prepared(M.SAMMaxAvg(32, 16)), formula_input()),
    "ctdnet_sam_skips_bn": lambda: (TF.check_ctdnet_sam_formula, prepared(M.SAMSkipsBN(32, 16)), formula_input()),
    "hacnn_spatial_fixed_x2": lambda: (TF.check_hacnn_spatial_formula, prepared(M.HACNNSpatialFixedX2()), formula_input()),
    "hacnn_soft_no_relu": lambda: (TF.check_hacnn_soft_formula, prepared(M.HACNNSoftNoReLU(32)), formula_input()),
    "hacnn_hard_no_tanh": lambda: (TF.check_hacnn_hard_formula, prepared(M.HACNNHardNoTanh(32)), formula_input()),
    "hacnn_hard_align_corners": lambda: (TF.check_hacnn_hard_formula, prepared(M.HACNNHardAlignCorners(32)), formula_input()),
    "pam_softmax_dim1": lambda: (TF.check_pam_formula, prepared(M.PAMSoftmaxDim1(32)), formula_input()),
    "pam_no_transpose": lambda: (TF.check_pam_formula, prepared(M.PAMNoTranspose(32)), formula_input()),
    "cam_variants_swapped_paper": lambda: (
        TF.check_cam_formula, prepared(M.CAMVariantsSwapped(variant="paper")), 0.2 * formula_input(), "paper"),
    "cam_variants_swapped_official": lambda: (
        TF.check_cam_formula, prepared(M.CAMVariantsSwapped(variant="official")), 0.2 * formula_input(), "official"),
    "cam_value_transposed": lambda: (
        TF.check_cam_formula, prepared(M.CAMValueTransposed()), 0.2 * formula_input(), "paper"),
}


@pytest.mark.parametrize("case", list(FORMULA_CASES))
def test_formula_check_catches(case):
    check, *args = FORMULA_CASES[case]()
    expect_failure(check, *args)


def test_wrong_axes_mutant_would_pass_unnoticed_when_c_equals_h():
    """Why inputs keep C out of {H, W}: with C == H == W the wrong-axes squeeze runs without error,
    and only the values (the formula check) give it away."""
    m = prepared(M.SESqueezesWrongAxes(8, 2))
    x = TF.make_input((2, 8, 8, 8), "cpu")
    assert m(x).shape == x.shape
    expect_failure(TF.check_se_formula, m, x)


def test_cbam_variant_check_catches_official_with_paper_pools():
    expect_failure(TF.check_cbam_variant_config, M.CBAMOfficialWithPaperPools(32, variant="official"), "official")


# --------------------------------------------------------------------------------------------------
# Invariant checks (test_reference_invariants.py)
# --------------------------------------------------------------------------------------------------


def invariant_module(cls, *args, randomize: bool = True, dtype=torch.float64, **kwargs):
    m = cls(*args, **kwargs)
    if randomize:
        R.randomize_(m)
    return m.to(dtype).eval()


def test_shape_check_catches_flat_se_attention():
    _, att_shape, out_shape = TI.MODULES["se"]
    expect_failure(TI.check_shapes, invariant_module(M.SEFlatAttention, 32, 4), TI.make_input(), att_shape, out_shape)


def test_gate_range_check_catches_missing_sigmoid():
    m = invariant_module(M.SENoSigmoid, 32, 4)
    expect_failure(TI.check_gate_in_open_unit_interval, m.attention(TI.make_input()), "se gate")


def test_soft_map_range_check_catches_missing_relu():
    expect_failure(TI.check_soft_map_range, invariant_module(M.HACNNSoftNoReLU, 32), TI.make_input())


def test_rows_check_catches_softmax_over_dim_1():
    m = invariant_module(M.PAMSoftmaxDim1, 32)
    expect_failure(TI.check_rows_sum_to_one, m.attention(TI.make_input(scale=0.2)), "PAM softmax(dim=1)")


def test_identity_check_catches_gamma_initialised_to_one():
    expect_failure(TI.check_identity_at_init, invariant_module(M.PAMGammaOne, 32, randomize=False), TI.make_input())


def test_identity_check_catches_dual_residual_counted_twice():
    expect_failure(TI.check_identity_at_init, invariant_module(M.DualResidualTwice, 32, randomize=False), TI.make_input())


def test_not_identity_check_catches_module_that_returns_its_input():
    m = invariant_module(M.PAMReturnsInput, 32, randomize=False)
    TI.check_identity_at_init(m, TI.make_input())  # it passes the identity check, for the wrong reason
    expect_failure(TI.check_not_identity_when_gamma_nonzero, m, TI.make_input(scale=0.2))


@pytest.mark.parametrize(
    ("cls", "args", "shape"),
    [(M.SEPoolsHeightSquare, (32, 4), (2, 32, 5, 9)), (M.PAM3x3Projections, (32,), (2, 32, 7, 5)),
     (M.CAMValueTransposed, (), (2, 32, 7, 5))],
    ids=["se_pools_height_square", "pam_3x3_projections", "cam_value_transposed"],
)
def test_permutation_check_catches_position_dependence(cls, args, shape):
    expect_failure(TI.check_pixel_permutation_equivariant, invariant_module(cls, *args), TI.make_input(shape, scale=0.2))


@pytest.mark.parametrize("cls", [M.CAMVariantsSwapped, M.CAMStabilityShift], ids=["swapped", "energy_minus_max"])
def test_official_cam_check_catches_wrong_official_variant(cls):
    m = invariant_module(cls, variant="official")
    expect_failure(TI.check_cam_official_is_softmax_of_negated_energy, m, TI.make_input(scale=0.2))


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [(torch.float32, 1e-5, 1e-5), (torch.float64, 1e-10, 1e-12)])
def test_fused_check_catches_default_sdpa_scale(dtype, rtol, atol):
    literal = R.randomize_(M.PAMFusedDefaultScale(32)).to(dtype)
    fused = M.PAMFusedDefaultScale(32, fused=True).to(dtype)
    x = TI.make_input(dtype=dtype, scale=0.5)
    expect_failure(TI.check_fused_matches_literal, literal, fused, x, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cls", [M.PAMBlockedForgetsSoftmaxDelta, M.PAMBlockedDropsLastBlock],
                         ids=["forgets_softmax_delta", "drops_last_block"])
def test_fused_check_catches_wrong_blocked_path(cls, dtype):
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1e-10, 1e-12)
    literal = R.randomize_(cls(32)).to(dtype)
    fused = cls(32, fused=True, query_block=4).to(dtype)  # N = 35: 8 blocks of 4 and one of 3
    expect_failure(TI.check_fused_matches_literal, literal, fused, TI.make_input(dtype=dtype, scale=0.5),
                   rtol=rtol, atol=atol)


def test_dtype_check_catches_cast_to_default_dtype():
    expect_failure(TI.check_dtype_preserved, invariant_module(M.SECastsToDefaultDtype, 32, 4), TI.make_input())


def test_channels_last_check_catches_contiguity_assumption():
    expect_failure(TI.check_channels_last_matches, invariant_module(M.PAMAssumesContiguous, 32), TI.make_input(scale=0.5))


@pytest.mark.parametrize("cls", [M.HACNNSpatialFixedX2, M.HACNNSoftFixedX2], ids=["spatial", "soft"])
def test_odd_size_check_catches_fixed_x2_upsample(cls):
    m = invariant_module(cls) if cls is M.HACNNSpatialFixedX2 else invariant_module(cls, 32)
    shape = (2, 32, 7, 5)
    att = (2, 1, 7, 5) if cls is M.HACNNSpatialFixedX2 else shape
    expect_failure(TI.check_shapes, m, TI.make_input(shape), att, att)


# --------------------------------------------------------------------------------------------------
# Gradient checks (test_reference_gradients.py)
# --------------------------------------------------------------------------------------------------


def gradient_module(cls, *args, shape, training: bool = False):
    m = R.randomize_(cls(*args)).double()
    x = 0.5 * torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    TG.calibrate_batch_norm_(m, x)
    return m.train(training), x


def test_gradcheck_catches_detached_attention():
    err = expect_failure(TG.check_gradcheck, *gradient_module(M.PAMDetachedAttention, 16, shape=(2, 16, 2, 3)))
    assert "gradcheck failed" in str(err)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_parameter_gradient_check_catches_unused_batchnorm(training):
    m, x = gradient_module(M.SAMSkipsBN, 8, 4, shape=(2, 8, 2, 3), training=training)
    err = expect_failure(TG.check_every_parameter_gets_grad, m, x)
    assert "bn.weight: no gradient" in str(err)


# --------------------------------------------------------------------------------------------------
# Bad-input checks (test_reference_bad_input.py)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(TB.BAD_INPUTS))
@pytest.mark.parametrize("cls", [M.SEUnchecked, M.SEVagueErrors], ids=["unchecked", "vague"])
def test_bad_input_check_catches_missing_or_vague_validation(cls, case):
    m = cls(32)
    make_bad, exc_type, expected, received = TB.BAD_INPUTS[case]
    expect_failure(TB.check_rejects, lambda: m(make_bad()), exc_type, expected, received)


def test_constructor_check_catches_silently_clamped_hidden_width():
    _, exc_type, expected, received = TB.CONSTRUCTOR_CASES["se_channels_below_reduction"]
    expect_failure(TB.check_rejects, lambda: M.SEClampedHidden(8, reduction=16), exc_type, expected, received)
