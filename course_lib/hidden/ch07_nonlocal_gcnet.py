"""Hidden checks of chapter 07 (non-local block, GCNet) and the builder of its stored expected values.

At grading time the student's modules get the reference modules' weights (by the notebook's names; for the
non-local block they are the reference's own names, for the GC block the reference's official names are
renamed to the paper's) with the zero-initialised layers made nonzero, and must match the references on random
shapes, in float32 and float64, with channels_last inputs, with the same gradients; results follow the input's
dtype and device. ``build_expected()`` makes the values the visible checks compare against, and the results
that known mistakes give. ``ANSWERS`` holds the plain answers of the chapter's questions.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange

from course_lib.checks.toolkit import CheckFailure, build, exercise, expect_close, expect_rows_sum_to_one, \
    float32_exact, passed, seeded_picker, seeded_randn
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.ch07_nonlocal_gcnet import (
    ADVICE,
    OVERFLOW,
    SCALE_ADVICE,
    GC_IDENTITY_ADVICE,
    NL_IDENTITY_ADVICE,
    MAP_ADVICE,
    _call,
    _expect_identity,
    check_gc_structure,
    check_nl_structure,
    gc_names,
    load_gc_weights,
    load_nl_weights,
)
from course_lib.hidden.toolkit import Result, expect_training_step, normalisation_variants, probe_loss, \
    reference_backward, sweep
from course_lib.reference.gcnet import GlobalContextBlock as ReferenceGC
from course_lib.reference.nonlocal_block import NonLocalBlock as ReferenceNL

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    # theta, phi, g: 3 (C C' + C'); W_z: C' C + C; BN: scale and shift, 2 C  (C = 256, C' = 128)
    "q_nl_params": ("int", 3 * (256 * 128 + 128) + (128 * 256 + 256) + 2 * 256, {}),
    # (2 N^2 C') / (N C) with N = 56 * 56, C' = 128, C = 256
    "q_cost_ratio": ("int", 2 * (56 * 56) ** 2 * 128 // (56 * 56 * 256), {}),
    # N x N' float32 entries, N = 56^2, N' = 28^2, in MiB
    "q_map_mib": ("float", 56 * 56 * 28 * 28 * 4 / 2**20, {"digits": 3}),
    # only the BN's scale (d) and shift (e) get a gradient while the scale is 0
    "q_zero_init_grads": ("choices", "de", {"options": "abcde"}),
    # the standard deviation of a dot product of two 512-vectors with iid N(0, 1) entries
    "q_logit_std": ("float", math.sqrt(512), {"digits": 3}),
    # W_z zero under a default BN: the identity in both modes (a), and W_z's weight gets a gradient amplified by
    # 1 / sqrt(eps) (c); the BN scale's gradient is 0 (the normalised input is 0), W_z's bias's too (mean removed)
    "q_wz_trap": ("choices", "ac", {"options": "abcde"}),
}
define_hidden_question_checks(globals(), ANSWERS)


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Float32-exact random weights of a useful size (weights ~ 1 / sqrt(fan-in)); BN statistics positive."""
    with torch.no_grad():
        for i, (name, p) in enumerate(module.named_parameters()):
            scale = 1.0 / math.sqrt(p[0].numel()) if p.dim() > 1 else 0.3
            value = seeded_randn(*p.shape, seed=seed + i) * scale
            if name.endswith("norm.weight") or name.endswith("1.weight") or name == "bn.weight":
                value = 1.0 + 0.3 * seeded_randn(*p.shape, seed=seed + i)  # a norm's scale, around 1
            p.copy_(float32_exact(value))
        bn = getattr(module, "bn", None)
        if bn is not None:
            c = bn.num_features
            bn.running_mean.copy_(float32_exact(0.2 * seeded_randn(c, seed=seed + 90)))
            bn.running_var.copy_(float32_exact(0.5 + seeded_randn(c, seed=seed + 91).abs()))
    return module.eval()


