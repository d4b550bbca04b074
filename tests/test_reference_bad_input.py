"""Bad input gets a ValueError/TypeError whose message names both what was expected and what came.

Every module is fed each kind of wrong input (wrong rank, wrong channel count, an integer tensor, an
empty spatial size, a non-tensor) through both ``attention`` and ``forward``; constructors get channel
counts too small for their reduction and wrong option values. ``check_rejects`` is the whole property
check; ``test_mutants_are_caught.py`` runs it on modules that validate too little or say too little.
"""
from __future__ import annotations

import pytest
import torch

from course_lib.reference import cbam, ctdnet, danet, hacnn, se

C = 32

#: name -> (factory for C = 32 channels, whether the module checks the channel count)
MODULES = {
    "se": (lambda: se.SqueezeExcitation(C), True),
    "cbam_channel": (lambda: cbam.ChannelAttention(C), True),
    "cbam_spatial": (lambda: cbam.SpatialAttention(), False),  # any C
    "cbam": (lambda: cbam.CBAM(C), True),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(C, 16), True),
    "hacnn_spatial": (lambda: hacnn.SpatialAttention(), False),  # any C
    "hacnn_channel": (lambda: hacnn.ChannelAttention(C), True),
    "hacnn_soft": (lambda: hacnn.SoftAttention(C), True),
    "hacnn_hard": (lambda: hacnn.HardAttention(C), True),
    "danet_pam": (lambda: danet.PositionAttention(C), True),
    "danet_pam_fused": (lambda: danet.PositionAttention(C, fused=True), True),
    "danet_cam": (lambda: danet.ChannelAttention(), False),  # any C
    "danet_dual": (lambda: danet.DualAttention(C), True),
    "danet_head": (lambda: danet.DualAttentionHead(C, num_classes=3), True),
}

#: case -> (bad input, exception type, a phrase naming what is expected, the received value as printed)
BAD_INPUTS = {
    "wrong_rank": (lambda: torch.randn(2, C, 7), ValueError, "4-D", "(2, 32, 7)"),
    "channel_mismatch": (lambda: torch.randn(2, 24, 7, 5), ValueError, "(B, 32, H, W)", "24"),
    "integer_dtype": (lambda: torch.ones(2, C, 7, 5, dtype=torch.int64), TypeError, "float", "torch.int64"),
    "empty_spatial_size": (lambda: torch.randn(2, C, 0, 5), ValueError, "H, W >= 1", "(2, 32, 0, 5)"),
    "not_a_tensor": (lambda: [[0.0] * 5] * 7, TypeError, "tensor", "list"),
}


# --------------------------------------------------------------------------------------------------
# Property check (shared with test_mutants_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_rejects(call, exc_type: type[Exception], expected: str, received: str) -> None:
    """``call()`` raises ``exc_type`` and the message contains both ``expected`` and ``received``."""
    try:
        call()
    except exc_type as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - any other exception is the failure we report
        raise AssertionError(f"expected {exc_type.__name__}, got {type(err).__name__}: {err}") from err
    else:
        raise AssertionError(f"expected {exc_type.__name__}; nothing was raised")
    missing = [part for part in (expected, received) if part not in message]
    assert not missing, f"the message should name {missing}; it reads: {message!r}"


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def _cases():
    for name, (_, checks_channels) in MODULES.items():
        for case in BAD_INPUTS:
            if case == "channel_mismatch" and not checks_channels:
                continue
            for method in ("attention", "forward"):
                yield pytest.param(name, case, method, id=f"{name}-{case}-{method}")


@pytest.mark.parametrize(("name", "case", "method"), list(_cases()))
def test_bad_input_is_rejected_naming_expected_and_received(name, case, method):
    m = MODULES[name][0]()
    make_bad, exc_type, expected, received = BAD_INPUTS[case]
    check_rejects(lambda: getattr(m, method)(make_bad()), exc_type, expected, received)


CONSTRUCTOR_CASES = {
    # channels too few for the reduction: C // r == 0
    "se_channels_below_reduction": (lambda: se.SqueezeExcitation(8, reduction=16), ValueError, "channels >= reduction", "channels=8"),
    "cbam_channels_below_reduction": (lambda: cbam.CBAM(8), ValueError, "channels >= reduction", "channels=8"),
    "cbam_channel_below_reduction": (lambda: cbam.ChannelAttention(4, reduction=8), ValueError, "channels >= reduction", "channels=4"),
    "hacnn_channels_below_reduction": (lambda: hacnn.ChannelAttention(8), ValueError, "channels >= reduction", "channels=8"),
    "hacnn_channels_not_divisible": (lambda: hacnn.ChannelAttention(40), ValueError, "divisible by reduction", "channels=40"),
    "hacnn_soft_channels_below_reduction": (lambda: hacnn.SoftAttention(8), ValueError, "channels >= reduction", "channels=8"),
    "pam_channels_below_reduction": (lambda: danet.PositionAttention(4), ValueError, "channels >= reduction", "channels=4"),
    "dual_channels_below_reduction": (lambda: danet.DualAttention(4), ValueError, "channels >= reduction", "channels=4"),
    "head_in_channels_too_few": (lambda: danet.DualAttentionHead(16, 3), ValueError, "in_channels >= 32", "got 16"),
    # wrong types and option values
    "se_float_channels": (lambda: se.SqueezeExcitation(32.0), TypeError, "positive int", "32.0"),
    "se_zero_channels": (lambda: se.SqueezeExcitation(0), ValueError, ">= 1", "0"),
    "cbam_unknown_variant": (lambda: cbam.CBAM(32, variant="offical"), ValueError, "'official'", "'offical'"),
    "cbam_even_kernel": (lambda: cbam.SpatialAttention(4), ValueError, "odd", "4"),
    "cbam_unknown_pool_order": (lambda: cbam.SpatialAttention(pool_order="mean_max"), ValueError, "'avg_max'", "'mean_max'"),
    "cbam_mlp_bias_not_bool": (lambda: cbam.ChannelAttention(32, mlp_bias=1), TypeError, "True or False", "1"),
    "cam_unknown_variant": (lambda: danet.ChannelAttention(variant="Paper"), ValueError, "'paper'", "'Paper'"),
    "pam_fused_not_bool": (lambda: danet.PositionAttention(32, fused="yes"), TypeError, "True or False", "'yes'"),
    "hard_zero_regions": (lambda: hacnn.HardAttention(32, num_regions=0), ValueError, ">= 1", "0"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTOR_CASES))
def test_bad_constructor_arguments_are_rejected(case):
    call, exc_type, expected, received = CONSTRUCTOR_CASES[case]
    check_rejects(call, exc_type, expected, received)
