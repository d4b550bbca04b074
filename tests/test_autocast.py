"""Mixed precision (issue 29): every reference module runs under ``torch.autocast`` and stays close to float32.

In an autocast region a module placed after a convolution receives a float16 or bfloat16 tensor while its
own weights stay float32. The modules accept that there (``_validate.autocast_covers``) and refuse the
same mismatch outside autocast, with the error that names the module and the fix.

Tolerance, one measure for every module: ``max |y_autocast - y_float32| / max |y_float32|``, the largest
deviation relative to the float32 output's largest magnitude, in eval mode, with non-trivial weights
(``reference_formulas.randomize_``), for two inputs: a low-precision one (what an autocast convolution
hands on; the float32 reference sees the same values in float32) and a float32 one (a first layer). The
float32 reference always runs on the CPU, outside autocast. The bounds below are about twice the worst of
12 seeds measured on the CPU (torch 2.13); the table in ``course_lib/reference/_validate.py`` lists the
measured values. GATE: the gates and pooling modules; POSITIONS: the modules with a softmax over
positions, a sampling grid or the multiplicative GC fusion, where bfloat16's 8-bit mantissa shows more.

On CUDA (marked ``cuda``, skipped without a GPU) float16 and bfloat16 are held to the same bounds; they
have not been run on a GPU yet (``make test-gpu`` runs them).
"""
from __future__ import annotations

import pytest
import torch

import reference_formulas as R
from course_lib.reference import (
    ATTENTION,
    cbam,
    coord_attention,
    ctdnet,
    danet,
    eca,
    gcnet,
    hacnn,
    nonlocal_block,
    se,
)
from course_lib.reference._validate import autocast_covers

C = 32
HAS_CUDA = torch.cuda.is_available()

#: bound on the relative deviation, per group and autocast dtype
BOUNDS = {
    "GATE": {torch.bfloat16: 0.02, torch.float16: 0.005},
    "POSITIONS": {torch.bfloat16: 0.1, torch.float16: 0.02},
}

#: name -> (factory, group); every class of course_lib/reference and the options that change the computation
CASES = {
    "se": (lambda: se.SqueezeExcitation(C, 4), "GATE"),
    "cbam_channel": (lambda: cbam.ChannelAttention(C, 4), "GATE"),
    "cbam_spatial": (lambda: cbam.SpatialAttention(), "GATE"),
    "cbam_paper": (lambda: cbam.CBAM(C, 4), "GATE"),
    "cbam_official": (lambda: cbam.CBAM(C, 4, variant="official"), "GATE"),
    "ctdnet_sam": (lambda: ctdnet.SpatialAttentionModule(C, 16), "GATE"),
    "hacnn_spatial": (lambda: hacnn.SpatialAttention(), "GATE"),
    "hacnn_channel": (lambda: hacnn.ChannelAttention(C), "GATE"),
    "hacnn_soft": (lambda: hacnn.SoftAttention(C), "GATE"),
    "hacnn_hard": (lambda: hacnn.HardAttention(C), "POSITIONS"),
    "danet_pam": (lambda: danet.PositionAttention(C), "POSITIONS"),
    "danet_pam_fused": (lambda: danet.PositionAttention(C, fused=True, query_block=16), "POSITIONS"),
    "danet_cam_paper": (lambda: danet.ChannelAttention(), "GATE"),
    "danet_cam_official": (lambda: danet.ChannelAttention(variant="official"), "GATE"),
    "danet_dual": (lambda: danet.DualAttention(C), "POSITIONS"),
    "danet_head": (lambda: danet.DualAttentionHead(C, 5), "GATE"),
    "nl_embedded": (lambda: nonlocal_block.NonLocalBlock(C), "POSITIONS"),
    "nl_embedded_fused": (lambda: nonlocal_block.NonLocalBlock(C, fused=True), "POSITIONS"),
    "nl_dot": (lambda: nonlocal_block.NonLocalBlock(C, pairwise="dot_product"), "GATE"),
    "nl_dot_fused": (lambda: nonlocal_block.NonLocalBlock(C, pairwise="dot_product", fused=True), "GATE"),
    "nl_gaussian_sub": (lambda: nonlocal_block.NonLocalBlock(C, pairwise="gaussian", sub_sample=True), "POSITIONS"),
    "nl_gaussian_fused": (lambda: nonlocal_block.NonLocalBlock(C, pairwise="gaussian", fused=True), "GATE"),
    "gc_add": (lambda: gcnet.GlobalContextBlock(C), "GATE"),
    "gc_mul_add": (lambda: gcnet.GlobalContextBlock(C, 8, fusion="mul_add"), "POSITIONS"),
    "gc_avg_mul": (lambda: gcnet.GlobalContextBlock(C, pooling="avg", fusion="mul"), "GATE"),
    "eca": (lambda: eca.EfficientChannelAttention(C), "GATE"),
    "eca_k5": (lambda: eca.EfficientChannelAttention(C, 5), "GATE"),
    "coord_attention": (lambda: coord_attention.CoordinateAttention(C), "GATE"),
}
#: B > 1, H != W, and a map whose HA-CNN crop is one row high (H = 5, R = 4)
SHAPES = [(2, C, 9, 7), (3, C, 12, 10), (1, C, 5, 16)]
CPU_DTYPES = [pytest.param(torch.bfloat16, id="bfloat16"), pytest.param(torch.float16, id="float16")]


