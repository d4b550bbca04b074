"""The machinery every graded check uses.

A check is a function decorated with :func:`exercise`. It calls the student's code through the
helpers below, which turn every way that code can go wrong into a :class:`CheckFailure` whose message
teaches: what was expected, what came instead, and the likely mistake (a stable id from
:data:`MISTAKES`, which the grader catalog uses to prove that the hint is the right one).

While a check runs it

- seeds torch's RNG inside ``torch.random.fork_rng`` (the student's RNG state is left alone),
- turns TF32 off on CUDA (a float32 check must not fail because of TF32 rounding),
- sends warnings and stderr to stdout (nbgrader gives 0 points to a test cell that writes to stderr),
- stops the student's code after a time budget (an infinite loop costs one check, not the kernel).

Nothing here imports the reference solutions: visible checks compare against stored expected values.
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

EXPECTED_DIR = Path(__file__).with_name("expected")

# Stable ids of the mistakes the checks can name. Chapter modules may add their own with
# define_mistake(); the grader catalog asserts that a wrong implementation is caught with its id.
MISTAKES: dict[str, str] = {
    "not_implemented": "the stub still raises NotImplementedError",
    "signature": "the class or method does not accept the arguments of the stub",
    "crash": "the code raised an exception",
    "timeout": "the code ran past its time budget (an endless loop?)",
    "not_module": "the object is not an nn.Module subclass",
    "shape": "the result has the wrong shape",
    "dtype": "the result's dtype differs from the input's (a hard-coded dtype?)",
    "device": "the code moves tensors to a fixed device (.cuda(), .cpu(), device='cuda')",
    "no_grad": "gradients do not flow back to the input or the parameters",
    "inplace": "an in-place operation breaks autograd",
    "param_count": "the module has the wrong number of parameters",
    "parameters": "the module's parameters do not match the layers the exercise asks for",
    "values": "the values differ from the expected ones",
    "softmax_dim": "softmax over the wrong dimension",
    "missing_transpose": "a bmm/matmul without the transpose it needs",
    "single_pool": "only one of average and max pooling is used",
    "separate_mlps": "two separate MLPs where one shared MLP is asked for",
    "missing_sigmoid": "the gate has no sigmoid",
    "softmax_gate": "a softmax where a sigmoid gate is asked for",
    "relu_after_last": "a ReLU after the last layer of the MLP",
    "missing_relu": "no ReLU between the two layers",
    "reduction_ignored": "the reduction argument is ignored (a hard-coded // 16)",
    "missing_bias": "the layers have no bias where the exercise asks for one",
    "gamma_init": "gamma is not initialised to 0",
    "missing_residual": "the residual connection (+ x) is missing",
    "no_scale_param": "gamma is not a learnable parameter",
    "pool_axis": "pooling over the wrong axis",
    "pool_order": "the pooled maps are concatenated in the wrong order",
    "odd_size": "fails or misaligns on odd spatial sizes (a fixed x2 upsample?)",
    "cam_variant": "the official max - energy form where the paper's form is asked, or the reverse",
    "returns_map": "the attention map is returned instead of the reweighted features",
    "returns_features": "the reweighted features are returned where the map is asked for",
    "kernel_size": "the convolution has the wrong kernel size or padding",
    "scaled": "the energy is scaled by 1/sqrt(d), which this paper does not do",
}


def define_mistake(mistake_id: str, description: str) -> str:
    """Register a chapter-specific mistake id (idempotent) and return it."""
    MISTAKES.setdefault(mistake_id, description)
    return mistake_id


class CheckFailure(AssertionError):
    """A check failed. ``str(err)`` teaches; ``err.mistake`` names the likely mistake."""

    def __init__(self, message: str, *, mistake: str = "values"):
        if mistake not in MISTAKES:
            raise KeyError(f"unknown mistake id {mistake!r}; register it with define_mistake()")
        super().__init__(message)
        self.mistake = mistake

    # IPython renders this instead of a long traceback through course_lib's internals.
    def _render_traceback_(self) -> list[str]:
        red, reset = "\x1b[31m", "\x1b[0m"
        return [f"{red}CheckFailure{reset}: " + str(self).replace("\n", "\n  ")]


class _Timeout(BaseException):
    """Raised by the watchdog; a BaseException so `except Exception` in student code cannot eat it."""


# --------------------------------------------------------------------------------------------
# the grading context
# --------------------------------------------------------------------------------------------
class _Context:
    def __init__(self, name: str):
        self.name = name
        self.passed = 0


_stack: list[_Context] = []


def passed(n: int = 1) -> None:
    """Count ``n`` passed checks in the running exercise."""
    if _stack:
        _stack[-1].passed += n


@contextlib.contextmanager
def _watchdog(seconds: float | None) -> Iterator[None]:
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Checks run on tiny tensors: one thread is ~10x faster than several on a busy 2-core machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _warnings_to_stdout() -> Iterator[None]:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        print(f"note: your code raised {category.__name__}: {message}")

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        with contextlib.redirect_stderr(sys.stdout):
            yield


SANDBOX_EVENT = "course_lib.check"


@contextlib.contextmanager
def _sandbox(name: str, fn: Callable, args: tuple, kwargs: dict) -> Iterator[list]:
    """The grading sandbox's hook (course_lib/grading/sandbox_guard.py); outside grading it does nothing.

    It raises two audit events that the sandbox's audit hook answers: "start" (it may refuse the check
    with a CheckFailure when it finds tampering) and "end" (after a pass it appends a proof, which it
    signs, to the list that the [ok] line prints).
    """
    proof: list[str] = []
    sys.audit(SANDBOX_EVENT, "start", name, fn, args, kwargs)
    passed = False
    try:
        yield proof
        passed = True
    finally:
        sys.audit(SANDBOX_EVENT, "end", name, proof, passed)


def exercise(name: str, *, budget_s: float = 10.0, seed: int = 0) -> Callable:
    """Decorate a check function: run it in the grading context and report one line on success."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            context = _Context(name)
            _stack.append(context)
            started = time.perf_counter()
            try:
                with _sandbox(name, fn, args, kwargs) as proof, _warnings_to_stdout(), _no_tf32(), _one_thread(), \
                        torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    with _watchdog(budget_s):
                        fn(*args, **kwargs)
            except CheckFailure as failure:
                failure.args = (f"{name}: {failure.args[0]}",)
                raise failure.with_traceback(None) from None
            except _Timeout:
                raise CheckFailure(
                    f"{name}: your code ran for more than {budget_s:g} s on small inputs and was stopped. "
                    "Look for a loop that never ends, or a loop over pixels where a tensor operation would do.",
                    mistake="timeout",
                ) from None
            except NotImplementedError:
                raise _not_implemented(name) from None
            finally:
                _stack.pop()
            seconds = time.perf_counter() - started
            print(f"[ok] {name}: {context.passed} checks passed ({seconds:.2f} s)" + "".join(proof))

        run.exercise_name = name  # type: ignore[attr-defined]
        return run

    return decorate