def reference_nl(channels: int, reduction: int, seed: int) -> ReferenceNL:
    return _randomise(ReferenceNL(channels, reduction).double(), seed)


def reference_gc(channels: int, reduction: int, seed: int) -> ReferenceGC:
    return _randomise(ReferenceGC(channels, reduction).double(), seed)


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


# --------------------------------------------------------------------------------------------
# what the known mistakes compute
# --------------------------------------------------------------------------------------------
def _nl_qkv(ref: ReferenceNL, x: torch.Tensor):
    t = lambda z: rearrange(z, "b c h w -> b (h w) c")  # noqa: E731
    return t(ref.theta(x)), t(ref.phi(x)), t(ref.g(x))


def nl_map_mistakes(q: torch.Tensor, k: torch.Tensor, channels: int) -> dict[str, torch.Tensor]:
    """q, k (B, N, C') -> the (B, N, N) maps of the known mistakes."""
    f = q @ k.transpose(1, 2)
    b, n, _ = f.shape
    return {"softmax_dim1": f.softmax(dim=1),
            "softmax_all": f.reshape(b, n * n).softmax(-1).reshape(b, n, n),
            "scaled": (f / math.sqrt(q.shape[-1])).softmax(-1),
            "scaled_c": (f / math.sqrt(channels)).softmax(-1),
            "qk_swapped": f.transpose(1, 2).softmax(-1),
            "dot_product": f / n,
            "no_softmax": f}


def nl_forward_mistakes(ref: ReferenceNL, x: torch.Tensor) -> dict[str, torch.Tensor]:
    h, w = x.shape[-2:]
    q, k, v = _nl_qkv(ref, x)
    right = (q @ k.transpose(1, 2)).softmax(-1)
    back = lambda y: rearrange(y, "b (h w) c -> b c h w", h=h, w=w)  # noqa: E731

    def tail(y):
        return ref.bn(ref.w_z(back(y))) + x

    found = {label: tail(a @ v) for label, a in nl_map_mistakes(q, k, x.shape[1]).items()
             if label in ("softmax_dim1", "scaled", "scaled_c", "dot_product", "qk_swapped")}
    found["map_transposed"] = tail(right.transpose(1, 2) @ v)
    found["reshape_no_transpose"] = ref.bn(ref.w_z((right @ v).reshape(x.shape[0], -1, h, w))) + x
    found["missing_residual"] = ref(x) - x
    found["no_bn"] = ref.w_z(back(right @ v)) + x
    return found


def _gc_logits(ref: ReferenceGC, x: torch.Tensor) -> torch.Tensor:
    return ref.conv_mask(x)  # (B, 1, H, W)


def gc_alpha_mistakes(ref: ReferenceGC, x: torch.Tensor) -> dict[str, torch.Tensor]:
    logits = _gc_logits(ref, x)
    return {"alpha_softmax_w": logits.softmax(-1), "alpha_softmax_h": logits.softmax(-2),
            "alpha_softmax_batch": logits.softmax(0)}


def gc_context_mistakes(ref: ReferenceGC, x: torch.Tensor) -> dict[str, torch.Tensor]:
    weights = _gc_logits(ref, x).exp()
    return {"context_avg": x.mean((2, 3), keepdim=True),
            "context_unnormalised": (x * weights).sum((2, 3), keepdim=True)}


