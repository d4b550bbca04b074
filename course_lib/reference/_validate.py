"""Input validation shared by the reference modules.

Every check raises with a message that names the module ("owner"), what it expected and what it
received, so that a student who passes the wrong thing learns what to fix:

    SqueezeExcitation(channels=64) expects a 4-D float tensor (B, 64, H, W);
    got a tensor of shape (2, 32, 7, 5) (dim 1 has 32 channels, expected 64)

(one line in practice).

Conventions:

* ``TypeError`` for a value of the wrong type (a list instead of a tensor, a float where an int is
  needed, an integer or bool tensor where a float tensor is needed);
* ``ValueError`` for a value of the right type but a wrong value or shape (rank, channel count,
  empty spatial size, a reduction too large for the channel count, an unknown option).

Mixed precision (``torch.autocast``). Inside an autocast region a module placed after a convolution
receives a float16 or bfloat16 tensor while its own weights stay float32; autocast casts both sides of
each convolution and matrix product itself. So the dtype check lets float16, bfloat16 and float32 meet
whenever autocast is enabled for the input's device type (:func:`autocast_covers`), and keeps its
error everywhere else: outside autocast, and for float64 (which autocast never casts).

Tolerance under autocast (tests/test_autocast.py measures and enforces it): the largest deviation of
the output from the float32 output, relative to the float32 output's largest magnitude,
``max |y - y32| / max |y32|``, eval mode, random non-trivial weights, worst of 12 seeds on inputs of
(B, 32, H, W) with (B, H, W) = (2, 9, 7), (3, 12, 10) and (1, 5, 16), both for a half-precision input
(what an autocast convolution hands on) and a float32 one. Measured on the CPU with torch 2.13 (CPU
autocast, bfloat16 and float16):

    module (options)                                        bfloat16         float16          bound bf16 / f16
    ------------------------------------------------------  ---------------  ---------------  ----------------
    SE; ECA (psi(C) or k = 5); CBAM's channel gate          <= 0.0061        <= 0.0007        0.02 / 0.005
    CBAM (paper, official); CBAM's spatial gate             <= 0.0090        <= 0.0013        0.02 / 0.005
    CTDNet SAM; HA-CNN spatial, channel and soft            <= 0.0099        <= 0.0014        0.02 / 0.005
    DANet CAM (paper, official); DualAttentionHead          <= 0.0114        <= 0.0012        0.02 / 0.005
    Non-local dot product (literal, fused)                  <= 0.0105        <= 0.0017        0.02 / 0.005
    Non-local Gaussian, fused                               0.0066           0.0011           0.02 / 0.005
    GC ("add"; "avg" pooling with "mul"); Coord. Attention  <= 0.0085        <= 0.0011        0.02 / 0.005
    HA-CNN hard attention (the crops)                       0.0175           0.0036           0.1 / 0.02
    DANet PAM (literal, fused); DualAttention               <= 0.0452        <= 0.0048        0.1 / 0.02
    Non-local embedded Gaussian (literal; fused)            0.0556; 0.0350   0.0069; 0.0046   0.1 / 0.02
    Non-local Gaussian with sub_sample (literal)            0.0273           0.0027           0.1 / 0.02
    GC "mul_add" with r = 8                                 0.0360           0.0016           0.1 / 0.02

The second group holds the softmax over positions (PAM, Non-local), the sampling grid (HA-CNN's hard
attention) and GC's combined fusion; the bounds are two to three times the worst measured value. DANet's CAM
computes its energy (a sum over all N positions, which overflows float16 on large maps) in float32
under autocast. On CUDA (float16 and bfloat16) the tests assert the same bounds; they have not run on
a GPU yet.

Nothing here uses ``assert``: asserts vanish under ``python -O`` and give no message.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = [
    "AUTOCAST_DTYPES",
    "autocast_covers",
    "check_batch_norm_values",
    "check_bool",
    "check_choice",
    "check_feature_map",
    "check_fraction",
    "check_hidden_channels",
    "check_odd_kernel_size",
    "check_positive_int",
    "check_size_pair",
    "check_weights_match",
    "describe",
]


def describe(value: Any) -> str:
    """A short description of a received value for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{value!r} of type {type(value).__name__}"


