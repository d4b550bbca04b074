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
import copy
import functools
import io
import math
import operator
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch.overrides import TorchFunctionMode

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
    # the mistake classes the toolkit names for every exercise
    "float32_inside": "a float64 result is only float32-accurate: something inside computes in float32",
    "overflow": "exp overflows on inputs of realistic size (a softmax without subtracting the max)",
    "extra_parameter": "a parameter the exercise does not ask for (a bias left on where the stub says bias=False)",
    "default_args": "a constructor default differs from the stub's",
    "tensor_attribute": "a tensor kept in a plain attribute, which .to(device) and .double() do not move",
    "cpu_constant": "a tensor created inside forward without device=x.device (breaks on a GPU)",
    "float_count": "a float where a count (an int) is asked, e.g. C / r instead of C // r",
    "modifies_input": "the function changes the tensor it was given",
    "keepdim": "a reduction without keepdim=True drops a dimension the next step needs",
    "gate_layout": "the gate is transposed before it is reshaped, so channels and images mix",
    "divisor": "a mean taken as a sum divided by H*H or W*W instead of H*W",
    "batch_mean": "the mean also runs over the batch (dim 0): every image gets the same values",
    "pool_kernel": "a pooling kernel that does not fit the input (H and W swapped?)",
    "name_error": "a NameError: a variable is used under a name it was never given (a typo?)",
    "autocast": "the module fails under torch.autocast (mixed precision: a bfloat16 input, float32 weights)",
    "autocast_precision": "under torch.autocast the result drifts far from the float32 one",
    "train_mode": "the module computes another function in training mode (a Dropout, code reading self.training)",
    "dtype_upcast": "a float32 input gives a float64 result (.double() or dtype=torch.float64 inside)",
}


def define_mistake(mistake_id: str, description: str) -> str:
    """Register a chapter-specific mistake id (idempotent) and return it."""
    MISTAKES.setdefault(mistake_id, description)
    return mistake_id


#: ids a failure message does not show: a question's generic verdicts. A set one statement away from a question's
#: answer gets "missing_choice" or "extra_choice" for the grader's records; shown, the id would tell the student how
#: far the set is from the answer (a search by elimination), so none of a question's generic ids is shown.
UNSHOWN_MISTAKES = frozenset({"wrong_answer", "answer_form", "unanswered", "missing_choice", "extra_choice"})
_SHOWN_ID = re.compile(r"\n *\(mistake: [A-Za-z0-9_]+ — see the glossary\)")


class CheckFailure(AssertionError):
    """A check failed. ``str(err)`` teaches and ends with the mistake's id (the glossary's "Named mistake"), which
    a chapter's text may refer to; ``err.mistake`` is that id, ``err.args[0]`` the message without it."""

    def __init__(self, message: str, *, mistake: str = "values"):
        if mistake not in MISTAKES:
            raise KeyError(f"unknown mistake id {mistake!r}; register it with define_mistake()")
        super().__init__(_SHOWN_ID.sub("", message))  # a message built from another failure's str() keeps one id
        self.mistake = mistake

    def __str__(self) -> str:
        text = super().__str__()
        if self.mistake in UNSHOWN_MISTAKES:
            return text
        return f"{text}\n(mistake: {self.mistake} — see the glossary)"

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
    """A hook for the class grader around each check (``sys.audit`` calls, "start" and "end"); outside grading
    nothing answers them and it does nothing. What the grader does with them is documented with the grader."""
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
     ".view() only merges or splits dimensions that lie in order in memory, and this tensor's memory order "
     "(a transposed or permuted view, or channels_last) does not allow that one; use .reshape() or "
     "einops.rearrange, which copy when they must."),
    ("expected scalar type", "dtype",
     "tensors of different dtypes meet: a tensor created with a fixed dtype? Use x.dtype."),
    ("must have the same dtype", "dtype",
     "tensors of different dtypes meet: a tensor created with a fixed dtype? Use x.dtype."),
    ("Input type (float) and", "dtype",
     "tensors of different dtypes meet (float32 and float64): a hard-coded dtype (.float(), torch.float32)? "
     "Let every tensor follow x.dtype."),
    ("Input type (double) and", "dtype",
     "tensors of different dtypes meet (float64 and float32): a hard-coded dtype? Let every tensor follow x.dtype."),
    ("Input type (torch.FloatTensor) and weight type (torch.DoubleTensor)", "dtype",
     "a float32 tensor meets float64 weights: a hard-coded dtype (.float(), torch.float32)? Let every tensor "
     "follow x.dtype."),
    ("Input type (torch.DoubleTensor) and weight type (torch.FloatTensor)", "dtype",
     "a float64 tensor meets float32 weights: a hard-coded dtype? Let every tensor follow x.dtype."),
    ("a leaf Variable that requires grad is being used in an in-place operation", "inplace",
     "an in-place operation (x *= ..., x.mul_(...), x += ...) overwrites the input; compute a new tensor instead."),
    ("Output size is too small", "pool_kernel",
     "a pooling kernel larger than the input: kernel_size=(W, H) with H and W swapped? x.shape[2:] is (H, W), in "
     "that order (or reduce with x.mean((2, 3), keepdim=True), which needs no kernel)."),
    ("NameError", "name_error",
     "Python met a name that was never assigned. Compare, letter by letter, the line where the variable is "
     "created with the line that uses it."),
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


#: (text in the error, mistake id, advice): what a chapter adds to the generic error hints.
Hints = Sequence[tuple[str, str, str]]


def call_with_hints(fn: Callable, *args: Any, doing: str, hints: Hints = (), **kwargs: Any) -> Any:
    """:func:`call`, with a chapter's ``hints`` for errors the generic ones can only call a crash."""
    try:
        return call(fn, *args, doing=doing, **kwargs)
    except CheckFailure as failure:
        if failure.mistake == "crash":
            text = str(failure)
            for needle, mistake, advice in hints:
                if needle in text:
                    raise CheckFailure(f"{text}\n  Likely mistake: {advice}", mistake=mistake) from None
        raise


def expect_unchanged(before: torch.Tensor, after: torch.Tensor, *, what: str, mistake: str = "inplace",
                     advice: str = "x *= ..., x.mul_(...), x += ...") -> None:
    """The student's code left its input alone (``before`` is a copy taken before the call)."""
    expect(torch.equal(before, after.detach()),
           f"{what} changed its input in place ({advice}). Leave the input alone: the caller (a residual "
           "connection, autograd) still needs it. Compute a new tensor instead.", mistake=mistake)


def forward_keeps_input(module: Callable, x: torch.Tensor, *, doing: str, hints: Hints = ()) -> Any:
    """Call ``module(x)`` and fail with mistake "inplace" if that changed ``x``."""
    before = x.clone()
    out = call_with_hints(module, x, doing=doing, hints=hints)
    expect_unchanged(before, x, what=doing)
    return out


def call_on_copies(fn: Callable, args: Sequence[Any], *, doing: str, hints: Hints = (),
                   mistake: str = "modifies_input") -> Any:
    """Call ``fn`` on copies of its tensor arguments; fail (``mistake``) if it changed one of them."""
    copies = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
    result = call_with_hints(fn, *copies, doing=doing, hints=hints)
    for original, copy in zip(args, copies):
        if isinstance(original, torch.Tensor) and not torch.equal(original, copy):
            raise CheckFailure(f"{doing} changed its input in place; return a new tensor instead.", mistake=mistake)
    return result


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


def expect_no_upcast(result: Any, x: torch.Tensor, *, what: str) -> None:
    """A float32 input must not come back float64 (named before any value comparison, which would read the
    float32-accurate float64 result as 'float32 inside')."""
    if x.dtype == torch.float32 and isinstance(result, torch.Tensor) and result.dtype == torch.float64:
        raise CheckFailure(
            f"{what} returns torch.float64 for a float32 input: results follow the input's dtype.\n  Likely "
            "mistake: a .double(), dtype=torch.float64 or a float64 constant inside.", mistake="dtype_upcast")


