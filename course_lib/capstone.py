"""Chapter 09 capstone: every attention module in the same small CNN, trained on cluttered digits.

The network, the training loop and the measurements. ``python -m course_lib capstone`` (``make capstone``,
:mod:`course_lib.tools.capstone_run`) trains every reference variant with them and writes the results
table and figures.

The network (:class:`CapstoneNet`, about 40 k parameters without attention)::

    x (B, 1, H, W), H = W = 48 by default
    stage 1  conv3x3(1->16)-BN-ReLU, maxpool 2       (B, 16, 24, 24)
    stage 2  conv3x3(16->32)-BN-ReLU, maxpool 2      (B, 32, 12, 12)
    stage 3  conv3x3(32->48)-BN-ReLU,
             conv3x3(48->48)-BN-ReLU                 (B, 48, 12, 12)   ``features(x)``
    attention slot (any module (B, C, H, W) -> same) (B, 48, 12, 12)
    global average pool, linear(48->10)              (B, 10)

The slot sits before global average pooling on purpose: pooling adds up evidence from every
position, the clutter's included, so a map that finds the digit has something to gain there.
A stage-3 cell sees a 26x26 pixel window, enough for a 16x16 digit and its surroundings.

The slot is filled with your own module: a class or factory called as ``factory(channels)`` or a ready
module instance, e.g. ``CapstoneNet(MySqueezeExcitation)``; with ``None`` or "none" for no attention; or by
name from a ``registry`` (a dict name -> factory, e.g. ``{"my_se": MySqueezeExcitation}``; in the full
repository ``course_lib.ATTENTION`` is one, with the course's reference modules).

Besides "none", the table has "conv_control": one more conv3x3-BN-ReLU in the slot. CTDNet's SAM
brings such a layer with it (gate, then conv-BN-ReLU), so this row separates its attention from its
extra capacity.

Budgets. The full run (``FULL``: 2 000 training images with 10 fragments each, 4 epochs, 3 seeds,
13 variants) takes about 15-17 minutes on a quiet 2-core CPU and about twice that on a loaded one:
one training takes 15-32 s at load 2-3 (non_local the slowest) and 40-52 s at load 5-8, as measured with
one-seed runs of none, se and non_local, then none, danet_pam, gcnet, eca and coord_attention (the README
gives the trade-off: ``--seeds 1`` takes a third of the time, and the paired interval then covers the test
images only); at that budget the plain CNN is
near 90 %, not saturated, so variants can differ (with 3 500 images x 5 epochs it reaches 98.5 % and
every variant ties). ``--quick`` (``QUICK``) trains 4 variants, one seed, 4 epochs on 1 000 images of a
32x32 canvas with 3 fragments: a smoke test that still clearly beats chance. Training uses one CPU
thread by default (``--threads``): these small convolutions gain little from more, and on a busy
machine extra threads spin and wait.

Fair comparison: for a given seed every variant gets the same data, the same backbone and head
initialisation (the attention module is built last, after the shared layers have drawn their
weights) and the same batch order.

Metric definitions (also written into ``results.md``):

* MACs: multiply-accumulates per image, ``FlopCounterMode`` flops / 2 on a batch of one. It counts
  convolutions and matrix products (conv, linear, mm, bmm); element-wise operations, pooling,
  softmax and sigmoid are not counted.
* latency: CPU, batch of one, eval mode under ``torch.inference_mode``, median of 100 calls
  after 10 warm-up calls, with the threads set for the run. It is a relative number for this
  machine, not a benchmark.
* attention mass in box: each spatial map is upsampled (bilinear) to the canvas, its per-image
  minimum is subtracted (sigmoid gates sit on a floor), and we report the fraction of what remains
  that falls inside the digit's box; the box covers ``area`` of the canvas, so a map that ignores
  the digit scores about ``area`` and ``lift = mass / area`` is about 1. ``hit`` is the pointing
  game: how often the map's maximum lies in the box.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import random
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import ClutteredDigits, load_cluttered_digits

__all__ = [
    "VARIANTS", "QUICK_VARIANTS", "Budget", "FULL", "QUICK", "CapstoneNet", "predict", "build_attention", "pick_device", "seed_everything",
    "fit", "evaluate", "count_parameters", "count_macs", "cpu_latency_ms", "attention_outputs",
    "spatial_maps", "localisation", "channel_weights_per_class", "pam_query_maps", "RunResult",
    "run_experiment", "summarise", "diagnose", "write_results", "results_markdown", "published_results",
    "load_my_class",
]

#: Every variant the capstone compares, in table order: "none" is the plain CNN, "conv_control" the
#: plain CNN with one more conv3x3-BN-ReLU in the slot (CTDNet's SAM brings such a conv with it,
#: so this row tells its attention from its extra capacity), the rest come from course_lib.ATTENTION.
VARIANTS = ("none", "conv_control", "se", "cbam", "ctdnet_sam", "hacnn_soft", "danet_pam", "danet_cam",
            "danet_dual", "non_local", "gcnet", "eca", "coord_attention")
#: ``--quick`` trains these: one of each kind of map (channel gate, spatial gate, position attention).
QUICK_VARIANTS = ("none", "se", "cbam", "danet_pam")


# --------------------------------------------------------------------------------------------
# Budgets: sized on a 2-core CPU (see results.md for the measured wall time)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Data size and training schedule of one capstone run."""

    num_train: int
    num_test: int
    epochs: int
    seeds: int
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 5e-4
    canvas_size: int = 48
    num_clutter: int = 10
    fragment_size: int = 8
    data_seed: int = 0


