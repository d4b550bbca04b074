"""Parity with timm, a trusted independent implementation: weights copied, same outputs (float64).

timm needs torchvision, which does not install beside the course's CPU torch, so timm lives in its
own environment (``make setup-timm`` builds ``.venv-timm``). ``tests/parity/timm_reference.py`` runs
there as a subprocess, once per session: it builds timm's ``SEModule`` and ``CbamModule`` with random
weights and BatchNorm statistics and saves state dicts, inputs and outputs. Here the state dicts are
copied into the course modules by an explicit key map and the outputs compared.

Interpreter: ``$COURSE_TIMM_PYTHON``, default ``.venv-timm/bin/python`` in the repository. Missing,
or timm not importable there: the tests skip, unless ``COURSE_REQUIRE_TIMM=1`` (set by ``make test``),
in which case they fail.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import mutants as M
from course_lib.reference import cbam, se

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "parity" / "timm_reference.py"
TIMM_UNAVAILABLE = 3  # the script's exit code when timm cannot be imported

#: timm key -> course key. Every key of timm's state dict must be listed (no silent leftovers).
SE_KEYS = {"fc1.weight": "fc1.weight", "fc1.bias": "fc1.bias", "fc2.weight": "fc2.weight", "fc2.bias": "fc2.bias"}
CBAM_KEYS = {
    "channel.fc1.weight": "channel_gate.mlp.0.weight",
    "channel.fc2.weight": "channel_gate.mlp.2.weight",
    "spatial.conv.conv.weight": "spatial_gate.conv.weight",
    **{f"spatial.conv.bn.{k}": f"spatial_gate.bn.{k}"
       for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
}


def timm_python() -> Path:
    configured = os.environ.get("COURSE_TIMM_PYTHON")
    if configured:
        return Path(configured)
    unix, windows = REPO / ".venv-timm" / "bin" / "python", REPO / ".venv-timm" / "Scripts" / "python.exe"
    return windows if sys.platform == "win32" and windows.exists() else unix


def unavailable(reason: str):
    if os.environ.get("COURSE_REQUIRE_TIMM") == "1":
        pytest.fail(f"{reason} (COURSE_REQUIRE_TIMM=1: timm parity is required; run `make setup-timm`)", pytrace=False)
    pytest.skip(f"{reason}; run `make setup-timm` (or set COURSE_TIMM_PYTHON) to enable timm parity")


def run_reference(out: Path) -> None:
    python = timm_python()
    if not python.exists():
        unavailable(f"no timm interpreter at {python}")
    proc = subprocess.run([str(python), "-W", "ignore", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300)
    if proc.returncode == TIMM_UNAVAILABLE:
        unavailable(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed under {python} (exit {proc.returncode}):\n{proc.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def timm_reference(tmp_path_factory) -> dict:
    """Run the timm script once per session; under pytest-xdist the workers share one result file
    (the locking pattern from pytest-xdist's docs), so timm is imported once whatever -n is."""
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else tmp_path_factory.getbasetemp()
    out = shared / "timm_reference.pt"
    try:
        import fcntl
    except ImportError:  # Windows: no shared lock; each worker runs the script itself
        fcntl = None
        out = tmp_path_factory.mktemp("timm") / "timm_reference.pt"
    if fcntl is None:
        run_reference(out)
    else:
        with open(shared / "timm_reference.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not out.exists():
                    run_reference(out)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return torch.load(out)


def cases(reference: dict, name: str) -> list[dict]:
    found = [c for c in reference["cases"] if c["name"] == name]
    assert found, f"the timm reference file has no {name!r} case"
    return found


def mapped_state_dict(timm_state: dict, key_map: dict) -> dict:
    leftovers = sorted(set(timm_state) - set(key_map))
    assert not leftovers, f"timm keys with no counterpart in the key map: {leftovers}"
    return {key_map[k]: v for k, v in timm_state.items()}


# --------------------------------------------------------------------------------------------------
# Property check (shared with the mutant tests at the bottom)
# --------------------------------------------------------------------------------------------------


def check_parity(module: torch.nn.Module, case: dict, key_map: dict) -> None:
    module = module.double().eval()
    module.load_state_dict(mapped_state_dict(case["state_dict"], key_map), strict=True)
    with torch.no_grad():
        got = module(case["input"])
    assert_close(got, case["output"], rtol=1e-10, atol=1e-12,
                 msg=lambda m: f"{type(module).__name__}(C={case['channels']}) vs timm: {m}")


def timm_like_cbam(channels: int, cls=cbam.CBAM, **overrides) -> cbam.CBAM:
    options = {"mlp_bias": False, "pool_order": "avg_max", "batch_norm": True, **overrides}
    return cls(channels, reduction=16, kernel_size=7, **options)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_reference_file_comes_from_pinned_timm(timm_reference):
    assert timm_reference["timm_version"] == "1.0.31", timm_reference["timm_version"]


def test_se_matches_timm_semodule(timm_reference):
    for case in cases(timm_reference, "se"):
        check_parity(se.SqueezeExcitation(case["channels"], reduction=16), case, SE_KEYS)


def test_cbam_matches_timm_cbammodule(timm_reference):
    for case in cases(timm_reference, "cbam"):
        check_parity(timm_like_cbam(case["channels"]), case, CBAM_KEYS)


def test_timm_cbammodule_is_the_paper_variant_with_batchnorm(timm_reference):
    """The docstring of course_lib.reference.cbam.CBAM says so: variant="paper", batch_norm=True."""
    for case in cases(timm_reference, "cbam"):
        check_parity(cbam.CBAM(case["channels"], variant="paper", batch_norm=True), case, CBAM_KEYS)


def check_parity_after_one_training_step(module: torch.nn.Module, case: dict) -> None:
    """Same start, one training-mode forward (running statistics move), then the same eval output."""
    module = module.double()
    module.load_state_dict(mapped_state_dict(case["state_dict"], CBAM_KEYS), strict=True)
    with torch.no_grad():
        module.train()(case["train_input"])
        got = module.eval()(case["input"])
    assert_close(got, case["output"], rtol=1e-10, atol=1e-12,
                 msg=lambda m: f"{type(module).__name__} after one training step vs timm: {m}")


def test_cbam_with_timm_momentum_matches_timm_after_a_training_step(timm_reference):
    """Audit defect 4: the official BasicConv's BN momentum is 0.01, timm's 0.1; bn_momentum=0.1 gives timm's."""
    (case,) = cases(timm_reference, "cbam_after_one_training_step")
    assert case["momentum"] == 0.1, case["momentum"]
    check_parity_after_one_training_step(timm_like_cbam(case["channels"], bn_momentum=0.1), case)


def test_cbam_default_momentum_differs_from_timm_after_a_training_step(timm_reference):
    """Why the option exists (and the check can fail): the default momentum 0.01 drifts from timm in eval."""
    (case,) = cases(timm_reference, "cbam_after_one_training_step")
    with pytest.raises(AssertionError, match="after one training step vs timm"):
        check_parity_after_one_training_step(timm_like_cbam(case["channels"]), case)


# The parity check fails on wrong implementations (see test_mutants_are_caught.py for the others).


def test_parity_check_catches_max_squeeze(timm_reference):
    case = cases(timm_reference, "se")[0]
    with pytest.raises(AssertionError, match="vs timm"):
        check_parity(M.SEMaxSqueeze(case["channels"], reduction=16), case, SE_KEYS)


def test_parity_check_catches_official_pool_order(timm_reference):
    """[max; avg] (the official order) with timm's [avg; max] weights gives a different map."""
    case = cases(timm_reference, "cbam")[0]
    with pytest.raises(AssertionError, match="vs timm"):
        check_parity(timm_like_cbam(case["channels"], pool_order="max_avg"), case, CBAM_KEYS)


def test_parity_check_catches_swapped_pools_inside_the_spatial_gate(timm_reference):
    case = cases(timm_reference, "cbam")[0]
    m = timm_like_cbam(case["channels"])
    m.spatial_gate = M.CBAMSpatialSwappedPools(7, pool_order="avg_max", batch_norm=True)
    with pytest.raises(AssertionError, match="vs timm"):
        check_parity(m, case, CBAM_KEYS)
