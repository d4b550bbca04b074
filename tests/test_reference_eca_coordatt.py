"""ECA and Coordinate Attention: formula, kernel-size rule, invariants, gradients, bad input, devices.

* formula: the modules agree, in float64, with ``reference_formulas_more.py`` (Coordinate Attention
  also with BatchNorm on batch statistics, where the row and column summaries share them);
* ECA's k = psi(C) against the paper's table and listing, the ties at C = 128 and 2048;
* invariants: gate range, shapes, ECA's locality (channel c's gate depends only on its k
  neighbours), ECA's pixel-permutation invariance; Coordinate Attention's equivariance to row and to
  column permutations (but not to a general pixel permutation: that is the point of it);
* gradcheck in float64, every parameter gets a gradient; bad input; CUDA (skipped without one).

Each ``check_*`` also runs on a wrong implementation in ``test_mutants_more_are_caught.py``.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import reference_formulas_more as R
from course_lib.reference import ATTENTION
from course_lib.reference.coord_attention import CoordinateAttention
from course_lib.reference.eca import EfficientChannelAttention, adaptive_kernel_size
from test_reference_nonlocal_gcnet import (
    SHAPE,
    bn_params,
    check_every_parameter_gets_a_gradient,
    check_gradcheck,
    check_pixel_permutation_equivariance,
    close,
    conv_params,
    make_input,
    prepare,
)

ODD_SHAPE = (3, 24, 5, 9)


def ca_params(m):
    bn = bn_params(m.bn1)
    return conv_params(m.conv1), bn, conv_params(m.conv_h), conv_params(m.conv_w)


# --------------------------------------------------------------------------------------------------
# Property checks (shared with test_mutants_more_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_eca_formula(m, x) -> None:
    gate = R.eca_gate(R.f64(x), R.f64(m.conv.weight).flatten())
    close(m.attention(x)[:, :, 0, 0], gate, "EfficientChannelAttention attention(x)")
    close(m(x), R.f64(x) * gate[:, :, None, None], "EfficientChannelAttention forward(x)")


def check_gate_in_unit_interval(gate) -> None:
    assert ((gate > 0) & (gate < 1)).all(), f"a sigmoid gate must lie in (0, 1); range {gate.min():.3g}..{gate.max():.3g}"


def check_eca_locality(m, x) -> None:
    """d gate_c / d y_j = 0 for |c - j| > (k - 1) / 2: each channel sees only its k neighbours, not all C."""
    b, c, _, _ = x.shape
    half = (m.kernel_size - 1) // 2
    y = x.mean((2, 3)).detach()

    def gate_of_descriptor(y_):
        return m.attention(y_[:, :, None, None].expand(b, c, 1, 1).contiguous())[0, :, 0, 0]

    jac = torch.autograd.functional.jacobian(gate_of_descriptor, y)[:, 0, :]  # (C, C)
    far = (torch.arange(c)[:, None] - torch.arange(c)[None, :]).abs() > half
    assert (jac[far] == 0).all(), f"ECA gate of a channel depends on channels further than (k - 1) / 2 = {half} away"
    assert (jac[~far] != 0).any()


def check_ca_formula(m, x, *, train: bool = False) -> None:
    g_h, g_w = R.coord_gates(R.f64(x), *ca_params(m), train=train)
    if not train:
        got_h, got_w = m.gates(x)
        close(got_h[..., 0], g_h, "CoordinateAttention g^h")
        close(got_w[:, :, 0, :], g_w, "CoordinateAttention g^w")
    close(m(x), R.coord_attention(R.f64(x), *ca_params(m), train=train), "CoordinateAttention forward(x)")


def check_row_and_column_permutation_equivariance(m, x) -> None:
    """Permuting rows (or columns) of x permutes the output's rows (columns) the same way."""
    g = torch.Generator().manual_seed(7)
    rows, cols = torch.randperm(x.shape[2], generator=g), torch.randperm(x.shape[3], generator=g)
    y = m(x)
    assert_close(m(x[:, :, rows]), y[:, :, rows], rtol=1e-9, atol=1e-10, msg=lambda s: f"row permutation: {s}")
    assert_close(m(x[:, :, :, cols]), y[:, :, :, cols], rtol=1e-9, atol=1e-10, msg=lambda s: f"column permutation: {s}")


# --------------------------------------------------------------------------------------------------
# ECA
# --------------------------------------------------------------------------------------------------


def check_eca_kernel_size_table(cls) -> None:
    """k for the ResNet widths, by the paper's listing (= timm): ties at 128 and 2048 go up."""
    table = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    got = {c: cls(c).kernel_size for c in table}
    assert got == table, f"{cls.__name__}: k = psi(C) should be {table}; got {got}"
    assert all(cls(c).conv.weight.numel() == k for c, k in table.items())