# FULL: at 2 000 x 4 epochs the plain CNN is near 90 % (not saturated), so variants can differ;
# at 3 500 x 5 it reaches 98.5 % and every variant ties.
FULL = Budget(num_train=2000, num_test=2000, epochs=4, seeds=3)
QUICK = Budget(num_train=1000, num_test=400, epochs=4, seeds=1, canvas_size=32, num_clutter=3)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
def build_attention(spec: Any, channels: int, *, registry: Mapping[str, Callable] | None = None) -> nn.Module:
    """The module for the attention slot.

    ``spec`` may be ``None`` or "none" (identity), "conv_control", a name in ``registry``, an ``nn.Module``
    instance (used as is), or a class/factory called as ``spec(channels)`` that must return an ``nn.Module``.
    """
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return nn.Identity()
    if isinstance(spec, str) and spec == "conv_control":
        return conv_bn_relu(channels, channels)
    if isinstance(spec, str):
        if registry is None:
            raise ValueError(f"attention {spec!r} is a name, and no registry was given: pass registry= (a dict "
                             "name -> class or factory of channels; in the full repository, course_lib.ATTENTION "
                             "holds the course's reference modules), or pass your module or class itself")
        table = registry
        if spec not in table:
            names = ", ".join(["none", "conv_control", *table])
            raise ValueError(f"attention must be one of: {names}; got {spec!r}")
        module = table[spec](channels)
    elif isinstance(spec, nn.Module):
        module = spec
    elif callable(spec):
        module = spec(channels)
    else:
        raise TypeError("attention must be None, a name from the registry, an nn.Module, or a "
                        f"class/factory taking channels; got {type(spec).__name__} {spec!r}")
    if not isinstance(module, nn.Module):
        raise TypeError(f"attention factory {spec!r} must return an nn.Module when called with "
                        f"channels={channels}; got {type(module).__name__}")
    return module


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """A 3x3 convolution (no bias), BatchNorm and ReLU: the backbone's layer, and the conv control's."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class CapstoneNet(nn.Module):
    """Three conv stages, an attention slot, global average pooling and a linear classifier.

    Args:
        attention: what fills the slot; see :func:`build_attention`.
        widths: channels of the three stages; the slot gets ``widths[-1]`` channels.
        num_classes: outputs of the classifier.
        registry: name -> factory table for an ``attention`` given by name.

    ``features(x)`` returns the map that enters the slot, (B, C, H/4, W/4), as a contiguous tensor
    (the backbone runs channels_last for CPU speed; the slot gets the ordinary layout, so a module
    that calls ``.view`` works). ``forward(x)`` returns logits (B, num_classes).
    """

    def __init__(self, attention: Any = None, *, widths: Sequence[int] = (16, 32, 48), num_classes: int = 10,
                 registry: Mapping[str, Callable] | None = None) -> None:
        super().__init__()
        if len(widths) != 3 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be three positive ints; got {widths!r}")
        c1, c2, c3 = widths
        self.backbone = nn.Sequential(
            conv_bn_relu(1, c1), nn.MaxPool2d(2),  # (B, c1, H/2, W/2)
            conv_bn_relu(c1, c2), nn.MaxPool2d(2),  # (B, c2, H/4, W/4)
            conv_bn_relu(c2, c3), conv_bn_relu(c3, c3),  # (B, c3, H/4, W/4)
        ).to(memory_format=torch.channels_last)
        self.classifier = nn.Linear(c3, num_classes)
        self.channels = c3
        self.stride = 4
        # Built last, so every variant starts from the same backbone and classifier for a given seed.
        self.attention = build_attention(attention, c3, registry=registry)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"CapstoneNet expects images of shape (B, 1, H, W); got {tuple(x.shape)}")
        return self.backbone(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        y = self.attention(f)
        if not isinstance(y, torch.Tensor) or y.shape != f.shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"the attention slot must map (B, C, H, W) = {tuple(f.shape)} to the same shape; "
                             f"{type(self.attention).__name__} returned {got}")
        return self.classifier(y.mean((2, 3)))  # global average pool -> (B, C) -> (B, classes)


# --------------------------------------------------------------------------------------------
# Reproducibility and device
# --------------------------------------------------------------------------------------------
def pick_device(name: str = "auto") -> torch.device:
    """"auto" gives CUDA when present, else the CPU; "cpu" and "cuda" force one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in {"cpu", "cuda"}:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch.cuda.is_available() is False")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python's random, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels inside, the caller's settings restored outside."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------
