"""The reference solutions: one module per paper, their input validation, and the ``ATTENTION`` registry.

This folder never ships to students: the student bundle leaves out ``course_lib/reference/`` as a whole,
and no module on the student side imports it (the import-linter contracts in ``pyproject.toml``).

``ATTENTION`` (also reachable as ``course_lib.ATTENTION``) is built on first access: a dict from a name to a callable that takes
``channels`` and returns a module mapping (B, C, H, W) to (B, C, H, W). The parentheses give the
channel counts each factory accepts (tests/test_reference_audit.py checks them against the
factories); any other count raises a ValueError that says why:

    ============  ================================================================
    "se"          ``se.SqueezeExcitation(channels)`` (channels >= 16)
    "cbam"        ``cbam.CBAM(channels)`` (channels >= 16)
    "ctdnet_sam"  ``ctdnet.SpatialAttentionModule(channels, channels)``
    "hacnn_soft"  ``hacnn.SoftAttention(channels)`` (channels divisible by 16)
    "danet_pam"   ``danet.PositionAttention(channels)`` (channels >= 8)
    "danet_cam"   ``danet.ChannelAttention()`` (channels ignored)
    "danet_dual"  ``danet.DualAttention(channels)`` (channels >= 8)
    ============  ================================================================

and, with the paper's defaults (Non-local: embedded Gaussian, width C // 2; GCNet: add fusion, r = 16;
ECA: k = psi(C) of Eq. (12); Coordinate Attention: r = 32, width max(8, C // 32)):

    =================  ============================================================
    "non_local"        ``nonlocal_block.NonLocalBlock(channels)`` (channels >= 2)
    "gcnet"            ``gcnet.GlobalContextBlock(channels)`` (channels >= 16)
    "eca"              ``eca.EfficientChannelAttention(channels)``
    "coord_attention"  ``coord_attention.CoordinateAttention(channels)``
    =================  ============================================================
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from torch import nn

# ATTENTION stays out of __all__: a star import must not import every reference module.
__all__ = ["ctdnet_sam", "danet_cam"]


def ctdnet_sam(channels: int) -> nn.Module:
    """CTDNet's SAM keeping the channel count: ``ctdnet.SpatialAttentionModule(channels, channels)``."""
    from course_lib.reference.ctdnet import SpatialAttentionModule

    return SpatialAttentionModule(channels, channels)


def danet_cam(channels: int) -> nn.Module:
    """DANet's CAM, which has no channel-dependent weights: ``danet.ChannelAttention()``.

    ``channels`` is accepted for a uniform registry signature and ignored.
    """
    from course_lib.reference.danet import ChannelAttention

    del channels  # CAM works for any C
    return ChannelAttention()


def _build_registry() -> dict[str, Callable[[int], nn.Module]]:
    from course_lib.reference.cbam import CBAM
    from course_lib.reference.coord_attention import CoordinateAttention
    from course_lib.reference.danet import DualAttention, PositionAttention
    from course_lib.reference.eca import EfficientChannelAttention
    from course_lib.reference.gcnet import GlobalContextBlock
    from course_lib.reference.hacnn import SoftAttention
    from course_lib.reference.nonlocal_block import NonLocalBlock
    from course_lib.reference.se import SqueezeExcitation
    import course_lib.reference.ctdnet  # noqa: F401  (the factory imports it lazily; fail here, not later)

    return {
        "se": SqueezeExcitation,
        "cbam": CBAM,
        "ctdnet_sam": ctdnet_sam,
        "hacnn_soft": SoftAttention,
        "danet_pam": PositionAttention,
        "danet_cam": danet_cam,
        "danet_dual": DualAttention,
        "non_local": NonLocalBlock,
        "gcnet": GlobalContextBlock,
        "eca": EfficientChannelAttention,
        "coord_attention": CoordinateAttention,
    }


def __getattr__(name: str) -> Any:
    if name == "ATTENTION":
        registry = _build_registry()
        globals()["ATTENTION"] = registry  # later lookups skip __getattr__
        return registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ATTENTION"})