def expect_block_forward(module: Any, x: torch.Tensor, *, what: str, returns: str,
                         call: Callable[..., Any] | None = None,
                         misread: Callable[[Any], tuple[str, str] | None] | None = None) -> torch.Tensor:
    """``forward(x)`` of a block that keeps its input's shape (a residual or gating block), called on a copy of
    ``x``: it must return a tensor of ``x``'s shape and leave ``x`` unchanged. ``returns`` says what forward
    returns, in the chapter's words (it goes into the messages). ``misread(y, returns)`` names a known wrong output
    before the shape check, as (message, mistake id), or None; by default a square 3-D output, (B, N, N) or
    (B, C, C), is the attention map (:func:`returned_the_map`)."""
    call = call_with_hints if call is None else call
    x_in = x.clone()
    y = call(module, x_in, doing=f"{what}(x) with x of shape {fmt_shape(x.shape)}")
    named = (misread or returned_the_map)(y, returns)
    if named is not None:
        raise CheckFailure(named[0], mistake=named[1])
    expect_shape(y, x.shape, what="forward(x)")
    expect_no_upcast(y, x, what=f"{what}(x)")
    expect(torch.equal(x_in, x), f"forward(x) changed its input x in place (x += ... or x.add_()); return {returns} as "
           "a new tensor.", mistake="inplace")
    return y


def expect_position_map(module: Any, x: torch.Tensor, *, what: str, returns: str, hint: str,
                        call: Callable[..., Any] | None = None) -> torch.Tensor:
    """``attention(x)`` of a block whose map relates every position to every other, called on a copy of ``x``:
    (B, N, N) with N = H * W. An output of the input's shape is named ``returns_features`` (``returns`` says,
    in the chapter's words, what attention returns instead); a wrong shape gets ``hint``. Returns the map."""
    call = call_with_hints if call is None else call
    b, _, h, w = x.shape
    a = call(module.attention, x.clone(), doing=f"{what}.attention(x) with x of shape {fmt_shape(x.shape)}")
    expect_no_upcast(a, x, what=f"{what}.attention(x)")
    if isinstance(a, torch.Tensor) and a.shape == x.shape:
        raise CheckFailure(f"attention(x) returned a tensor of the input's shape {fmt_shape(x.shape)}: {returns}",
                           mistake="returns_features")
    expect_shape(a, (b, h * w, h * w), what=f"attention(x) for x of shape {fmt_shape(x.shape)}", hint=hint)
    return a


def returned_the_map(y: Any, returns: str, *, square: bool = True) -> tuple[str, str] | None:
    """A 3-D output (square unless ``square=False``) where forward should return its input's shape: the map."""
    if isinstance(y, torch.Tensor) and y.dim() == 3 and (not square or y.shape[-1] == y.shape[-2]):
        return (f"forward(x) returned a tensor of shape {fmt_shape(y.shape)}: the attention map. forward returns "
                f"{returns}, of the input's shape.", "returns_map")
    return None


#: The one tolerance policy of every check: float64 against float64 is compared strictly (an answer that
#: computes in float32 inside fails), anything else at float32 precision.
STRICT = (1e-9, 1e-11)
LOOSE = (1e-4, 1e-5)


def tolerances(dtype: torch.dtype, other: torch.dtype | None = None) -> tuple[float, float]:
    """(rtol, atol) for a result of ``dtype`` compared with an expected value of ``other`` (default: the same)."""
    other = dtype if other is None else other
    return STRICT if dtype == torch.float64 and other == torch.float64 else LOOSE


