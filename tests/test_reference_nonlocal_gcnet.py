"""The Non-local block and GCNet's global context block: formula, invariants, gradients, bad input, devices.

* formula: the module agrees, in float64, with ``reference_formulas_more.py`` (written from the papers,
  independently of course_lib) for every pairwise function, with and without subsampling, BN in eval
  and in training mode;
* invariants: shapes, rows of the map sum to 1, identity at initialisation, equivariance to a
  permutation of the pixels (no subsampling), the fused path equals the literal one (forward and
  backward) and takes an efficient SDPA kernel;
* gradcheck in float64, every parameter gets a gradient;
* bad input: clear errors naming the module, the expected and the received value;
* CUDA: the same numbers on the GPU (skipped without one).

Each ``check_*`` is also run on a wrong implementation in ``test_mutants_more_are_caught.py``.
Inputs follow the suite's rule: B > 1, H != W, odd sizes, C not in {H, W}.
"""
from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.testing import assert_close

import reference_formulas_more as R
from course_lib.reference import ATTENTION
from course_lib.reference.gcnet import GlobalContextBlock
from course_lib.reference.nonlocal_block import NonLocalBlock

SHAPE = (2, 32, 7, 5)
ODD_SHAPE = (3, 24, 5, 9)


def make_input(shape=SHAPE, seed: int = 1, device="cpu") -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (the zero-initialised ones included), BN/LN affine and statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            scale = 1.2 / fan_in ** 0.5 if p.dim() > 1 else 0.3
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) * scale)
        for m in module.modules():
            if hasattr(m, "running_mean") and m.running_mean is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=torch.float64).to(m.weight) + 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=torch.float64) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=torch.float64) + 0.5)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=torch.float64).to(m.weight) + 0.5)
    return module


def prepare(module, *, train: bool = False, seed: int = 0, device="cpu"):
    return randomize_(module.double(), seed).to(device).train(train)


def close(actual, expected, what: str) -> None:
    assert_close(actual.detach().cpu(), expected, rtol=1e-9, atol=1e-10, msg=lambda m: f"{what}: {m}")


def conv_params(conv):
    if conv is None:
        return None
    return R.f64(conv.weight.reshape(conv.weight.shape[0], -1)), R.f64(conv.bias)


def bn_params(bn):
    if bn is None:
        return None
    return R.BN(R.f64(bn.weight), R.f64(bn.bias), R.f64(bn.running_mean), R.f64(bn.running_var), bn.eps)


def nl_params(m) -> R.NonLocalParams:
    return R.NonLocalParams(
        theta=conv_params(m.theta), phi=conv_params(m.phi), g=conv_params(m.g), w_z=conv_params(m.w_z),
        bn=bn_params(m.bn), pairwise=m.pairwise, sub_sample=m.sub_sample, pool_first=m.pool_first, scale=m.scale)


def gc_transform_params(t) -> R.GCTransform | None:
    if t is None:
        return None
    w1, b1 = conv_params(t[0])
    w2, b2 = conv_params(t[3])
    return R.GCTransform(w1, b1, R.f64(t[1].weight).flatten(), R.f64(t[1].bias).flatten(), t[1].eps, w2, b2)


NL_OPTIONS = [
    pytest.param(dict(pairwise=p, sub_sample=s, pool_first=f, batch_norm=bn, scale=sc),
                 id=f"{p}-sub{int(s)}{'-first' if f else ''}{'' if bn else '-nobn'}{'-scaled' if sc != 1 else ''}")
    for p in ("embedded_gaussian", "dot_product", "gaussian")
    for s, f in ((False, False), (True, False), (True, True))
    # the dot product takes no scale (issue 29: the official code scales only its softmax forms)
    for bn, sc in ((True, 1.0), (False, 1.0 if p == "dot_product" else 0.25))
]


# --------------------------------------------------------------------------------------------------
# Property checks (shared with test_mutants_more_are_caught.py)
# --------------------------------------------------------------------------------------------------