def check_rejects_wrong_channels(m, x) -> None:
    """A (B, C + 1, H, W) input must raise a ValueError that names the module and both channel counts."""
    wrong = torch.randn(x.shape[0], x.shape[1] + 1, *x.shape[2:], dtype=x.dtype)
    with pytest.raises(ValueError, match=rf"{type(m).__name__}\(channels={x.shape[1]}\).*{x.shape[1] + 1} channels"):
        m(wrong)


def test_eca_kernel_size_table_of_the_paper_listing():
    check_eca_kernel_size_table(EfficientChannelAttention)
    assert {c: adaptive_kernel_size(c) for c in (64, 128, 2048)} == {64: 3, 128: 5, 2048: 7}


@pytest.mark.parametrize("cls", [EfficientChannelAttention, CoordinateAttention])
def test_wrong_channel_count_is_rejected(cls):
    check_rejects_wrong_channels(cls(32), torch.randn(SHAPE))


@pytest.mark.parametrize("channels", [1, 2, 3, 7, 8, 31, 96, 100, 128, 300, 2048, 4096])
@pytest.mark.parametrize("gamma, b", [(2, 1), (3, 2), (1.5, -1)])
def test_eca_kernel_size_matches_a_hand_written_listing(channels, gamma, b):
    assert adaptive_kernel_size(channels, gamma, b) == R.eca_kernel_size_by_listing(channels, gamma, b)


def test_eca_kernel_size_ties_are_rounded_up():
    """(log2 C + 1) / 2 is exactly 4 at C = 128 and 6 at C = 2048: "nearest odd" ties; the listing takes t + 1."""
    assert (adaptive_kernel_size(128), adaptive_kernel_size(2048)) == (5, 7)


def test_eca_fixed_kernel_size_is_the_official_option():
    m = EfficientChannelAttention(256, 3)
    assert (m.kernel_size, m.adaptive, m.conv.weight.numel()) == (3, False, 3)
    assert EfficientChannelAttention(256).conv.weight.numel() == 5  # k parameters, no bias


@pytest.mark.parametrize("channels, k", [(32, None), (32, 7), (24, 3), (5, None)])
def test_eca_matches_the_formula(channels, k):
    m = prepare(EfficientChannelAttention(channels, k))
    shape = (2, channels, 7, 5) if channels != 24 else ODD_SHAPE
    check_eca_formula(m, make_input(shape))


def test_eca_gate_range_and_shapes():
    m = prepare(EfficientChannelAttention(32, 5))
    x = make_input()
    gate = m.attention(x)
    assert gate.shape == (2, 32, 1, 1) and m(x).shape == x.shape
    check_gate_in_unit_interval(gate)


def test_eca_gate_is_local_across_channels():
    check_eca_locality(prepare(EfficientChannelAttention(32, 5)), make_input())


def test_eca_is_invariant_under_pixel_permutation():
    check_pixel_permutation_equivariance(prepare(EfficientChannelAttention(32)), make_input())


def test_eca_gradcheck_and_gradient():
    check_gradcheck(prepare(EfficientChannelAttention(16, 5)), make_input((2, 16, 5, 4)))
    check_every_parameter_gets_a_gradient(prepare(EfficientChannelAttention(32)), make_input())


# --------------------------------------------------------------------------------------------------
# Coordinate Attention
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [SHAPE, ODD_SHAPE])
def test_coord_attention_matches_the_formula(shape, bias):
    m = prepare(CoordinateAttention(shape[1], 4, bias=bias))
    check_ca_formula(m, make_input(shape))


@pytest.mark.parametrize("shape", [SHAPE, ODD_SHAPE])
def test_coord_attention_matches_the_formula_with_batch_statistics(shape):
    m = prepare(CoordinateAttention(shape[1], 4), train=True)
    check_ca_formula(m, make_input(shape), train=True)


def test_coord_attention_width_rule_is_the_official_one():
    assert [CoordinateAttention(c).hidden_channels for c in (16, 256, 287, 288, 1024)] == [8, 8, 8, 9, 32]
    assert CoordinateAttention(64, hidden_channels=12).hidden_channels == 12
    assert sum(p.numel() for p in CoordinateAttention(256).parameters()) == 6_680  # more-mechanisms.md


def test_coord_attention_gates_range_and_shapes():
    m = prepare(CoordinateAttention(32, 4))
    x = make_input()
    g_h, g_w = m.gates(x)
    assert g_h.shape == (2, 32, 7, 1) and g_w.shape == (2, 32, 1, 5)
    check_gate_in_unit_interval(g_h)
    check_gate_in_unit_interval(g_w)
    assert_close(m.attention(x), g_h * g_w)
    assert_close(m(x), x * m.attention(x))