def gc_forward_mistakes(ref: ReferenceGC, x: torch.Tensor) -> dict[str, torch.Tensor]:
    conv1, norm, _, conv2 = ref.channel_add_conv
    c = ref.context(x)
    t = ref.channel_add_conv(c)
    return {"fuse_mul": x * torch.sigmoid(t),
            "fuse_mul_add": x * torch.sigmoid(t) + t,
            "gc_missing_residual": t.expand_as(x),
            "gc_no_norm": x + conv2(torch.relu(conv1(c))),
            "gc_relu_before_norm": x + conv2(norm(torch.relu(conv1(c)))),
            "gc_no_relu": x + conv2(norm(conv1(c))),
            "gc_context_avg": x + ref.channel_add_conv(x.mean((2, 3), keepdim=True)),
            "gc_ln_eps": x + conv2(torch.relu(F.layer_norm(conv1(c), norm.normalized_shape, norm.weight, norm.bias,
                                                           1e-6))),
            **{f"gc_ln_{label}": x + conv2(torch.relu(wrong)) for label, wrong in normalisation_variants(
                conv1(c), (1, 2, 3), norm.weight, norm.bias, norm.eps).items()}}


def cosine_distance(v: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (B,): the mean over pairs i != j of (1 - cos(v_i, v_j)) / 2."""
    n = v.shape[1]
    unit = F.normalize(v, dim=-1)
    gram = unit @ unit.transpose(1, 2)
    off = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2


def cosine_mistakes(v: torch.Tensor) -> dict[str, torch.Tensor]:
    n = v.shape[1]
    unit = F.normalize(v, dim=-1)
    gram = unit @ unit.transpose(1, 2)
    off = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    wrong_axis = F.normalize(v, dim=1)
    g2 = wrong_axis @ wrong_axis.transpose(1, 2)
    off2 = (g2.sum((1, 2)) - g2.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return {"cos_diagonal": (1 - gram.mean((1, 2))) / 2, "cos_similarity": off, "cos_no_half": 1 - off,
            "cos_axis": (1 - off2) / 2}


def build_expected() -> dict:
    # non-local attention: B, C, N = 3, 12, 35
    x = seeded_randn(3, 12, 5, 7, seed=701).float()
    ref = reference_nl(12, 2, seed=710)
    ref3 = reference_nl(12, 3, seed=720)
    with torch.no_grad():
        q, k, _ = _nl_qkv(ref, x.double())
        nl_attention = {"channels": 12, "x": x, "weights": state_of(ref), "a": ref.attention(x.double()),
                        "diagnoses": nl_map_mistakes(q, k, 12),
                        "r3": {"channels": 12, "weights": state_of(ref3), "a": ref3.attention(x.double())}}
    # non-local forward: B, C, N = 2, 12, 21
    xf = seeded_randn(2, 12, 7, 3, seed=731).float()
    fref = reference_nl(12, 2, seed=740)
    probe = seeded_randn(*xf.shape, seed=732)
    xg = xf.double().clone().requires_grad_(True)
    y = fref(xg)
    (y * probe).sum().backward()
    with torch.no_grad():
        nl_forward = {"channels": 12, "x": xf, "weights": state_of(fref), "y": y.detach(),
                      "diagnoses": nl_forward_mistakes(fref, xf.double()), "probe": probe,
                      "grad_x": xg.grad.detach().clone()}
    # GC context: B, C, N = 3, 24, 35, reduction 4
    xc = seeded_randn(3, 24, 5, 7, seed=751).float()
    cref = reference_gc(24, 4, seed=760)
    xs = seeded_randn(2, 16, 4, 6, seed=771).float()
    sref = reference_gc(16, 2, seed=780)
    with torch.no_grad():
        gc_context = {"channels": 24, "reduction": 4, "x": xc, "weights": state_of(cref),
                      "alpha": cref.attention(xc.double()), "context": cref.context(xc.double()),
                      "alpha_diagnoses": gc_alpha_mistakes(cref, xc.double()),
                      "context_diagnoses": gc_context_mistakes(cref, xc.double()),
                      "second": {"channels": 16, "reduction": 2, "x": xs, "weights": state_of(sref),
                                 "context": sref.context(xs.double())}}
    # GC forward: B, C, N = 2, 32, 21, reduction 8
    xgc = seeded_randn(2, 32, 7, 3, seed=791).float()
    gref = reference_gc(32, 8, seed=800)
    gprobe = seeded_randn(*xgc.shape, seed=792)
    xg = xgc.double().clone().requires_grad_(True)
    yg = gref(xg)
    (yg * gprobe).sum().backward()
    with torch.no_grad():
        gc_forward = {"channels": 32, "reduction": 8, "x": xgc, "weights": state_of(gref), "y": yg.detach(),
                      "diagnoses": gc_forward_mistakes(gref, xgc.double()), "probe": gprobe,
                      "grad_x": xg.grad.detach().clone()}
    v = seeded_randn(3, 7, 5, seed=811)
    v2 = seeded_randn(2, 5, 9, seed=812)
    cosine = {"v": v, "d": cosine_distance(v), "diagnoses": cosine_mistakes(v), "v2": v2, "d2": cosine_distance(v2)}
    aref = reference_gc(24, 4, seed=820)
    gc_as_se = {"state": gc_names(state_of(aref)), "se": se_weights(24, 6, seed=821)}
    return {"nl_attention": nl_attention, "nl_forward": nl_forward, "gc_context": gc_context,
            "gc_forward": gc_forward, "cosine": cosine, "gc_as_se": gc_as_se}


def se_weights(channels: int, hidden: int, *, seed: int) -> dict[str, torch.Tensor]:
    """Random float32-exact weights of an SE block's two layers (SE's (out, in) layout, biases included)."""
    return {"w1": float32_exact(seeded_randn(hidden, channels, seed=seed) / math.sqrt(channels)),
            "b1": float32_exact(0.3 * seeded_randn(hidden, seed=seed + 1)),
            "w2": float32_exact(seeded_randn(channels, hidden, seed=seed + 2) / math.sqrt(hidden)),
            "b2": float32_exact(0.3 * seeded_randn(channels, seed=seed + 3))}


def se_with_layernorm(x: torch.Tensor, se: dict[str, torch.Tensor], eps: float) -> torch.Tensor:
    """SE's block with a LayerNorm (no affine) between its layers: x * sigmoid(W2 ReLU(LN(W1 mean(x) + b1)) + b2)."""
    y = x.mean((2, 3))  # (B, C)
    u = F.linear(y, se["w1"], se["b1"])  # (B, C')
    t = F.linear(torch.relu(F.layer_norm(u, u.shape[-1:], eps=eps)), se["w2"], se["b2"])  # (B, C)
    return x * torch.sigmoid(t)[..., None, None]


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _trials(seed: int, reductions: tuple[int, int, int], n: int = 3):
    pick = seeded_picker(seed)
    for trial in range(n):
        reduction = reductions[trial % 3]
        yield trial, pick(1, 3), reduction * pick(1, 3), reduction, pick(1, 6), pick(1, 7)


