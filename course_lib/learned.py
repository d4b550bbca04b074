"""What a trained module learns: small trained checkpoints for chapters 01-08, and how to load them.

Each chapter's module is trained in the capstone's network (:class:`course_lib.capstone.CapstoneNet`)
on the capstone's cluttered digits, with the capstone's training loop (:func:`course_lib.capstone.fit`):
2 000 training images, 4 epochs, one seed: 9 s (CAM) to 81 s (PAM) on one thread of a busy 2-core CPU. The
trained weights ship with the package (``course_lib/checkpoints/<name>.pt``, about 0.2 MB each), so
a chapter draws its "what a trained module learns" figures without training; ``make checkpoints``
(``python -m course_lib checkpoints``, :mod:`course_lib.tools.checkpoints`) rebuilds all of them from their fixed
seeds with the reference modules.

A checkpoint holds

* ``trunk``: the state dict of everything but the attention modules (backbone, classifier);
* ``modules``: for each attention slot, the module's weights **by role** (e.g. "W1 weight (C' x C)"
  or, where the chapter's checks load by name, by those names), the same roles and the same loading
  functions the chapter's checks use (:data:`_LOADERS`), so a student's own module, whatever its
  attribute names, takes the trained weights exactly as it takes the checks' stored weights;
* ``accuracy`` (test accuracy of the trained network), ``numbers`` (every number the chapter's text
  quotes about its figure, computed by :func:`measure`), ``train_seconds``, ``seed``, ``budget``.

Usage in a chapter::

    from course_lib import learned
    net = learned.load_trained("se", SqueezeExcitation)   # your class, the trained weights
    numbers = learned.measure("se", net, learned.test_split())

:func:`train` trains one from scratch (``learned.train("se", SqueezeExcitation)``), on CUDA when
present, deterministic for a given seed on a given device.

The recipes (:data:`RECIPES`):

=============  ==========  =====================================================================
name           chapter     module(s) in the network
=============  ==========  =====================================================================
"se"           01_se       ``SqueezeExcitation(C, reduction=4)`` after stage 1 (C = 16), after
                           stage 2 (C = 32) and in the slot (C = 48): one gate per depth
"cbam"         02_cbam     ``CBAM(48, reduction=4)`` in the slot (paper form: bias-free MLP,
                           [mean; max], no BN in the spatial gate)
"ctdnet_sam"   03          ``SpatialAttentionModule(48, 48)`` in the slot
"hacnn_soft"   04_hacnn    ``SoftAttention(48)`` in the slot
"hacnn_hard"   04_hacnn    ``HardAttention(48, 4)`` beside the pooling, its stripes of the feature
                           map through a small local branch (:class:`StripeNet`)
"danet_pam"    05          ``PositionAttention(48)`` in the slot
"danet_cam"    06          ``ChannelAttention(variant="paper")`` in the slot
"danet_cam_official" 06    ``ChannelAttention(variant="official")`` in the slot
"non_local"    07          ``NonLocalBlock(48)`` in the slot (embedded Gaussian, C' = 24, BN after
                           W_z with zero scale and shift: the identity at the start)
"eca"          08          ``EfficientChannelAttention(C)`` (k = psi(C) = 3 at C = 16, 32, 48)
                           after stage 1, after stage 2 and in the slot: one gate per depth
"coord_attention" 08       ``CoordinateAttention(48)`` in the slot (M = max(8, 48 // 32) = 8)
=============  ==========  =====================================================================
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import capstone as cap
from course_lib.data import ClutteredDigits, make_cluttered_digits, split_sources, load_cluttered_digits

__all__ = ["RECIPES", "BUDGET", "CHECKPOINT_DIR", "Recipe", "NotWrittenYet", "DepthNet", "test_split",
           "StripeNet", "build_net", "spatial_maps", "stripe_boxes", "train", "load_trained", "try_load", "measure", "save_checkpoint", "read_checkpoint",
           "mean_cosine_distance", "pam_as_non_local", "coord_profiles", "coord_stats", "get_recipe"]

CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")
#: The capstone's full data and schedule, one seed: 2 000 train / 2 000 test images, 4 epochs.
BUDGET = replace(cap.FULL, seeds=1)
#: Test images the figure numbers are measured on (the first of the test split).
PROBE = 1000


class NotWrittenYet(RuntimeError):
    """The student's class still raises NotImplementedError."""