def test_coord_attention_starts_near_a_quarter_of_the_input():
    """No residual and two gates near sigmoid(0) = 0.5 at initialisation (BN on batch statistics)."""
    m = CoordinateAttention(64).double()
    x = make_input((8, 64, 9, 7))
    ratio = (m(x) / x).mean().item()
    assert 0.15 < ratio < 0.35, ratio


def test_coord_attention_is_equivariant_to_row_and_column_permutations():
    check_row_and_column_permutation_equivariance(prepare(CoordinateAttention(32, 4)), make_input())


def test_coord_attention_is_not_equivariant_to_a_general_pixel_permutation():
    """The point of CA: it knows which row and column a pixel is in (this is the counter-check of the
    permutation test, which would otherwise pass on a module that ignores positions)."""
    with pytest.raises(AssertionError):
        check_pixel_permutation_equivariance(prepare(CoordinateAttention(32, 4)), make_input())


def test_coord_attention_gradcheck_and_gradient():
    check_gradcheck(prepare(CoordinateAttention(16, 4), train=True), make_input((2, 16, 5, 4)))
    check_every_parameter_gets_a_gradient(prepare(CoordinateAttention(32, 4), train=True), make_input())


# --------------------------------------------------------------------------------------------------
# Registry, bad input, devices
# --------------------------------------------------------------------------------------------------


def test_registry_builds_the_paper_defaults():
    e, c = ATTENTION["eca"](48), ATTENTION["coord_attention"](48)
    assert type(e) is EfficientChannelAttention and (e.kernel_size, e.adaptive) == (3, True)
    assert type(c) is CoordinateAttention and (c.reduction, c.hidden_channels) == (32, 8)
    x = torch.randn(2, 48, 7, 5)
    assert e(x).shape == x.shape and c(x).shape == x.shape


BAD_INPUT = [
    (EfficientChannelAttention, (32,), torch.randn(2, 16, 7, 5), ValueError,
     r"EfficientChannelAttention\(channels=32\).*\(B, 32, H, W\).*16 channels, expected 32"),
    (EfficientChannelAttention, (32,), torch.randn(2, 32, 7), ValueError, r"EfficientChannelAttention.*3-D"),
    (EfficientChannelAttention, (32,), torch.zeros(2, 32, 3, 3, dtype=torch.int32), TypeError,
     r"EfficientChannelAttention.*dtype torch.int32"),
    (CoordinateAttention, (32,), torch.randn(2, 33, 7, 5), ValueError, r"CoordinateAttention\(channels=32\).*33 channels"),
    (CoordinateAttention, (32,), "x", TypeError, r"CoordinateAttention.*got 'x' of type str"),
    (CoordinateAttention, (32,), torch.randn(2, 32, 7, 0), ValueError, r"CoordinateAttention.*non-empty spatial size"),
]


@pytest.mark.parametrize("cls, args, x, error, message", BAD_INPUT)
def test_bad_input_gets_a_clear_error(cls, args, x, error, message):
    m = cls(*args)
    for call in (m, m.attention):
        with pytest.raises(error, match=message):
            call(x)


BAD_OPTIONS = [
    (lambda: EfficientChannelAttention(32, 4), ValueError, r"EfficientChannelAttention: kernel_size must be odd.*got 4"),
    (lambda: EfficientChannelAttention(32, 0), ValueError, r"EfficientChannelAttention: kernel_size must be a positive int"),
    (lambda: EfficientChannelAttention(0), ValueError, r"EfficientChannelAttention: channels must be a positive int \(>= 1\); got 0"),
    (lambda: EfficientChannelAttention(32, gamma=0), ValueError, r"EfficientChannelAttention: gamma must be > 0; got 0"),
    (lambda: EfficientChannelAttention(32, b="1"), TypeError, r"EfficientChannelAttention: b must be a finite real number; got '1'"),
    (lambda: adaptive_kernel_size(-4), ValueError, r"adaptive_kernel_size: channels must be a positive int"),
    (lambda: CoordinateAttention(32, 0), ValueError, r"CoordinateAttention: reduction must be a positive int \(>= 1\); got 0"),
    (lambda: CoordinateAttention(32, bias=None), TypeError, r"CoordinateAttention: bias must be True or False; got None"),
    (lambda: CoordinateAttention(32, hidden_channels=2.5), TypeError, r"CoordinateAttention: hidden_channels must be a positive int"),
]


@pytest.mark.parametrize("build, error, message", BAD_OPTIONS)
def test_bad_options_get_a_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none found")
@pytest.mark.parametrize("build", [lambda: EfficientChannelAttention(32), lambda: CoordinateAttention(32, 4)])
def test_cuda_matches_cpu(build):
    cpu, gpu = prepare(build()), prepare(build(), device="cuda")
    x = make_input()
    assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-9, atol=1e-10)
    gpu.train()
    check_every_parameter_gets_a_gradient(gpu, x.cuda())
