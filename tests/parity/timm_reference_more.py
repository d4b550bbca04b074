"""Reference outputs from timm for the Non-local, GCNet, ECA and Coordinate Attention modules, for
tests/test_parity_timm_more.py. Run by the timm environment's Python:

    .venv-timm/bin/python tests/parity/timm_reference_more.py OUT.pt

Like ``timm_reference.py`` it imports timm and torch only (never course_lib). For each case it builds a
timm module with the options written in the case, gives it deterministic random weights (BatchNorm:
random affine parameters and running statistics), runs a fixed float64 input in eval mode (and, for
the gradient comparison, backward of a fixed output gradient) and saves the state dict, input,
output and input gradient. Exit code 3: timm is not importable.

The timm classes (``timm/layers/``): ``NonLocalAttn`` (non_local_attn.py), ``GlobalContext``
(global_context.py), ``EcaModule`` (eca.py) and ``CoordAttn`` (coord_attn.py). ``CoordAttn`` first
appeared in timm 1.0.23; with an older timm its cases are left out and the file says so
(``missing``), which the tests report.
"""
from __future__ import annotations

import sys

import torch

try:
    import timm
    from timm.layers.eca import EcaModule
    from timm.layers.global_context import GlobalContext
    from timm.layers.non_local_attn import NonLocalAttn
except ImportError as exc:
    print(f"timm is not importable by {sys.executable}: {exc}", file=sys.stderr)
    raise SystemExit(3)

from timm_reference import randomize  # noqa: E402  (this script's folder is on sys.path)

try:
    from timm.layers.coord_attn import CoordAttn
except ImportError:  # timm < 1.0.23
    CoordAttn = None

#: (name, options, input shape): B > 1, H != W, odd sizes, C not in {H, W}
CASES = [
    # timm's NonLocalAttn: embedded Gaussian, scale C**-0.5, explicit bottleneck width
    ("non_local", {"channels": 32, "rd_channels": 16}, (2, 32, 7, 5)),
    ("non_local", {"channels": 48, "rd_channels": 8}, (3, 48, 5, 6)),
    # GlobalContext: 'gca' (the paper's additive block), 'gc' (timm's default, multiplicative), both
    ("gcnet", {"channels": 32, "fuse_add": True, "fuse_scale": False}, (2, 32, 7, 5)),
    ("gcnet", {"channels": 48, "fuse_add": False, "fuse_scale": True}, (3, 48, 5, 6)),
    ("gcnet", {"channels": 32, "fuse_add": True, "fuse_scale": True}, (2, 32, 5, 7)),
    # EcaModule: adaptive k from channels (C = 32: k = 3; 128: the tie, k = 5; 512: k = 5) and fixed k
    ("eca", {"channels": 32}, (2, 32, 7, 5)),
    ("eca", {"channels": 128}, (2, 128, 3, 5)),
    ("eca", {"channels": 512}, (2, 512, 3, 2)),
    ("eca", {"channels": None, "kernel_size": 7, "width": 48}, (3, 48, 5, 6)),
    # CoordAttn (timm >= 1.0.23): its own width rule, no conv biases
    ("coord_attention", {"channels": 32}, (2, 32, 7, 5)),
    ("coord_attention", {"channels": 48}, (3, 48, 5, 6)),
    # GlobalContext at widths where timm's rounding of C / 8 (halves up) differs from the floor C // 8
    # (issue 29): 12 -> 2 (floor 1), 20 -> 3 (2), 36 -> 5 (4), 100 -> 13 (12). Appended, so that the cases
    # above keep their seeds.
    ("gcnet", {"channels": 12, "fuse_add": True, "fuse_scale": True}, (2, 12, 7, 5)),
    ("gcnet", {"channels": 20, "fuse_add": True, "fuse_scale": False}, (3, 20, 5, 6)),
    ("gcnet", {"channels": 36, "fuse_add": False, "fuse_scale": True}, (2, 36, 6, 7)),
    ("gcnet", {"channels": 100, "fuse_add": True, "fuse_scale": False}, (2, 100, 5, 4)),
    ("gcnet", {"channels": 100, "fuse_add": False, "fuse_scale": True}, (2, 100, 4, 5)),
]


def build(name: str, options: dict) -> torch.nn.Module | None:
    if name == "non_local":
        return NonLocalAttn(options["channels"], use_scale=True, rd_channels=options["rd_channels"])
    if name == "gcnet":
        return GlobalContext(options["channels"], fuse_add=options["fuse_add"], fuse_scale=options["fuse_scale"])
    if name == "eca":
        if options["channels"] is None:
            return EcaModule(kernel_size=options["kernel_size"])
        return EcaModule(channels=options["channels"])
    if name == "coord_attention":
        return None if CoordAttn is None else CoordAttn(options["channels"])
    raise ValueError(name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: timm_reference_more.py OUT.pt", file=sys.stderr)
        return 2
    cases, missing = [], []
    for seed, (name, options, shape) in enumerate(CASES):
        module = build(name, options)
        if module is None:
            missing.append(name)
            continue
        module = module.double().eval()
        randomize(module, 200 + seed)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(300 + seed), dtype=torch.float64)
        grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(400 + seed), dtype=torch.float64)
        x.requires_grad_(True)
        y = module(x)
        y.backward(grad_out)
        cases.append({
            "name": name,
            "options": options,
            "channels": shape[1],
            "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
            "input": x.detach().clone(),
            "output": y.detach().clone(),
            "grad_output": grad_out,
            "grad_input": x.grad.detach().clone(),
            "kernel_size": getattr(getattr(module, "conv", None), "kernel_size", None),
            "repr": repr(module),
        })
    torch.save({"timm_version": str(timm.__version__), "torch_version": str(torch.__version__),
                "cases": cases, "missing": sorted(set(missing))}, argv[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