def _within(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    actual = actual.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    return bool(torch.all(torch.abs(actual - expected) <= atol + rtol * torch.abs(expected)))


def is_close(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float | None = None,
             atol: float | None = None) -> bool:
    """Same shape and equal within the policy's tolerances (explicit ``rtol``/``atol`` may only tighten them)."""
    if not isinstance(actual, torch.Tensor) or not isinstance(expected, torch.Tensor) or actual.shape != expected.shape:
        return False
    policy_rtol, policy_atol = tolerances(actual.dtype, expected.dtype)
    rtol = policy_rtol if rtol is None else min(rtol, policy_rtol)
    atol = policy_atol if atol is None else min(atol, policy_atol)
    return _within(actual, expected, rtol, atol)


Diagnoses = Mapping[str, tuple[torch.Tensor, str]] | Sequence[tuple[str, torch.Tensor, str]]


def _diagnosis_list(diagnoses: Diagnoses | None) -> list[tuple[str, torch.Tensor, str]]:
    if not diagnoses:
        return []
    if isinstance(diagnoses, Mapping):
        return [(mistake, wrong, advice) for mistake, (wrong, advice) in diagnoses.items()]
    return list(diagnoses)


def named(results: Mapping[str, torch.Tensor], advice: Mapping[str, tuple[str, str]]
          ) -> list[tuple[str, torch.Tensor, str]]:
    """Stored wrong results (label -> tensor) with a chapter's advice (label -> (mistake id, text))."""
    return [(advice[label][0], wrong, advice[label][1]) for label, wrong in results.items()]


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    what: str,
    diagnoses: Diagnoses | None = None,
    hint: str = "",
    mistake: str = "values",
    fallback: tuple[str, str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Compare with an expected tensor; on mismatch name a known mistake whose result matches.

    ``diagnoses``: mistake id -> (the result that mistake produces, advice), or a sequence of
    (mistake id, result, advice) when one id has several results; tried in order.
    ``fallback``: (mistake id, advice) for a mismatch that no diagnosis explains (else ``mistake``, ``hint``).
    A float64 result that agrees only to float32 precision is named as computing in float32 inside.
    """
    tensor = expect_tensor(actual, what=what)
    expect_shape(tensor, expected.shape, what=what)
    if is_close(tensor, expected, rtol=rtol, atol=atol):
        passed()
        return
    for mistake_id, wrong, advice in _diagnosis_list(diagnoses):
        if is_close(tensor, wrong, rtol=rtol, atol=atol):
            raise CheckFailure(f"{what} has the wrong values.\n  Likely mistake: {advice}", mistake=mistake_id)
    if not bool(torch.isfinite(tensor.detach()).all()) and bool(torch.isfinite(expected).all()):
        bad = int((~torch.isfinite(tensor.detach())).sum())
        raise CheckFailure(f"{what} holds {bad} NaN or inf value(s) where the expected values are finite.\n  "
                           f"Likely mistake: {OVERFLOW_ADVICE} (A division by zero gives NaN or inf too.)",
                           mistake="overflow")
    if tensor.dtype == torch.float64 and _within(tensor, expected, *LOOSE):
        raise CheckFailure(
            f"{what} agrees with the expected float64 values only to float32 precision.\n  Likely mistake: "
            "something inside computes in float32: a constant made with torch.tensor(...) or torch.ones(...) without "
            "dtype=x.dtype, a .float(), or a float32 buffer. Let every tensor follow x.dtype.",
            mistake="float32_inside")
    got = tensor.detach().to("cpu", torch.float64)
    diff = (got - expected.detach().to("cpu", torch.float64)).abs()
    flat = int(torch.nan_to_num(diff, nan=float("inf")).argmax())
    where = _unravel(flat, diff.shape)
    message = (
        f"{what} has the wrong values: the largest difference is {diff.reshape(-1)[flat].item():.3g} at index "
        f"{where} (expected %s, got %s)." % _distinct(expected.reshape(-1)[flat].item(), got.reshape(-1)[flat].item())
    )
    if fallback is not None:
        mistake, hint = fallback
    raise CheckFailure(message + (f"\n  Likely mistake: {hint}" if hint else ""), mistake=mistake)


def _distinct(expected: float, got: float) -> tuple[str, str]:
    """Two numbers with 5 significant digits, or as many more (up to 10) as it takes to tell them apart."""
    for digits in range(5, 11):
        pair = (f"{expected:.{digits}g}", f"{got:.{digits}g}")
        if pair[0] != pair[1]:
            break
    return pair


def _unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    """The index of entry ``flat`` of a tensor of ``shape`` (torch.unravel_index takes a second to import)."""
    where = []
    for size in reversed(tuple(shape)):
        flat, rest = divmod(flat, int(size))
        where.append(rest)
    return tuple(reversed(where))


def close_named(actual: Any, target: torch.Tensor, *, what: str, diagnoses: Mapping[str, torch.Tensor],
                advice: Mapping[str, tuple[str, str]], hint: str = "", fallback: tuple[str, str] | None = None) -> None:
    """:func:`expect_close` with stored wrong results under a chapter's labels (label -> (mistake id, advice))."""
    expect_close(actual, target, what=what, diagnoses=named(diagnoses, advice), hint=hint, fallback=fallback)


#: The name the chapter files used before this lived here.
expect_close_or_name = expect_close


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
    accept_extra_biases: bool = False,
    extra_hint: str = "",
) -> None:
    """Copy ``weights`` (role -> tensor, all of distinct shapes) into the student's parameters.

    Parameters are matched by shape, treating a Linear weight (o, i) and a 1x1 conv weight (o, i, 1, 1)
    as the same. A student parameter that no role claims fails (mistake "extra_parameter" for a bias the
    stub leaves out), unless the exercise explicitly accepts extra biases (``accept_extra_biases``): they are
    then set to zero, which leaves the map unchanged.
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
            if param.dim() == 1 and name.endswith("bias"):
                if accept_extra_biases:
                    param.zero_()
                    continue
                raise CheckFailure(
                    f"{what} has a bias {name} of shape {fmt_shape(param.shape)} that the exercise does not ask "
                    f"for.\n  expected: {expected_list}\n  yours:    {got_list}\n  Likely mistake: "
                    + (extra_hint or "the stub's layers have no bias: pass bias=False to nn.Conv2d / nn.Linear "
                       "(their default is bias=True). An extra bias changes the module's output and its "
                       "parameter count."),
                    mistake="extra_parameter")
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
            f"stored expected values {path} are missing; run `python -m course_lib build-expected`"
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


#: The devices the hidden checks run on: the CPU, and CUDA where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def float32_exact(t: torch.Tensor) -> torch.Tensor:
    """Round to float32 and back, so float32 and float64 trials start from the very same numbers."""
    return t.float().double()


def seeded_picker(seed: int) -> Callable[[int, int], int]:
    """``pick(lo, hi)``: reproducible random ints in [lo, hi] (both ends included) for the hidden trials."""
    generator = torch.Generator().manual_seed(seed)
    return lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=generator))


def seeded_randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A reproducible random tensor that does not touch the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


def isfinite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all()) if isinstance(t, torch.Tensor) else math.isfinite(float(t))


# --------------------------------------------------------------------------------------------
# the mistake classes every exercise is checked for
# --------------------------------------------------------------------------------------------
def expect_int(value: Any, *, what: str, advice: str = "") -> int:
    """An integral number: int, numpy integer or an integral 0-d tensor. A float (even 12.0) is a mistake."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool and not value.is_complex():
        value = int(value)
    if not isinstance(value, bool) and not isinstance(value, torch.Tensor):
        try:
            value = operator.index(value)  # int and numpy integers; never floats
        except TypeError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        is_float = isinstance(value, float) or (isinstance(value, torch.Tensor) and value.is_floating_point()) \
            or type(value).__name__.startswith("float")
        message = f"{what} should be an int, got {value!r} ({type(value).__name__})."
        if is_float:
            message += ("\n  Likely mistake: a float where a count is asked. A count is a whole number: keep "
                        "to integer arithmetic (// for floor division, no /, no math.ceil of a float, no "
                        "millions) and return the exact count." + (f" {advice}" if advice else ""))
        raise CheckFailure(message, mistake="float_count")
    passed()
    return value


def _float64_copies(inputs: Sequence[Any], grad_inputs: Sequence[int]) -> list[Any]:
    out = []
    for i, t in enumerate(inputs):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            t = t.detach().to(torch.float64).clone()
            if i in grad_inputs:
                t.requires_grad_(True)
        out.append(t)
    return out


def expect_gradients(fn: Callable, inputs: Sequence[Any], *, doing: str, names: Sequence[str],
                     grad_inputs: Sequence[int] | None = None, hints: Hints = ()) -> None:
    """The result carries correct gradients to every input that has one (``names`` label the inputs).

    Runs in float64: the result must be in the autograd graph (no .detach(), .data, torch.no_grad()), every
    listed input must get a gradient, and autograd's gradient must equal the finite-difference one (a term
    cut from the graph leaves a gradient that is wrong, not missing). ``fn`` returns one tensor.
    """
    grad_inputs = list(range(len(inputs))) if grad_inputs is None else list(grad_inputs)
    cut = ("your result does not carry gradients: is it computed under torch.no_grad(), through .data, "
           ".detach(), .item() or numpy? A network built on it could not train.")
    copies = _float64_copies(inputs, grad_inputs)
    out = call_with_hints(fn, *copies, doing=f"{doing} in float64 with requires_grad=True", hints=hints)
    out = expect_tensor(out, what=doing)
    if out.is_floating_point() and out.dtype != torch.float64:
        raise CheckFailure(f"{doing} returned {out.dtype} for float64 inputs: a hard-coded dtype (.float(), "
                           "torch.float32)? Let the result follow the input's dtype.", mistake="dtype")
    if not out.requires_grad:
        raise CheckFailure(f"{doing}: {cut}", mistake="no_grad")
    upstream = seeded_randn(*out.shape, seed=17, dtype=out.dtype) if out.is_floating_point() else None
    if upstream is None:
        raise CheckFailure(f"{doing} returned a {out.dtype} tensor; a float result is expected.", mistake="dtype")
    wanted = [copies[i] for i in grad_inputs]
    grads = call(lambda: torch.autograd.grad((out * upstream).sum(), wanted, allow_unused=True),
                 doing=f"backward through {doing}")
    missing = [names[i] for i, g in zip(grad_inputs, grads) if g is None]
    if missing:
        raise CheckFailure(f"{doing}: no gradient reaches {', '.join(missing)}. {cut}", mistake="no_grad")
    # one directional derivative, by central differences, against autograd's
    g = torch.Generator().manual_seed(23)
    directions = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in wanted]
    analytic = sum((gr * d).sum() for gr, d in zip(grads, directions)).item()
    eps = 1e-6

    def shifted(sign: float) -> float:
        moved = list(copies)
        for i, d in zip(grad_inputs, directions):
            moved[i] = (copies[i].detach() + sign * eps * d)
        with torch.no_grad():
            value = call_with_hints(fn, *moved, doing=f"{doing} in float64", hints=hints)
        return float((expect_tensor(value, what=doing).detach().to(torch.float64) * upstream).sum())

    numeric = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    if not math.isclose(analytic, numeric, rel_tol=1e-4, abs_tol=1e-6 * (1 + abs(numeric))):
        raise CheckFailure(
            f"{doing}: autograd's gradient ({analytic:.6g} along a random direction) differs from the true one "
            f"({numeric:.6g}).\n  Likely mistake: part of the result is cut from the graph (.detach(), .data, "
            "torch.no_grad() around one term), so gradients miss that path.", mistake="no_grad")
    passed()


OVERFLOW_ADVICE = ("exp(s) overflows once the scores reach about 89 (float32) or 710 (float64), and real "
                   "features give scores in the hundreds: inf / inf is NaN. torch.softmax(s, dim=-1) "
                   "subtracts each row's max first, which leaves the result unchanged and keeps exp finite.")


def expect_finite(value: Any, *, what: str, mistake: str = "overflow", advice: str = OVERFLOW_ADVICE) -> None:
    """No NaN or inf in the result (run on inputs of realistic magnitude)."""
    tensor = expect_tensor(value, what=what)
    if not bool(torch.isfinite(tensor.detach()).all()):
        bad = int((~torch.isfinite(tensor.detach())).sum())
        raise CheckFailure(f"{what} holds {bad} NaN or inf value(s).\n  Likely mistake: {advice}", mistake=mistake)
    passed()


def plain_tensor_attributes(module: torch.nn.Module) -> list[str]:
    """Tensors held in plain attributes (not parameters or buffers): .to(), .double() and state_dict miss them."""
    found = []
    for prefix, sub in module.named_modules():
        for key, value in vars(sub).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) and not key.startswith("_"):
                found.append(f"{prefix + '.' if prefix else ''}{key}")
    return found


