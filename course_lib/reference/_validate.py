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

Nothing here uses ``assert``: asserts vanish under ``python -O`` and give no message.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = [
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


def check_weights_match(x: torch.Tensor, module: torch.nn.Module, owner: str) -> None:
    """Raise TypeError (dtype) or ValueError (device) if x and the module's first weight disagree.

    Convolutions and linear layers refuse an input whose dtype or device differs from their weights,
    with a message that names neither the module nor the fix; this check says both. A module
    without parameters accepts anything.
    """
    weight = next(module.parameters(), None)
    if weight is None:
        return
    if x.dtype != weight.dtype:
        raise TypeError(
            f"{owner} has {weight.dtype} weights but got an input of dtype {x.dtype}; make them match, "
            f"e.g. module.to({x.dtype}) or x.to({weight.dtype})"
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