def check_nonlocal_formula(m, x, *, train: bool = False) -> None:
    p = nl_params(m)
    x64 = R.f64(x)
    att, _ = R.nonlocal_parts(x64, p)
    if not train:
        close(m.attention(x), att, f"NonLocalBlock({m.pairwise}) attention(x)")
    close(m(x), R.nonlocal_block(x64, p, train=train), f"NonLocalBlock({m.pairwise}) forward(x)")


def check_rows_sum_to_one(m, x) -> None:
    att = m.attention(x)
    assert_close(att.sum(-1), torch.ones_like(att.sum(-1)), msg=lambda s: f"each query's row must sum to 1: {s}")


def check_identity_at_init(m, x) -> None:
    """A freshly built block returns its input exactly, in training and in eval mode."""
    for train in (True, False):
        m.train(train)
        with torch.no_grad():
            y = m(x)
        assert torch.equal(y, x), (f"{type(m).__name__} at initialisation ({'train' if train else 'eval'}) is not "
                                   f"the identity: max |y - x| = {(y - x).abs().max().item():.3g}")


def check_pixel_permutation_equivariance(m, x) -> None:
    """Permuting the pixels of x permutes the output the same way (a function of the set of pixels)."""
    b, c, h, w = x.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(5))
    xp = x.reshape(b, c, h * w)[:, :, perm].reshape(b, c, h, w)
    y = m(x).reshape(b, c, h * w)[:, :, perm].reshape(b, c, h, w)
    assert_close(m(xp), y, rtol=1e-9, atol=1e-10, msg=lambda s: f"pixel permutation equivariance: {s}")


def check_fused_equals_literal(m, x) -> None:
    """fused=True gives the literal path's output and gradients (input and every parameter)."""
    grads = []
    out = []
    for fused in (False, True):
        m.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        y = m(xi, fused=fused)
        y.backward(torch.cos(torch.arange(y.numel(), dtype=y.dtype, device=y.device)).reshape(y.shape))
        out.append(y.detach())
        grads.append([xi.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in m.parameters()])
    assert_close(out[1], out[0], rtol=1e-9, atol=1e-10, msg=lambda s: f"fused vs literal forward: {s}")
    for i, (g_lit, g_fus) in enumerate(zip(*grads)):
        assert_close(g_fus, g_lit, rtol=1e-8, atol=1e-10, msg=lambda s: f"fused vs literal gradient #{i}: {s}")


