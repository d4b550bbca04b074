"""Every property check of the Non-local, GCNet, ECA and Coordinate Attention tests fails on the mistake
it exists to catch (``mutants_more.py``); the timm-parity mutants live in ``test_parity_timm_more.py``.

Each case runs the very ``check_*`` function that a real test runs, prepared the same way, on a wrong
implementation, and asserts that the check fails. A check that passed here could not fail.
"""
from __future__ import annotations

import pytest
import torch

import mutants_more as M
import test_reference_eca_coordatt as TE
import test_reference_nonlocal_gcnet as TN
from course_lib.reference.nonlocal_block import NonLocalBlock

X = TN.make_input()  # (2, 32, 7, 5)
X_ODD = TN.make_input(TE.ODD_SHAPE)  # (3, 24, 5, 9)


def expect_failure(check, *args, **kwargs) -> BaseException:
    try:
        check(*args, **kwargs)
    except (AssertionError, RuntimeError, pytest.fail.Exception) as err:
        return err
    raise AssertionError(f"{check.__name__} passed on a wrong implementation; it cannot catch this mistake")


def p(module, train: bool = False):
    return TN.prepare(module, train=train)


CASES = {
    # Non-local
    "nl_formula_softmax_over_queries": lambda: (TN.check_nonlocal_formula, p(M.NLSoftmaxOverQueries(32)), X),
    "nl_rows_softmax_over_queries": lambda: (TN.check_rows_sum_to_one, p(M.NLSoftmaxOverQueries(32)), X),
    "nl_formula_always_scaled": lambda: (TN.check_nonlocal_formula, p(M.NLAlwaysScaled(32)), X),
    "nl_formula_dot_divides_by_n": lambda: (
        TN.check_nonlocal_formula, p(M.NLDotDividesByN(32, pairwise="dot_product", sub_sample=True)), X),
    "nl_formula_pools_before_projections": lambda: (
        TN.check_nonlocal_formula, p(M.NLPoolsBeforeProjections(32, sub_sample=True)), X),
    "nl_formula_no_residual": lambda: (TN.check_nonlocal_formula, p(M.NLNoResidual(32)), X),
    "nl_identity_bn_scale_one": lambda: (TN.check_identity_at_init, M.NLBatchNormScaleOne(32).double(), X),
    "nl_identity_no_residual": lambda: (TN.check_identity_at_init, M.NLNoResidual(32).double(), X),
    "nl_permutation_local_theta": lambda: (TN.check_pixel_permutation_equivariance, p(M.NLLocalTheta(32)), X),
    "nl_fused_default_scale": lambda: (TN.check_fused_equals_literal, p(M.NLFusedDefaultScale(32), True), X),
    "nl_fused_default_scale_gaussian": lambda: (
        TN.check_fused_equals_literal, p(M.NLFusedDefaultScale(32, pairwise="gaussian"), True), X),
    "nl_fused_detached_dot": lambda: (
        TN.check_fused_equals_literal, p(M.NLFusedDetachedDot(32, pairwise="dot_product"), True), X),
    # GCNet
    "gc_formula_sigmoid_pooling": lambda: (TN.check_gc_formula, p(M.GCSigmoidPooling(32, 4)), X),
    "gc_sums_sigmoid_pooling": lambda: (TN.check_gc_alpha_sums_to_one, p(M.GCSigmoidPooling(32, 4)), X),
    "gc_formula_no_layer_norm": lambda: (TN.check_gc_formula, p(M.GCNoLayerNorm(32, 4)), X),
    "gc_formula_mul_without_sigmoid": lambda: (TN.check_gc_formula, p(M.GCMulWithoutSigmoid(32, 4, fusion="mul")), X),
    "gc_identity_last_bias_not_zeroed": lambda: (TN.check_identity_at_init, M.GCLastBiasNotZeroed(32).double(), X),
    # ECA
    "eca_formula_circular_padding": lambda: (TE.check_eca_formula, p(M.ECACircularPadding(32, 5)), X),
    "eca_locality_circular_padding": lambda: (TE.check_eca_locality, p(M.ECACircularPadding(32, 5)), X),
    "eca_formula_max_squeeze": lambda: (TE.check_eca_formula, p(M.ECAMaxSqueeze(32)), X),
    "eca_formula_no_sigmoid": lambda: (TE.check_eca_formula, p(M.ECANoSigmoid(32)), X),
    "eca_range_no_sigmoid": lambda: (TE.check_gate_in_unit_interval, p(M.ECANoSigmoid(32)).attention(X)),
    "eca_kernel_table_nearest_odd_down": lambda: (TE.check_eca_kernel_size_table, M.ECANearestOddDown),
    "eca_unchecked_wrong_channels": lambda: (TE.check_rejects_wrong_channels, M.ECAUnchecked(32), torch.randn(2, 32, 7, 5)),
    # Coordinate Attention
    "ca_formula_swapped_pools": lambda: (TE.check_ca_formula, p(M.CASwappedPools(24, 4)), X_ODD),
    "ca_rows_columns_swapped_pools": lambda: (
        TE.check_row_and_column_permutation_equivariance, p(M.CASwappedPools(24, 4)), X_ODD),
    "ca_formula_relu": lambda: (TE.check_ca_formula, p(M.CAReLU(32, 4)), X),
    "ca_formula_one_gate_conv": lambda: (TE.check_ca_formula, p(M.CAOneGateConv(32, 4)), X),
    "ca_gradient_one_gate_conv": lambda: (TN.check_every_parameter_gets_a_gradient, p(M.CAOneGateConv(32, 4), True), X),
    "ca_train_formula_separate_bn": lambda: (
        TE.check_ca_formula, p(M.CASeparateBatchNorm(32, 4), True), X, {"train": True}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_catches(case):
    check, *args = CASES[case]()
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    expect_failure(check, *args, **kwargs)


def test_separate_bn_mutant_is_invisible_in_eval_mode():
    """Why the training-mode formula check exists: with running statistics the two BN uses agree."""
    TE.check_ca_formula(p(M.CASeparateBatchNorm(32, 4)), X)


def test_swapped_pools_mutant_runs_silently_even_when_h_differs_from_w():
    """Concatenated, the two summaries have H + W entries whichever pool is which, so the split
    succeeds: only the values (the formula and row/column checks) give the mistake away."""
    assert M.CASwappedPools(24, 4)(torch.randn(TE.ODD_SHAPE)).shape == TE.ODD_SHAPE


def test_the_reference_passes_every_check_the_mutants_fail():
    """The same checks pass on the reference modules (so a failure above is the mutant's)."""
    TN.check_nonlocal_formula(p(NonLocalBlock(32, pairwise="dot_product", sub_sample=True)), X)
    TN.check_fused_equals_literal(p(NonLocalBlock(32, pairwise="gaussian"), True), X)
