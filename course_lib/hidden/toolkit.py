"""The hidden checks' machinery: the one sweep against the reference, the gradient comparison, shared helpers.

Hidden-only (this folder never ships): it may use ``course_lib.reference``; the visible checks never import it.
A chapter's hidden check builds the reference, its float64 results and the results of the known mistakes, and
hands them to :func:`sweep`, which compares the student's module with them on every device, dtype and memory
layout; :func:`expect_same_gradients` compares the float64 gradients of one call.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from einops import rearrange

from course_lib.checks.toolkit import (
    BN_STATISTICS,
    BN_TWICE,
    DEVICES,
    build,
    call_with_hints,
    close_named,
    expect,
    expect_close,
    expect_follows,
    expect_normalisation_modes,
    float32_exact,
    fmt_shape,
    seeded_randn,
)
from course_lib.reference.danet import PositionAttention

FLOATS = (torch.float64, torch.float32)
LAYOUTS = ("contiguous", "channels_last")
#: memory layout -> the input laid out so (a new tensor, unless the layout cannot differ for this shape)
LAID_OUT = {
    "given": lambda t: t,  # as moved to the device and dtype (the very input, on the CPU in float64)
    "contiguous": lambda t: t.clone(),
    "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
    "strided": lambda t: t.transpose(1, 2).contiguous().transpose(1, 2),  # a non-contiguous view
}
DOING = "{call} with x of shape {shape}, {dtype}, {layout}, on {device}"


@dataclass(frozen=True)
class Result:
    """One result :func:`sweep` compares: ``method`` of the student's module ("forward": the module, or the
    function, itself) against ``target``, the reference's float64 result on the CPU."""

    method: str
    target: torch.Tensor
    diagnoses: Mapping[str, torch.Tensor] = field(default_factory=dict)  # label -> what a known mistake gives
    always: bool = False  # name the diagnoses in every dtype (else in float64 only)
    hint: str = ""
    check: Callable[..., None] | None = None  # check(result, what=...) once the result has the target's shape
    follows: bool = True  # the result's dtype and device must follow the input's
    call: str = ""  # the call as messages show it (default "<method>(x)")
    what: str = ""  # the call as the comparison's message shows it (default: as ``call``)
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # passed to the call, shown after the input