def _not_implemented(what: str) -> CheckFailure:
    return CheckFailure(
        f"{what} still raises NotImplementedError: replace the `raise NotImplementedError()` line "
        "in the stub with your code, run that cell again, then this one.",
        mistake="not_implemented",
    )


# --------------------------------------------------------------------------------------------
# calling student code
# --------------------------------------------------------------------------------------------
_ERROR_HINTS: Sequence[tuple[str, str, str]] = (
    ("Torch not compiled with CUDA", "device",
     "your code moves a tensor to CUDA (.cuda() or device='cuda'). Create tensors on x.device, "
     "or use ops that follow their input, so the module runs wherever its input lives."),
    ("Expected all tensors to be on the same device", "device",
     "tensors on different devices meet: create new tensors on x.device instead of a fixed device."),
    ("modified by an inplace operation", "inplace",
     "an in-place operation (x *= ..., relu_(), inplace=True, out[...] = ...) overwrote a tensor "
     "that autograd needs; use the out-of-place form."),
    ("mat1 and mat2 shapes cannot be multiplied", "shape",
     "a Linear layer or matmul got a tensor of the wrong shape: check what you flatten, and that the "
     "layer sizes use channels and reduction."),
    ("batch1 dim 2 must match batch2 dim 1", "missing_transpose",
     "the inner dimensions of a bmm do not match: (B, n, k) @ (B, k, m). One operand needs a transpose "
     "(permute(0, 2, 1) or rearrange)."),
    ("Expected size for first two dimensions of batch2 tensor", "missing_transpose",
     "the shapes given to bmm do not line up: (B, n, k) @ (B, k, m). One operand needs a transpose."),
    ("view size is not compatible with input tensor's size and stride", "shape",
     ".view() cannot reshape this (non-contiguous, e.g. channels_last) tensor; use .reshape() or "
     "einops.rearrange."),
    ("expected scalar type", "dtype",
     "tensors of different dtypes meet: a tensor created with a fixed dtype? Use x.dtype."),
    ("must have the same dtype", "dtype",
     "tensors of different dtypes meet: a tensor created with a fixed dtype? Use x.dtype."),
)


