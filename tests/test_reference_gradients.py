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
from course_lib.reference import cbam, ctdnet, danet, hacnn, se

#: name -> (factory, input shape). Tiny, so that the full numerical Jacobian stays cheap; B > 1, H != W.
MODULES = {
    "se": (lambda: se.SqueezeExcitation(16, reduction=4), (2, 16, 2, 3)),
    "cbam_channel": (lambda: cbam.ChannelAttention(16, reduction=4, mlp_bias=True), (2, 16, 2, 3)),
    "cbam_spatial": (lambda: cbam.SpatialAttention(3, batch_norm=True), (2, 4, 3, 2)),
    "cbam_paper": (lambda: cbam.CBAM(16, reduction=4, kernel_size=3), (2, 16, 2, 3)),
    "cbam_official": (lambda: cbam.CBAM(16, reduction=4, kernel_size=3, variant="official"), (2, 16, 2, 3)),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(8, 4), (2, 8, 2, 3)),
    "hacnn_spatial": (lambda: hacnn.SpatialAttention(), (2, 4, 5, 3)),  # odd: resize 3x2 -> 5x3
    "hacnn_channel": (lambda: hacnn.ChannelAttention(16), (2, 16, 2, 3)),
    "hacnn_soft": (lambda: hacnn.SoftAttention(16), (2, 16, 2, 3)),
    "hacnn_hard": (lambda: hacnn.HardAttention(16, num_regions=2), (2, 16, 4, 3)),
    "danet_pam": (lambda: danet.PositionAttention(16, reduction=8), (2, 16, 2, 3)),
    "danet_pam_fused": (lambda: danet.PositionAttention(16, reduction=8, fused=True), (2, 16, 2, 3)),
    # the blocked memory-light path (a custom autograd Function): blocks of 4 of N = 6 queries
    "danet_pam_blocked": (lambda: danet.PositionAttention(16, reduction=8, fused=True, query_block=4), (2, 16, 2, 3)),
    "danet_cam_paper": (lambda: danet.ChannelAttention(), (2, 8, 2, 3)),
    "danet_cam_official": (lambda: danet.ChannelAttention(variant="official"), (2, 8, 2, 3)),
    "danet_dual": (lambda: danet.DualAttention(16, reduction=8), (2, 16, 2, 3)),
    "danet_head": (lambda: danet.DualAttentionHead(32, num_classes=3), (2, 32, 2, 3)),
}


def build(name: str, *, training: bool = False) -> tuple[torch.nn.Module, torch.Tensor]:
    """Random weights; BatchNorm running statistics set to this input's batch statistics, so that in
    eval mode every ReLU sees both signs (random statistics can switch a 1-channel branch off)."""
    factory, shape = MODULES[name]
    m = R.randomize_(factory()).double()
    x = 0.5 * torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calibrate_batch_norm_(m, x)
    return m.train(training), x


def calibrate_batch_norm_(m: torch.nn.Module, x: torch.Tensor) -> None:
    norms = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    for b in norms:
        b.momentum = 1.0  # running statistics := this batch's statistics
    with torch.no_grad():
        m.train()
        outputs(m, x)
    for b in norms:
        b.momentum = 0.1
    m.eval()


def outputs(m, x) -> tuple:
    """Everything forward can return (the head's branch logits too, so conv6/conv7 are exercised)."""
    if isinstance(m, danet.DualAttentionHead):
        return m(x, return_branches=True)
    return (m(x),)


# --------------------------------------------------------------------------------------------------
# Property checks (shared with test_mutants_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_gradcheck(m, x) -> None:
    """Analytical == numerical Jacobian of forward (float64): in full with respect to x, and with
    respect to x and every parameter together in gradcheck's fast mode (one random direction
    v^T J u, compared against the numerical directional derivative; the full Jacobian over all
    parameters costs seconds per module)."""
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in m.named_parameters())

    def f(x_, *ps):
        return functional_call(m, dict(zip(names, ps)), (x_,))

    x = x.detach().clone().requires_grad_(True)
    try:
        torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)
        torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    except GradcheckError as err:
        raise AssertionError(f"gradcheck failed for {type(m).__name__}: {err}") from err


def parameter_gradients(m, x) -> dict:
    """name -> gradient (or None) after one backward pass of a random projection of the outputs."""
    m.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(2)
    loss = sum((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() for out in outputs(m, x))
    loss.backward()
    return {name: p.grad for name, p in m.named_parameters()}


def check_every_parameter_gets_grad(m, x) -> None:
    """One backward pass reaches every parameter with a finite, non-zero gradient."""
    problems = []
    for name, grad in parameter_gradients(m, x).items():
        if grad is None:
            problems.append(f"{name}: no gradient")
        elif not torch.isfinite(grad).all():
            problems.append(f"{name}: non-finite gradient")
        elif grad.abs().max() == 0:
            problems.append(f"{name}: gradient is exactly zero")
    assert not problems, f"{type(m).__name__}: " + "; ".join(problems)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODULES))
def test_gradcheck(name):
    """BatchNorm in eval mode (with non-trivial running statistics): forward is a fixed function."""
    m, x = build(name)
    check_gradcheck(m, x)


#: HA-CNN's ConvBlocks put a conv bias before a BatchNorm: in training mode that bias has exactly zero
#: gradient by construction (next test), so those modules are checked in eval mode only.
BIAS_BEFORE_BN = {"hacnn_spatial", "hacnn_channel", "hacnn_soft"}
GRAD_CASES = [(n, t) for n in MODULES for t in (False, True) if not (t and n in BIAS_BEFORE_BN)]


@pytest.mark.parametrize(("name", "training"), GRAD_CASES, ids=[f"{n}-{'train' if t else 'eval'}" for n, t in GRAD_CASES])
def test_every_parameter_gets_a_finite_nonzero_gradient(name, training):
    """Eval mode, and training mode (BatchNorm on batch statistics, B = 2) as in a training step."""
    torch.manual_seed(0)  # the head's Dropout2d
    m, x = build(name, training=training)
    check_every_parameter_gets_grad(m, x)


def test_hacnn_conv_bias_before_batchnorm_gets_no_gradient_in_training():
    """torchreid's ConvBlock keeps the conv bias, but a train-mode BatchNorm subtracts the batch mean,
    so the bias cancels: its gradient is zero up to rounding, while every other parameter learns."""
    m, x = build("hacnn_soft", training=True)
    for name, grad in parameter_gradients(m, x).items():
        if name.endswith("conv.bias"):
            assert grad.abs().max() < 1e-10, f"{name} should get no gradient through a train-mode BatchNorm"
        else:
            assert grad.abs().max() > 1e-8, f"{name} should get a gradient"


def test_pam_at_init_gives_no_gradient_to_its_projections():
    """Why gamma is set first: at gamma = 0 the gradient check fails on the reference module itself."""
    m = danet.PositionAttention(16).double()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    with pytest.raises(AssertionError, match="query_conv.weight: gradient is exactly zero"):
        check_every_parameter_gets_grad(m, x)