# --------------------------------------------------------------------------------------------
# The networks
# --------------------------------------------------------------------------------------------
class DepthNet(cap.CapstoneNet):
    """CapstoneNet with the module at three depths: after stage 1 (16 channels, 24x24), after stage 2
    (32 channels, 12x12), and in the slot (48 channels, 12x12). ``early`` holds the first two."""

    _AFTER = (1, 3)  # backbone indices after which an early module runs (the two max-pools)

    def __init__(self, attention: Any) -> None:
        super().__init__(attention)
        widths = (self.backbone[0][0].out_channels, self.backbone[2][0].out_channels)
        self.early = nn.ModuleList([cap.build_attention(attention, c) for c in widths])

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The inputs of the three modules: (B, 16, H/2, W/2), (B, 32, H/4, W/4), (B, 48, H/4, W/4)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"DepthNet expects images of shape (B, 1, H, W); got {tuple(x.shape)}")
        h = x.contiguous(memory_format=torch.channels_last)
        inputs = []
        for i, layer in enumerate(self.backbone):
            h = layer(h)
            if i in self._AFTER:
                h = h.contiguous()
                inputs.append(h)
                h = self.early[self._AFTER.index(i)](h)
        inputs.append(h.contiguous())
        return inputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage_outputs(x)[-1]


class StripeNet(cap.CapstoneNet):
    """CapstoneNet with HA-CNN's hard attention beside the pooling: the module's R horizontal stripes of
    the (B, 48, 12, 12) feature map, located by its learnt translations, go through one shared
    conv3x3-BN-ReLU (a small local branch), are pooled and averaged, and are added to the pooled
    global features before the classifier. The translations learn only through ``grid_sample``'s
    sampling positions, as in the paper. ``hard`` holds the module; the slot stays empty."""

    def __init__(self, attention: Any) -> None:
        super().__init__(None)
        self.local = cap.conv_bn_relu(self.channels, self.channels)
        self.hard = cap.build_attention(attention, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, C, h, w)
        crops = self.hard(f)  # (B, R, C, h / R, w)
        if not isinstance(crops, torch.Tensor) or crops.dim() != 5 or crops.shape[2] != f.shape[1]:
            got = tuple(crops.shape) if isinstance(crops, torch.Tensor) else type(crops).__name__
            raise ValueError(f"{type(self.hard).__name__}(x) should return the crops (B, R, C, h, w); got {got}")
        b, r = crops.shape[:2]
        local = self.local(crops.flatten(0, 1)).mean((2, 3))  # (B*R, C, h', w') -> (B*R, C)
        local = local.reshape(b, r, -1).mean(1)  # (B*R, C) -> (B, C)
        return self.classifier(f.mean((2, 3)) + local)


def _slots(net: nn.Module) -> dict[str, nn.Module]:
    """Slot name -> attention module, in depth order."""
    if isinstance(net, StripeNet):
        return {"hard": net.hard}
    slots = {}
    if isinstance(net, DepthNet):
        slots.update({f"early.{i}": m for i, m in enumerate(net.early)})
    slots["attention"] = net.attention
    return slots


# --------------------------------------------------------------------------------------------
# Roles: the reference module's weights under the names the chapter's checks load them by
# --------------------------------------------------------------------------------------------
def _se_roles(m: nn.Module) -> dict[str, torch.Tensor]:
    return {"W1 weight (C' x C)": m.fc1.weight.flatten(1), "W1 bias": m.fc1.bias,
            "W2 weight (C x C')": m.fc2.weight.flatten(1), "W2 bias": m.fc2.bias}


def _cbam_roles(m: nn.Module) -> dict[str, torch.Tensor]:
    mlp = m.channel_gate.mlp
    return {"W_0 weight (C' x C)": mlp[0].weight.flatten(1), "W_1 weight (C x C')": mlp[2].weight.flatten(1),
            "conv weight (1, 2, k, k)": m.spatial_gate.conv.weight}


def _sam_roles(m: nn.Module) -> dict[str, torch.Tensor]:
    return {"att": m.conv_atten.weight, "conv": m.conv.weight, "bn_weight": m.bn.weight, "bn_bias": m.bn.bias,
            "bn_mean": m.bn.running_mean, "bn_var": m.bn.running_var}


