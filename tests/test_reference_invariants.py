"""Invariants of the reference modules: shapes, ranges, normalisation, identity at initialisation,
permutation equivariance, the official CAM's hidden sign flip, fused == literal PAM, dtype and
memory-format independence, odd sizes.

Every ``check_*`` function is the whole property check; ``test_mutants_are_caught.py`` runs the same
function on the wrong implementations in ``mutants.py`` to prove it can fail.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import reference_formulas as R
from course_lib.reference import ATTENTION, cbam, ctdnet, danet, hacnn, se

B, C, H, W = 2, 32, 7, 5  # B > 1, H != W, both odd, C not in {H, W}
N = H * W

#: name -> (factory, attention shape(s), output shape) for an input of shape (B, C, H, W).
MODULES = {
    "se": (lambda: se.SqueezeExcitation(C, reduction=4), (B, C, 1, 1), (B, C, H, W)),
    "cbam_channel": (lambda: cbam.ChannelAttention(C, reduction=4), (B, C, 1, 1), (B, C, H, W)),
    "cbam_spatial": (lambda: cbam.SpatialAttention(), (B, 1, H, W), (B, C, H, W)),
    "cbam_paper": (lambda: cbam.CBAM(C, reduction=4), ((B, C, 1, 1), (B, 1, H, W)), (B, C, H, W)),
    "cbam_official": (lambda: cbam.CBAM(C, reduction=4, variant="official"), ((B, C, 1, 1), (B, 1, H, W)), (B, C, H, W)),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(C, 16), (B, 1, H, W), (B, 16, H, W)),
    "hacnn_spatial": (lambda: hacnn.SpatialAttention(), (B, 1, H, W), (B, 1, H, W)),
    "hacnn_channel": (lambda: hacnn.ChannelAttention(C), (B, C, 1, 1), (B, C, 1, 1)),
    "hacnn_soft": (lambda: hacnn.SoftAttention(C), (B, C, H, W), (B, C, H, W)),
    "hacnn_hard": (lambda: hacnn.HardAttention(C, num_regions=4), (B, 4, 2), (B, 4, C, 2, W)),
    "danet_pam": (lambda: danet.PositionAttention(C), (B, N, N), (B, C, H, W)),
    "danet_pam_fused": (lambda: danet.PositionAttention(C, fused=True), (B, N, N), (B, C, H, W)),
    "danet_cam_paper": (lambda: danet.ChannelAttention(), (B, C, C), (B, C, H, W)),
    "danet_cam_official": (lambda: danet.ChannelAttention(variant="official"), (B, C, C), (B, C, H, W)),
    "danet_dual": (lambda: danet.DualAttention(C), ((B, N, N), (B, C, C)), (B, C, H, W)),
    "danet_head": (lambda: danet.DualAttentionHead(C, num_classes=5), ((B, N, N), (B, 8, 8)), (B, 5, H, W)),
}
DANET = ["danet_pam", "danet_pam_fused", "danet_cam_paper", "danet_cam_official", "danet_dual"]


def build(name: str, *, randomize: bool = True, dtype=torch.float64, device="cpu") -> torch.nn.Module:
    m = MODULES[name][0]()
    if randomize:
        R.randomize_(m)
    return m.to(device=device, dtype=dtype).eval()


def make_input(shape=(B, C, H, W), *, dtype=torch.float64, device="cpu", seed: int = 1, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)


def as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


# --------------------------------------------------------------------------------------------------
# Property checks (shared with test_mutants_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_shapes(m, x, attention_shape, output_shape) -> None:
    maps = as_tuple(m.attention(x))
    expected_maps = attention_shape if isinstance(attention_shape[0], tuple) else (attention_shape,)
    got = tuple(tuple(a.shape) for a in maps)
    assert got == tuple(expected_maps), f"attention(x) shapes: expected {expected_maps}, got {got}"
    out = m(x)
    assert tuple(out.shape) == tuple(output_shape), f"forward(x) shape: expected {output_shape}, got {tuple(out.shape)}"


def check_gate_in_open_unit_interval(gate: torch.Tensor, what: str = "gate") -> None:
    """A sigmoid gate: every value strictly between 0 and 1 (float64, moderate inputs)."""
    lo, hi = gate.min().item(), gate.max().item()
    assert 0.0 < lo and hi < 1.0, f"{what} should lie in (0, 1); got values in [{lo:.4g}, {hi:.4g}]"


def check_soft_map_range(m, x) -> None:
    """HA-CNN: sigmoid of a ReLU output, so the soft map lies in [0.5, 1)."""
    a = m.attention(x)
    lo, hi = a.min().item(), a.max().item()
    assert 0.5 <= lo and hi < 1.0, f"HA-CNN soft attention should lie in [0.5, 1); got values in [{lo:.4g}, {hi:.4g}]"
    assert lo == 0.5, "some pre-sigmoid activation should be clipped to 0 by the ReLU for this input"


def check_rows_sum_to_one(attention: torch.Tensor, what: str = "attention") -> None:
    """Softmax over the last dim: non-negative, and each row (dim -1) sums to 1."""
    assert attention.min().item() >= 0, f"{what} has negative entries"
    sums = attention.sum(dim=-1)
    assert_close(sums, torch.ones_like(sums), msg=lambda m: f"{what}: rows (dim -1) should sum to 1. {m}")


def check_identity_at_init(m, x) -> None:
    """DANet's gamma starts at 0, so a freshly built module returns its input unchanged."""
    assert_close(m(x), x, rtol=0, atol=0, msg=lambda msg: f"a fresh DANet module should be the identity. {msg}")


