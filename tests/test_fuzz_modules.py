"""Bad input, fuzzed: every reference module, random constructor arguments and random inputs.

Hypothesis draws a module (any class of se, cbam, ctdnet, hacnn, danet) with constructor arguments
that are often wrong (zero, negative, float, bool, str, None, too few channels for the reduction), a
module dtype and train/eval mode, then an input: a tensor of random rank (0-5), shape (zeros, ones,
odd, H != W; the channel count right or wrong), dtype (float32/64, float16, int64, bool, complex64)
or a non-tensor, sent to ``forward`` or ``attention`` with random keyword options. Each call must
either return tensors of the right shape and of the input's dtype, or raise ValueError/TypeError
whose message names the module and says what came ("got ..."). Any other exception (a raw PyTorch
RuntimeError, IndexError, ...) fails the test.

Profiles: ``ci`` (default) is derandomized (the same cases on every run, so CI is reproducible) with
1500 examples; ``COURSE_FUZZ_PROFILE=deep`` draws 10000 random ones. ``pytest --hypothesis-show-statistics``
prints how many cases ran.
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from course_lib.reference import cbam, coord_attention, ctdnet, danet, eca, gcnet, hacnn, nonlocal_block, se

settings.register_profile("ci", max_examples=1500, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=10000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = settings.get_profile(os.environ.get("COURSE_FUZZ_PROFILE", "ci"))



def mostly(valid, wrong):
    """Valid values four times in five, so that most cases reach the forward pass."""
    return st.one_of(valid, valid, valid, valid, wrong)


# values a user might pass for an int argument: mostly valid ones, sometimes wrong
counts = mostly(st.one_of(st.sampled_from([16, 32, 48]), st.integers(1, 40)),
                st.one_of(st.integers(-2, 0), st.sampled_from([2.0, True, "8", None])))
small_counts = mostly(st.integers(1, 8), st.one_of(st.integers(-1, 0), st.sampled_from([1.5, False, None])))
flags = mostly(st.booleans(), st.sampled_from([0, 1, "yes", None]))


#: name -> (class, strategy for positional args, strategy for keyword args)
MODULES = {
    "se": (se.SqueezeExcitation, st.tuples(counts), st.fixed_dictionaries({}, optional={"reduction": small_counts})),
    "cbam_channel": (cbam.ChannelAttention, st.tuples(counts),
                     st.fixed_dictionaries({}, optional={"reduction": small_counts, "mlp_bias": flags})),
    "cbam_spatial": (cbam.SpatialAttention, st.tuples(), st.fixed_dictionaries({}, optional={
        "kernel_size": mostly(st.sampled_from([1, 3, 7]), small_counts),
        "pool_order": mostly(st.sampled_from(["avg_max", "max_avg"]), st.sampled_from(["mean_max", 1])),
        "batch_norm": flags,
        "bn_momentum": mostly(st.floats(0, 1), st.one_of(st.floats(-0.5, 1.5), st.sampled_from([float("nan"), "0.1"])))})),
    "cbam": (cbam.CBAM, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts, "kernel_size": mostly(st.sampled_from([3, 7]), st.sampled_from([4, 0])),
        "variant": mostly(st.sampled_from(["paper", "official"]), st.just("timm")), "batch_norm": flags,
        "mlp_bias": flags, "pool_order": st.sampled_from(["avg_max", "max_avg", None])})),
    "ctdnet_sam": (ctdnet.SpatialAttentionModule, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "out_channels": counts})),
    "hacnn_spatial": (hacnn.SpatialAttention, st.tuples(), st.just({})),
    "hacnn_channel": (hacnn.ChannelAttention, st.tuples(counts),
                      st.fixed_dictionaries({}, optional={"reduction": small_counts})),
    "hacnn_soft": (hacnn.SoftAttention, st.tuples(st.one_of(st.sampled_from([16, 32]), counts)), st.just({})),
    "hacnn_hard": (hacnn.HardAttention, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "num_regions": small_counts,
        "resample": mostly(st.sampled_from(["direct", "torchreid"]), st.just("nearest"))})),
    "danet_pam": (danet.PositionAttention, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts, "fused": flags, "query_block": st.one_of(st.integers(1, 40), small_counts)})),
    "danet_cam": (danet.ChannelAttention, st.one_of(st.tuples(), st.tuples(counts)),
                  st.fixed_dictionaries({}, optional={"variant": mostly(st.sampled_from(["paper", "official"]),
                                                                                 st.just("Paper"))})),
    "danet_dual": (danet.DualAttention, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts, "cam_variant": mostly(st.sampled_from(["paper", "official"]), st.just(0)),
        "fused": flags})),
    "danet_head": (danet.DualAttentionHead, st.tuples(st.one_of(st.sampled_from([32, 36]), counts), counts),
                   st.fixed_dictionaries({}, optional={"cam_variant": st.sampled_from(["paper", "official"]),
                                                       "fused": flags})),
    "non_local": (nonlocal_block.NonLocalBlock, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts,
        "pairwise": mostly(st.sampled_from(["embedded_gaussian", "dot_product", "gaussian"]), st.just("concat")),
        "inter_channels": st.one_of(st.none(), small_counts), "sub_sample": flags, "pool_first": flags,
        "batch_norm": flags, "scale": mostly(st.floats(0.01, 2), st.sampled_from([0.0, -1.0, float("nan"), "1"])),
        "fused": flags})),
    "gcnet": (gcnet.GlobalContextBlock, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts, "fusion": mostly(st.sampled_from(["add", "mul", "mul_add"]), st.just("cat")),
        "pooling": mostly(st.sampled_from(["att", "avg"]), st.just("max")),
        "eps": mostly(st.floats(1e-8, 1e-3), st.sampled_from([0.0, -1e-5, "1e-5"]))})),
    "eca": (eca.EfficientChannelAttention, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "kernel_size": st.one_of(st.none(), mostly(st.sampled_from([1, 3, 5]), st.sampled_from([2, 0, -3, 3.0]))),
        "gamma": mostly(st.floats(0.5, 4), st.sampled_from([0, -2, "2"])),
        "b": mostly(st.floats(-2, 2), st.sampled_from([float("nan"), "1"]))})),
    "coord_attention": (coord_attention.CoordinateAttention, st.tuples(counts), st.fixed_dictionaries({}, optional={
        "reduction": small_counts, "min_hidden": small_counts,
        "hidden_channels": st.one_of(st.none(), small_counts), "bias": flags})),
}

#: name -> (positional args, keyword strategies) that a constructor accepts: half of the cases use these,
#: so that most of them reach the forward pass with a working module
channels16 = st.sampled_from([16, 32, 48])
VALID = {
    "se": (st.tuples(channels16), st.fixed_dictionaries({}, optional={"reduction": st.sampled_from([4, 16])})),
    "cbam_channel": (st.tuples(channels16), st.fixed_dictionaries({}, optional={"mlp_bias": st.booleans()})),
    "cbam_spatial": (st.tuples(), st.fixed_dictionaries({}, optional={
        "kernel_size": st.sampled_from([1, 3, 7]), "pool_order": st.sampled_from(["avg_max", "max_avg"]),
        "batch_norm": st.booleans(), "bn_momentum": st.sampled_from([0.01, 0.1])})),
    "cbam": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "variant": st.sampled_from(["paper", "official"]), "batch_norm": st.booleans(), "kernel_size": st.just(3)})),
    "ctdnet_sam": (st.tuples(st.integers(1, 12)), st.fixed_dictionaries({}, optional={"out_channels": st.integers(1, 9)})),
    "hacnn_spatial": (st.tuples(), st.just({})),
    "hacnn_channel": (st.tuples(channels16), st.just({})),
    "hacnn_soft": (st.tuples(channels16), st.just({})),
    "hacnn_hard": (st.tuples(st.integers(1, 12)), st.fixed_dictionaries({}, optional={
        "num_regions": st.integers(1, 5), "resample": st.sampled_from(["direct", "torchreid"])})),
    "danet_pam": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "fused": st.booleans(), "query_block": st.integers(1, 7)})),
    "danet_cam": (st.one_of(st.tuples(), st.tuples(channels16)),
                  st.fixed_dictionaries({}, optional={"variant": st.sampled_from(["paper", "official"])})),
    "danet_dual": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "cam_variant": st.sampled_from(["paper", "official"]), "fused": st.booleans()})),
    "danet_head": (st.tuples(st.sampled_from([32, 48]), st.integers(1, 4)), st.fixed_dictionaries({}, optional={
        "cam_variant": st.sampled_from(["paper", "official"]), "fused": st.booleans()})),
    "non_local": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "pairwise": st.sampled_from(["embedded_gaussian", "dot_product", "gaussian"]), "sub_sample": st.booleans(),
        "pool_first": st.booleans(), "batch_norm": st.booleans(), "fused": st.booleans()})),
    "gcnet": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "fusion": st.sampled_from(["add", "mul", "mul_add"]), "pooling": st.sampled_from(["att", "avg"])})),
    "eca": (st.tuples(channels16), st.fixed_dictionaries({}, optional={"kernel_size": st.sampled_from([None, 3, 5])})),
    "coord_attention": (st.tuples(channels16), st.fixed_dictionaries({}, optional={
        "hidden_channels": st.sampled_from([None, 4]), "bias": st.booleans()})),
}

DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64]


def channels_of(m: torch.nn.Module) -> int | None:
    """The channel count a module checks its input against (None: any)."""
    for attr in ("channels", "in_channels"):
        if isinstance(getattr(m, attr, None), int):
            return getattr(m, attr)
    return None


def expected_shapes(m: torch.nn.Module, x: torch.Tensor, method: str, kwargs: dict):
    """The shape(s) a correct result has for a valid 4-D input (a tuple of shapes for tuple results)."""
    b, c, h, w = x.shape
    n = h * w
    if isinstance(m, se.SqueezeExcitation) or isinstance(m, cbam.ChannelAttention):
        return (b, c, 1, 1) if method == "attention" else (b, c, h, w)
    if isinstance(m, cbam.CBAM):
        return ((b, c, 1, 1), (b, 1, h, w)) if method == "attention" else (b, c, h, w)
    if isinstance(m, cbam.SpatialAttention):
        return (b, 1, h, w) if method == "attention" else (b, c, h, w)
    if isinstance(m, ctdnet.SpatialAttentionModule):
        return (b, 1, h, w) if method == "attention" else (b, m.out_channels, h, w)
    if isinstance(m, hacnn.SpatialAttention):
        return (b, 1, h, w)
    if isinstance(m, hacnn.ChannelAttention):
        return (b, c, 1, 1)
    if isinstance(m, hacnn.SoftAttention):
        return (b, c, h, w)
    if isinstance(m, hacnn.HardAttention):
        r = m.num_regions
        if method == "attention":
            return (b, r, 2)
        source = kwargs.get("source", x)
        crop = kwargs.get("crop_size")
        crop = (max(1, round(source.shape[2] / r)), source.shape[3]) if crop is None else crop
        crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
        return (b, r, source.shape[1], *crop)
    if isinstance(m, danet.PositionAttention):
        return (b, n, n) if method == "attention" else (b, c, h, w)
    if isinstance(m, danet.ChannelAttention):
        return (b, c, c) if method == "attention" else (b, c, h, w)
    if isinstance(m, danet.DualAttention):
        return ((b, n, n), (b, c, c)) if method == "attention" else (b, c, h, w)
    if isinstance(m, danet.DualAttentionHead):
        if method == "attention":
            return ((b, n, n), (b, m.inter_channels, m.inter_channels))
        logits = (b, m.num_classes, h, w)
        return (logits, logits, logits) if kwargs.get("return_branches") is True else logits
    if isinstance(m, nonlocal_block.NonLocalBlock):
        keys = (h // 2) * (w // 2) if m.sub_sample else n
        return (b, n, keys) if method == "attention" else (b, c, h, w)
    if isinstance(m, gcnet.GlobalContextBlock):
        return (b, 1, h, w) if method == "attention" else (b, c, h, w)
    if isinstance(m, eca.EfficientChannelAttention):
        return (b, c, 1, 1) if method == "attention" else (b, c, h, w)
    if isinstance(m, coord_attention.CoordinateAttention):
        return (b, c, h, w)
    raise AssertionError(f"no expected shape for {type(m).__name__}")


@st.composite
def calls(draw):
    """(module name, constructor args, kwargs, module dtype, training, input, method, call kwargs)."""
    name = draw(st.sampled_from(sorted(MODULES)))
    cls, args_strategy, kwargs_strategy = MODULES[name]
    if draw(st.booleans()):  # arguments drawn from anything a user might pass
        args, kwargs = draw(args_strategy), draw(kwargs_strategy)
    else:  # arguments the constructor accepts, so that the input gets fuzzed
        args, kwargs = draw(VALID[name][0]), draw(VALID[name][1])
    module_dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    training = draw(st.booleans())
    # the input: usually a tensor whose channel dim is right, sometimes anything
    if draw(st.integers(0, 19)) == 0:
        x = draw(st.sampled_from([None, 3.0, [[1.0, 2.0]], "x"]))
    else:
        rank = draw(st.sampled_from([4] * 15 + [0, 1, 2, 3, 5]))
        shape = [draw(st.sampled_from([0, 1, 1, 2, 3, 5, 6])) for _ in range(rank)]
        if rank >= 2 and draw(st.integers(0, 7)) > 0 and args and isinstance(args[0], int) and 0 < args[0] <= 48:
            shape[1] = args[0]
        if rank >= 1 and shape[0] == 0 and draw(st.booleans()):
            shape[0] = 2
        dtype = draw(st.sampled_from(["module's"] * 12 + DTYPES))
        dtype = module_dtype if dtype == "module's" else dtype
        x = torch.randn(shape).to(dtype) if dtype.is_floating_point or dtype.is_complex else torch.ones(shape, dtype=dtype)
    method = draw(st.sampled_from(["forward", "attention"]))
    call_kwargs = {}
    if method == "forward" and cls is hacnn.HardAttention:
        call_kwargs = draw(st.fixed_dictionaries({}, optional={
            "crop_size": st.one_of(st.integers(-1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)),
                                   st.just((2, 0)), st.just(2.5)),
            "source": st.sampled_from(["same_batch", "other_batch", "other_dtype", "not_a_tensor"])}))
        if "source" in call_kwargs and isinstance(x, torch.Tensor) and x.dim() >= 1:
            kind = call_kwargs["source"]
            b = x.shape[0] + (kind == "other_batch")
            call_kwargs["source"] = ([1.0] if kind == "not_a_tensor" else
                                     torch.randn(b, 3, 7, 5, dtype=torch.float16 if kind == "other_dtype" else
                                                 (x.dtype if x.is_floating_point() else torch.float32)))
        elif "source" in call_kwargs:
            call_kwargs["source"] = torch.randn(2, 3, 7, 5)
    if method == "forward" and cls is danet.PositionAttention:
        call_kwargs = draw(st.fixed_dictionaries({}, optional={"fused": flags}))
    if method == "forward" and cls is danet.DualAttentionHead:
        call_kwargs = draw(st.fixed_dictionaries({}, optional={"return_branches": flags}))
    return name, args, kwargs, module_dtype, training, x, method, call_kwargs


def is_named_error(err: Exception, owner: str) -> bool:
    return isinstance(err, (ValueError, TypeError)) and owner in str(err) and "got" in str(err)


@PROFILE
@given(calls())
def test_every_module_returns_the_right_shape_and_dtype_or_a_named_error(case):
    name, args, kwargs, module_dtype, training, x, method, call_kwargs = case
    cls = MODULES[name][0]
    try:
        m = cls(*args, **kwargs)
    except (ValueError, TypeError) as err:
        assert is_named_error(err, cls.__name__), f"{cls.__name__}{args, kwargs}: unnamed error {err!r}"
        event("refused by the constructor")
        return
    m = m.to(module_dtype).train(training)
    try:
        with torch.no_grad():
            result = getattr(m, method)(x, **call_kwargs)
    except (ValueError, TypeError) as err:
        assert is_named_error(err, cls.__name__), f"{m!r}.{method}: the error does not name the module: {err!r}"
        event(f"input refused with a {type(err).__name__}")
        return
    except Exception as err:  # noqa: BLE001 - the failure this test exists to find
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, torch.Tensor) else None
        pytest.fail(f"{cls.__name__}{args, kwargs} ({module_dtype}, training={training}).{method}(x of {shape}, "
                    f"{dtype}, {call_kwargs}) raised a raw {type(err).__name__}: {err}")
    # no error: x was a valid input, and the result must have the right shape and x's dtype
    assert isinstance(x, torch.Tensor) and x.dim() == 4
    expected = expected_shapes(m, x, method, call_kwargs)
    results = result if isinstance(result, tuple) else (result,)
    shapes = expected if isinstance(expected[0], tuple) else (expected,)
    assert tuple(tuple(r.shape) for r in results) == tuple(shapes), f"{m!r}.{method}: shapes"
    assert all(r.dtype == x.dtype for r in results), f"{m!r}.{method}: dtypes {[r.dtype for r in results]} vs {x.dtype}"
    event(f"result checked ({'empty batch' if x.shape[0] == 0 else 'non-empty'})")
    event(f"result checked: {name}")