def _named_roles(m: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer under its own name (HA-CNN: torchreid's names; DANet: the official ones)."""
    return {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}


def _load_sam(module: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    from course_lib.checks import ch03_ctdnet_sam as ch03

    c_out, c_in = weights["conv"].shape[:2]
    ch03.load_sam(module, ch03.sam_layers(module, int(c_in), int(c_out), what=what), dict(weights))


def _eca_roles(m: nn.Module) -> dict[str, torch.Tensor]:
    return {"kernel": m.conv.weight.reshape(-1)}


def _load_eca(module: nn.Module, weights: Mapping[str, torch.Tensor], *, what: str) -> None:
    from course_lib.checks import ch08_eca_coordatt as ch08

    ch08.load_eca_kernel(module, weights["kernel"], what=what)


def _loaders() -> dict[str, Callable[..., None]]:
    """How the chapters' checks copy stored weights into a student's module (imported, never copied)."""
    from course_lib.checks import toolkit

    return {"by_shape": toolkit.load_by_shape, "by_name": toolkit.load_by_name, "sam": _load_sam, "eca": _load_eca}


# --------------------------------------------------------------------------------------------
# The recipes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """One checkpoint: which module, how it is built from a class, where it sits, how it is loaded."""

    name: str
    chapter: str
    reference: str  # "module:Class" in course_lib.reference (resolved by course_lib.tools.checkpoints)
    make: Callable[[Any, int], nn.Module]  # (class, channels) -> module
    roles: Callable[[nn.Module], dict[str, torch.Tensor]]
    loader: str  # key of _loaders()
    kind: str  # what measure() computes: "depth_gates", "spatial", "position", "channel_affinity"
    seed: int = 0
    depths: bool = False  # DepthNet (three modules) instead of CapstoneNet (one)
    stripes: bool = False  # StripeNet (hard attention beside the pooling)



RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("se", "01_se", "se:SqueezeExcitation", lambda cls, c: cls(c, reduction=4), _se_roles, "by_shape",
           "depth_gates", depths=True),
    Recipe("cbam", "02_cbam", "cbam:CBAM", lambda cls, c: cls(c, reduction=4), _cbam_roles, "by_shape", "spatial"),
    Recipe("ctdnet_sam", "03_ctdnet_sam", "ctdnet:SpatialAttentionModule", lambda cls, c: cls(c, c), _sam_roles,
           "sam", "spatial"),
    Recipe("hacnn_soft", "04_hacnn", "hacnn:SoftAttention", lambda cls, c: cls(c), _named_roles, "by_name",
           "spatial"),
    Recipe("hacnn_hard", "04_hacnn", "hacnn:HardAttention", lambda cls, c: cls(c, 4), _named_roles, "by_name",
           "stripes", stripes=True),
    Recipe("danet_pam", "05_danet_pam", "danet:PositionAttention", lambda cls, c: cls(c), _named_roles, "by_name",
           "position"),
    Recipe("danet_cam", "06_danet_cam", "danet:ChannelAttention", lambda cls, c: cls(variant="paper"),
           _named_roles, "by_name", "channel_affinity"),
    Recipe("danet_cam_official", "06_danet_cam", "danet:ChannelAttention", lambda cls, c: cls(variant="official"),
           _named_roles, "by_name", "channel_affinity"),
    Recipe("non_local", "07_nonlocal_gcnet", "nonlocal_block:NonLocalBlock", lambda cls, c: cls(c), _named_roles,
           "by_name", "position"),
    Recipe("eca", "08_eca_coordatt", "eca:EfficientChannelAttention", lambda cls, c: cls(c), _eca_roles, "eca",
           "depth_gates", depths=True),
    Recipe("coord_attention", "08_eca_coordatt", "coord_attention:CoordinateAttention", lambda cls, c: cls(c),
           _named_roles, "by_name", "coord"),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"no trained checkpoint named {name!r}; expected one of: {', '.join(RECIPES)}")
    return RECIPES[name]


def _factory(recipe: Recipe, cls: Any) -> Callable[[int], nn.Module]:
    if cls is None:
        raise TypeError(f"learned: recipe {recipe.name!r} needs the class to build its module(s): your own (the "
                        f"chapter's exercise), e.g. {recipe.reference.split(':')[1]}; in the full repository "
                        f"course_lib.tools.checkpoints.reference_class({recipe.name!r}) gives the course's")
    owner = getattr(cls, "__name__", repr(cls))

    def make(channels: int) -> nn.Module:
        try:
            module = recipe.make(cls, channels)
        except NotImplementedError:
            raise NotWrittenYet(f"{owner} is not written yet (it still raises NotImplementedError): finish the "
                                f"exercise above, run its cell, then this one.") from None
        if not isinstance(module, nn.Module):
            raise TypeError(f"{owner} should build an nn.Module; got {type(module).__name__}")
        return module

    return make


def build_net(name: str, cls: Any) -> cap.CapstoneNet:
    """The untrained network of recipe ``name`` with its attention module(s) built from ``cls``."""
    recipe = get_recipe(name)
    factory = _factory(recipe, cls)
    if recipe.stripes:
        return StripeNet(factory)
    return DepthNet(factory) if recipe.depths else cap.CapstoneNet(factory)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def _common(budget: cap.Budget) -> dict[str, int]:
    return dict(canvas_size=budget.canvas_size, num_clutter=budget.num_clutter, fragment_size=budget.fragment_size)


_TEST_SPLITS: dict[tuple, ClutteredDigits] = {}


def test_split(budget: cap.Budget = BUDGET) -> ClutteredDigits:
    """The test split of ``load_cluttered_digits`` for this budget, without drawing the training split.

    Drawn once per process and budget (about 1.3 s for the 2 000 images); every call returns a copy of
    its own, so that a caller who changes the tensors changes nothing for the next one."""
    key = (budget.data_seed, budget.num_test, *_common(budget).values())
    split = _TEST_SPLITS.get(key)
    if split is None:
        _, sources = split_sources(seed=budget.data_seed)
        split = _TEST_SPLITS[key] = make_cluttered_digits(budget.num_test, sources, seed=2 * budget.data_seed + 1,
                                                          **_common(budget))
    return dataclasses.replace(split, **{f.name: getattr(split, f.name).clone() for f in dataclasses.fields(split)})


# --------------------------------------------------------------------------------------------
# Training, saving, loading
# --------------------------------------------------------------------------------------------
def train(name: str, cls: Any, *, seed: int | None = None, budget: cap.Budget = BUDGET,
          device: str | torch.device = "auto", threads: int | None = 1,
          progress: bool = True) -> tuple[cap.CapstoneNet, dict[str, Any]]:
    """Train recipe ``name`` with ``cls`` (your class) from its seed.

    Returns the trained network (eval mode, on the CPU) and its record: accuracy, numbers,
    train_seconds, seed, device. ``threads=1`` (the default) trains on one CPU thread, as the
    capstone does; ``None`` leaves torch's setting alone.
    """
    recipe = get_recipe(name)
    seed = recipe.seed if seed is None else seed
    device = cap.pick_device(device) if isinstance(device, str) else device
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        train_data, test = load_cluttered_digits(budget.num_train, budget.num_test, seed=budget.data_seed,
                                                 **_common(budget))
        cap.seed_everything(seed)
        net = build_net(name, cls)
        start = time.perf_counter()
        cap.fit(net, train_data, epochs=budget.epochs, seed=seed, batch_size=budget.batch_size, lr=budget.lr,
                weight_decay=budget.weight_decay, device=device, progress=progress, desc=name)
        seconds = time.perf_counter() - start
        net = net.cpu().eval()
        record = {"accuracy": cap.evaluate(net, test), "numbers": measure(name, net, test),
                  "train_seconds": seconds, "seed": seed, "device": device.type, "budget": asdict(budget),
                  "torch": str(torch.__version__),
                  # the CPU kernels used (AVX2, AVX512, ...): float rounding, and so the trained weights, depend on it
                  "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    finally:
        torch.set_num_threads(before)
    return net, record


def save_checkpoint(name: str, net: cap.CapstoneNet, record: Mapping[str, Any], directory: Path = CHECKPOINT_DIR) -> Path:
    """Write ``<directory>/<name>.pt``: trunk state dict, module weights by role, and the record."""
    recipe = get_recipe(name)
    slots = _slots(net)
    trunk = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()
             if not any(k.startswith(f"{s}.") for s in slots)}
    modules = {s: {role: t.detach().cpu().clone().contiguous() for role, t in recipe.roles(m).items()}
               for s, m in slots.items()}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    torch.save({"name": name, "chapter": recipe.chapter, "trunk": trunk, "modules": modules, **record}, path)
    return path


def read_checkpoint(name: str, directory: Path = CHECKPOINT_DIR) -> dict[str, Any]:
    """The stored checkpoint of recipe ``name`` (weights and record), on the CPU."""
    get_recipe(name)
    path = directory / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(f"the trained checkpoint {path} is missing; run `make checkpoints` "
                                f"(python -m course_lib checkpoints) to rebuild it")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_trained(name: str, cls: Any, *, directory: Path = CHECKPOINT_DIR) -> cap.CapstoneNet:
    """The trained network of recipe ``name``, its attention module(s) built from ``cls`` (your class) and
    loaded by role with the chapter's checks' loader. Eval mode, CPU.

    Raises :class:`NotWrittenYet` when ``cls`` still raises NotImplementedError, and the checks'
    CheckFailure (naming what was expected and what came) when its parameters do not fit the roles.
    """
    recipe = get_recipe(name)
    state = read_checkpoint(name, directory)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # building draws random weights; leave the caller's RNG alone
        net = build_net(name, cls)
    missing, unexpected = net.load_state_dict(state["trunk"], strict=False)
    slots = _slots(net)
    missing = [k for k in missing if not any(k.startswith(f"{s}.") for s in slots)]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {name}: trunk keys do not match the network (missing {missing}, "
                           f"unexpected {unexpected})")
    loader = _loaders()[recipe.loader]
    owner = getattr(cls, "__name__", repr(cls))
    for slot, module in slots.items():
        loader(module, state["modules"][slot], what=f"{owner} ({slot} of the trained network)")  # the one call site
    return net.eval()


def try_load(name: str, cls: Any) -> cap.CapstoneNet | None:
    """:func:`load_trained` for a notebook: prints why and returns None when ``cls`` is not written yet
    (it raises NotImplementedError when built or when run on an image)."""
    try:
        net = load_trained(name, cls)
        with torch.inference_mode():
            net(torch.zeros(1, 1, BUDGET.canvas_size, BUDGET.canvas_size))
        return net
    except (NotWrittenYet, NotImplementedError) as err:
        reason = str(err) if isinstance(err, NotWrittenYet) else (
            f"{getattr(cls, '__name__', cls)} is not finished yet (it raised NotImplementedError on an image): "
            "finish the exercise above, run its cell, then this one.")
        print(f"{reason} This section runs the trained weights in your own module.")
        return None


def pam_as_non_local(cls: Any, name: str = "danet_pam", *, directory: Path = CHECKPOINT_DIR) -> cap.CapstoneNet | None:
    """The trained DANet PAM network with its position map computed by ``cls``, a non-local block class
    ``cls(channels, reduction)`` with 1x1 convolutions ``theta`` and ``phi`` (chapter 07's exercise).

    PAM's map softmax_j(q_i . k_j) is the embedded Gaussian of the non-local block, Eq. (3), with
    theta = PAM's ``query_conv`` and phi = its ``key_conv`` (C' = C / 8). Those two are loaded into the
    block's theta and phi; the trunk is the PAM network's. Only ``attention(x)`` and the trunk's features
    are PAM's: the block's g, W_z and BN keep their initial values, so its forward is the identity (the
    network's predictions are not PAM's). Returns None, saying why, while ``cls`` is not written yet.
    """
    state = read_checkpoint(name, directory)
    weights = state["modules"]["attention"]
    channels = int(weights["query_conv.weight"].shape[1])
    hidden = int(weights["query_conv.weight"].shape[0])
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = cap.CapstoneNet(_factory(get_recipe("non_local"), lambda c: cls(c, c // hidden)))
        net.load_state_dict(state["trunk"], strict=False)
        renamed = {f"{new}.{kind}": weights[f"{old}.{kind}"] for old, new in (("query_conv", "theta"),
                                                                              ("key_conv", "phi"))
                   for kind in ("weight", "bias")}
        _loaders()["by_name"](net.attention, renamed, what=f"{getattr(cls, '__name__', cls)} (PAM's map)")
        net.eval()
        with torch.inference_mode():
            net.attention.attention(net.features(torch.zeros(1, 1, BUDGET.canvas_size, BUDGET.canvas_size)))
        return net
    except (NotWrittenYet, NotImplementedError):
        print(f"{getattr(cls, '__name__', cls)} is not finished yet: finish the exercise above, run its cell, then "
              "this one. This section computes PAM's map with your own module.")
        return None


# --------------------------------------------------------------------------------------------
# What the text quotes: every number, measured on the first PROBE test images
# --------------------------------------------------------------------------------------------
@torch.inference_mode()
def depth_gates(net: DepthNet, images: torch.Tensor, *, batch_size: int = 500) -> list[torch.Tensor]:
    """The gate of each depth's module over ``images``: [(N, 16), (N, 32), (N, 48)]."""
    net.eval()
    slots = list(_slots(net).values())
    out: list[list[torch.Tensor]] = [[] for _ in slots]
    for i in range(0, len(images), batch_size):
        for d, (m, x) in enumerate(zip(slots, net.stage_outputs(images[i:i + batch_size]))):
            out[d].append(m.attention(x).flatten(1).float())
    return [torch.cat(g) for g in out]


def depth_gate_numbers(gates: list[torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """What the text quotes about the gates of each depth (``depth_gates``' output on images with ``labels``)."""
    out = {}
    for d, g in enumerate(gates, start=1):
        out[f"class_share_{d}"] = class_share(g, labels)
        out[f"gate_mean_{d}"] = float(g.mean())
        out[f"gate_std_{d}"] = float(g.std())  # over images and channels
        out[f"image_std_{d}"] = float(g.std(0).mean())  # how much one channel's gate moves between images
    return out


def class_share(gates: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> float:
    """Share of the gate's variance (summed over channels) that lies between the class means: 0 when
    every class gets the same mean gate, 1 when the gate depends on the class alone."""
    g = gates.double()
    total = ((g - g.mean(0)) ** 2).sum(1).mean()
    means = torch.stack([g[labels == k].mean(0) for k in range(num_classes)])  # (classes, C)
    counts = torch.stack([(labels == k).sum() for k in range(num_classes)]).double()
    between = ((counts[:, None] * (means - g.mean(0)) ** 2).sum() / counts.sum())
    return float(between / total) if total > 0 else 0.0


def mean_cosine_distance(v: torch.Tensor) -> torch.Tensor:
    """GCNet's measure of how alike the vectors of different positions are: ``v`` (B, N, D) -> (B,), the
    mean over the N (N - 1) ordered pairs i != j of (1 - cos(v_i, v_j)) / 2 (0: all the same direction)."""
    n = v.shape[1]
    unit = F.normalize(v.double(), dim=-1)
    gram = unit @ unit.transpose(1, 2)  # (B, N, N) cosines
    off_diag = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)) / (n * (n - 1))
    return (1 - off_diag) / 2


@torch.inference_mode()
def position_stats(net: cap.CapstoneNet, data: ClutteredDigits) -> dict[str, float]:
    """How query-independent a trained (B, N, N) position map is (DANet PAM, the non-local block), on
    ``data``'s images.

    ``row_max_median``: median over queries of a row's largest weight (1 = one-hot);
    ``same_top_key``: share of queries whose top key is the image's most common top key;
    ``top_key_in_box``: share of images whose most common top key lies in the digit's box;
    ``row_cosine``: mean cosine similarity between the rows of two different queries of one image
    (1 = every query attends the same way: GCNet's query-independent attention);
    ``row_distance``: GCNet's mean cosine distance (1 - cos) / 2 between those rows (0 = identical);
    ``input_distance``: the same distance between the module's input features at two positions (the
    control: are the maps alike because the inputs are?);
    ``branch_ratio``: mean over images of ||module(x) - x|| / ||x||, how much the attention branch adds;
    ``gamma``: the module's scalar gamma, for modules that have one (DANet).
    """
    net.eval()
    f = net.features(data.images)  # (B, C, h, w): the module's input
    position = net.attention.attention(f).double()  # (B, N, N)
    b, n, _ = position.shape
    h = w = int(math.isqrt(n))
    top = position.argmax(-1)  # (B, N): each query's top key
    mode = top.mode(1).values  # (B,)
    inside = data.box_masks((h, w)).flatten(1)  # (B, N)
    row_distance = mean_cosine_distance(position)
    inputs = f.double().flatten(2).transpose(1, 2)  # (B, N, C)
    branch = (net.attention(f).double() - f.double()).flatten(1).norm(dim=1) / f.double().flatten(1).norm(dim=1)
    out = {"row_max_median": float(position.amax(-1).median()),
           "same_top_key": float((top == mode[:, None]).double().mean()),
           "top_key_in_box": float(inside.gather(1, mode[:, None]).double().mean()),
           "row_cosine": float(1 - 2 * row_distance.mean()),
           "row_distance": float(row_distance.mean()),
           "input_distance": float(mean_cosine_distance(inputs).mean()),
           "branch_ratio": float(branch.mean())}
    if isinstance(getattr(net.attention, "gamma", None), torch.Tensor):
        out["gamma"] = _gamma(net.attention)
    return out


def _gamma(module: nn.Module) -> float:
    """The module's scalar ``gamma`` (DANet's alpha or beta), NaN when it has none (e.g. a dual module)."""
    gamma = getattr(module, "gamma", None)
    return float(gamma.detach().reshape(-1)[0]) if isinstance(gamma, torch.Tensor) else float("nan")


@torch.inference_mode()
def affinity_stats(net: cap.CapstoneNet, data: ClutteredDigits) -> dict[str, float]:
    """The trained CAM's (C, C) map on ``data``: how much of each row stays on its own channel, how
    peaked a row is, and how alike the rows are (query-independence, as for PAM)."""
    a = cap.attention_outputs(net, data.images)["channel_affinity"].double()  # (B, C, C)
    c = a.shape[-1]
    rows = F.normalize(a, dim=-1)
    gram = rows @ rows.transpose(1, 2)
    off_diag = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)) / (c * (c - 1))
    return {"diagonal_mean": float(a.diagonal(dim1=1, dim2=2).mean()),
            "row_max_mean": float(a.amax(-1).mean()),
            "uniform": 1.0 / c,
            "row_cosine": float(off_diag.mean()),
            "gamma": _gamma(net.attention)}


@torch.inference_mode()
def spatial_maps(net: cap.CapstoneNet, images: torch.Tensor, *, control: bool = False) -> torch.Tensor:
    """:func:`course_lib.capstone.spatial_maps`, also for a module without ``attention(x)`` of its own
    (a CBAM written as ``forward`` only): its sub-modules that have one are run in order, each on the
    output of the one before, and the first (B, 1, h, w) map among them is the spatial map."""
    maps = cap.spatial_maps(net, images, control=control)
    if maps is not None:
        return maps
    net.eval()
    x = net.features(images)
    b, _, h, w = x.shape
    small = None
    for child in net.attention.children():
        if hasattr(child, "attention"):
            a = child.attention(x)
            if small is None and isinstance(a, torch.Tensor) and tuple(a.shape) == (b, 1, h, w):
                small = a[:, 0].float()
        x = child(x)
    if small is None:
        raise ValueError(f"{type(net.attention).__name__} has no spatial map: neither it nor a sub-module has an "
                         "attention(x) returning (B, 1, H, W)")
    return F.interpolate(small[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@torch.inference_mode()
def stripe_boxes(net: StripeNet, images: torch.Tensor, *, initial: bool = False) -> torch.Tensor:
    """Where the R stripes lie in each image, (N, R, 4) (top, left, bottom, right) in image pixels
    (fractional): centre ((t + 1) / 2) * size, full width, 1/R of the height. ``initial=True``: where
    the initialisation puts them (the fc's weight is zero at first, so theta = tanh(bias))."""
    net.eval()
    hard = net.hard
    theta = hard.attention(net.features(images)).double()  # (N, R, 2): (t_x, t_y)
    if initial:
        r = theta.shape[1]
        ty = (2 * torch.arange(r, dtype=torch.float64) + 1) / r - 1
        theta = torch.tanh(torch.stack((torch.zeros_like(ty), ty), 1)).expand_as(theta)
    height, width = images.shape[-2:]
    r = theta.shape[1]
    cy = (theta[..., 1] + 1) / 2 * height
    cx = (theta[..., 0] + 1) / 2 * width
    half_h = height / r / 2
    return torch.stack((cy - half_h, cx - width / 2, cy + half_h, cx + width / 2), -1)


def _on_digit(stripes: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> float:
    """Mean share of a stripe's area (inside the canvas) that covers the digit's box."""
    top, left, bottom, right = (stripes[..., k] for k in range(4))
    top, bottom = top.clamp(0, size[0]), bottom.clamp(0, size[0])
    left, right = left.clamp(0, size[1]), right.clamp(0, size[1])
    b = boxes[:, None, :].double()  # (N, 1, 4)
    inter_h = (torch.minimum(bottom, b[..., 2]) - torch.maximum(top, b[..., 0])).clamp_min(0)
    inter_w = (torch.minimum(right, b[..., 3]) - torch.maximum(left, b[..., 1])).clamp_min(0)
    area = ((bottom - top) * (right - left)).clamp_min(1e-9)
    return float((inter_h * inter_w / area).mean())


def stripe_stats(net: StripeNet, data: ClutteredDigits) -> dict[str, float]:
    """Where the learnt stripes go: their mean centre per region (in image rows), how much a stripe's
    centre moves between images, and the share of a stripe's area on the digit, learnt and initial."""
    size = tuple(data.images.shape[-2:])
    learnt = stripe_boxes(net, data.images)
    initial = stripe_boxes(net, data.images, initial=True)
    centre = (learnt[..., 0] + learnt[..., 2]) / 2  # (N, R)
    out = {f"centre_{i + 1}": float(centre[:, i].mean()) for i in range(centre.shape[1])}
    out.update({"centre_image_std": float(centre.std(0).mean()),
                "shift_x": float(((learnt[..., 1] + learnt[..., 3]) / 2 - size[1] / 2).abs().mean()),
                "on_digit": _on_digit(learnt, data.boxes, size), "on_digit_initial": _on_digit(initial, data.boxes, size),
                "box_area": float(data.box_masks().flatten(1).double().mean())})
    return out


@torch.inference_mode()
def coord_profiles(net: cap.CapstoneNet, images: torch.Tensor, *, batch_size: int = 500
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinate Attention's two gates averaged over the channels: the row profile (N, h) of g^h and
    the column profile (N, w) of g^w, on the slot's (h, w) feature grid."""
    net.eval()
    rows, cols = [], []
    for i in range(0, len(images), batch_size):
        g_h, g_w = net.attention.gates(net.features(images[i:i + batch_size]))
        rows.append(g_h.mean(1)[..., 0].float())  # (B, C, h, 1) -> (B, h)
        cols.append(g_w.mean(1)[:, 0].float())  # (B, C, 1, w) -> (B, w)
    return torch.cat(rows), torch.cat(cols)


def _profile_stats(profile: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, stride: int) -> dict[str, float]:
    """Does a (N, n) profile over feature cells find the interval [lo, hi) (image pixels)? The share of
    its mass (minus its minimum) inside, that share over the interval's share of the cells (lift), and
    how often its peak cell's centre lies inside."""
    n = profile.shape[1]
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) * stride  # (n,) in image pixels
    inside = (centres[None] >= lo[:, None]) & (centres[None] < hi[:, None])  # (N, n)
    p = (profile - profile.min(1, keepdim=True).values).double()
    total = p.sum(1)
    share = inside.double().mean(1)
    mass = torch.where(total > 0, (p * inside).sum(1) / total.clamp_min(1e-300), share)
    hit = inside.gather(1, profile.argmax(1, keepdim=True))[:, 0]
    return {"mass": float(mass.mean()), "share": float(share.mean()),
            "lift": float((mass / share.clamp_min(1e-12)).mean()), "peak_hit": float(hit.double().mean())}


def coord_stats(net: cap.CapstoneNet, data: ClutteredDigits) -> dict[str, float]:
    """Where the trained Coordinate Attention's row gate and column gate peak, against the digit's rows
    and columns; and how much the gates move along the rows / columns (std over positions, averaged)."""
    rows, cols = coord_profiles(net, data.images)
    stride = data.images.shape[-1] // rows.shape[1]
    boxes = data.boxes.double()
    out = {f"row_{k}": v for k, v in _profile_stats(rows, boxes[:, 0], boxes[:, 2], stride).items()}
    out.update({f"col_{k}": v for k, v in _profile_stats(cols, boxes[:, 1], boxes[:, 3], stride).items()})
    out.update({"row_gate_mean": float(rows.mean()), "col_gate_mean": float(cols.mean()),
                "row_gate_range": float((rows.amax(1) - rows.amin(1)).mean()),
                "col_gate_range": float((cols.amax(1) - cols.amin(1)).mean())})
    return out


def measure(name: str, net: cap.CapstoneNet, data: ClutteredDigits) -> dict[str, float]:
    """Every number the chapter's text quotes about recipe ``name``'s figure, on the first PROBE images."""
    recipe = get_recipe(name)
    probe = ClutteredDigits(*(getattr(data, f)[:PROBE] for f in ClutteredDigits.__dataclass_fields__))
    if recipe.kind == "depth_gates":
        return depth_gate_numbers(depth_gates(net, probe.images), probe.labels)
    if recipe.kind == "spatial":
        att = cap.localisation(spatial_maps(net, probe.images), probe.boxes)
        ctrl = cap.localisation(spatial_maps(net, probe.images, control=True), probe.boxes)
        return {**{f"att_{k}": v for k, v in att.items()}, **{f"ctrl_{k}": v for k, v in ctrl.items()}}
    if recipe.kind == "position":
        return position_stats(net, probe)
    if recipe.kind == "channel_affinity":
        return affinity_stats(net, probe)
    if recipe.kind == "stripes":
        return stripe_stats(net, probe)
    if recipe.kind == "coord":
        att = cap.localisation(spatial_maps(net, probe.images), probe.boxes)
        ctrl = cap.localisation(spatial_maps(net, probe.images, control=True), probe.boxes)
        return {**{f"att_{k}": v for k, v in att.items()}, **{f"ctrl_{k}": v for k, v in ctrl.items()},
                **coord_stats(net, probe)}
    raise AssertionError(recipe.kind)