def build(name: str, seed: int, *, device="cpu", train: bool = False) -> torch.nn.Module:
    return R.randomize_(CASES[name][0](), seed).to(device).train(train)


def relative_deviation(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected| / max |expected| (got moved to the CPU in float32)."""
    return ((got.detach().float().cpu() - expected).abs().max() / expected.abs().max()).item()


def measure(name: str, dtype: torch.dtype, seeds, *, device: str = "cpu") -> float:
    """The worst relative deviation of the module's autocast output from its float32 output (eval mode)."""
    worst = 0.0
    for seed in seeds:
        reference = build(name, seed).eval()
        module = build(name, seed, device=device).eval()
        x = torch.randn(SHAPES[seed % len(SHAPES)], generator=torch.Generator().manual_seed(100 + seed))
        low = x.to(dtype)  # what an autocast convolution hands on
        with torch.no_grad():
            expected_low, expected = reference(low.float()), reference(x)
            with torch.autocast(device, dtype=dtype):
                got_low, got = module(low.to(device)), module(x.to(device))
        for out, ref in ((got_low, expected_low), (got, expected)):
            assert torch.isfinite(out).all(), f"{name} under {device} autocast ({dtype}): non-finite output"
            worst = max(worst, relative_deviation(out, ref))
    return worst


def check_close(name: str, dtype: torch.dtype, device: str) -> None:
    bound = BOUNDS[CASES[name][1]][dtype]
    worst = measure(name, dtype, range(3), device=device)
    assert worst <= bound, (
        f"{name} under {device} autocast ({dtype}): output deviates from float32 by {worst:.4f} of its largest "
        f"magnitude, above the documented bound {bound}")


def check_training_step(name: str, dtype: torch.dtype, device: str) -> None:
    """Train mode under autocast: forward, backward; finite gradients in the parameters' own dtype."""
    module = build(name, 0, device=device, train=True)
    x = torch.randn(SHAPES[0], generator=torch.Generator().manual_seed(3)).to(device=device, dtype=dtype)
    x.requires_grad_(True)
    with torch.autocast(device, dtype=dtype):
        out = module(x)
    out.float().square().mean().backward()
    assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all(), name
    with_grad = [(n, p) for n, p in module.named_parameters() if p.grad is not None]
    assert with_grad or not list(module.parameters()), f"{name}: no parameter got a gradient"
    for n, p in with_grad:
        assert p.grad.dtype == p.dtype == torch.float32, f"{name}.{n}: gradient {p.grad.dtype}, weight {p.dtype}"
        assert torch.isfinite(p.grad).all(), f"{name}.{n}: non-finite gradient"
    for n, buffer in module.named_buffers():
        if buffer.is_floating_point():
            assert buffer.dtype == torch.float32 and torch.isfinite(buffer).all(), f"{name}: buffer {n}"


# --------------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", CPU_DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_autocast_output_is_close_to_float32_on_cpu(name, dtype):
    check_close(name, dtype, "cpu")


@pytest.mark.parametrize("name", list(CASES))
def test_a_training_step_under_cpu_autocast(name):
    check_training_step(name, torch.bfloat16, "cpu")


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_every_registry_module_runs_under_cpu_autocast_after_a_convolution(name):
    """The case of issue 29: conv -> attention module inside ``torch.autocast("cpu")``."""
    torch.manual_seed(0)
    stem, module = torch.nn.Conv2d(3, C, 3, padding=1), ATTENTION[name](C).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = stem(torch.randn(2, 3, 9, 7))
        assert features.dtype == torch.bfloat16
        out = module(features)
    assert out.shape == features.shape and torch.isfinite(out).all(), name


# --------------------------------------------------------------------------------------------------
# The clear error stays where autocast does not cast
# --------------------------------------------------------------------------------------------------

WEIGHTED = ["se", "cbam_paper", "ctdnet_sam", "hacnn_soft", "hacnn_hard", "danet_pam", "nl_embedded", "gc_add",
            "eca", "coord_attention"]


@pytest.mark.parametrize("name", WEIGHTED)
def test_a_half_input_outside_autocast_is_still_refused_with_a_named_error(name):
    module = build(name, 0).eval()
    x = torch.randn(SHAPES[0]).to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"torch\.float32 weights but got an input of dtype torch\.bfloat16.*"
                                        r"torch\.autocast") as info:
        module(x)
    assert type(module).__name__ in str(info.value)


