"""Gradients of the reference modules: ``torch.autograd.gradcheck`` in float64 with respect to the
input AND every parameter, and after one backward pass every parameter has a finite, non-zero gradient.

DANet's gamma is set to a non-zero value first: at gamma = 0 the attention branch is multiplied by
zero and the projections get no gradient (``test_pam_at_init_gives_no_gradient_to_its_projections``).
"""
from __future__ import annotations

import pytest
import torch
from torch.autograd.gradcheck import GradcheckError
from torch.func import functional_call

import reference_formulas as R
from course_lib import cbam, ctdnet, danet, hacnn, se

#: name -> (factory, input shape). Tiny, so that the numerical Jacobian stays cheap; B > 1, H != W.
MODULES = {
    "se": (lambda: se.SqueezeExcitation(16, reduction=4), (2, 16, 3, 5)),
    "cbam_channel": (lambda: cbam.ChannelAttention(16, reduction=4, mlp_bias=True), (2, 16, 3, 5)),
    "cbam_spatial": (lambda: cbam.SpatialAttention(3, batch_norm=True), (2, 4, 3, 5)),
    "cbam_paper": (lambda: cbam.CBAM(16, reduction=4, kernel_size=3), (2, 16, 3, 5)),
    "cbam_official": (lambda: cbam.CBAM(16, reduction=4, kernel_size=3, variant="official"), (2, 16, 3, 5)),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(8, 4), (2, 8, 3, 5)),
    "hacnn_spatial": (lambda: hacnn.SpatialAttention(), (2, 4, 5, 3)),
    "hacnn_channel": (lambda: hacnn.ChannelAttention(16), (2, 16, 3, 5)),
    "hacnn_soft": (lambda: hacnn.SoftAttention(16), (2, 16, 3, 5)),
    "hacnn_hard": (lambda: hacnn.HardAttention(16, num_regions=2), (2, 16, 4, 3)),
    "danet_pam": (lambda: danet.PositionAttention(16, reduction=8), (2, 16, 3, 5)),
    "danet_pam_fused": (lambda: danet.PositionAttention(16, reduction=8, fused=True), (2, 16, 3, 5)),
    "danet_cam_paper": (lambda: danet.ChannelAttention(), (2, 8, 3, 5)),
    "danet_cam_official": (lambda: danet.ChannelAttention(variant="official"), (2, 8, 3, 5)),
    "danet_dual": (lambda: danet.DualAttention(16, reduction=8), (2, 16, 3, 5)),
    "danet_head": (lambda: danet.DualAttentionHead(32, num_classes=3), (2, 32, 3, 4)),
}
#: Too many parameters for the full numerical Jacobian in a timed test: check a random projection.
FAST_MODE = {"danet_head"}


def build(name: str, *, training: bool = False) -> tuple[torch.nn.Module, torch.Tensor]:
    factory, shape = MODULES[name]
    m = R.randomize_(factory()).double().train(training)
    x = 0.5 * torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return m, x


def outputs(m, x) -> tuple:
    """Everything forward can return (the head's branch logits too, so conv6/conv7 are exercised)."""
    if isinstance(m, danet.DualAttentionHead):
        return m(x, return_branches=True)
    return (m(x),)


# --------------------------------------------------------------------------------------------------
# Property checks (shared with test_mutants_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_gradcheck(m, x, *, fast_mode: bool = False) -> None:
    """Analytical == numerical Jacobian of forward, with respect to x and every parameter (float64)."""
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in m.named_parameters())

    def f(x_, *ps):
        return functional_call(m, dict(zip(names, ps)), (x_,))

    inputs = (x.detach().clone().requires_grad_(True), *params)
    try:
        torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=fast_mode)
    except GradcheckError as err:
        raise AssertionError(f"gradcheck failed for {type(m).__name__}: {err}") from err


def check_every_parameter_gets_grad(m, x) -> None:
    """One backward pass of a random projection of the outputs reaches every parameter."""
    m.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(2)
    loss = sum((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() for out in outputs(m, x))
    loss.backward()
    problems = []
    for name, p in m.named_parameters():
        if p.grad is None:
            problems.append(f"{name}: no gradient")
        elif not torch.isfinite(p.grad).all():
            problems.append(f"{name}: non-finite gradient")
        elif p.grad.abs().max() == 0:
            problems.append(f"{name}: gradient is exactly zero")
    assert not problems, f"{type(m).__name__}: " + "; ".join(problems)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODULES))
def test_gradcheck(name):
    """BatchNorm in eval mode (with non-trivial running statistics): forward is a fixed function."""
    m, x = build(name)
    check_gradcheck(m, x, fast_mode=name in FAST_MODE)


@pytest.mark.parametrize("name", list(MODULES))
def test_every_parameter_gets_a_finite_nonzero_gradient(name):
    """Training mode (BatchNorm on batch statistics, B = 2), as in a real training step."""
    torch.manual_seed(0)  # the head's Dropout2d
    m, x = build(name, training=True)
    check_every_parameter_gets_grad(m, x)


def test_pam_at_init_gives_no_gradient_to_its_projections():
    """Why gamma is set first: at gamma = 0 the gradient check fails on the reference module itself."""
    m = danet.PositionAttention(16).double()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    with pytest.raises(AssertionError, match="query_conv.weight: gradient is exactly zero"):
        check_every_parameter_gets_grad(m, x)
