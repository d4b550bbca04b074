"""Parity with timm for Non-local, GCNet, ECA and Coordinate Attention: weights copied, float64.

``tests/parity/timm_reference_more.py`` runs in the timm environment (``.venv-timm``, see
``test_parity_timm.py`` for why it is separate) once per session and saves timm's state dicts, inputs,
outputs and input gradients. Here each state dict is copied into the course module built with the
options that make it the same function, by an explicit key map, and outputs and input gradients are
compared. Interpreter, skipping and ``COURSE_REQUIRE_TIMM=1``: as in ``test_parity_timm.py``.

What the options say about timm (the course modules' docstrings give the reasons):
  * ``NonLocalAttn(C)`` = ``NonLocalBlock(C, inter_channels=C', scale=C ** -0.5)``;
  * ``GlobalContext(C, fuse_add, fuse_scale)`` = ``GlobalContextBlock(C, fusion=..., eps=1e-6,
    hidden_channels=max(1, int(C / 8 + 0.5)))``: timm rounds C / 8, halves up (``reduction=8`` alone floors
    it, which differs at C = 12, 20, 36, 100, the widths tested besides 32 and 48);
  * ``EcaModule(channels=C)`` = ``EfficientChannelAttention(C)`` for C >= 8 (timm clamps k >= 3);
  * ``CoordAttn(C)`` = ``CoordinateAttention(C, hidden_channels=M, bias=False)``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import mutants_more as MM
from test_parity_timm import timm_python, unavailable
from course_lib.reference import coord_attention, eca, gcnet, nonlocal_block

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "parity" / "timm_reference_more.py"
TIMM_UNAVAILABLE = 3

NL_KEYS = {
    "t.weight": "theta.weight", "t.bias": "theta.bias", "p.weight": "phi.weight", "p.bias": "phi.bias",
    "g.weight": "g.weight", "g.bias": "g.bias", "z.weight": "w_z.weight", "z.bias": "w_z.bias",
    **{f"norm.{k}": f"bn.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
}
ECA_KEYS = {"conv.weight": "conv.weight"}
CA_KEYS = {k: k for k in ("conv1.weight", "conv_h.weight", "conv_w.weight")} | {
    f"bn1.{k}": f"bn1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def gc_keys(timm_state: dict) -> dict:
    keys = {"conv_attn.weight": "conv_mask.weight", "conv_attn.bias": "conv_mask.bias"}
    for timm_name, course_name in (("mlp_add", "channel_add_conv"), ("mlp_scale", "channel_mul_conv")):
        if f"{timm_name}.fc1.weight" in timm_state:
            for part, index in (("fc1", 0), ("norm", 1), ("fc2", 3)):
                for p in ("weight", "bias"):
                    keys[f"{timm_name}.{part}.{p}"] = f"{course_name}.{index}.{p}"
    return keys


@pytest.fixture(scope="module")
def timm_reference(tmp_path_factory) -> dict:
    """One run of the timm script for this module (this file runs on one xdist worker: --dist loadfile)."""
    python = timm_python()
    if not python.exists():
        unavailable(f"no timm interpreter at {python}")
    out = tmp_path_factory.mktemp("timm_more") / "timm_reference_more.pt"
    proc = subprocess.run([str(python), "-W", "ignore", str(SCRIPT), str(out)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode == TIMM_UNAVAILABLE:
        unavailable(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed under {python} (exit {proc.returncode}):\n{proc.stderr}", pytrace=False)
    return torch.load(out)


def cases(reference: dict, name: str) -> list[dict]:
    if name in reference["missing"]:
        pytest.fail(f"timm {reference['timm_version']} has no module for {name!r} (CoordAttn needs timm >= 1.0.23; "
                    "the pin in pyproject.toml says which timm `make setup-timm` installs)", pytrace=False)
    found = [c for c in reference["cases"] if c["name"] == name]
    assert found, f"the timm reference file has no {name!r} case"
    return found


def mapped_state_dict(timm_state: dict, key_map: dict, module: torch.nn.Module) -> dict:
    leftovers = sorted(set(timm_state) - set(key_map))
    assert not leftovers, f"timm keys with no counterpart in the key map: {leftovers}"
    target = module.state_dict()
    # timm's LayerNorm2d keeps (C',) where the official layout (LayerNorm([C', 1, 1])) keeps (C', 1, 1)
    return {key_map[k]: v.reshape(target[key_map[k]].shape) for k, v in timm_state.items()}


def check_parity(module: torch.nn.Module, case: dict, key_map: dict) -> None:
    """Same output and the same input gradient as timm, with timm's weights (eval mode, float64)."""
    module = module.double().eval()
    module.load_state_dict(mapped_state_dict(case["state_dict"], key_map, module), strict=True)
    x = case["input"].clone().requires_grad_(True)
    got = module(x)
    what = f"{type(module).__name__}(C={case['channels']}, {case['options']}) vs timm"
    assert_close(got.detach(), case["output"], rtol=1e-10, atol=1e-12, msg=lambda m: f"{what}: {m}")
    got.backward(case["grad_output"])
    assert_close(x.grad, case["grad_input"], rtol=1e-9, atol=1e-11, msg=lambda m: f"{what}, input gradient: {m}")


def course_nonlocal(case: dict, cls=nonlocal_block.NonLocalBlock) -> nonlocal_block.NonLocalBlock:
    c = case["options"]["channels"]
    return cls(c, inter_channels=case["options"]["rd_channels"], scale=c ** -0.5)