@dataclass(frozen=True)
class Gradients:
    """The reference's float64 gradients of ``loss(forward(x))``: of x, and by the student's parameter names."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    params: Mapping[str, torch.Tensor]


def reference_backward(ref: torch.nn.Module, x64: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor],
                       names: Mapping[str, str] | None = None) -> tuple[torch.Tensor, Gradients]:
    """``ref(x64)`` and its :class:`Gradients`; ``names``: the student's parameter name -> the reference's
    (default: every parameter, by the reference's names)."""
    xr = x64.clone().requires_grad_(True)
    y = ref(xr)
    loss(y).backward()
    grads = {name: p.grad.clone() for name, p in ref.named_parameters()}
    return y.detach(), Gradients(loss, xr.grad, grads if names is None else {k: grads[v] for k, v in names.items()})


def probe_loss(probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss sum(y * probe), with the probe moved to the result's device."""
    return lambda y: (y * probe.to(y.device)).sum()


def _bound(module: Any, method: str) -> Callable:
    return module if method == "forward" else getattr(module, method)


def sweep(make: Callable[[torch.dtype, str], Any], inputs: torch.Tensor | Sequence[torch.Tensor],
          results: Sequence[Result] = (), *, advice: Mapping[str, tuple[str, str]] = {},
          call: Callable[..., Any] = call_with_hints, devices: Sequence[str] = DEVICES,
          dtypes: Sequence[torch.dtype] = FLOATS, layouts: Sequence[str] = LAYOUTS, doing: str = DOING,
          unchanged: Callable[..., None] | None = None, gradients: Gradients | None = None,
          after: Callable[[Any, str, torch.dtype], None] | None = None,
          each: Callable[[Any, torch.Tensor, torch.Tensor, Callable[..., str]], None] | None = None) -> None:
    """Compare the student's module with the reference on every device, dtype and memory layout.

    For each device and dtype, ``make(dtype, device)`` builds the student's module (or returns the function);
    for each layout of the inputs (float64, CPU, moved there and laid out by :data:`LAID_OUT`), each of
    ``results`` in order: call it (``call``: the chapter's error hints), its dtype and device follow the input,
    ``check`` it, compare it with its target (the diagnoses named by the chapter's ``advice``), ``unchanged(x,
    given, what=...)`` (the input was left alone). With ``gradients``, the forward call gets an input that
    requires a gradient and, in float64, its backward must give the reference's gradients. ``doing`` shows a
    case in the messages ({call} {shape} {shapes[i]} {dtype} {layout} {device} {kwargs}). ``after(module,
    device, dtype)`` runs after the layouts; ``each(module, x, given, text)`` replaces the per-result steps.
    """
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    for device in devices:
        for dtype in dtypes:
            module = make(dtype, device)
            xs = [t.to(device=device, dtype=dtype) for t in inputs]
            for layout in layouts:
                given = [LAID_OUT[layout](t) for t in xs]

                def text(call: str, kwargs: str = "") -> str:
                    return doing.format(call=call, kwargs=kwargs, shape=fmt_shape(xs[0].shape), dtype=dtype,
                                        shapes=[fmt_shape(t.shape) for t in xs], layout=layout, device=device)

                if each is not None:
                    each(module, xs[0], given[0], text)
                for result in results:
                    fn = _bound(module, result.method)
                    grad = gradients is not None and result.method == "forward"
                    args = [given[0].detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
                            ] + given[1:] if grad else given
                    shown = f", {dict(result.kwargs)}" if result.kwargs else ""
                    now = text(result.call or f"{result.method}(x)", shown)
                    out = call(fn, *args, doing=now, **result.kwargs)
                    if result.follows:
                        expect_follows(out, dtype=dtype, device=device, doing=now)
                    what = text(result.what, shown) if result.what else now
                    got = out.detach().cpu() if isinstance(out, torch.Tensor) else out
                    if result.check is not None and isinstance(out, torch.Tensor) and out.shape == result.target.shape:
                        result.check(got, what=what)
                    close_named(got, result.target, what=what, advice=advice, hint=result.hint,
                                diagnoses=result.diagnoses if result.always or dtype == torch.float64 else {})
                    if unchanged is not None:
                        unchanged(xs[0], given[0], what=now)
                    if grad and dtype == torch.float64:
                        _expect_gradients(module, out, args[0], gradients, call=call, doing=now, layout=layout)
            if after is not None:
                after(module, device, dtype)


def _expect_gradients(module: Any, out: torch.Tensor, xg: torch.Tensor, gradients: Gradients, *,
                      call: Callable[..., Any], doing: str, layout: str) -> None:
    module.zero_grad()
    call(lambda: gradients.loss(out).backward(), doing=f"backward through {doing}")
    expect(xg.grad is not None, f"{doing}: no gradient reached x.", mistake="no_grad")
    expect_close(xg.grad.cpu(), gradients.x, what=f"the gradient with respect to x ({layout})", mistake="no_grad")
    for name, p in module.named_parameters():
        want = gradients.params.get(name)
        if want is not None:
            expect(p.grad is not None, f"{doing}: no gradient reached {name}.", mistake="no_grad")
            expect_close(p.grad.cpu().reshape(want.shape), want, what=f"the gradient of {name}", mistake="no_grad")


def expect_same_gradients(module: Any, ref: Any, x64: torch.Tensor,
                          probe: torch.Tensor | Callable[[torch.Size], torch.Tensor], *, method: str = "forward",
                          params: Sequence[tuple[str, torch.Tensor, torch.Tensor]] = (),
                          call: Callable[..., Any] = call_with_hints, mistake: str = "no_grad", **kwargs: Any) -> None:
    """Backward of sum(method(x) * probe) through the student's module and the reference (float64, CPU): the
    gradients of x and of ``params`` ((label, the student's parameter, the reference's)) must be the same.
    ``probe``: a tensor, or made from the result's shape; ``mistake``: names a wrong gradient value."""
    xs, xr = x64.clone().requires_grad_(True), x64.clone().requires_grad_(True)
    out = call(_bound(module, method), xs, doing=f"{method}(x) with x.requires_grad=True", **kwargs)
    probe = probe(out.shape) if callable(probe) else probe
    call(lambda: (out * probe).sum().backward(), doing=f"backward through {method}(x)")
    (_bound(ref, method)(xr, **kwargs) * probe).sum().backward()
    expect(xs.grad is not None, f"no gradient reached x through {method}(x)", mistake="no_grad")
    expect_close(xs.grad, xr.grad, what=f"the gradient of {method}(x) with respect to x", mistake=mistake)
    for label, mine, theirs in params:
        expect(mine.grad is not None, f"no gradient reached {label}", mistake="no_grad")
        expect_close(mine.grad.reshape(theirs.shape), theirs.grad, what=f"the gradient of {label}", mistake=mistake)


# --------------------------------------------------------------------------------------------
# DANet's position attention module: chapter 05's exercise, and the branch chapter 06 repairs and combines
# --------------------------------------------------------------------------------------------
def pam_reference(channels: int, reduction: int, seed: int, gamma: float = 1.0) -> PositionAttention:
    """A float64 reference PAM with float32-exact seeded weights and the given gamma."""
    module = PositionAttention(channels, reduction).double()
    with torch.no_grad():
        for i, (name, p) in enumerate(module.named_parameters()):
            if name == "gamma":
                p.fill_(gamma)
            else:
                p.copy_(float32_exact(seeded_randn(*p.shape, seed=seed + i) * (0.8 if p.dim() > 1 else 0.3)))
    return module


def pam_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def pam_qkv(module: PositionAttention, x: torch.Tensor):
    q = rearrange(module.query_conv(x), "b c h w -> b (h w) c")
    k = rearrange(module.key_conv(x), "b c h w -> b c (h w)")
    v = rearrange(module.value_conv(x), "b c h w -> b c (h w)")
    return q, k, v


def pam_map_mistakes(q: torch.Tensor, k: torch.Tensor) -> dict[str, torch.Tensor]:
    """q (B, N, C'), k (B, C', N) -> the (B, N, N) maps of the known mistakes."""
    energy = q @ k
    b, n, _ = energy.shape
    return {
        "softmax_dim1": energy.softmax(dim=1),
        "softmax_dim0": energy.softmax(dim=0),
        "softmax_all": energy.reshape(b, n * n).softmax(-1).reshape(b, n, n),
        "scaled": (energy / q.shape[-1] ** 0.5).softmax(-1),
        "qk_swapped": energy.transpose(1, 2).softmax(-1),
    }


def pam_out_mistakes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
    """q (B, N, C'), k (B, C', N), v (B, C, N) -> the (B, C, N) outputs (before gamma) of the mistakes."""
    right = (q @ k).softmax(-1)
    found = {label: v @ a.transpose(1, 2) for label, a in pam_map_mistakes(q, k).items()}
    found["missing_transpose"] = v @ right
    return found


def pam_forward_mistakes(ref: PositionAttention, x64: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The (B, C, H, W) outputs of the known mistakes of a PAM whose output on x64 is y."""
    with torch.no_grad():
        q, k, v = pam_qkv(ref, x64)
        found = {label: rearrange(o, "b c (h w) -> b c h w", h=x64.shape[2]) * ref.gamma + x64
                 for label, o in pam_out_mistakes(q, k, v).items()}
        found["missing_residual"] = y - x64
    return found


def pam_student(cls: type, args: tuple, reduction: int, weights: Mapping[str, torch.Tensor], *,
                what: str) -> torch.nn.Module:
    """``cls(*args)`` (the channels first), its structure checked, with the reference's weights by their names."""
    from course_lib.checks.toolkit import check_pam_structure, load_pam_weights

    module = build(cls, *args)
    check_pam_structure(module, args[0], reduction, what=what)
    load_pam_weights(module, weights, what=what)
    return module


# --------------------------------------------------------------------------------------------
# training mode on loaded weights (issue 27): the output and the BatchNorms' running statistics after one forward
# --------------------------------------------------------------------------------------------
def expect_training_step(module: torch.nn.Module, ref: torch.nn.Module, x64: torch.Tensor, *, what: str,
                         call: Callable[..., Any] = call_with_hints, method: str = "forward",
                         diagnoses: Mapping[str, torch.Tensor] = {}, advice: Mapping[str, tuple[str, str]] = {}
                         ) -> None:
    """The student's module (its weights loaded from ``ref``) and the reference, both in training mode in float64
    on copies: :func:`expect_normalisation_modes` names the known ways of misusing a BatchNorm; then one forward of
    ``x64`` must give the reference's output (``diagnoses``: label -> what a known mistake gives in training mode,
    named by ``advice``), and each BatchNorm's running mean, running variance and num_batches_tracked must then
    equal the reference's (BatchNorms paired in the order they are registered)."""
    mine = copy.deepcopy(module).to(torch.float64)
    theirs = copy.deepcopy(ref).to(torch.float64).train()
    expect_normalisation_modes(mine, x64, what=what, method=method)
    mine.train()
    with torch.no_grad():
        got = call(_bound(mine, method), x64.clone(), doing=f"{what}.{method}(x) in training mode, float64")
        want = _bound(theirs, method)(x64.clone())
    close_named(got.cpu() if isinstance(got, torch.Tensor) else got, want, advice=advice, diagnoses=diagnoses,
                what=f"{what}.{method}(x) in training mode (BatchNorm on the batch's statistics)",
                fallback=(BN_STATISTICS, "in training mode a BatchNorm normalises with the batch's own mean and "
                                         "(biased) variance over every dimension but the channels; compare where your "
                                         "block normalises, and over which tensor, with the paper's."))
    ours = [m for _, m in theirs.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    yours = [m for _, m in mine.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    expect(len(ours) == len(yours), f"{what} has {len(yours)} BatchNorm(s); the paper's block has {len(ours)}.",
           mistake=BN_STATISTICS)
    for i, (a, b) in enumerate(zip(yours, ours)):
        label = f"{what}: BatchNorm {i + 1} of {len(ours)} after one training-mode forward"
        for buffer in ("running_mean", "running_var"):
            expect_close(getattr(a, buffer).cpu(), getattr(b, buffer), what=f"{label}: its {buffer}",
                         fallback=(BN_STATISTICS, "the running statistics follow the batch statistics the BatchNorm "
                                                  "sees in training: each BatchNorm runs once per forward, on the "
                                                  "tensor the paper normalises."))
        expect(int(a.num_batches_tracked) == int(b.num_batches_tracked),
               f"{label}: num_batches_tracked is {int(a.num_batches_tracked)}, the paper's block "
               f"{int(b.num_batches_tracked)}: the BatchNorm should run once per forward.", mistake=BN_TWICE)


def normalisation_variants(t: torch.Tensor, dims: Sequence[int], weight: torch.Tensor, bias: torch.Tensor,
                           eps: float) -> dict[str, torch.Tensor]:
    """What a normalisation of ``t`` over ``dims`` (then scaled by ``weight``, shifted by ``bias``, both shaped to
    broadcast) gives with the statistics taken wrongly: "unbiased" (the variance divided by n - 1), "over_batch"
    (the batch dim 0 joins ``dims``), "batch_only" (over dim 0 alone, a BatchNorm's per-feature statistics)."""
    def norm(over: Sequence[int], unbiased: bool = False) -> torch.Tensor:
        mean = t.mean(tuple(over), keepdim=True)
        var = t.var(tuple(over), keepdim=True, unbiased=unbiased)
        return (t - mean) / torch.sqrt(var + eps) * weight + bias

    found = {"unbiased": norm(dims, unbiased=True), "over_batch": norm((0, *dims))}
    if t.shape[0] > 1:
        found["batch_only"] = norm((0,))
    return found