def check_not_identity_when_gamma_nonzero(m, x) -> None:
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.split(".")[-1] == "gamma":
                p.fill_(0.5)
    diff = (m(x) - x).abs().max().item()
    assert diff > 1e-3, f"with gamma = 0.5 the attention branch should change the output; max |out - x| = {diff:.3g}"


def permute_pixels(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    b, c, h, w = t.shape
    return t.flatten(2)[:, :, perm].reshape(b, c, h, w)


def check_pixel_permutation_equivariant(m, x, seed: int = 0) -> None:
    """Shuffling the pixels of x shuffles the output's pixels the same way: m(P x) == P m(x)."""
    perm = torch.randperm(x.shape[2] * x.shape[3], generator=torch.Generator().manual_seed(seed))
    assert_close(
        m(permute_pixels(x, perm)), permute_pixels(m(x), perm), rtol=1e-9, atol=1e-10,
        msg=lambda msg: f"not equivariant to a permutation of the pixels. {msg}",
    )


def gram_energy(x: torch.Tensor) -> torch.Tensor:
    a = x.flatten(2)  # (B, C, N)
    return a @ a.transpose(1, 2)  # (B, C, N) @ (B, N, C) -> (B, C, C)


def check_cam_official_is_softmax_of_negated_energy(m, x) -> None:
    assert_close(
        m.attention(x), torch.softmax(-gram_energy(x), dim=-1),
        msg=lambda msg: f"CAM(variant='official') should equal softmax(-energy) row by row. {msg}",
    )


def _step(m, x, grad_out, **kwargs):
    """Output, input gradient and parameter gradients of one forward + backward of ``m(x, **kwargs)``."""
    x = x.detach().clone().requires_grad_(True)
    m.zero_grad(set_to_none=True)
    out = m(x, **kwargs)
    out.backward(grad_out)
    return {"forward": out.detach(), "grad x": x.grad, **{f"grad {n}": p.grad for n, p in m.named_parameters()}}


def check_fused_matches_literal(literal, fused, x, *, rtol: float, atol: float) -> None:
    """Same weights, same output and same gradients: the memory-light path computes exactly DANet's PAM.

    gamma is set to 0.5 so that the attention branch reaches the output and the projections get
    gradients (at gamma = 0 both paths would return x and agree whatever they computed).
    """
    with torch.no_grad():
        literal.gamma.fill_(0.5)
    fused.load_state_dict(literal.state_dict())
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(x)
    expected = _step(literal, x, grad_out)
    runs = {"fused=True module": _step(fused, x, grad_out),
            "forward(x, fused=True)": _step(literal, x, grad_out, fused=True)}
    for what, got in runs.items():
        for key, value in expected.items():
            assert got[key] is not None, f"{what}: {key} is missing"
            assert_close(got[key], value, rtol=rtol, atol=atol,
                         msg=lambda msg, w=what, k=key: f"{w} vs literal PAM, {k}. {msg}")


def check_dtype_preserved(m, x) -> None:
    for i, a in enumerate(as_tuple(m.attention(x))):
        assert a.dtype == x.dtype, f"attention(x)[{i}] has dtype {a.dtype}; the input is {x.dtype}"
    out = m(x)
    assert out.dtype == x.dtype, f"forward(x) has dtype {out.dtype}; the input is {x.dtype}"


def check_channels_last_matches(m, x) -> None:
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert_close(m(x_cl), m(x), rtol=1e-9, atol=1e-10, msg=lambda msg: f"channels_last input changes the output. {msg}")
    for a, b in zip(as_tuple(m.attention(x_cl)), as_tuple(m.attention(x))):
        assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda msg: f"channels_last input changes attention(x). {msg}")


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODULES))
def test_output_shapes(name, device):
    _, att_shape, out_shape = MODULES[name]
    check_shapes(build(name, device=device), make_input(device=device), att_shape, out_shape)


@pytest.mark.parametrize("name", ["se", "cbam", "ctdnet_sam", "hacnn_soft", "danet_pam", "danet_cam", "danet_dual"])
def test_registry_modules_keep_the_input_shape(name):
    m = ATTENTION[name](C).double().eval()
    assert m(make_input()).shape == (B, C, H, W)