_FACTORIES = frozenset({
    torch.tensor, torch.as_tensor, torch.from_numpy, torch.ones, torch.zeros, torch.full, torch.empty, torch.arange,
    torch.linspace, torch.logspace, torch.eye, torch.rand, torch.randn, torch.randint, torch.randperm,
})


class _CpuConstantWatch(TorchFunctionMode):
    """Follows tensors made by factory functions without ``device=``: they stay on the CPU whatever the
    input's device. One of them (not 0-d: CPU scalars may meet GPU tensors) meeting a tensor that follows the
    input is the bug a GPU would raise; ``.to(device)`` clears it."""

    def __init__(self) -> None:
        super().__init__()
        self.stray: set[int] = set()
        self.keep: list[torch.Tensor] = []  # the ids in `stray` must stay unique while the forward runs
        self.found: list[str] = []
        self.moved: list[str] = []  # .cpu(), .to("cpu"), .to(torch.device("cpu")): a tensor sent to a fixed device
        self.derived: set[int] = set()  # devices read from a tensor (x.device): .to() to them follows the input
        self.asked_cuda = False  # torch.cuda.is_available() called inside: the code picks a device itself
        self._is_available: Callable[[], bool] | None = None

    def __enter__(self):  # noqa: ANN204
        self._is_available = original = torch.cuda.is_available

        def is_available() -> bool:
            self.asked_cuda = True
            return original()

        torch.cuda.is_available = is_available
        return super().__enter__()

    def __exit__(self, *exc: Any):  # noqa: ANN204
        try:
            return super().__exit__(*exc)
        finally:
            torch.cuda.is_available = self._is_available

    def _mark(self, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            self.stray.add(id(value))
            self.keep.append(value)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if isinstance(out, torch.device) and name == "__get__":  # x.device, self.weight.device
            self.derived.add(id(out))
            self.keep.append(out)  # type: ignore[arg-type]
        elif name in ("cpu", "to") and args and isinstance(args[0], torch.Tensor) and self._fixed_cpu(name, args[1:], kwargs):
            self.moved.append(f".{name}({', '.join(_short(a) for a in [*args[1:], *kwargs.values()])})")
        if func in _FACTORIES:
            source = args[0] if args else kwargs.get("data")
            device = kwargs.get("device")
            fixed_cpu = device is not None and self._fixed_cpu("to", (device,), {})  # device="cpu" is one too
            if (device is None or fixed_cpu) and not (func is torch.as_tensor and isinstance(source, torch.Tensor)):
                self._mark(out)
            return out
        operands = [*args, *kwargs.values()]
        tensors = [t for a in operands for t in (a if isinstance(a, (list, tuple)) else (a,))
                   if isinstance(t, torch.Tensor)]
        if _moves_to_a_device(getattr(func, "__name__", ""), args[1:], kwargs):
            # on a GPU this gives a new tensor on the named device (on the CPU it may be the same object)
            self.stray.discard(id(out))
            return out
        stray = [id(t) in self.stray for t in tensors if t.dim() > 0]
        if any(stray) and not all(stray):
            self.found.append(getattr(func, "__name__", str(func)))
        elif any(stray):  # made from CPU constants only: still one
            for value in out if isinstance(out, (list, tuple)) else (out,):
                self._mark(value)
        return out

    def _fixed_cpu(self, name: str, rest: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """t.cpu(), t.to("cpu"), t.to(device="cpu"), t.to(torch.device("cpu")): not t.to(x.device), t.to(x),
        t.to(dtype)."""
        if name == "cpu":
            return True
        for target in [*rest[:1], kwargs.get("device")]:
            if isinstance(target, str) and torch.device(target).type == "cpu":
                return True
            if isinstance(target, torch.device) and target.type == "cpu" and id(target) not in self.derived:
                return True
        return False


def _short(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    return type(value).__name__


def _moves_to_a_device(name: str, rest: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """t.cuda(), t.type_as(x), t.to(x.device), t.to(x), t.to(device=...): a tensor placed where it is used."""
    if name in ("cuda", "type_as"):
        return True
    return name == "to" and ("device" in kwargs or any(isinstance(a, (torch.device, str, torch.Tensor)) for a in rest))


def _expect_no_move_to_cpu(watch: _CpuConstantWatch, doing: str) -> None:
    if watch.asked_cuda:
        raise CheckFailure(
            f"{doing} asks torch.cuda.is_available(): the code chooses a device itself, so on a GPU it may move "
            "tensors the input did not put there (and on a CPU its GPU branch is never tried).\n  Likely mistake: a "
            "device picked inside forward; follow the input instead (x.device, .to(x), .type_as(x), x.new_ones(...)).",
            mistake="device")
    if watch.moved:
        raise CheckFailure(
            f"{doing} moves a tensor to the CPU ({watch.moved[0]}). On a GPU that tensor then meets the input's "
            "GPU tensors, which raises 'Expected all tensors to be on the same device' (or copies every call).\n"
            "  Likely mistake: a fixed device inside forward; let every tensor stay on the input's device "
            "(x.device, or .to(x) / .type_as(x) where a tensor must follow x).", mistake="device")


def expect_device_free(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward") -> None:
    """Catch, without a GPU, what breaks on one: plain tensor attributes, and tensors made on the CPU in forward.

    ``module.<method>(x)`` runs once more while factory functions (torch.tensor, torch.ones, torch.arange, ...)
    called without ``device=`` are followed: on a GPU such a tensor stays on the CPU and meets x's GPU tensors.
    """
    attributes = plain_tensor_attributes(module)
    if attributes:
        raise CheckFailure(
            f"{what} keeps tensors in plain attributes ({', '.join(attributes)}): module.to('cuda'), .double() and "
            "state_dict() do not see them, so they stay behind on the CPU in float32.\n  Likely mistake: register "
            "a constant with self.register_buffer(name, tensor), or make it a nn.Parameter if it is learned.",
            mistake="tensor_attribute")
    watch = _CpuConstantWatch()
    with torch.no_grad(), watch:
        call(getattr(module, method), x.clone(), doing=f"{what}.{method}(x)")
    _expect_no_move_to_cpu(watch, f"{what}.{method}(x)")
    if watch.found:
        raise CheckFailure(
            f"{what}.{method}(x) creates a tensor on the CPU (a torch.tensor(...), torch.ones(...), torch.arange(...) "
            f"without device= or with device='cpu') and combines it with x ({watch.found[0]}). On a GPU that raises 'Expected all tensors "
            "to be on the same device'.\n  Likely mistake: create it with device=x.device, dtype=x.dtype (or "
            "x.new_ones(...), torch.ones_like(x)), or register it once as a buffer in __init__.",
            mistake="cpu_constant")
    passed()
    expect_train_mode(module, x, what=what, method=method)
    expect_keeps_float32(module, x, what=what, method=method)
    expect_autocast(module, x, what=what, method=method)


def _has_running_statistics(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in module.modules())


def expect_train_mode(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward") -> None:
    """Training mode computes the same function as eval mode, on a copy (the student's module is left alone).

    A student trains the module, so a check that only runs it in eval mode lets through what changes in
    training (a Dropout in the MLP, a branch on ``self.training``). No attention block of the course has a
    Dropout. A module with BatchNorm (its batch statistics differ by design) is compared in training mode by
    ``expect_normalisation_modes`` instead; here only its Dropout layers are named."""
    dropout = [name or type(module).__name__ for name, m in module.named_modules()
               if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    if dropout:
        raise CheckFailure(
            f"{what} has a Dropout layer ({dropout[0]}): in training mode it zeroes random entries, so the gate "
            "the network learns with is not the paper's.\n  Likely mistake: a Dropout borrowed from a classifier "
            "head; the block has none.", mistake="train_mode")
    if _has_running_statistics(module):
        return
    twin = copy.deepcopy(module)
    with torch.no_grad():
        twin.eval()
        reference = _float_tensors(call(getattr(twin, method), x.clone(), doing=f"{what}.{method}(x) in eval mode"))
        twin.train()
        result = _float_tensors(call(getattr(twin, method), x.clone(), doing=f"{what}.{method}(x) in training mode"))
    for got, want in zip(result, reference):
        scale = float(want.abs().max()) if want.numel() else 0.0
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-6, atol=1e-6 * scale, equal_nan=True):
            raise CheckFailure(
                f"{what}.{method}(x) gives other values in training mode (module.train()) than in eval mode. The "
                "block has no BatchNorm, so both modes must compute the same function: the network trains with "
                "the training-mode one.\n  Likely mistake: code that reads self.training, or a random operation "
                "inside forward.", mistake="train_mode")
    passed()


def expect_keeps_float32(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward") -> None:
    """A float32 input gives float32 results (a copy of the module in float32; float64 is checked elsewhere)."""
    if not x.is_floating_point():
        return
    twin = copy.deepcopy(module).float().eval()
    with torch.no_grad():
        result = _float_tensors(call(getattr(twin, method), x.detach().float().clone(),
                                     doing=f"{what}.{method}(x) in float32"))
    _expect_float32_results(result, doing=f"{what}.{method}(x)")
    passed()


def _expect_float32_results(results: Sequence[torch.Tensor], *, doing: str) -> None:
    """Every float result of a float32 call is float32 (expect_keeps_float32, expect_function_contract)."""
    wrong = [t.dtype for t in results if t.dtype != torch.float32]
    if wrong:
        raise CheckFailure(
            f"{doing} returns {wrong[0]} for a float32 input: results follow the input's dtype.\n  Likely mistake: "
            "a .double(), dtype=torch.float64 or a float64 constant inside, which also makes the code slower and "
            "twice as large in memory on a GPU.", mistake="dtype_upcast")


#: bound on max |y_autocast - y_float32| / max |y_float32| for a student's module under CPU bfloat16 autocast.
#: The reference modules stay within 0.05 (the worst: sampling grids and softmaxes over positions; the table is
#: in tests/test_autocast.py); this bound leaves room for any reasonable way of writing a module.
AUTOCAST_BOUND = 0.15


def _float_tensors(value: Any) -> list[torch.Tensor]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point()]


def expect_autocast(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward",
                    bound: float = AUTOCAST_BOUND) -> None:
    """Mixed precision: ``module.<method>`` runs inside ``torch.autocast('cpu', dtype=torch.bfloat16)``
    (on a CUDA input: ``torch.autocast('cuda', dtype=torch.float16)``).

    There a module placed after a convolution receives a bfloat16 tensor while its own weights stay float32
    (CUDA training does the same with float16). The module must run, and its result stay within ``bound`` of
    the float32 one (relative to the float32 result's largest magnitude), on a copy in eval mode (so no
    running statistic of the student's module changes). Checked only for float32 inputs: autocast never
    touches float64.
    """
    if x.dtype != torch.float32:
        return
    twin = copy.deepcopy(module).eval()
    device = x.device.type
    low_dtype = torch.float16 if device == "cuda" else torch.bfloat16  # what GPU training loops use
    low = x.detach().to(low_dtype)
    with torch.no_grad():
        reference = _float_tensors(call(getattr(twin, method), low.float(), doing=f"{what}.{method}(x)"))
        try:
            with torch.autocast(device, dtype=low_dtype):
                result = getattr(twin, method)(low.clone())
        except Exception as err:  # noqa: BLE001 - the student's error, reported with what was being done
            raise CheckFailure(
                f"{what}.{method}(x) raised under torch.autocast({device!r}, dtype={low_dtype}): "
                f"{type(err).__name__}: {_first_line(str(err))}\n  In mixed-precision training a module placed "
                "after a convolution receives a bfloat16 (on a GPU: float16) tensor while its weights stay "
                "float32, and autocast casts both sides of each matrix product and convolution itself.\n"
                "  Likely mistake: a dtype test that refuses the input, or an operation autocast does not cover "
                "given two dtypes.", mistake="autocast") from None
    result = _float_tensors(result)
    if len(result) != len(reference) or any(r.shape != e.shape for r, e in zip(result, reference)):
        raise CheckFailure(
            f"{what}.{method}(x) under torch.autocast returns shapes {[fmt_shape(r.shape) for r in result]}, "
            f"in float32 {[fmt_shape(e.shape) for e in reference]}: the result must not depend on the precision.",
            mistake="autocast")
    for got, want in zip(result, reference):
        scale = want.abs().max().item()
        drift = (got.float() - want).abs().max().item()
        if not math.isfinite(drift) or drift > bound * max(scale, 1e-12):
            raise CheckFailure(
                f"{what}.{method}(x) under torch.autocast ({low_dtype}) differs from the float32 result by "
                f"{drift:.3g} where the float32 result's largest magnitude is {scale:.3g} (allowed: "
                f"{bound:g} of it).\n  Likely mistake: a step that loses precision in bfloat16, such as a variance "
                "taken as E[x^2] - E[x]^2 (the two terms cancel), or a long sum or an exp written out by hand.",
                mistake="autocast_precision")
    passed()


def expect_defaults(cls: type, args: Sequence[Any], defaults: Mapping[str, Any], x: torch.Tensor, *,
                    what: str, method: str = "forward") -> torch.nn.Module:
    """Build ``cls(*args)`` with the stub's defaults left out; it must equal ``cls(*args, **defaults)``.

    Same parameters and buffers (names and shapes), and with the same weights the same output on ``x``.
    """
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in defaults.items()])
    plain = build(cls, *args)
    explicit = build(cls, *args, **defaults)
    short = f"{getattr(cls, '__name__', cls)}({', '.join(repr(a) for a in args)})"
    intro = (f"{short} (the defaults) and {getattr(cls, '__name__', cls)}({shown}) should be the same module: "
             f"the stub's defaults are {', '.join(f'{k}={v!r}' for k, v in defaults.items())}.")
    mine = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in explicit.state_dict().items()}
    if mine != theirs:
        diff = sorted(set(mine.items()) ^ set(theirs.items()))
        raise CheckFailure(f"{intro}\n  They differ in {', '.join(f'{k} {fmt_shape(s)}' for k, s in diff[:4])}."
                           "\n  Likely mistake: a default argument in __init__ differs from the stub's signature.",
                           mistake="default_args")
    with torch.no_grad():
        plain.load_state_dict(explicit.state_dict())
    plain.eval()
    explicit.eval()
    with torch.no_grad():
        a = call(getattr(plain, method), x.clone(), doing=f"{short}.{method}(x)")
        b = call(getattr(explicit, method), x.clone(), doing=f"{getattr(cls, '__name__', cls)}({shown}).{method}(x)")
    same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and _within(a, b, *STRICT)) or (not isinstance(a, torch.Tensor) and type(a) is type(b))
    expect(same, f"{intro}\n  With the same weights they give different outputs.\n  Likely mistake: a default "
                 "argument in __init__ differs from the stub's signature.", mistake="default_args")
    return plain


def expect_module_gradients(module: torch.nn.Module, x: torch.Tensor, *, what: str,
                            upstream: torch.Tensor | None = None, grad_x: torch.Tensor | None = None,
                            hints: Hints = (), weights_only: bool = False) -> torch.Tensor:
    """Backward through ``module(x)``: a gradient reaches x and every parameter (every weight with
    ``weights_only``), and equals ``grad_x`` where it is given. Returns the gradient of x."""
    module.zero_grad(set_to_none=True)
    xg = x.detach().clone().requires_grad_(True)
    out = expect_tensor(call_with_hints(module, xg, doing=f"{what}(x) with x.requires_grad=True", hints=hints),
                        what=f"{what}(x)")
    if upstream is None:
        upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    if not out.requires_grad:
        raise CheckFailure(f"backward through {what}(x) is impossible: the result does not carry gradients. Is it "
                           "computed under torch.no_grad(), through .data, .detach() or numpy? A network built on it "
                           "could not train.", mistake="no_grad")
    call(lambda: (out * upstream.to(out.dtype)).sum().backward(), doing=f"backward through {what}(x)")
    missing = [n for n, p in module.named_parameters() if p.grad is None and (p.dim() > 1 or not weights_only)]
    expect(xg.grad is not None and not missing,
           f"no gradient reached {'x' if xg.grad is None else ', '.join(missing)} through {what}(x): keep every "
           "step in the autograd graph (no .detach(), .data or torch.no_grad()).", mistake="no_grad")
    if grad_x is not None:
        expect_close(xg.grad, grad_x, what=f"the gradient of {what}(x) with respect to x",
                     fallback=("no_grad", "part of the computation is cut from the graph (.detach(), .data, "
                                          "torch.no_grad() around one term), so the gradient misses that path."))
    else:
        expect(bool(xg.grad.abs().sum() > 0), f"the gradient of {what}(x) with respect to x is zero: is "
               "something detached (.detach(), .data, torch.no_grad())?", mistake="no_grad")
    return xg.grad


def expect_rows_sum_to_one(a: torch.Tensor, *, what: str, advice: Mapping[str, str]) -> None:
    """An attention map (..., N, M) whose rows sum to 1; name the softmax that normalised something else.

    ``advice`` may hold texts for "columns" (dim -2 sums to 1), "batch" (dim 0) and "all" (the whole map).
    """
    expect_finite(a, what=what)
    a = a.detach().to("cpu", torch.float64)
    rows = a.sum(-1)
    if torch.allclose(rows, torch.ones_like(rows), atol=1e-4):
        passed()
        return
    found = (("columns", a.sum(-2), "its columns sum to 1, not its rows"),
             ("batch", a.sum(0) if a.dim() > 2 and a.shape[0] > 1 else None, "it sums to 1 across the batch, not "
                                                                             "along its rows"),
             ("all", a.sum((-2, -1)), "the whole map sums to 1"))
    for key, sums, what_happened in found:
        if key in advice and sums is not None and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            raise CheckFailure(f"{what}: {what_happened}.\n  Likely mistake: {advice[key]}", mistake="softmax_dim")
    raise CheckFailure(f"{what}: each row should sum to 1 (a softmax over the last dim); row sums range "
                       f"{rows.min().item():.4g} .. {rows.max().item():.4g}.",
                       mistake=advice.get("mistake", "values"))  # type: ignore[arg-type]


def expect_method_gradients(module: torch.nn.Module, method: str, x: torch.Tensor, *, what: str,
                            hints: Hints = ()) -> None:
    """:func:`expect_gradients` for ``module.<method>(x)`` on a float64 copy of the module."""
    twin = copy.deepcopy(module).double()
    expect_gradients(getattr(twin, method), (x,), doing=f"{what}.{method}(x)", names=("x",), hints=hints)


def expect_follows(value: Any, *, dtype: torch.dtype, device: torch.device | str | None = None, doing: str) -> None:
    """The result is a tensor of the input's dtype (and on its device): nothing hard-codes either."""
    got_dtype = getattr(value, "dtype", type(value).__name__)
    expect(isinstance(value, torch.Tensor) and value.dtype == dtype,
           f"{doing} returned {got_dtype} for a {dtype} input: results must follow the input's dtype (no hard-coded "
           "torch.float32, .float(), or torch.tensor(...) without dtype=).", mistake="dtype")
    if device is not None:
        expect(value.device.type == torch.device(device).type,
               f"{doing} returned a tensor on {value.device} for an input on {device}: results must stay on the "
               "input's device (no .cuda(), .cpu() or device='cuda').", mistake="device")


# --------------------------------------------------------------------------------------------
# issue 27: training-mode normalisation, defaults that matter, every function's protections, real overflow,
# each exercise's own layouts, named layout and statistics mistakes
# --------------------------------------------------------------------------------------------
BN_FORCED_EVAL = define_mistake(
    "bn_forced_eval", "in training mode the BatchNorm normalises with its running statistics, not the batch's")
BN_FORCED_TRAIN = define_mistake(
    "bn_forced_train", "in eval mode the normalisation still uses the batch's statistics (forced to batch statistics)")
BN_PER_BRANCH = define_mistake(
    "bn_per_branch", "the BatchNorm runs once per branch (statistics per part) where one pass over the "
                     "concatenation shares them")
BN_TWICE = define_mistake("bn_twice", "the BatchNorm runs twice in one forward: its running statistics are updated "
                                      "twice")
BN_STATISTICS = define_mistake(
    "bn_statistics", "in training mode the output or the BatchNorm's running statistics differ from the paper's block")
HW_SWAPPED = define_mistake("hw_swapped", "H and W swapped where a flattened (H W) axis is unflattened (or flattened)")
MEMORY_LAYOUT = define_mistake("memory_layout", "the function fails or changes its result on a channels_last or "
                                                "non-contiguous input (a .view() that needs contiguous memory?)")


def _batch_norms(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in module.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            and m.running_mean is not None]


def expect_normalisation_modes(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward",
                               hints: Hints = ()) -> None:
    """The module's BatchNorms in training and in eval mode, without a reference (on copies of the module).

    Training mode: one forward runs each BatchNorm once (a second run on the same tensor updates the running
    statistics twice; runs on parts of different shapes normalise each part with its own statistics where the
    paper normalises them together), and the output does not depend on the running statistics (else they are
    used in training). Eval mode: each image's output does not depend on the other images of the batch (else
    the normalisation uses the batch's statistics). ``x`` has at least two images. Modules without a BatchNorm
    pass at once.
    """
    norms = _batch_norms(module)
    if not norms:
        return
    shown = f"{what}.{method}(x)"
    twin = copy.deepcopy(module).train()
    calls: dict[str, list[tuple[int, ...]]] = {n: [] for n, _ in norms}
    handles = [m.register_forward_pre_hook(lambda mod, args, n=n: calls[n].append(tuple(args[0].shape)))
               for n, m in _batch_norms(twin)]
    try:
        with torch.no_grad():
            first = call_with_hints(getattr(twin, method), x.clone(), doing=f"{shown} in training mode", hints=hints)
    finally:
        for handle in handles:
            handle.remove()
    for name, shapes in calls.items():
        if len(shapes) > 1 and len(set(shapes)) > 1:
            raise CheckFailure(
                f"in training mode one {shown} runs the BatchNorm {name} {len(shapes)} times, on tensors of shapes "
                f"{', '.join(fmt_shape(s) for s in shapes)}: each part is normalised with its own mean and variance, "
                "and the running statistics move once per part.\n  Likely mistake: the paper normalises the parts "
                "together, in one pass over their concatenation, so that they share one mean and one variance per "
                "channel.", mistake=BN_PER_BRANCH)
        if len(shapes) > 1:
            raise CheckFailure(
                f"in training mode one {shown} runs the BatchNorm {name} {len(shapes)} times on tensors of shape "
                f"{fmt_shape(shapes[0])}: its running statistics (and num_batches_tracked) move {len(shapes)} times "
                "per forward, so after training they are not the statistics of the data.\n  Likely mistake: a "
                "submodule (or a method that calls it) is run a second time in the same forward; compute the result "
                "once and reuse it.", mistake=BN_TWICE)
    moved = copy.deepcopy(module).train()
    with torch.no_grad():
        for _, m in _batch_norms(moved):
            m.running_mean.add_(1.5)
            m.running_var.mul_(4.0).add_(0.5)
        second = call_with_hints(getattr(moved, method), x.clone(), doing=f"{shown} in training mode", hints=hints)
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape \
            and not _within(first, second, *tolerances(first.dtype)):
        raise CheckFailure(
            f"in training mode {shown} changes when only the BatchNorm's running statistics change: it normalises "
            "with them instead of the batch's own mean and variance, so the block would train on frozen "
            "statistics.\n  Likely mistake: BatchNorm forced into eval mode (training=False, a .eval() inside the "
            "module, or the running buffers passed as the statistics). Let module.train() and module.eval() decide.",
            mistake=BN_FORCED_EVAL)
    passed()
    if x.shape[0] < 2:
        return
    frozen = copy.deepcopy(module).eval()
    with torch.no_grad():
        whole = call_with_hints(getattr(frozen, method), x.clone(), doing=f"{shown} in eval mode", hints=hints)
        alone = call_with_hints(getattr(frozen, method), x[:1].clone(), doing=f"{shown} in eval mode, one image",
                                hints=hints)
    if isinstance(whole, torch.Tensor) and isinstance(alone, torch.Tensor) and whole.shape[1:] == alone.shape[1:] \
            and not _within(whole[:1], alone, *tolerances(whole.dtype)):
        raise CheckFailure(
            f"in eval mode the output of {shown} for the first image changes when the other images of the batch are "
            "left out: the normalisation uses the statistics of the batch even in eval mode, so a trained network "
            "would give one image different answers depending on its batch.\n  Likely mistake: normalisation forced "
            "to batch statistics (training=True, or statistics computed from the batch by hand); in eval mode a "
            "BatchNorm uses its running statistics.", mistake=BN_FORCED_TRAIN)
    passed()


_NORMALISATION_MISTAKES = (BN_FORCED_EVAL, BN_FORCED_TRAIN, BN_PER_BRANCH, BN_TWICE)


@contextlib.contextmanager
def normalisation_explains(module: torch.nn.Module, x: torch.Tensor, *, what: str, method: str = "forward",
                           hints: Hints = ()) -> Iterator[None]:
    """Run a comparison; when it finds wrong values that a misused BatchNorm explains (see
    :func:`expect_normalisation_modes`), the failure names that misuse instead."""
    try:
        yield
    except CheckFailure as failure:
        if failure.mistake == "values":
            try:
                expect_normalisation_modes(module, x, what=what, method=method, hints=hints)
            except CheckFailure as named_failure:
                if named_failure.mistake in _NORMALISATION_MISTAKES:
                    raise named_failure from None
        raise


def uninformative_defaults(args: Sequence[Any], defaults: Mapping[str, Any],
                           layout: Callable[..., Any]) -> list[str]:
    """The defaults that the probe ``args`` cannot tell from a neighbouring value.

    ``layout(*args, **kwargs)`` returns what the exercise's module looks like for those arguments (its layer
    widths, its kernel sizes: whatever the arguments change). For each integer default v, the values v // 2
    and 2 v (those the layout accepts) must each give another layout than v; else a wrong default
    builds the same module at this probe, and the probe tests nothing. A kernel size is also probed against
    v - 2 .. v + 2.
    """
    weak = []
    for key, value in defaults.items():
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        right = layout(*args, **defaults)
        near = {value - 2, value - 1, value + 1, value + 2} if "kernel" in key else set()
        for other in ({value // 2, 2 * value} | near) - {value}:
            if other < 1:
                continue
            try:
                wrong = layout(*args, **{**defaults, key: other})
            except (ValueError, ZeroDivisionError):
                continue
            if wrong == right:
                weak.append(f"{key}={other}")
    return weak


def expect_informative_defaults(cls: type, args: Sequence[Any], defaults: Mapping[str, Any], x: torch.Tensor, *,
                                layout: Callable[..., Any], what: str, method: str = "forward") -> torch.nn.Module:
    """:func:`expect_defaults` at a probe where each default matters (see :func:`uninformative_defaults`); a
    probe where a wrong default gives the same module is the course's error, raised as a RuntimeError."""
    weak = uninformative_defaults(args, defaults, layout)
    if weak:
        raise RuntimeError(f"the probe {tuple(args)} of {what} cannot tell {', '.join(weak)} from the stub's defaults "
                           f"{dict(defaults)}: choose a size where each default changes the module")
    return expect_defaults(cls, args, defaults, x, what=what, method=method)


def _copies(args: Sequence[Any]) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def expect_function_contract(fn: Callable, args: Sequence[Any], *, what: str, hints: Hints = (),
                             target64: torch.Tensor | None = None, unchanged: bool = True) -> Any:
    """The protections of a plain function exercise, the same as a module's: it leaves its inputs alone (mistake
    "modifies_input"), makes no tensor on the CPU that meets its inputs (the device watch, "cpu_constant"), and
    for float64 inputs returns float64 ("dtype") equal to ``target64`` at float64 precision ("float32_inside").
    ``args`` are float64 tensors (and other arguments); returns the result on them."""
    given = _copies(args)
    watch = _CpuConstantWatch()
    with watch:
        out = call_with_hints(fn, *given, doing=what, hints=hints)
    if unchanged:
        for before, after in zip(args, given):
            if isinstance(before, torch.Tensor) and not torch.equal(before, after):
                raise CheckFailure(f"{what} changed its input in place (x *= ..., x.div_(...), x[...] = ...). The "
                                   "caller still needs it: compute a new tensor instead.", mistake="modifies_input")
    _expect_no_move_to_cpu(watch, what)
    if watch.found:
        raise CheckFailure(
            f"{what} creates a tensor on the CPU (a torch.tensor(...), torch.eye(...), torch.arange(...) without "
            f"device= or with device='cpu') and combines it with its input ({watch.found[0]}). On a GPU that raises 'Expected all "
            "tensors to be on the same device'.\n  Likely mistake: a constant made without the input's device; "
            "make it on the input's device and in its dtype.", mistake="cpu_constant")
    floats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
    outputs = _float_tensors(out)
    if floats and outputs:
        dtype = floats[0].dtype
        wrong = [t.dtype for t in outputs if t.dtype != dtype]
        expect(not wrong, f"{what} returned {wrong[0] if wrong else ''} for {dtype} inputs: results follow the "
                          "input's dtype (no .float(), torch.float32 or a constant that forces one).", mistake="dtype")
        if target64 is not None and dtype == torch.float64:
            expect_close(outputs[0], target64, what=what)
    if floats and floats[0].dtype == torch.float64:  # float32 in, float32 out as well
        single = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point()
                       else copy.deepcopy(a).float() if isinstance(a, torch.nn.Module) else a for a in _copies(args))
        out32 = _float_tensors(call_with_hints(fn, *single, doing=f"{what} on float32 inputs", hints=hints))
        _expect_float32_results(out32, doing=what)
    passed()
    return out


def expect_layouts(fn: Callable, args: Sequence[Any], *, what: str, hints: Hints = ()) -> None:
    """The function gives the same result for its 4-D tensor inputs laid out channels_last and as a
    non-contiguous view as for contiguous ones: the exercise's own check tests its own layouts, so a helper that
    only works on contiguous memory loses its own points, not a later exercise's."""
    base = _float_tensors(call_with_hints(fn, *_copies(args), doing=what, hints=hints))
    layouts = (("in the channels_last memory format", "a channels_last tensor (what a network trained with "
                 "channels_last hands over) stores C last in memory", lambda t: t.contiguous(
                     memory_format=torch.channels_last)),
               ("as a non-contiguous view (H and W transposed in memory)", "a view made by .transpose() or "
                "permute() keeps the memory of the tensor it came from, in another order",
                lambda t: t.transpose(1, 2).contiguous().transpose(1, 2)))
    for label, why, lay in layouts:
        laid = tuple(lay(a.clone()) if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args)
        doing = f"{what} with its 4-D input {label}"
        try:
            got = _float_tensors(call_with_hints(fn, *laid, doing=doing, hints=hints))
        except CheckFailure as failure:
            if failure.mistake in ("crash", "shape", "memory_layout"):
                raise CheckFailure(f"{failure.args[0]}\n  The same call works on a contiguous input: the code "
                                   f"relies on the (B, C, H, W) order in memory, and {why}.", mistake=MEMORY_LAYOUT
                                   ) from None
            raise
        same = len(got) == len(base) and all(a.shape == b.shape and _within(a, b, *tolerances(b.dtype))
                                             for a, b in zip(got, base))
        expect(same, f"{doing} gives other values than with a contiguous input: the code reads the numbers in memory "
                     "order, which is not the (B, C, H, W) order here.", mistake=MEMORY_LAYOUT)


def swapped_unflatten(t: torch.Tensor, *, base: torch.Tensor | None = None) -> list[torch.Tensor]:
    """What a (B, C, H, W) result becomes when H and W are swapped where a flattened (H W) axis is unflattened
    or flattened: the positions of ``t - base`` (``base``: a residual added after the branch, or None) read in
    the other order. Empty for a square or non 4-D ``t``."""
    if t.dim() != 4 or t.shape[2] == t.shape[3]:
        return []
    b, c, h, w = t.shape
    branch = t if base is None else t - base
    rest = 0 if base is None else base
    return [branch.transpose(2, 3).reshape(b, c, h, w) + rest, branch.reshape(b, c, w, h).transpose(2, 3) + rest]


HW_ADVICE = ("the right numbers in the wrong places: the positions were flattened in one order and unflattened in "
             "the other (H and W swapped). A (B, C, H, W) tensor flattened to (B, C, H W) numbers its pixels row by "
             "row; unflatten with the same H and W, in the same order.")


def hw_diagnoses(target: torch.Tensor, *, base: torch.Tensor | None = None) -> list[tuple[str, torch.Tensor, str]]:
    """The H-and-W-swapped results of :func:`swapped_unflatten` as diagnoses for :func:`expect_close`."""
    return [(HW_SWAPPED, wrong, HW_ADVICE) for wrong in swapped_unflatten(target, base=base)]


SQUARES_OVERFLOW = ("the squares of entries near 1e20 overflow float32 (its largest number is about 3.4e38), so a "
                    "norm or a dot product computed directly is inf, and inf / inf is NaN. The cosine does not "
                    "change when a vector is scaled, so the vectors can be brought to a safe size first.")


def expect_finite_at_scale(fn: Callable, x: torch.Tensor, *, what: str, scale: float = 1e20,
                           advice: str = SQUARES_OVERFLOW, hints: Hints = ()) -> None:
    """A function the text promises stays finite for large inputs, tested where the naive form breaks: float32
    entries near ``scale`` (1e20: every square overflows float32)."""
    big = (x.detach().double() * scale).float()
    out = call_with_hints(fn, big, doing=f"{what} on float32 entries near {scale:.0e}", hints=hints)
    for t in _float_tensors(out):
        expect_finite(t, what=f"{what} on float32 entries near {scale:.0e}", advice=advice)


# --------------------------------------------------------------------------------------------
# DANet's position attention module (PAM), shared by chapter 05 (the exercise) and chapter 06 (the seed blog's
# PAM_Module): its named mistakes, its layout with the official names, realistic features
# --------------------------------------------------------------------------------------------
QK_SWAPPED = define_mistake(
    "qk_swapped", "the roles of query and key are swapped (energy[j, i] = k_j . q_i instead of q_j . k_i)")

# label -> (mistake id, advice); the tensors are stored in checks/expected/ch05_danet_pam.pt and ch06_danet_cam.pt
PAM_ADVICE: dict[str, tuple[str, str]] = {
    "softmax_dim1": ("softmax_dim",
                     "the softmax runs over dim 1 (the queries), so each COLUMN sums to 1. Eq. (1) normalises each "
                     "query's row over all keys: softmax(energy, dim=-1)."),
    "softmax_dim0": ("softmax_dim",
                     "the softmax runs over dim 0, the batch: each entry is normalised against the same entry of "
                     "the other images. nn.Softmax() without dim picks dim 0 for a 3-D tensor (with a deprecation "
                     "warning); write nn.Softmax(dim=-1)."),
    "softmax_all": ("softmax_dim",
                    "the softmax runs over all N*N pairs of the image at once (energy flattened to (B, N*N)). "
                    "Each query j gets its own distribution over the N keys: softmax(energy, dim=-1)."),
    "scaled": ("scaled",
               "the energy is divided by sqrt(C'). That is the Transformer's scaled dot product; DANet's "
               "paper and official code use the plain dot product q_j . k_i."),
    "qk_swapped": (QK_SWAPPED,
                   "query and key play each other's role: energy = key^T @ query. Row j must hold q_j . k_i: "
                   "query (B, N, C') @ key (B, C', N). In forward the same output also comes from two mistakes that "
                   "combine: a softmax over dim 1 AND value @ attention without the transpose."),
    "missing_transpose": ("missing_transpose",
                          "value (B, C, N) @ attention without the transpose. out[:, :, j] = sum_i s[j, i] v[:, :, i] "
                          "needs value @ attention^T (attention.permute(0, 2, 1)); DANet issue #64 asks the same."),
    "missing_residual": ("missing_residual",
                         "forward returns gamma * out without + x. Eq. (2): E = gamma * out + A."),
}

pam_close = functools.partial(close_named, advice=PAM_ADVICE)


def realistic_input(channels: int = 64, size: int = 32, *, seed: int = 55) -> torch.Tensor:
    """Features of realistic size: ReLU outputs, C = 64, N = 32 x 32; their energies reach the hundreds."""
    return (3 * torch.relu(seeded_randn(1, channels, size, size, seed=seed))).float()


def pam_parameter_count(channels: int, reduction: int = 8) -> int:
    """2 (C C' + C') for query and key, C C + C for value, 1 for gamma."""
    hidden = channels // reduction
    return 2 * (channels * hidden + hidden) + channels * channels + channels + 1


def check_pam_structure(module: torch.nn.Module, channels: int, reduction: int, *, what: str,
                        reduction_argument: bool = True) -> None:
    """The official PAM layout: query_conv, key_conv (C -> C // reduction), value_conv (C -> C), each with a bias,
    and gamma, one learnable number; then the parameter count. ``reduction_argument=False``: the module has no
    reduction argument (the blog's PAM_Module hard-codes in_dim // 8), so another width is an edit of given code."""
    hidden = channels // reduction
    for name, shape in (("query_conv", (hidden, channels)), ("key_conv", (hidden, channels)),
                        ("value_conv", (channels, channels))):
        layer = getattr(module, name, None)
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise CheckFailure(
                f"{what} has no {name} with a weight. Keep the official names: query_conv, key_conv "
                f"(Conv2d({channels}, {channels} // reduction, 1)), value_conv (Conv2d({channels}, {channels}, 1)) "
                "and gamma.", mistake="parameters")
        got = tuple(weight.shape[:2])
        if got != shape and not reduction_argument:
            raise CheckFailure(
                f"{what}.{name} maps {got[1]} -> {got[0]} channels; the given code builds it {shape[1]} -> "
                f"{shape[0]}, as the original does. This is a repair: change only what stops the module from "
                "running, and leave the layers as they were given.", mistake="parameters")
        if got != shape:
            reduction_hint = name != "value_conv" and got[0] in (channels // 8, channels // 16) and got[0] != hidden
            raise CheckFailure(
                f"{what}.{name} maps {got[1]} -> {got[0]} channels; expected {shape[1]} -> {shape[0]}"
                + (f" (channels // reduction = {channels} // {reduction}). The reduction argument seems to be "
                   "ignored (a hard-coded // 8?)." if reduction_hint else "."),
                mistake="reduction_ignored" if reduction_hint else "parameters")
        if getattr(layer, "bias", None) is None:
            raise CheckFailure(f"{what}.{name} has no bias; the official 1x1 convolutions keep theirs "
                               "(nn.Conv2d's default bias=True).", mistake="missing_bias")
    gamma = getattr(module, "gamma", None)
    if not isinstance(gamma, torch.nn.Parameter):
        raise CheckFailure(
            f"{what}.gamma should be a learnable nn.Parameter (the paper's alpha), got {type(gamma).__name__}.",
            mistake="no_scale_param")
    expect(gamma.numel() == 1, f"{what}.gamma should hold one number, got shape {fmt_shape(gamma.shape)}.",
           mistake="parameters")
    count = count_parameters(module)
    own = ("query_conv.", "key_conv.", "value_conv.")
    others = [n for n, p in module.named_parameters() if p.requires_grad and n != "gamma" and not n.startswith(own)]
    expect(count == pam_parameter_count(channels, reduction),
           f"{what} has {count} parameters, more than its three convolutions and gamma hold"
           + (f": {', '.join(others)} come on top." if others else ".")
           + " The module is those four and nothing else with parameters (no extra layer).", mistake="param_count")


def load_pam_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], *, what: str) -> None:
    """Copy weights by the official names; gamma may be stored as (1,) or as a 0-d scalar."""
    load_by_name(module, {k: v for k, v in weights.items() if k != "gamma"}, what=what)
    with torch.no_grad():
        module.gamma.fill_(float(weights["gamma"].reshape(())))