def fit(model: nn.Module, data: ClutteredDigits, *, epochs: int, seed: int, batch_size: int = 64, lr: float = 1e-2,
        weight_decay: float = 5e-4, device: torch.device | str | None = None, progress: bool = True,
        desc: str = "train") -> list[float]:
    """Train ``model`` in place with AdamW (warm-up, then cosine decay); return the mean loss per epoch.

    Deterministic for a given seed on a given device: the batch order comes from a private
    generator seeded with ``seed``, and deterministic kernels are switched on while training.
    The model ends on ``device`` (default: :func:`pick_device`) in eval mode.
    """
    from tqdm.auto import tqdm

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1; got {epochs!r}")
    device = pick_device() if device is None else torch.device(device)
    x_all, y_all = data.images.to(device), data.labels.to(device)
    n = len(data)
    steps_per_epoch = math.ceil(n / batch_size)
    order = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(epochs * steps_per_epoch))
    history = []
    with _deterministic(), tqdm(total=epochs * steps_per_epoch, desc=desc, leave=False, disable=not progress,
                                dynamic_ncols=True) as bar:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=order).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, n, batch_size):
                idx = perm[start:start + batch_size]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach() * len(idx)
                bar.update(1)
            history.append(float(total) / n)
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return history


def _warmup_cosine(total: int, warmup_fraction: float = 0.25) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over the first quarter of the steps, then cosine to 0."""
    warmup = max(1, round(warmup_fraction * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Predicted class per image, (N,) int64 on the CPU; runs on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(images[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, data: ClutteredDigits) -> float:
    """Test accuracy in [0, 1]."""
    return float((predict(model, data.images) == data.labels).double().mean())


# --------------------------------------------------------------------------------------------
# Cost: parameters, multiply-adds, latency
# --------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_shape: tuple[int, int, int] = (1, 48, 48)) -> int:
    """Multiply-accumulates for one image: ``FlopCounterMode`` flops / 2 (conv and matrix products only)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = copy.deepcopy(model).cpu().eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(torch.zeros(1, *image_shape))
    return int(counter.get_total_flops()) // 2


