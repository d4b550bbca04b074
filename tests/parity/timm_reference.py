"""Reference outputs from timm, for tests/test_parity_timm.py. Run by the timm environment's Python:

    .venv-timm/bin/python tests/parity/timm_reference.py OUT.pt

It imports timm and torch only (never course_lib): builds timm's ``SEModule`` and ``CbamModule`` with
the course's hidden width (C / 16, C divisible by 16), gives them deterministic random weights and
non-trivial BatchNorm running statistics, runs fixed float64 inputs in eval mode and saves, for each
case, the state dict, the input and the output. Exit code 3 means timm is not importable here.

What timm's ``CbamModule`` is (timm 1.0.20, ``timm/layers/cbam.py``), which fixes the course options
it must be compared with (``CBAM(C, mlp_bias=False, pool_order="avg_max", batch_norm=True)``):
  * channel gate ``ChannelAttn``: fc1/fc2 are 1x1 convolutions with ``mlp_bias=False``, one MLP on
    ``x.mean((2, 3))`` and ``x.amax((2, 3))``, summed, sigmoid;
  * spatial gate ``SpatialAttn``: ``cat([mean over C, amax over C])`` (avg first), then
    ``ConvNormAct(2, 1, 7, apply_act=False)``: a 7x7 convolution without bias, then BatchNorm2d.
"""
from __future__ import annotations

import sys

import torch

try:
    import timm
    from timm.layers.cbam import CbamModule
    from timm.layers.squeeze_excite import SEModule
except ImportError as exc:  # the caller turns this into a skip (or a failure when timm is required)
    print(f"timm is not importable by {sys.executable}: {exc}", file=sys.stderr)
    raise SystemExit(3)

#: (name, channels, input shape): B > 1, H != W, odd sizes, C divisible by 16 and not in {H, W}
CASES = [
    ("se", 32, (2, 32, 7, 5)),
    ("se", 48, (3, 48, 5, 9)),
    ("cbam", 32, (2, 32, 7, 5)),
    ("cbam", 48, (3, 48, 5, 9)),
]


def build(name: str, channels: int) -> torch.nn.Module:
    if name == "se":
        # rd_divisor=1 keeps the hidden width at C / 16 (timm's default divisor of 8 would round it up)
        return SEModule(channels, rd_ratio=1.0 / 16, rd_divisor=1)
    return CbamModule(channels, rd_ratio=1.0 / 16, rd_divisor=1)


def randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (1.5 / fan_in ** 0.5 if p.dim() > 1 else 0.3))
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=m.weight.dtype) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=m.running_mean.dtype) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=m.running_var.dtype) + 0.5)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=m.weight.dtype) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype) * 0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: timm_reference.py OUT.pt", file=sys.stderr)
        return 2
    cases = []
    for seed, (name, channels, shape) in enumerate(CASES):
        module = build(name, channels).double().eval()
        randomize(module, seed)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
        with torch.no_grad():
            y = module(x)
        cases.append({
            "name": name,
            "channels": channels,
            "state_dict": {k: v.clone() for k, v in module.state_dict().items()},
            "input": x,
            "output": y,
            "repr": repr(module),
        })
    # one training step, then eval: the running statistics move by BatchNorm's momentum (timm: 0.1)
    module = build("cbam", 32).double()
    randomize(module, 10)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    x_train = torch.randn((4, 32, 7, 5), generator=torch.Generator().manual_seed(110), dtype=torch.float64)
    x_eval = torch.randn((2, 32, 7, 5), generator=torch.Generator().manual_seed(111), dtype=torch.float64)
    with torch.no_grad():
        module.train()(x_train)
        y = module.eval()(x_eval)
    cases.append({"name": "cbam_after_one_training_step", "channels": 32, "state_dict": state,
                  "train_input": x_train, "input": x_eval, "output": y,
                  "momentum": module.spatial.conv.bn.momentum, "repr": repr(module)})
    torch.save({"timm_version": str(timm.__version__), "torch_version": str(torch.__version__), "cases": cases}, argv[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
