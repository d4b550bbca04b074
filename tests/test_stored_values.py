"""The stored-values comparison must pass a CPU's rounding and fail on a stale value."""
from __future__ import annotations

import pytest
import torch

from stored_values import assert_same_values


def _tree(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return {"gate": {"a": torch.rand(2, 3, 5, 4, generator=g, dtype=dtype)}, "inputs": [torch.arange(6)], "c": 3}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_few_ulps_of_rounding_pass(dtype):
    stored, fresh = _tree(dtype), _tree(dtype)
    a = fresh["gate"]["a"]
    fresh["gate"]["a"] = torch.nextafter(a, torch.full_like(a, 2.0))  # one ulp up, everywhere
    assert_same_values(stored, fresh)


@pytest.mark.parametrize("dtype, relative", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_a_stale_float_value_fails(dtype, relative):
    stored, fresh = _tree(dtype), _tree(dtype)
    fresh["gate"]["a"][1, 2, 4, 3] *= 1 + relative  # far below what a check could notice, still caught
    with pytest.raises(AssertionError, match=r"\['gate'\]\['a'\]"):
        assert_same_values(stored, fresh)


@pytest.mark.parametrize("change", ["int_tensor", "scalar", "missing_key", "dtype", "shape"])
def test_other_changes_fail(change):
    stored, fresh = _tree(), _tree()
    if change == "int_tensor":
        fresh["inputs"][0][5] += 1
    elif change == "scalar":
        fresh["c"] = 4
    elif change == "missing_key":
        del fresh["gate"]["a"]
    elif change == "dtype":
        fresh["gate"]["a"] = fresh["gate"]["a"].float()
    else:
        fresh["gate"]["a"] = fresh["gate"]["a"][:1]
    with pytest.raises(AssertionError):
        assert_same_values(stored, fresh)