def cpu_latency_ms(model: nn.Module, image_shape: tuple[int, int, int] = (1, 48, 48), *, repeats: int = 100,
                   warmup: int = 10) -> float:
    """Median CPU wall time of one forward pass on a batch of one image, in milliseconds."""
    net = copy.deepcopy(model).cpu().eval()
    x = torch.rand(1, *image_shape, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            net(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


# --------------------------------------------------------------------------------------------
# Looking inside: what the attention module computed
# --------------------------------------------------------------------------------------------
def _flatten_outputs(att: Any) -> list[torch.Tensor]:
    if isinstance(att, torch.Tensor):
        return [att]
    if isinstance(att, Mapping):
        att = list(att.values())
    if isinstance(att, (tuple, list)):
        return [t for item in att for t in _flatten_outputs(item)]
    return []


@torch.inference_mode()
def attention_outputs(model: CapstoneNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The slot module's ``attention(features)``, sorted by shape (all on the CPU).

    Keys present depend on the module:
      "channel" (B, C) from a (B, C, 1, 1) gate (SE, CBAM's channel gate);
      "spatial" (B, h, w) from a (B, 1, h, w) map, or the channel mean of a (B, C, h, w) map
      (CBAM's spatial gate, CTDNet SAM, HA-CNN soft attention);
      "position" (B, N, N), N = h*w, rows = queries (DANet PAM); its "spatial" is the attention
      each position *receives*, averaged over queries;
      "channel_affinity" (B, C, C) (DANet CAM).
    A module without ``attention`` (the plain CNN) gives an empty dict. When a module returns
    several maps of the same kind, the first one wins.
    """
    module = model.attention
    if not hasattr(module, "attention"):
        return {}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    f = model.features(images.to(device))
    b, c, h, w = f.shape
    found: dict[str, torch.Tensor] = {}
    for t in _flatten_outputs(module.attention(f)):
        t = t.detach().float().cpu()
        if t.shape == (b, c, 1, 1):
            found.setdefault("channel", t.flatten(1))
        elif t.shape == (b, 1, h, w):
            found.setdefault("spatial", t[:, 0])
        elif t.shape == (b, c, h, w):
            found.setdefault("spatial", t.mean(1))
        elif t.shape == (b, h * w, h * w):
            found.setdefault("position", t)
            found.setdefault("spatial", t.mean(1).reshape(b, h, w))  # attention received per key
        elif t.shape == (b, c, c):
            found.setdefault("channel_affinity", t)
    model.train(was_training)
    return found


@torch.inference_mode()
def spatial_maps(model: CapstoneNet, images: torch.Tensor, *, control: bool = False) -> torch.Tensor | None:
    """(B, H, W) spatial attention upsampled (bilinear) to the image size, or None if the module has none.

    ``control=True`` returns instead the channel mean of ``|features|``: where the plain backbone is
    active, with no attention involved (the baseline a spatial map should beat).
    """
    if control:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        small = model.features(images.to(device)).abs().mean(1).float().cpu()
        model.train(was_training)
    else:
        small = attention_outputs(model, images).get("spatial")
        if small is None:
            return None
    size = images.shape[-2:]
    return F.interpolate(small[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def localisation(maps: torch.Tensor, boxes: torch.Tensor) -> dict[str, float]:
    """Does a (B, H, W) map find the digit? Mass inside the box, the box's area, lift, pointing hits.

    The per-image minimum is subtracted first (see the module docstring); a constant map has no
    mass and counts as mass = area.
    """
    b, h, w = maps.shape
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    top, left, bottom, right = (boxes[:, k, None, None] for k in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # (B, H, W)
    area = inside.flatten(1).double().mean(1)  # (B,)
    m = (maps - maps.flatten(1).min(1).values[:, None, None]).double()
    total = m.flatten(1).sum(1)
    mass = torch.where(total > 0, (m * inside).flatten(1).sum(1) / total.clamp_min(1e-300), area)
    hit = inside.flatten(1).gather(1, maps.flatten(1).argmax(1, keepdim=True))[:, 0]
    return {"mass_in_box": float(mass.mean()), "box_area": float(area.mean()),
            "lift": float((mass / area).mean()), "pointing_hit": float(hit.double().mean())}


def channel_weights_per_class(model: CapstoneNet, data: ClutteredDigits, *, num_classes: int = 10) -> np.ndarray | None:
    """(classes, C): the channel gate averaged over the images of each class, or None without one."""
    gates = attention_outputs(model, data.images).get("channel")
    if gates is None:
        return None
    out = np.zeros((num_classes, gates.shape[1]))
    for k in range(num_classes):
        members = data.labels == k
        if members.any():
            out[k] = gates[members].mean(0).numpy()
    return out


def pam_query_maps(model: CapstoneNet, data: ClutteredDigits, indices: Sequence[int]) -> dict[str, np.ndarray] | None:
    """One query per image, at the feature cell under the digit box's centre: that query's row of
    the position attention, upsampled to the image. None when the module has no (B, N, N) map.

    Returns ``maps`` (n, H, W), ``queries`` (n, 2) (row, col) in image pixels, ``images`` (n, H, W),
    ``boxes`` (n, 4) and ``mass_in_box`` (n,) of each query's attention.
    """
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    images, boxes = data.images[idx], data.boxes[idx]
    position = attention_outputs(model, images).get("position")
    if position is None:
        return None
    n, height, width = len(idx), images.shape[-2], images.shape[-1]
    h, w = height // model.stride, width // model.stride
    centre_r = (boxes[:, 0] + boxes[:, 2]).double() / 2
    centre_c = (boxes[:, 1] + boxes[:, 3]).double() / 2
    qr = (centre_r / model.stride).long().clamp(0, h - 1)
    qc = (centre_c / model.stride).long().clamp(0, w - 1)
    rows = position[torch.arange(n), qr * w + qc].reshape(n, 1, h, w)  # (n, N) -> (n, 1, h, w)
    maps = F.interpolate(rows, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    queries = torch.stack([(qr.double() + 0.5) * model.stride, (qc.double() + 0.5) * model.stride], 1)
    mass = [localisation(maps[i:i + 1], boxes[i:i + 1])["mass_in_box"] for i in range(n)]
    return {"maps": maps.numpy(), "queries": queries.numpy(), "images": images[:, 0].numpy(),
            "boxes": boxes.numpy(), "mass_in_box": np.array(mass)}


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    variant: str
    seed: int
    accuracy: float
    train_seconds: float
    final_loss: float
    localisation: dict[str, float] = field(default_factory=dict)
    control: dict[str, float] = field(default_factory=dict)
    correct: Any = None  # (num_test,) bool: which test images it got right (for the paired comparison)


def run_experiment(variants: Sequence[str], budget: Budget, *, seeds: Sequence[int] | None = None,
                   device: torch.device | str | None = None, progress: bool = True,
                   registry: Mapping[str, Callable] | None = None,
                   log: Callable[[str], None] = print) -> tuple[list[RunResult], dict[str, CapstoneNet],
                                                                 tuple[ClutteredDigits, ClutteredDigits]]:
    """Train and test every variant for every seed.

    Returns the per-run results, the seed-0 (first seed) model of each variant (for figures), and
    the (train, test) data.
    """
    seeds = list(range(budget.seeds)) if seeds is None else list(seeds)
    device = pick_device() if device is None else torch.device(device)
    train, test = load_cluttered_digits(budget.num_train, budget.num_test, canvas_size=budget.canvas_size,
                                        num_clutter=budget.num_clutter, fragment_size=budget.fragment_size,
                                        seed=budget.data_seed)
    probe = test.images[:1000]
    results, models = [], {}
    for variant in variants:
        for seed in seeds:
            seed_everything(seed)
            model = CapstoneNet(variant, registry=registry)
            start = time.perf_counter()
            losses = fit(model, train, epochs=budget.epochs, seed=seed, batch_size=budget.batch_size, lr=budget.lr,
                         weight_decay=budget.weight_decay, device=device, progress=progress,
                         desc=f"{variant} seed {seed}")
            seconds = time.perf_counter() - start
            correct = predict(model, test.images) == test.labels
            acc = float(correct.double().mean())
            maps = spatial_maps(model, probe)
            loc = localisation(maps, test.boxes[:len(probe)]) if maps is not None else {}
            ctrl = localisation(spatial_maps(model, probe, control=True), test.boxes[:len(probe)])
            results.append(RunResult(variant, seed, acc, seconds, losses[-1], loc, ctrl, correct.numpy()))
            log(f"{variant:>11} seed {seed}: test accuracy {acc:.3f}  ({seconds:.1f} s, final loss {losses[-1]:.3f})")
            if seed == seeds[0]:
                models[variant] = model
    return results, models, (train, test)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: Sequence[RunResult], models: Mapping[str, CapstoneNet],
              image_shape: tuple[int, int, int] = (1, 48, 48)) -> list[dict[str, Any]]:
    """One row per variant: accuracy mean/std, cost, localisation means."""
    rows = []
    for variant, model in models.items():
        runs = [r for r in results if r.variant == variant]
        acc_mean, acc_std = _mean_std(r.accuracy for r in runs)
        row = {
            "variant": variant, "seeds": len(runs), "acc_mean": acc_mean, "acc_std": acc_std,
            "acc_per_seed": " ".join(f"{r.accuracy:.4f}" for r in runs),
            "params": count_parameters(model), "macs": count_macs(model, image_shape),
            "latency_ms": cpu_latency_ms(model, image_shape),
            "train_s_mean": statistics.fmean(r.train_seconds for r in runs),
        }
        for prefix, key in (("att", "localisation"), ("ctrl", "control")):
            for name in ("mass_in_box", "box_area", "lift", "pointing_hit"):
                values = [getattr(r, key)[name] for r in runs if getattr(r, key)]
                row[f"{prefix}_{name}"] = statistics.fmean(values) if values else float("nan")
        rows.append(row)
    from course_lib import stats  # paired comparisons with the plain CNN (needs RunResult.correct)

    paired = stats.paired_columns(results)
    for row in rows:
        row.update(paired.get(row["variant"], stats.NO_PAIR))
    return rows


def _fmt(value: float, spec: str) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else format(value, spec)


def diagnose(models: Mapping[str, CapstoneNet], test: ClutteredDigits, *, tolerance: float = 1e-3,
             partial: float = 0.05) -> list[str]:
    """Plain-language warnings about the trained modules (seed-0 models), for ``results.md``.

    One failure, in two degrees: a channel gate that is *flat* for an image (the same value on every
    channel) has lost its channel selection for that image, typically because every hidden ReLU unit
    of its bottleneck MLP gets a negative input there, so the gate is sigmoid(0) = 0.5 everywhere
    (sigmoid(bias) with biases). Flat for every test image: the gate has collapsed. Flat for at least
    ``partial`` of them: it has collapsed for those inputs, and the note names the classes hit most.
    """
    notes = []
    for name, model in models.items():
        gates = attention_outputs(model, test.images).get("channel")  # (B, C)
        if gates is None:
            continue
        flat = gates.std(1) < tolerance  # (B,): one value on every channel
        if bool(flat.all()) and float(gates.std()) < tolerance:
            notes.append(f"`{name}`: the channel gate is constant ({float(gates.mean()):.3f} for every class and "
                         f"channel, seed 0): its bottleneck MLP has collapsed (for a gate of sigmoid(MLP), a "
                         f"value of 0.500 means every hidden ReLU unit is dead), so only a fixed scale remains.")
        elif (flat_share := float(flat.double().mean())) >= partial:
            share = {k: float(flat[test.labels == k].double().mean()) for k in range(10) if (test.labels == k).any()}
            worst = [str(k) for k, v in sorted(share.items(), key=lambda kv: -kv[1]) if v >= 0.5]
            value = float(gates[flat].mean())
            notes.append(f"`{name}`: for {100 * flat_share:.0f} % of the test images"
                         + (f" (most of classes {', '.join(worst)})" if worst else "")
                         + f" the channel gate is flat ({value:.3f} on every channel, seed 0): every hidden ReLU "
                         f"unit of its bottleneck MLP is dead for those inputs, so they get a fixed scale instead "
                         f"of a channel selection. A bottleneck of C / r units is narrow in a small network.")
    return notes


def write_results(rows: Sequence[Mapping[str, Any]], out: Path, *, budget: Budget, wall_s: float,
                  device: torch.device, figures: Sequence[str] = (), notes: Sequence[str] = (),
                  reading: bool = True) -> tuple[Path, Path]:
    """Write ``results.csv`` (every column) and ``results.md`` (the tables and, with ``reading``, how to read the
    paired comparison: the notebook leaves that out, since its questions ask it)."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "results.csv", out / "results.md"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(results_markdown(rows, budget=budget, wall_s=wall_s, device=device.type, figures=figures,
                                        notes=notes, reading=reading))
    return csv_path, md_path


def results_markdown(rows: Sequence[Mapping[str, Any]], *, budget: Budget, wall_s: float, device: str,
                     figures: Sequence[str] = (), notes: Sequence[str] = (), torch_version: str | None = None,
                     threads: int | None = None, reading: bool = True) -> str:
    """The text of ``results.md``: the accuracy and cost table, the paired comparison, the localisation table
    and how to read them (``torch_version`` and ``threads`` default to this process's)."""
    base = next((r for r in rows if r["variant"] == "none"), None)
    torch_version = torch_version or torch.__version__
    threads = torch.get_num_threads() if threads is None else threads
    lines = [
        "# Capstone: attention modules in a small CNN on cluttered digits",
        "",
        f"Data: {budget.num_train} train / {budget.num_test} test images, {budget.canvas_size}x{budget.canvas_size} "
        f"canvas, 16x16 digit, {budget.num_clutter} clutter fragments ({budget.fragment_size}x{budget.fragment_size} "
        f"pieces of other digits), train and test "
        f"drawn from disjoint source images (`course_lib.data`, data seed {budget.data_seed}). Training: "
        f"{budget.epochs} epochs, batch {budget.batch_size}, AdamW lr {budget.lr} (linear warm-up over 25 % of the steps, then cosine), weight decay "
        f"{budget.weight_decay}, on {device}; seeds {', '.join(str(s) for s in range(rows[0]['seeds']))}. "
        f"Wall time of the whole run: {wall_s:.0f} s. torch {torch_version}, {threads} CPU thread(s).",
        "",
        "| variant | test accuracy (mean ± std) | Δ vs none | params | MACs / image | CPU latency (ms, batch 1) |",
        "|---|---|---|---|---|---|",
    ]
    from course_lib import stats

    for r in rows:
        delta = "" if base is None or r is base else f"{stats.points(100 * (r['acc_mean'] - base['acc_mean']))} pt"
        lines.append(f"| {r['variant']} | {100 * r['acc_mean']:.1f} ± {100 * r['acc_std']:.1f} % | {delta} | "
                     f"{r['params']:,} | {r['macs'] / 1e6:.2f} M | {r['latency_ms']:.2f} |")
    lines += [""] + stats.paired_table(rows, reading=reading)
    for note in notes:
        lines += ["", f"**Note.** {note}"]
    if any(r["variant"] == "ctdnet_sam" for r in rows):
        lines += ["", "`ctdnet_sam` is CTDNet's SAM as its paper uses it: the spatial gate *followed by* a "
                  "conv3x3-BN-ReLU, so it adds a layer (see its params and MACs). `conv_control` is that layer "
                  "without the gate: compare the two before crediting the attention."]
    lines += [
        "",
        "MACs = `torch.utils.flop_counter.FlopCounterMode` flops / 2 for one image; convolutions and matrix "
        "products only (element-wise ops, pooling, softmax and sigmoid are not counted). Latency: CPU, batch of "
        "one, eval mode, median of 100 calls after 10 warm-up calls; compare rows, not machines. "
        "Std is the sample standard deviation over seeds (model initialisation and batch order; the data are "
        "the same for every seed). For a given seed every variant starts from the same backbone and classifier "
        "weights and sees the same batches.",
        "",
        "## Does the spatial map find the digit?",
        "",
        "Each map is upsampled to the canvas and its per-image minimum subtracted; *mass in box* is the share "
        "of what remains inside the digit's box, *area* the box's share of the canvas (a map blind to the digit "
        "scores mass ≈ area, lift ≈ 1), *hit* how often the map's maximum falls in the box (pointing game). "
        "The control row of each variant is the same measure on the channel mean of |features| entering the "
        "slot: where the backbone is active anyway. First 1000 test images, mean over seeds.",
        "",
        "| variant | map | mass in box | area | lift | hit | control: lift | control: hit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        has_map = not math.isnan(r["att_lift"])
        kind = _MAP_KIND.get(r["variant"], "spatial map") if has_map else "none"
        lines.append(f"| {r['variant']} | {kind} | {_fmt(r['att_mass_in_box'], '.3f')} | {r['ctrl_box_area']:.3f} | "
                     f"{_fmt(r['att_lift'], '.2f')} | {_fmt(r['att_pointing_hit'], '.2f')} | "
                     f"{r['ctrl_lift']:.2f} | {r['ctrl_pointing_hit']:.2f} |")
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The published run: `make capstone`'s results, shipped with the student package
# --------------------------------------------------------------------------------------------
#: Where `make capstone` (``python -m course_lib capstone --publish``) stores its full run, inside the package:
#: every row of the table and every network's per-image correctness on the test images, so that chapter 09's
#: section 11 can show the table, and recompute any paired comparison, without training 39 networks.
PUBLISHED = Path(__file__).resolve().parent / "results" / "capstone.json"


def _pack(correct: Any) -> str:
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def _unpack(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def published_record(results: Sequence[RunResult], rows: Sequence[Mapping[str, Any]], *, budget: Budget,
                     wall_s: float, device: str, notes: Sequence[str] = ()) -> dict[str, Any]:
    """What :data:`PUBLISHED` holds for one run (see :func:`published_results`)."""
    from dataclasses import asdict

    return {
        "budget": asdict(budget), "variants": [r["variant"] for r in rows], "device": device,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "wall_s": round(float(wall_s), 1),
        "rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows],
        "notes": list(notes),
        "correct": {f"{r.variant}/{r.seed}": _pack(r.correct) for r in results if r.correct is not None},
    }


def published_results(path: str | Path | None = None) -> dict[str, Any]:
    """The full run that ships with the course (made by `make capstone`): a dict with

    * ``budget`` (a :class:`Budget`), ``variants``, ``device``, ``torch``, ``threads``, ``wall_s``, ``notes``;
    * ``rows``: the table's rows, as :func:`summarise` made them (missing values as nan);
    * ``correct``: variant -> bool array (seeds, num_test), which test images each seed's network got right;
    * ``markdown``: the text of its ``results.md`` (no figures).
    """
    import json

    path = Path(path) if path is not None else PUBLISHED
    if not path.is_file():
        raise FileNotFoundError(f"course_lib.capstone.published_results: no published run at {path.name}; "
                                "`make capstone` in the course repository writes it")
    record = json.loads(path.read_text(encoding="utf-8"))
    budget = Budget(**record["budget"])
    rows = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in record["rows"]]
    correct: dict[str, list[np.ndarray]] = {}
    for key in sorted(record["correct"], key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        correct.setdefault(key.rsplit("/", 1)[0], []).append(_unpack(record["correct"][key], budget.num_test))
    markdown = results_markdown(rows, budget=budget, wall_s=record["wall_s"], device=record["device"],
                                notes=record["notes"], torch_version=record["torch"], threads=record["threads"])
    return {**record, "budget": budget, "rows": rows, "correct": {k: np.stack(v) for k, v in correct.items()},
            "markdown": markdown}


_MAP_KIND = {
    "cbam": "spatial gate (B,1,H,W)", "ctdnet_sam": "spatial gate (B,1,H,W)",
    "hacnn_soft": "channel mean of (B,C,H,W)", "danet_pam": "attention received (mean over queries)",
    "danet_dual": "PAM: attention received",
    "non_local": "attention received (mean over queries)", "gcnet": "context pooling weights (B,1,H,W)",
    "coord_attention": "channel mean of g^h g^w (B,C,H,W)",
}


# --------------------------------------------------------------------------------------------
# Your own modules from earlier chapters
# --------------------------------------------------------------------------------------------
def _notebook_candidates(chapter: str, start: Path) -> list[Path]:
    """Where a chapter's notebook may be, seen from a notebook's working folder ``start``."""
    name = f"{chapter}.ipynb"
    places = [start.parent / chapter / name, start / chapter / name, start / name, start / "notebooks" / chapter / name]
    return list(dict.fromkeys(p.resolve() for p in places))


def _raises_not_implemented(node: Any) -> bool:
    import ast

    for sub in ast.walk(node):
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


def load_my_class(chapter: str, name: str, *, path: str | Path | None = None) -> Any:
    """Your class ``name`` from your own notebook of ``chapter`` (e.g. ``load_my_class("01_se",
    "SqueezeExcitation")``), ready for ``CapstoneNet``'s slot.

    The notebook is looked for beside this one's folder (``../01_se/01_se.ipynb``, the course's layout), then
    in this folder; ``path`` names it directly. In a fresh namespace, the notebook's import statements and its
    definitions (classes, functions, constants) run in notebook order, so the class sees ``torch``, ``nn``,
    ``F``, einops and its helper classes as it did there; nothing else of that notebook runs (no training, no
    checks). Save the other notebook first: the file on disk is what is read.

    Raises FileNotFoundError (with the places searched) when the notebook is not there, LookupError when no
    cell defines the class, NotImplementedError when the class still raises NotImplementedError (the
    untouched stub; also when a class of that notebook that it uses does), and ImportError when one of that
    notebook's imports fails here.
    """
    import ast
    import json

    if not isinstance(chapter, str) or not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"load_my_class(chapter, name): expected two strings such as ('01_se', 'SqueezeExcitation'), "
                        f"got ({chapter!r}, {name!r})")
    places = [Path(path).expanduser().resolve()] if path is not None else _notebook_candidates(chapter, Path.cwd())
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        colab = "google.colab" in sys.modules
        raise FileNotFoundError(
            f"load_my_class: no notebook {chapter}.ipynb; looked at " + ", ".join(str(p) for p in places) + ". "
            + ("On Colab only the notebook you opened is on the runtime: upload your "
               f"{chapter}.ipynb (Files panel, left) and pass path='/content/{chapter}.ipynb', or paste the class "
               "into a cell here." if colab else
               f"Open this notebook from the course's notebooks/ folder (beside {chapter}/), or pass "
               f"path='.../{chapter}.ipynb'."))
    try:
        cells = [c for c in json.loads(found.read_text(encoding="utf-8"))["cells"] if c.get("cell_type") == "code"]
    except (ValueError, KeyError) as error:
        raise ValueError(f"load_my_class: {found} is not a notebook that can be read ({error})") from None

    def parsed(cell: Mapping) -> Any:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            return ast.parse(source)
        except SyntaxError:
            return None  # a cell with a syntax error (or IPython magics) cannot be the one we want

    trees = [t for t in (parsed(c) for c in cells) if t is not None]
    # the notebook's imports and definitions (classes, functions, constants), in notebook order; no other code
    kept = [stmt for tree in trees for stmt in tree.body
            if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef))
            or (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant))]
    defs = {}
    for stmt in kept:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef)):
            defs[stmt.name] = stmt  # the last definition wins, as when the notebook runs top to bottom
    if not isinstance(defs.get(name), ast.ClassDef):
        raise LookupError(f"load_my_class: no code cell of {found} defines `class {name}`. Check the class name "
                          "(it is case-sensitive) and that the notebook was saved.")
    # the class and the notebook's own classes and functions it uses (CBAM uses ChannelAttention, ...)
    needed, todo = [], [name]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed.append(current)
        todo += [n.id for n in ast.walk(defs[current]) if isinstance(n, ast.Name) and n.id in defs]
    for current in needed:
        if _raises_not_implemented(defs[current]):
            which = name if current == name else f"{current} (which {name} uses)"
            raise NotImplementedError(f"load_my_class: {which} in {found} still raises NotImplementedError: "
                                      f"finish chapter {chapter}'s exercise (and save the notebook), then load it "
                                      "again.")
    namespace: dict[str, Any] = {"__name__": f"my_{chapter}"}
    for stmt in kept:
        try:
            exec(compile(ast.Module(body=[stmt], type_ignores=[]), str(found), "exec"), namespace)
        except ImportError as error:
            raise ImportError(f"load_my_class: {found} runs `{ast.unparse(stmt)}`, which fails here: {error}") from None
    return namespace[name]
