"""course_lib: attention mechanisms for CNNs, with reference modules, graded checks and course tools.

Importing this package is cheap: it imports neither torch nor the reference modules, so that
``python -m course_lib --help`` stays fast and the student bundle (which ships course_lib without
``se.py``, ``cbam.py``, ``ctdnet.py``, ``hacnn.py``, ``danet.py``, ``nonlocal_block.py``,
``gcnet.py``, ``eca.py`` and ``coord_attention.py``) still imports.

``course_lib.ATTENTION`` is built on first access: a dict from a name to a callable that takes
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

__version__ = "0.1.0"
# ATTENTION stays out of __all__: a star import must not pull in torch or fail in the student bundle.
__all__ = ["__version__", "ctdnet_sam", "danet_cam"]

_REFERENCE_MODULES = ("se", "cbam", "ctdnet", "hacnn", "danet", "nonlocal_block", "gcnet", "eca", "coord_attention")


def ctdnet_sam(channels: int) -> nn.Module:
    """CTDNet's SAM keeping the channel count: ``ctdnet.SpatialAttentionModule(channels, channels)``."""
    from course_lib.ctdnet import SpatialAttentionModule

    return SpatialAttentionModule(channels, channels)


def danet_cam(channels: int) -> nn.Module:
    """DANet's CAM, which has no channel-dependent weights: ``danet.ChannelAttention()``.

    ``channels`` is accepted for a uniform registry signature and ignored.
    """
    from course_lib.danet import ChannelAttention

    del channels  # CAM works for any C
    return ChannelAttention()


def _build_registry() -> dict[str, Callable[[int], nn.Module]]:
    try:
        from course_lib.cbam import CBAM
        from course_lib.coord_attention import CoordinateAttention
        from course_lib.danet import DualAttention, PositionAttention
        from course_lib.eca import EfficientChannelAttention
        from course_lib.gcnet import GlobalContextBlock
        from course_lib.hacnn import SoftAttention
        from course_lib.nonlocal_block import NonLocalBlock
        from course_lib.se import SqueezeExcitation
        import course_lib.ctdnet  # noqa: F401  (the factory imports it lazily; fail here, not later)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.startswith("course_lib.") and missing.rsplit(".", 1)[-1] in _REFERENCE_MODULES:
            raise ImportError(
                "course_lib.ATTENTION needs the reference modules, which the student bundle leaves out; "
                f"{missing} is not installed. Use the full course repository (pip install -e .), or "
                "build the module you need from your own chapter solution."
            ) from exc
        raise
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