@pytest.mark.parametrize(
    ("name", "gate"),
    [("se", lambda m, x: m.attention(x)), ("cbam_channel", lambda m, x: m.attention(x)),
     ("cbam_spatial", lambda m, x: m.attention(x)), ("cbam_official", lambda m, x: m.attention(x)[0]),
     ("cbam_official", lambda m, x: m.attention(x)[1]), ("ctdnet_sam", lambda m, x: m.attention(x))],
)
def test_gates_lie_in_open_unit_interval(name, gate):
    m, x = build(name), make_input()
    check_gate_in_open_unit_interval(gate(m, x), f"{name} gate")


def test_hacnn_soft_map_lies_in_half_open_interval_from_one_half():
    check_soft_map_range(build("hacnn_soft"), make_input())


@pytest.mark.parametrize("name", ["danet_pam", "danet_cam_paper", "danet_cam_official"])
def test_danet_attention_rows_sum_to_one(name, device):
    check_rows_sum_to_one(build(name, device=device).attention(make_input(device=device, scale=0.2)), name)


@pytest.mark.parametrize("name", ["danet_pam", "danet_cam_paper", "danet_cam_official"])
def test_danet_attention_columns_do_not_sum_to_one(name):
    """The row check discriminates: the same maps fail it along dim 1 (i.e. after a transpose)."""
    attention = build(name).attention(make_input(scale=0.2))
    with pytest.raises(AssertionError):
        check_rows_sum_to_one(attention.transpose(1, 2), name)


@pytest.mark.parametrize("name", DANET)
def test_danet_is_identity_at_init(name, device):
    check_identity_at_init(build(name, randomize=False, device=device), make_input(device=device))


@pytest.mark.parametrize("name", DANET)
def test_danet_is_not_identity_when_gamma_nonzero(name, device):
    check_not_identity_when_gamma_nonzero(build(name, randomize=False, device=device), make_input(device=device, scale=0.2))


@pytest.mark.parametrize("name", ["se", "cbam_channel", "danet_pam", "danet_pam_fused", "danet_cam_paper", "danet_cam_official", "danet_dual"])
def test_pixel_permutation_equivariance(name):
    check_pixel_permutation_equivariant(build(name), make_input(scale=0.2))


def test_cam_official_equals_softmax_of_negated_energy():
    check_cam_official_is_softmax_of_negated_energy(build("danet_cam_official"), make_input(scale=0.2))


def test_cam_paper_is_not_softmax_of_negated_energy():
    """The official-variant check discriminates: the paper variant fails it."""
    with pytest.raises(AssertionError):
        check_cam_official_is_softmax_of_negated_energy(build("danet_cam_paper"), make_input(scale=0.2))


# float32: key_conv.bias's gradient is exactly 0 in exact arithmetic (a key bias shifts a whole softmax
# row), so both paths return rounding noise of a sum over N * C terms there, about 1e-5
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-10, 1e-12)])
@pytest.mark.parametrize(("shape", "query_block"), [
    ((B, C, H, W), None), ((B, C, H, W), 4),  # N = 35: one block; 9 blocks, the last of 3 rows
    ((3, 16, 5, 9), 1), ((1, 64, 16, 16), None), ((1, 64, 16, 16), 100), ((0, 16, 3, 3), 2),
], ids=["one_block", "blocks_of_4", "blocks_of_1", "N256", "blocks_of_100", "empty_batch"])
def test_fused_pam_equals_literal_forward_and_backward(shape, query_block, dtype, rtol, atol, device):
    literal = R.randomize_(danet.PositionAttention(shape[1])).to(device=device, dtype=dtype)
    fused = danet.PositionAttention(shape[1], fused=True, query_block=query_block).to(device=device, dtype=dtype)
    check_fused_matches_literal(literal, fused, make_input(shape, dtype=dtype, device=device, scale=0.5), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MODULES))
def test_dtype_is_preserved(name, dtype, device):
    check_dtype_preserved(build(name, dtype=dtype, device=device), make_input(dtype=dtype, device=device))


@pytest.mark.parametrize("name", list(MODULES))
def test_channels_last_input_gives_the_same_values(name, device):
    check_channels_last_matches(build(name, device=device), make_input(device=device, scale=0.5))


@pytest.mark.parametrize("shape", [(2, 32, 7, 5), (2, 32, 9, 3), (2, 32, 1, 1), (1, 32, 3, 4)])
@pytest.mark.parametrize("name", ["hacnn_spatial", "hacnn_soft"])
def test_hacnn_odd_sizes_work(name, shape):
    b, c, h, w = shape
    att = (b, 1, h, w) if name == "hacnn_spatial" else (b, c, h, w)
    check_shapes(build(name), make_input(shape), att, att)
