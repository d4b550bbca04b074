"""Compare stored expected values (``course_lib/checks/expected/*.pt``) with a fresh build.

The stored values are what the visible checks grade against, so a stale file must fail loudly. It
must not fail because this CPU rounds differently from the one that built the file: float64
convolutions and bmm sum in an order that depends on the kernel the CPU picks (seen here: 5.6e-17
differences on an AMD EPYC, bit-exact on the machine that built the files) and on the thread count.
So floating-point tensors are compared within a small relative tolerance per dtype, everything else
exactly.
The tolerances sit orders of magnitude below the checks' own (``toolkit.is_close``: rtol 1e-4,
atol 1e-5), so a stored value within them grades exactly like the fresh one, and any real change to
a reference module or to the inputs moves values far beyond them.
"""
from __future__ import annotations

import torch

# dtype -> (rtol, atol): about 4,500 ulps near 1 in float64, 8 in float32; far below the checks' rtol 1e-4.
TOLERANCE = {torch.float64: (1e-12, 1e-14), torch.float32: (1e-6, 1e-7)}


def assert_same_values(stored, fresh, path="expected"):
    """Recursively assert that ``stored`` equals ``fresh``; ``path`` names the failing entry."""
    if isinstance(stored, torch.Tensor):
        assert isinstance(fresh, torch.Tensor), f"{path}: stored a tensor, the fresh build gave {type(fresh).__name__}"
        assert (stored.dtype, stored.shape) == (fresh.dtype, fresh.shape), (
            f"{path}: stored {stored.dtype} {tuple(stored.shape)}, fresh {fresh.dtype} {tuple(fresh.shape)}")
        rtol, atol = TOLERANCE.get(stored.dtype, (0, 0))
        torch.testing.assert_close(stored, fresh, rtol=rtol, atol=atol, msg=path)
    elif isinstance(stored, dict):
        assert isinstance(fresh, dict) and set(stored) == set(fresh), f"{path}: keys differ"
        for key in stored:
            assert_same_values(stored[key], fresh[key], f"{path}[{key!r}]")
    elif isinstance(stored, (list, tuple)):
        assert isinstance(fresh, (list, tuple)) and len(stored) == len(fresh), f"{path}: lengths differ"
        for i, (a, b) in enumerate(zip(stored, fresh)):
            assert_same_values(a, b, f"{path}[{i}]")
    else:
        assert stored == fresh, f"{path}: stored {stored!r}, fresh {fresh!r}"