def check_gradcheck(m, x) -> None:
    torch.autograd.gradcheck(m, (x.clone().requires_grad_(True),), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def check_every_parameter_gets_a_gradient(m, x) -> None:
    m.zero_grad(set_to_none=True)
    m(x).square().sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{type(m).__name__}: no gradient reaches {missing}"


def check_gc_formula(m, x) -> None:
    mask = conv_params(m.conv_mask)
    x64 = R.f64(x)
    close(m.attention(x)[:, 0].reshape(x.shape[0], -1), R.gc_alpha(x64, mask), "GlobalContextBlock attention(x)")
    expected = R.gc_block(x64, mask, gc_transform_params(m.channel_add_conv), gc_transform_params(m.channel_mul_conv))
    close(m(x), expected, f"GlobalContextBlock(fusion={m.fusion!r}) forward(x)")


def check_gc_alpha_sums_to_one(m, x) -> None:
    alpha = m.attention(x)
    assert alpha.shape == (x.shape[0], 1, *x.shape[2:]), alpha.shape
    assert (alpha > 0).all(), "pooling weights must be positive"
    assert_close(alpha.sum((1, 2, 3)), torch.ones(x.shape[0], dtype=x.dtype),
                 msg=lambda s: f"attention pooling weights must sum to 1 over the positions: {s}")


# --------------------------------------------------------------------------------------------------
# Non-local
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", NL_OPTIONS)
def test_nonlocal_matches_the_formula(options):
    m = prepare(NonLocalBlock(32, **options))
    check_nonlocal_formula(m, make_input())
    check_nonlocal_formula(m, make_input(seed=3))


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product"])
def test_nonlocal_matches_the_formula_with_batch_statistics(pairwise):
    m = prepare(NonLocalBlock(24, pairwise=pairwise, sub_sample=True), train=True)
    check_nonlocal_formula(m, make_input(ODD_SHAPE), train=True)


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian"])
def test_nonlocal_rows_sum_to_one(pairwise):
    for sub in (False, True):
        check_rows_sum_to_one(prepare(NonLocalBlock(32, pairwise=pairwise, sub_sample=sub)), make_input())


def test_nonlocal_subsampled_map_has_one_column_per_pooled_key():
    m = prepare(NonLocalBlock(32, pairwise="dot_product", sub_sample=True))
    x = make_input()
    att = m.attention(x)
    assert att.shape == (2, 35, 3 * 2), att.shape  # N = 7 * 5 queries, N' = 3 * 2 pooled keys


@pytest.mark.parametrize("options", NL_OPTIONS)
def test_nonlocal_shapes(options):
    m = NonLocalBlock(32, **options).double()
    x = make_input()
    n_keys = 6 if options["sub_sample"] else 35
    assert m.attention(x).shape == (2, 35, n_keys)
    assert m(x).shape == x.shape


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product", "gaussian"])
def test_nonlocal_is_the_identity_at_initialisation(pairwise, batch_norm):
    check_identity_at_init(NonLocalBlock(32, pairwise=pairwise, batch_norm=batch_norm, sub_sample=True).double(), make_input())


def test_nonlocal_bottleneck_is_half_the_channels_and_parameters_match_the_paper_count():
    m = NonLocalBlock(256)
    assert m.inter_channels == 128
    # theta, phi, g: 3 x (256 * 128 + 128); W_z: 128 * 256 + 256; BN: 2 * 256 (more-mechanisms.md: 132,224)
    assert sum(p.numel() for p in m.parameters()) == 132_224


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product", "gaussian"])
def test_nonlocal_is_equivariant_to_pixel_permutations(pairwise):
    check_pixel_permutation_equivariance(prepare(NonLocalBlock(32, pairwise=pairwise)), make_input())


@pytest.mark.parametrize("options", NL_OPTIONS)
def test_nonlocal_fused_equals_literal_forward_and_backward(options):
    check_fused_equals_literal(prepare(NonLocalBlock(32, **options), train=True), make_input())


def sdpa_kernels(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key} - {"aten::scaled_dot_product_attention"}


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian"])
def test_nonlocal_fused_takes_an_efficient_sdpa_kernel_on_cpu(pairwise):
    m = NonLocalBlock(32, pairwise=pairwise, sub_sample=True).eval()
    x = torch.randn(2, 32, 9, 7)
    with torch.no_grad():
        kernels = sdpa_kernels(lambda: m(x, fused=True))
    assert kernels and not any("math" in k for k in kernels), kernels


def largest_intermediate(fn) -> int:
    """The most elements any single operation outputs while ``fn`` runs (forward and backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    Record.largest = max(Record.largest, t.numel())
            return out

    with Record():
        fn()
    return Record.largest


@pytest.mark.parametrize("pairwise", ["dot_product", "embedded_gaussian"])
def test_nonlocal_fused_never_forms_the_map(pairwise):
    """Literal: some step holds the (B, N, N) map. Fused: no step is that large (B = 1, N = 900)."""
    m = NonLocalBlock(16, pairwise=pairwise).train()
    x = torch.randn(1, 16, 30, 30, requires_grad=True)
    n2 = 900 * 900
    assert largest_intermediate(lambda: m(x, fused=False).sum().backward()) >= n2  # the probe sees the map
    assert largest_intermediate(lambda: m(x, fused=True).sum().backward()) < n2 // 10


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product", "gaussian"])
def test_nonlocal_gradcheck(pairwise):
    m = prepare(NonLocalBlock(8, pairwise=pairwise, sub_sample=True), train=True)
    check_gradcheck(m, make_input((2, 8, 5, 4)))


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product"])
def test_nonlocal_every_parameter_gets_a_gradient(pairwise):
    check_every_parameter_gets_a_gradient(prepare(NonLocalBlock(32, pairwise=pairwise), train=True), make_input())


def test_nonlocal_follows_the_input_dtype():
    m = NonLocalBlock(32).float()
    assert m(torch.randn(SHAPE)).dtype == torch.float32


# --------------------------------------------------------------------------------------------------
# GCNet
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["add", "mul", "mul_add"])
@pytest.mark.parametrize("pooling", ["att", "avg"])
def test_gcnet_matches_the_formula(fusion, pooling):
    m = prepare(GlobalContextBlock(32, 4, fusion=fusion, pooling=pooling))
    check_gc_formula(m, make_input())


def test_gcnet_matches_the_formula_on_odd_sizes():
    m = prepare(GlobalContextBlock(24, 8, fusion="mul_add"))
    check_gc_formula(m, make_input(ODD_SHAPE, seed=2))


@pytest.mark.parametrize("pooling", ["att", "avg"])
def test_gcnet_pooling_weights_sum_to_one(pooling):
    check_gc_alpha_sums_to_one(prepare(GlobalContextBlock(32, pooling=pooling)), make_input())


def test_gcnet_add_is_exactly_the_identity_at_initialisation():
    check_identity_at_init(GlobalContextBlock(32).double(), make_input())


def test_gcnet_mul_starts_at_half_the_input():
    m = GlobalContextBlock(32, fusion="mul").double()
    x = make_input()
    assert torch.equal(m(x), x * 0.5)


def test_gcnet_context_is_the_alpha_weighted_sum_and_the_output_is_permutation_equivariant():
    m = prepare(GlobalContextBlock(32, 4, fusion="mul_add"))
    x = make_input()
    alpha = m.attention(x)
    assert_close(m.context(x), (x * alpha).sum((2, 3), keepdim=True))
    check_pixel_permutation_equivariance(m, x)


def test_gcnet_parameters_match_the_paper_r16_count():
    assert sum(p.numel() for p in GlobalContextBlock(256).parameters()) == 8_753  # more-mechanisms.md
    assert GlobalContextBlock(256).hidden_channels == 16


@pytest.mark.parametrize("fusion", ["add", "mul", "mul_add"])
def test_gcnet_gradcheck_and_every_parameter_gets_a_gradient(fusion):
    check_gradcheck(prepare(GlobalContextBlock(16, 4, fusion=fusion)), make_input((2, 16, 5, 4)))
    check_every_parameter_gets_a_gradient(prepare(GlobalContextBlock(32, 4, fusion=fusion)), make_input())


# --------------------------------------------------------------------------------------------------
# Registry, bad input, devices
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, cls", [("non_local", NonLocalBlock), ("gcnet", GlobalContextBlock)])
def test_registry_builds_the_paper_defaults(name, cls):
    m = ATTENTION[name](48)
    assert type(m) is cls
    assert m(torch.randn(2, 48, 7, 5)).shape == (2, 48, 7, 5)
    if name == "non_local":
        assert (m.pairwise, m.inter_channels, m.sub_sample, m.scale, m.bn is not None) == (
            "embedded_gaussian", 24, False, 1.0, True)
    else:
        assert (m.fusion, m.pooling, m.hidden_channels) == ("add", "att", 3)


BAD_INPUT = [
    (NonLocalBlock, (32,), torch.randn(2, 16, 7, 5), ValueError, r"NonLocalBlock\(channels=32\).*\(B, 32, H, W\).*16 channels"),
    (NonLocalBlock, (32,), torch.randn(32, 7, 5), ValueError, r"NonLocalBlock.*4-D.*3-D"),
    (NonLocalBlock, (32,), torch.zeros(2, 32, 7, 5, dtype=torch.long), TypeError, r"NonLocalBlock.*dtype torch.int64"),
    (NonLocalBlock, (32,), [[1.0]], TypeError, r"NonLocalBlock.*got \[\[1.0\]\] of type list"),
    (GlobalContextBlock, (32,), torch.randn(2, 48, 7, 5), ValueError, r"GlobalContextBlock\(channels=32\).*48 channels"),
    (GlobalContextBlock, (32,), torch.randn(2, 32, 0, 5), ValueError, r"GlobalContextBlock.*non-empty spatial size"),
]


@pytest.mark.parametrize("cls, args, x, error, message", BAD_INPUT)
def test_bad_input_gets_a_clear_error(cls, args, x, error, message):
    m = cls(*args)
    with pytest.raises(error, match=message):
        m(x)
    if hasattr(x, "dim"):
        with pytest.raises(error, match=message):
            m.attention(x)


def test_nonlocal_subsampling_needs_two_pixels_each_way():
    with pytest.raises(ValueError, match=r"NonLocalBlock\(channels=8\) with sub_sample=True.*H, W >= 2.*\(2, 8, 1, 5\)"):
        NonLocalBlock(8, sub_sample=True)(torch.randn(2, 8, 1, 5))


EPS_MESSAGE = r"GlobalContextBlock: eps \(the LayerNorm's epsilon\) must be a positive finite number; "

BAD_OPTIONS = [
    (lambda: NonLocalBlock(1), ValueError, r"NonLocalBlock: theta, phi and g would have channels // reduction = 1 // 2 = 0"),
    (lambda: NonLocalBlock(32, pairwise="concatenation"), ValueError, r"NonLocalBlock: pairwise must be one of 'embedded_gaussian'.*got 'concatenation'"),
    (lambda: NonLocalBlock(32, sub_sample=1), TypeError, r"NonLocalBlock: sub_sample must be True or False; got 1"),
    (lambda: NonLocalBlock(32, scale=0), ValueError, r"NonLocalBlock: scale must be a positive finite number; got 0"),
    (lambda: NonLocalBlock(32, inter_channels=0), ValueError, r"NonLocalBlock: inter_channels must be a positive int"),
    (lambda: NonLocalBlock(32.0), TypeError, r"NonLocalBlock: channels must be a positive int; got 32.0"),
    (lambda: NonLocalBlock(32)(torch.randn(2, 32, 3, 3), fused="yes"), TypeError, r"NonLocalBlock\(channels=32\): fused must be True or False"),
    (lambda: GlobalContextBlock(8), ValueError, r"GlobalContextBlock: the bottleneck transform would have channels // reduction = 8 // 16 = 0"),
    (lambda: GlobalContextBlock(32, fusion="concat"), ValueError, r"GlobalContextBlock: fusion must be one of 'add', 'mul', 'mul_add'; got 'concat'"),
    (lambda: GlobalContextBlock(32, pooling="max"), ValueError, r"GlobalContextBlock: pooling must be one of 'att', 'avg'; got 'max'"),
    (lambda: GlobalContextBlock(32, eps=-1.0), ValueError, EPS_MESSAGE + r"got -1.0"),
    (lambda: GlobalContextBlock(32, eps="1e-5"), TypeError, EPS_MESSAGE + r"got '1e-5' of type str"),
    # issue 29: the check was `not eps > 0`, which let infinity through (a LayerNorm that outputs its bias)
    (lambda: GlobalContextBlock(32, eps=float("inf")), ValueError, EPS_MESSAGE + r"got inf"),
    (lambda: GlobalContextBlock(32, eps=float("nan")), ValueError, EPS_MESSAGE + r"got nan"),
    (lambda: GlobalContextBlock(32, eps=10**400), ValueError, EPS_MESSAGE + r"got 1000"),
    (lambda: GlobalContextBlock(32, hidden_channels=0), ValueError, r"GlobalContextBlock: hidden_channels must be a positive int"),
    (lambda: GlobalContextBlock(32, hidden_channels=2.5), TypeError, r"GlobalContextBlock: hidden_channels must be a positive int"),
]


@pytest.mark.parametrize("build, error, message", BAD_OPTIONS)
def test_bad_options_get_a_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none found")
@pytest.mark.parametrize("build", [
    lambda: NonLocalBlock(32), lambda: NonLocalBlock(32, pairwise="dot_product", sub_sample=True),
    lambda: NonLocalBlock(32, pairwise="gaussian", sub_sample=True), lambda: GlobalContextBlock(32, 4, fusion="mul_add"),
])
def test_cuda_matches_cpu(build):
    cpu = prepare(build())
    gpu = prepare(build(), device="cuda")
    x = make_input()
    assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-9, atol=1e-10)
    if isinstance(cpu, NonLocalBlock):
        assert_close(gpu(x.cuda(), fused=True).cpu(), cpu(x), rtol=1e-9, atol=1e-10)
        check_fused_equals_literal(gpu.train(), x.cuda())