def _student(cls: type, ref: torch.nn.Module, check: Callable, load: Callable) -> Callable:
    """The sweep's builder: the student's block, its structure checked, with the reference's weights, in eval mode."""
    what = f"{cls.__name__}({ref.channels}, reduction={ref.reduction})"

    def student(dtype: torch.dtype, device: str) -> torch.nn.Module:
        module = build(cls, ref.channels, ref.reduction)
        check(module, ref.channels, ref.reduction, what=what)
        load(module, state_of(ref), what=what)
        return module.to(device=device, dtype=dtype).eval()
    return student


def _nl_student(cls: type, ref: ReferenceNL) -> Callable:
    return _student(cls, ref, check_nl_structure, load_nl_weights)


def _gc_student(cls: type, ref: ReferenceGC) -> Callable:
    return _student(cls, ref, check_gc_structure, lambda module, state, what: load_gc_weights(module, gc_names(state),
                                                                                              what=what))


@exercise("NonLocalBlock.attention (hidden)", budget_s=30)
def hidden_nl_attention(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(7050, (2, 4, 3)):
        ref = reference_nl(c, r, seed=7100 + 10 * trial)
        x64 = seeded_randn(b, c, h, w, seed=7200 + trial)
        with torch.no_grad():
            q, k, _ = _nl_qkv(ref, x64)
            rows = functools.partial(expect_rows_sum_to_one, advice=MAP_ADVICE) if h * w > 1 else None
            target = Result("attention", ref.attention(x64), nl_map_mistakes(q, k, c), check=rows)
        sweep(_nl_student(cls, ref), x64, [target], advice=ADVICE, call=_call)


@exercise("NonLocalBlock.forward (hidden)", budget_s=30)
def hidden_nl_forward(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(7060, (2, 4, 3)):
        fresh = build(cls, c, r)
        check_nl_structure(fresh, c, r, what=f"{cls.__name__}({c}, reduction={r})")
        _expect_identity(fresh.double(), seeded_randn(max(b, 2), c, h, w, seed=7300 + trial),
                         what=f"{cls.__name__}({c}, reduction={r})", advice=NL_IDENTITY_ADVICE)
        ref = reference_nl(c, r, seed=7400 + 10 * trial)
        x64 = seeded_randn(b, c, h, w, seed=7500 + trial)
        y, gradients = reference_backward(ref, x64, probe_loss(seeded_randn(b, c, h, w, seed=7600 + trial)))
        with torch.no_grad():
            target = Result("forward", y, nl_forward_mistakes(ref, x64))
        sweep(_nl_student(cls, ref), x64, [target], advice=ADVICE, call=_call, gradients=gradients)
        expect_training_step(_nl_student(cls, ref)(torch.float64, "cpu"), ref, seeded_randn(max(b, 2), c, h, w,
                             seed=7650 + trial), what=f"{cls.__name__}({c}, reduction={r})", call=_call)


@exercise("GlobalContextBlock.attention and .context (hidden)", budget_s=30)
def hidden_gc_context(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(7070, (16, 4, 2)):
        ref = reference_gc(c, r, seed=7700 + 10 * trial)
        x64 = seeded_randn(b, c, h, w, seed=7800 + trial)
        with torch.no_grad():
            results = [Result("attention", ref.attention(x64)),
                       Result("context", ref.context(x64), gc_context_mistakes(ref, x64))]
        sweep(_gc_student(cls, ref), x64, results, advice=ADVICE, call=_call)


#: the GC block's parameters: the notebook's (the paper's) names -> the reference's (the official code's)
GC_PARAMETERS = {"conv_mask.weight": "conv_mask.weight", "conv_mask.bias": "conv_mask.bias",
                 "w_v1.weight": "channel_add_conv.0.weight", "w_v1.bias": "channel_add_conv.0.bias",
                 "norm.weight": "channel_add_conv.1.weight", "norm.bias": "channel_add_conv.1.bias",
                 "w_v2.weight": "channel_add_conv.3.weight", "w_v2.bias": "channel_add_conv.3.bias"}


@exercise("GlobalContextBlock.forward (hidden)", budget_s=30)
def hidden_gc_forward(cls: type) -> None:
    for trial, b, c, r, h, w in _trials(7080, (16, 4, 2)):
        fresh = build(cls, c, r)
        check_gc_structure(fresh, c, r, what=f"{cls.__name__}({c}, reduction={r})")
        _expect_identity(fresh.double(), seeded_randn(b, c, h, w, seed=7900 + trial), half=True,
                         what=f"{cls.__name__}({c}, reduction={r})", advice=GC_IDENTITY_ADVICE)
        ref = reference_gc(c, r, seed=8000 + 10 * trial)
        x64 = seeded_randn(b, c, h, w, seed=8100 + trial)
        y, gradients = reference_backward(ref, x64, probe_loss(seeded_randn(b, c, h, w, seed=8200 + trial)),
                                          names=GC_PARAMETERS)
        with torch.no_grad():
            target = Result("forward", y, gc_forward_mistakes(ref, x64))
        sweep(_gc_student(cls, ref), x64, [target], advice=ADVICE, call=_call, gradients=gradients)


@exercise("gc_state_from_se (hidden)", budget_s=30)
def hidden_gc_as_se(fn: Callable) -> None:
    """The returned state, loaded into the reference GC block: x * sigmoid(block(x) - x) is SE with a LayerNorm, on
    random shapes and on inputs whose entries reach the thousands (a pooling that is only nearly uniform shows)."""
    for trial, b, c, r, h, w in _trials(7085, (16, 4, 2)):
        ref = reference_gc(c, r, seed=8400 + 10 * trial)
        se = se_weights(c, ref.hidden_channels, seed=8500 + 10 * trial)
        state = _call(fn, gc_names(state_of(ref)), *(se[k].clone() for k in ("w1", "b1", "w2", "b2")),
                      doing=f"gc_state_from_se(state, w1, b1, w2, b2) for C = {c}, C' = {ref.hidden_channels}")
        with torch.no_grad():
            for name, official in GC_PARAMETERS.items():
                target = ref.get_parameter(official)
                value = state[name] if isinstance(state, dict) and name in state else None
                if not isinstance(value, torch.Tensor) or value.numel() != target.numel():
                    raise CheckFailure(f"gc_state_from_se: no tensor of {target.numel()} numbers for {name!r}.",
                                       mistake="parameters")
                target.copy_(value.detach().reshape(target.shape).double())
        eps = ref.channel_add_conv[1].eps
        for scale in (1.0, 1e3):
            x = scale * seeded_randn(b, c, h, w, seed=8600 + trial)
            with torch.no_grad():
                got = x * torch.sigmoid(ref(x) - x)
                want = se_with_layernorm(x, se, eps)
            if not torch.allclose(got, want, rtol=1e-9, atol=1e-9 * scale):
                raise CheckFailure(
                    f"gc_state_from_se for C = {c}: the GC block with the returned parameters, fused by x * "
                    f"sigmoid(t), differs from SE with a LayerNorm by up to {float((got - want).abs().max()):.3g} "
                    f"(entries of x up to {scale:g}).", mistake="values")
    passed()


@exercise("mean_cosine_distance (hidden)", budget_s=30)
def hidden_cosine_distance(fn: Callable) -> None:
    pick = seeded_picker(7090)
    for trial in range(4):
        b, n, d = pick(1, 4), pick(2, 9), pick(1, 12)
        v = seeded_randn(b, n, d, seed=8300 + trial)
        if trial == 3:
            v = v.abs()  # softmax rows are nonnegative
        sweep(lambda dtype, device: fn, v, [Result("forward", cosine_distance(v), cosine_mistakes(v))], advice=ADVICE,
              call=_call, layouts=["strided" if trial == 1 else "given"],  # trial 1: a non-contiguous view
              doing="mean_cosine_distance(v) with v of shape {shape}, {dtype}, on {device}")
    # the values at scale (the chapter: right for float32 entries as large as 1e20), on shapes of their own and on
    # vectors whose sizes differ by ten orders of magnitude within one image
    for trial, scale in enumerate((1e19, 1e20)):
        v = seeded_randn(2, 4 + trial, 7, seed=8350 + trial)
        v = v * torch.logspace(0, 10 * trial, v.shape[1], dtype=v.dtype)[None, :, None]
        big = (v * (scale / v.abs().amax())).float()
        doing = f"mean_cosine_distance(v) on float32 entries up to {scale:.0e}, v of shape {tuple(big.shape)}"
        expect_close(_call(fn, big.clone(), doing=doing), cosine_distance(big.double()).float(), what=doing,
                     diagnoses=[(OVERFLOW, torch.full((big.shape[0],), 0.5), SCALE_ADVICE)],
                     fallback=(OVERFLOW, SCALE_ADVICE))