def timm_gc_width(channels: int) -> int:
    """timm's ``make_divisible(channels / 8, 1, round_limit=0.)``: C / 8 rounded, halves up, at least 1."""
    return max(1, int(channels / 8 + 0.5))


def course_gcnet(case: dict, cls=gcnet.GlobalContextBlock) -> gcnet.GlobalContextBlock:
    o = case["options"]
    fusion = {(True, False): "add", (False, True): "mul", (True, True): "mul_add"}[(o["fuse_add"], o["fuse_scale"])]
    return cls(o["channels"], reduction=8, fusion=fusion, eps=1e-6, hidden_channels=timm_gc_width(o["channels"]))


def course_eca(case: dict, cls=eca.EfficientChannelAttention) -> eca.EfficientChannelAttention:
    o = case["options"]
    if o["channels"] is None:
        return cls(case["channels"], kernel_size=o["kernel_size"])
    return cls(o["channels"])


def course_coord(case: dict, cls=coord_attention.CoordinateAttention) -> coord_attention.CoordinateAttention:
    hidden = case["state_dict"]["conv1.weight"].shape[0]
    return cls(case["options"]["channels"], hidden_channels=hidden, bias=False)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_reference_file_comes_from_pinned_timm(timm_reference):
    assert timm_reference["timm_version"] == "1.0.31", timm_reference["timm_version"]


def test_nonlocal_matches_timm_nonlocalattn(timm_reference):
    for case in cases(timm_reference, "non_local"):
        check_parity(course_nonlocal(case), case, NL_KEYS)


def test_nonlocal_fused_matches_timm_nonlocalattn(timm_reference):
    for case in cases(timm_reference, "non_local"):
        m = course_nonlocal(case)
        m.fused = True
        check_parity(m, case, NL_KEYS)


def test_gcnet_matches_timm_globalcontext_add_mul_and_both(timm_reference):
    found = cases(timm_reference, "gcnet")
    assert {(c["options"]["fuse_add"], c["options"]["fuse_scale"]) for c in found} == {
        (True, False), (False, True), (True, True)}
    for case in found:
        check_parity(course_gcnet(case), case, gc_keys(case["state_dict"]))


def test_gcnet_matches_timm_where_its_rounding_differs_from_the_floor(timm_reference):
    """C = 12, 20, 36, 100: timm's width (from its state dict) is the documented rounding, not C // 8; with
    ``hidden_channels`` the weights load and the outputs agree."""
    found = {c["channels"]: c for c in cases(timm_reference, "gcnet")}
    assert {12, 20, 36, 100} <= set(found), sorted(found)
    for channels in (12, 20, 36, 100):
        for case in (c for c in cases(timm_reference, "gcnet") if c["channels"] == channels):
            fc1 = next(v for k, v in case["state_dict"].items() if k.endswith("fc1.weight"))
            assert fc1.shape[0] == timm_gc_width(channels) != channels // 8, (channels, tuple(fc1.shape))
            assert gcnet.GlobalContextBlock(channels, 8).hidden_channels == channels // 8  # the default floors
            check_parity(course_gcnet(case), case, gc_keys(case["state_dict"]))


def test_timm_globalcontext_default_is_multiplicative():
    """What the GCNet docstring says; read from timm's signature in its own environment."""
    python = timm_python()
    if not python.exists():
        unavailable(f"no timm interpreter at {python}")
    code = ("import inspect; from timm.layers.global_context import GlobalContext as G; "
            "p = inspect.signature(G).parameters; print(p['fuse_add'].default, p['fuse_scale'].default)")
    proc = subprocess.run([str(python), "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        unavailable(f"timm not importable: {proc.stderr.strip().splitlines()[-1:]}")
    assert proc.stdout.split() == ["False", "True"], proc.stdout


def test_eca_matches_timm_ecamodule_adaptive_and_fixed_k(timm_reference):
    for case in cases(timm_reference, "eca"):
        m = course_eca(case)
        assert (m.kernel_size,) == tuple(case["kernel_size"]), (case["options"], m.kernel_size, case["kernel_size"])
        check_parity(m, case, ECA_KEYS)


def test_coord_attention_matches_timm_coordattn(timm_reference):
    for case in cases(timm_reference, "coord_attention"):
        check_parity(course_coord(case), case, CA_KEYS)


# The parity check fails on wrong implementations (mutants_more.py).


@pytest.mark.parametrize("name, build, mutant, keys", [
    ("non_local", course_nonlocal, MM.NLAlwaysScaled, NL_KEYS),
    ("non_local", course_nonlocal, MM.NLSoftmaxOverQueries, NL_KEYS),
    ("gcnet", course_gcnet, MM.GCNoLayerNorm, None),
    ("gcnet", course_gcnet, MM.GCSigmoidPooling, None),
    ("eca", course_eca, MM.ECACircularPadding, ECA_KEYS),
    ("coord_attention", course_coord, MM.CAReLU, CA_KEYS),
    ("coord_attention", course_coord, MM.CAOneGateConv, CA_KEYS),
], ids=lambda v: getattr(v, "__name__", None) if isinstance(v, type) else None)
def test_parity_check_catches(timm_reference, name, build, mutant, keys):
    case = cases(timm_reference, name)[0]
    m = build(case, cls=mutant)
    with pytest.raises(AssertionError, match="vs timm"):
        check_parity(m, case, keys if keys is not None else gc_keys(case["state_dict"]))