@pytest.mark.parametrize("name", ["se", "danet_pam", "gc_add"])
def test_float64_is_refused_inside_autocast_too(name):
    """autocast never casts float64: a float64 input to a float32 module fails inside the convolutions."""
    module = build(name, 0).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError, match=r"torch\.float64"):
        module(torch.randn(SHAPES[0], dtype=torch.float64))


def test_autocast_covers_names_only_an_enabled_device_and_the_dtypes_it_casts():
    assert not autocast_covers("cpu", torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_covers("cpu", torch.bfloat16, torch.float32)
        assert autocast_covers("cpu", torch.float16, torch.float32)
        assert not autocast_covers("cpu", torch.float64, torch.float32)
        assert not autocast_covers("meta", torch.bfloat16)  # a device type autocast does not know
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert not autocast_covers("cpu", torch.bfloat16)


def test_autocast_covers_an_older_torch_without_the_device_type_argument(monkeypatch):
    """Before ``torch.is_autocast_enabled(device_type)``, the CPU had ``is_autocast_cpu_enabled()`` and the
    argument-free ``is_autocast_enabled()`` meant CUDA."""
    def old_is_autocast_enabled(*args):
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments but 1 was given")
        return False  # CUDA autocast off

    monkeypatch.setattr(torch, "is_autocast_enabled", old_is_autocast_enabled)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: True)
    assert autocast_covers("cpu", torch.bfloat16, torch.float32)
    assert not autocast_covers("cuda", torch.float16)
    assert not autocast_covers("mps", torch.float16)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: False)
    assert not autocast_covers("cpu", torch.bfloat16)


def test_hard_attention_takes_a_source_of_another_half_dtype_under_autocast_only():
    module = build("hacnn_hard", 0).eval()
    x, source = torch.randn(2, C, 6, 4), torch.randn(2, 5, 12, 8).to(torch.bfloat16)
    with pytest.raises(ValueError, match="same batch size, dtype and device"):
        module(x, source=source)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops = module(x, source=source)
    assert crops.shape == (2, 4, 5, 3, 8) and torch.isfinite(crops).all()


# --------------------------------------------------------------------------------------------------
# What running under autocast uncovered
# --------------------------------------------------------------------------------------------------


def test_cam_energy_does_not_overflow_in_float16():
    """CAM's energy sums over all N positions: 3 * N(0, 1) features on a 96 x 96 map give about 83 000,
    beyond float16's 65 504. Under autocast it is computed in float32 (the module did not overflow-guard
    it before: inf energies, NaN output)."""
    module = danet.ChannelAttention()
    torch.nn.init.constant_(module.gamma, 0.5)
    x = 3 * torch.randn(1, 8, 96, 96, generator=torch.Generator().manual_seed(0))
    expected = module(x)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        got = module(x.to(torch.float16))
    assert torch.isfinite(got).all(), "CAM under float16 autocast: non-finite output"
    assert relative_deviation(got, expected) <= BOUNDS["GATE"][torch.float16]


@pytest.mark.parametrize("how", ["autocast_backward", "bfloat16_module"])
def test_hard_attention_with_one_row_crops_in_bfloat16(how):
    """affine_grid's bfloat16 CPU kernel fails for a side of length 1 (forward of a bfloat16 module,
    backward under autocast); the grid is now built in float32 outside autocast."""
    module = build("hacnn_hard", 0, train=True)
    x = torch.randn(2, C, 5, 16, requires_grad=True)  # crop height round(5 / 4) = 1
    if how == "bfloat16_module":
        crops = module.to(torch.bfloat16)(x.detach().to(torch.bfloat16))
        assert crops.dtype == torch.bfloat16 and crops.shape == (2, 4, C, 1, 16)
        return
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops = module(x)
    crops.float().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(module.fc.weight.grad).all()


# --------------------------------------------------------------------------------------------------
# CUDA (not run yet: no GPU so far; `make test-gpu` runs these)
# --------------------------------------------------------------------------------------------------

CUDA_DTYPES = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]


@pytest.mark.parametrize("dtype", CUDA_DTYPES)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device; none found")
def test_autocast_output_is_close_to_float32_on_cuda(name, dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    check_close(name, dtype, "cuda")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device; none found")
def test_a_training_step_under_cuda_autocast(name):
    check_training_step(name, torch.float16, "cuda")