def check_positive_int(name: str, value: Any, owner: str) -> int:
    """Return ``value`` if it is an int >= 1 (bool excluded); raise TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be a positive int; got {describe(value)}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int (>= 1); got {value}")
    return value


def check_bool(name: str, value: Any, owner: str) -> bool:
    """Return ``value`` if it is a bool; raise TypeError otherwise (``0``/``1`` are not accepted)."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False; got {describe(value)}")
    return value


def check_fraction(name: str, value: Any, owner: str) -> float:
    """Return ``value`` as a float if it is a real number in [0, 1] (bool excluded); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number in [0, 1]; got {describe(value)}")
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{owner}: {name} must be a number in [0, 1]; got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[str], owner: str) -> str:
    """Return ``value`` if it is one of ``choices``; raise ValueError (TypeError for non-str) otherwise."""
    choices = tuple(choices)
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be one of {listed}; got {describe(value)}")
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {listed}; got {value!r}")
    return value


def check_odd_kernel_size(name: str, value: Any, owner: str) -> int:
    """Return ``value`` if it is a positive odd int (so that padding k // 2 keeps H and W)."""
    check_positive_int(name, value, owner)
    if value % 2 == 0:
        raise ValueError(
            f"{owner}: {name} must be odd so that padding {name} // 2 keeps the spatial size; got {value}"
        )
    return value


def check_hidden_channels(
    channels: int,
    reduction: int,
    owner: str,
    *,
    divisible: bool = False,
    what: str = "the hidden layer",
) -> int:
    """Return the hidden width ``channels // reduction``; raise ValueError if it is 0.

    ``what`` names the reduced layer in the message. With ``divisible=True`` also require
    ``channels % reduction == 0`` (HA-CNN's channel attention).
    """
    hidden = channels // reduction
    if hidden < 1:
        raise ValueError(
            f"{owner}: {what} would have channels // reduction = {channels} // {reduction} = 0 channels; "
            f"use channels >= reduction (got channels={channels}, reduction={reduction})"
        )
    if divisible and channels % reduction:
        raise ValueError(
            f"{owner}: channels must be divisible by reduction; got channels={channels}, "
            f"reduction={reduction} (remainder {channels % reduction})"
        )
    return hidden


def check_size_pair(name: str, value: Any, owner: str) -> tuple[int, int]:
    """Return ``(h, w)`` from an int or a pair of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"{owner}: {name} must be an int or a pair (h, w) of ints; got {describe(value)}")
    h = check_positive_int(f"{name}[0]", value[0], owner)
    w = check_positive_int(f"{name}[1]", value[1], owner)
    return h, w


def check_feature_map(
    x: Any, owner: str, channels: int | None = None, *, module: torch.nn.Module | None = None
) -> tuple[int, int, int, int]:
    """Check that ``x`` is a (B, C, H, W) floating-point tensor and return ``(b, c, h, w)``.

    ``channels``: the channel count the module was built for, or None when any C will do.
    ``module``: when given, x must also have the dtype and device of the module's weights
    (:func:`check_weights_match`).
    Raises TypeError for a non-tensor or a non-floating dtype; ValueError for a wrong rank, a wrong
    channel count, no channels at all or an empty spatial size (H or W == 0). A batch of size 0 is
    allowed.
    """
    c_name = "C" if channels is None else str(channels)
    expected = f"a 4-D float tensor (B, {c_name}, H, W)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner} expects {expected}; got {describe(x)}")
    if x.dim() != 4:
        raise ValueError(
            f"{owner} expects {expected}; got a tensor of shape {tuple(x.shape)} ({x.dim()}-D)"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{owner} expects {expected}; got dtype {x.dtype} (convert with x.float() or x.double())"
        )
    b, c, h, w = x.shape
    if channels is not None and c != channels:
        raise ValueError(
            f"{owner} expects {expected}; got a tensor of shape {tuple(x.shape)} "
            f"(dim 1 has {c} channels, expected {channels})"
        )
    if c == 0:
        raise ValueError(
            f"{owner} expects at least one channel (C >= 1); got a tensor of shape {tuple(x.shape)}"
        )
    if h == 0 or w == 0:
        raise ValueError(
            f"{owner} expects a non-empty spatial size (H, W >= 1); got a tensor of shape {tuple(x.shape)}"
        )
    if module is not None:
        check_weights_match(x, module, owner)
    return b, c, h, w


#: the dtypes ``torch.autocast`` casts between (it never casts float64)
AUTOCAST_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def autocast_covers(device_type: str, *dtypes: torch.dtype) -> bool:
    """True if autocast is enabled for ``device_type`` and every dtype is one it casts between.

    Inside ``torch.autocast(device_type)`` a float32 module may receive a float16 or bfloat16 input
    (the output of an autocast convolution) and vice versa: autocast casts both sides of each
    convolution and matrix product. float64 is never cast, so it still has to match.
    Asks ``torch.is_autocast_enabled(device_type)``; an older torch whose ``is_autocast_enabled`` takes no
    device type (it then means CUDA) is asked through ``is_autocast_cpu_enabled()`` for the CPU. A device
    type autocast does not know (``"meta"``) counts as not enabled.
    """
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # an older torch: no device_type argument
        if device_type == "cpu":
            enabled = torch.is_autocast_cpu_enabled()
        else:
            enabled = device_type == "cuda" and torch.is_autocast_enabled()
    except RuntimeError:  # e.g. "unknown device type for autocast" for meta tensors
        return False
    return enabled and all(dtype in AUTOCAST_DTYPES for dtype in dtypes)


def check_weights_match(x: torch.Tensor, module: torch.nn.Module, owner: str) -> None:
    """Raise TypeError (dtype) or ValueError (device) if x and the module's first weight disagree.

    Convolutions and linear layers refuse an input whose dtype or device differs from their weights,
    with a message that names neither the module nor the fix; this check says both. A module
    without parameters accepts anything. Under ``torch.autocast`` for x's device type, float16,
    bfloat16 and float32 inputs are accepted with float32 (or half) weights (:func:`autocast_covers`).
    """
    weight = next(module.parameters(), None)
    if weight is None:
        return
    if x.dtype != weight.dtype and not autocast_covers(x.device.type, x.dtype, weight.dtype):
        raise TypeError(
            f"{owner} has {weight.dtype} weights but got an input of dtype {x.dtype}; make them match, "
            f"e.g. module.to({x.dtype}) or x.to({weight.dtype}) (for mixed precision run it inside "
            f"torch.autocast, which accepts float16 and bfloat16 inputs, never float64)"
        )
    if x.device != weight.device:
        raise ValueError(
            f"{owner} has its weights on {weight.device} but got an input on {x.device}; move one of them, "
            f"e.g. module.to(x.device)"
        )


def check_batch_norm_values(bn: torch.nn.Module, values: int, owner: str, where: str) -> None:
    """Raise ValueError if a BatchNorm that uses batch statistics would see one value per channel.

    ``values`` is the number of values per channel it normalises (B * H * W of its input); ``where``
    names the layer and how that count comes about. Training mode (or a BatchNorm without running
    statistics) cannot estimate a variance from a single value; PyTorch's own error names neither
    the module nor the way out. Zero values (an empty batch) are fine.
    """
    uses_batch_stats = bn.training or getattr(bn, "running_mean", None) is None
    if uses_batch_stats and values == 1:
        raise ValueError(
            f"{owner} in training mode normalises {where} with BatchNorm, which needs more than one value per "
            f"channel to estimate a variance; got 1 from this input. Use a batch of B >= 2 (or a larger map), "
            f"or call .eval() to use the running statistics"
        )