def describe_error(err: BaseException, doing: str) -> CheckFailure:
    """Turn an exception raised by student code into a teaching CheckFailure."""
    if isinstance(err, CheckFailure):
        return err
    if isinstance(err, NotImplementedError):
        return _not_implemented(doing)
    text = f"{type(err).__name__}: {err}".strip()
    for needle, mistake, hint in _ERROR_HINTS:
        if needle in text:
            return CheckFailure(f"{doing} raised {_first_line(text)}\n  Likely mistake: {hint}", mistake=mistake)
    return CheckFailure(f"{doing} raised {_first_line(text)}", mistake="crash")


def _first_line(text: str, limit: int = 300) -> str:
    line = text.splitlines()[0] if text else text
    return line if len(line) <= limit else line[: limit - 3] + "..."


def call(fn: Callable, *args: Any, doing: str, **kwargs: Any) -> Any:
    """Call student code; any exception becomes a CheckFailure that says what was being done."""
    try:
        return fn(*args, **kwargs)
    except (CheckFailure, _Timeout, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - every student error is reported, none crashes the check
        raise describe_error(err, doing) from None


def build(cls: Any, *args: Any, **kwargs: Any) -> torch.nn.Module:
    """Instantiate the student's class with the stub's arguments, checking it is an nn.Module."""
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    doing = f"{getattr(cls, '__name__', cls)}({shown})"
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CheckFailure(f"expected an nn.Module subclass, got {cls!r}", mistake="not_module")
    try:
        module = cls(*args, **kwargs)
    except TypeError as err:
        if "argument" in str(err):
            raise CheckFailure(
                f"{doing} raised TypeError: {err}. Keep the constructor's signature from the stub.",
                mistake="signature",
            ) from None
        raise describe_error(err, doing) from None
    except (_Timeout, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001
        raise describe_error(err, doing) from None
    passed()
    return module


# --------------------------------------------------------------------------------------------
# comparing results
# --------------------------------------------------------------------------------------------
def fmt_shape(shape: Sequence[int] | torch.Size) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def expect_tensor(value: Any, *, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckFailure(f"{what} should be a tensor, got {type(value).__name__}", mistake="shape")
    return value


def expect_shape(value: Any, shape: Sequence[int], *, what: str, hint: str = "", mistake: str = "shape") -> None:
    tensor = expect_tensor(value, what=what)
    if tuple(tensor.shape) != tuple(shape):
        message = f"{what} should have shape {fmt_shape(shape)}, got {fmt_shape(tensor.shape)}."
        raise CheckFailure(message + (f"\n  Likely mistake: {hint}" if hint else ""), mistake=mistake)
    passed()


def tolerances(dtype: torch.dtype) -> tuple[float, float]:
    return (1e-9, 1e-11) if dtype == torch.float64 else (1e-4, 1e-5)


def is_close(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float | None = None,
             atol: float | None = None) -> bool:
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return False
    actual = actual.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    default_rtol, default_atol = (1e-4, 1e-5)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    return bool(torch.all(torch.abs(actual - expected) <= atol + rtol * torch.abs(expected)))


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    what: str,
    diagnoses: Mapping[str, tuple[torch.Tensor, str]] | None = None,
    hint: str = "",
    mistake: str = "values",
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Compare with an expected tensor; on mismatch name a known mistake whose result matches.

    ``diagnoses`` maps a mistake id to (the result that mistake produces, what to tell the student).
    """
    tensor = expect_tensor(actual, what=what)
    expect_shape(tensor, expected.shape, what=what)
    if is_close(tensor, expected, rtol=rtol, atol=atol):
        passed()
        return
    for mistake_id, (wrong, advice) in (diagnoses or {}).items():
        if is_close(tensor, wrong, rtol=rtol, atol=atol):
            raise CheckFailure(f"{what} has the wrong values.\n  Likely mistake: {advice}", mistake=mistake_id)
    diff = (tensor.detach().to("cpu", torch.float64) - expected.to(torch.float64)).abs()
    where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    message = (
        f"{what} has the wrong values: the largest difference is {diff.max().item():.3g} at index {where} "
        f"(expected {expected.reshape(-1)[diff.argmax()].item():.5g}, "
        f"got {tensor.detach().reshape(-1)[diff.argmax()].item():.5g})."
    )
    raise CheckFailure(message + (f"\n  Likely mistake: {hint}" if hint else ""), mistake=mistake)


def expect(condition: bool, message: str, *, mistake: str = "values") -> None:
    if not condition:
        raise CheckFailure(message, mistake=mistake)
    passed()


# --------------------------------------------------------------------------------------------
# loading weights by role
# --------------------------------------------------------------------------------------------
def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    """(o, i, 1, 1) and (o, i) are the same map (1x1 conv vs Linear)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def load_by_shape(
    module: torch.nn.Module,
    weights: Mapping[str, torch.Tensor],
    *,
    what: str,
    duplicate_mistake: str = "parameters",
    duplicate_hint: str = "",
    zero_extra_biases: bool = True,
) -> None:
    """Copy ``weights`` (role -> tensor, all of distinct shapes) into the student's parameters.

    Parameters are matched by shape, treating a Linear weight (o, i) and a 1x1 conv weight (o, i, 1, 1)
    as the same. Student parameters no role claims must be biases (1-D); they are set to zero, which
    leaves the map unchanged. Anything else is reported with the shapes that were expected.
    """
    own = list(module.named_parameters())
    by_shape: dict[tuple[int, ...], list[tuple[str, torch.nn.Parameter]]] = {}
    for name, param in own:
        by_shape.setdefault(_squeezed(param.shape), []).append((name, param))
    expected_list = ", ".join(f"{role} {fmt_shape(t.shape)}" for role, t in weights.items())
    got_list = ", ".join(f"{n} {fmt_shape(p.shape)}" for n, p in own) or "none"
    claimed: set[str] = set()
    with torch.no_grad():
        for role, tensor in weights.items():
            matches = by_shape.get(_squeezed(tensor.shape), [])
            if not matches:
                raise CheckFailure(
                    f"{what} should have a parameter for {role} of shape {fmt_shape(tensor.shape)}; "
                    f"none of yours has that shape.\n  expected: {expected_list}\n  yours:    {got_list}",
                    mistake="missing_bias" if role.endswith("bias") else "parameters",
                )
            if len(matches) > 1:
                names = ", ".join(n for n, _ in matches)
                raise CheckFailure(
                    f"{what} has {len(matches)} parameters of shape {fmt_shape(tensor.shape)} ({names}) "
                    f"where the exercise has one ({role})."
                    + (f"\n  Likely mistake: {duplicate_hint}" if duplicate_hint else ""),
                    mistake=duplicate_mistake,
                )
            name, param = matches[0]
            param.copy_(tensor.reshape(param.shape).to(param.dtype))
            claimed.add(name)
        for name, param in own:
            if name in claimed:
                continue
            if zero_extra_biases and param.dim() == 1 and name.endswith("bias"):
                param.zero_()
                continue
            raise CheckFailure(
                f"{what} has a parameter {name} of shape {fmt_shape(param.shape)} that the exercise does not "
                f"use.\n  expected: {expected_list}\n  yours:    {got_list}",
                mistake=duplicate_mistake if _squeezed(param.shape) in {_squeezed(t.shape) for t in weights.values()}
                else "parameters",
            )
    passed()


def load_by_name(module: torch.nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Copy ``weights`` into parameters/buffers the notebook told the student to name."""
    state = dict(module.named_parameters()) | dict(module.named_buffers())
    with torch.no_grad():
        for name, tensor in weights.items():
            if name not in state:
                raise CheckFailure(
                    f"{what} should have a parameter or buffer named {name!r} (the notebook asks you to keep "
                    f"this name); yours has: {', '.join(state) or 'none'}",
                    mistake="parameters",
                )
            target = state[name]
            if _squeezed(target.shape) != _squeezed(tensor.shape):
                raise CheckFailure(
                    f"{what}.{name} should have shape {fmt_shape(tensor.shape)}, got {fmt_shape(target.shape)}",
                    mistake="parameters",
                )
            target.copy_(tensor.reshape(target.shape).to(target.dtype))
    passed()


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _load_expected_file(name: str) -> dict:
    path = EXPECTED_DIR / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"stored expected values {path} are missing; run `python -m course_lib.checks.build_expected`"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def expected(name: str) -> dict:
    """The stored expected values of one chapter (a fresh copy each call: checks may modify it)."""
    return _clone(_load_expected_file(name))


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj)
    return obj


def save_expected(name: str, data: dict) -> Path:
    EXPECTED_DIR.mkdir(parents=True, exist_ok=True)
    path = EXPECTED_DIR / f"{name}.pt"
    buffer = io.BytesIO()
    torch.save(data, buffer)
    tmp = path.with_suffix(".pt.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)  # never leave a half-written file behind
    _load_expected_file.cache_clear()
    return path


def seeded_randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A reproducible random tensor that does not touch the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


def isfinite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all()) if isinstance(t, torch.Tensor) else math.isfinite(float(t))
