"""Hidden checks of chapter 04 (HA-CNN) and the builder of its stored expected values.

At grading time the student's modules get the reference modules' weights by name (the notebook gives every
``__init__``, with torchreid's attribute names) and must match them on random shapes (odd sizes included), in
float32 and float64, with channels_last inputs, in eval and training mode, with the same gradients.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.reference import hacnn
from course_lib.checks.toolkit import build, exercise, expect, float32_exact, passed, seeded_picker, seeded_randn
from course_lib.checks.questions import define_hidden_question_checks
from course_lib.checks.ch04_hacnn import ADVICE, _call, _close, _unchanged, call_recording, load_weights
from course_lib.hidden.toolkit import Result, expect_same_gradients, expect_training_step, sweep

#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    # scales (1, 1/R) and the zero rotation/shear entries; c, f are learnt
    "q_fixed_entries": ("choices", "abde", {"options": "abcdef"}),
    "q_spatial_params": ("int", 16, {}),  # ConvBlock(1, 1, 3): 9 + 1 + 2; ConvBlock(1, 1, 1): 1 + 1 + 2
    "q_initial_centre": ("float", -0.6351489523872873, {"digits": 3}),  # tanh(-0.75): the bias sits inside the tanh
}
define_hidden_question_checks(globals(), ANSWERS)


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (seeded), biased so that ReLUs pass some values and stop others."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            if not tensor.is_floating_point():
                continue
            r = torch.randn(tensor.shape, generator=g, dtype=torch.float64)
            if name.endswith("running_var"):
                value = 0.5 + r.abs()
            elif name.endswith("running_mean"):
                value = 0.1 * r
            elif name.endswith("bn.weight"):
                value = 1 + 0.3 * r
            elif name.endswith("bn.bias"):
                value = 0.1 + 0.3 * r
            elif name.endswith("bias"):
                value = 0.1 * r
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                value = r / fan_in ** 0.5
            tensor.copy_(float32_exact(value))
    return module


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Floating-point state (parameters and BatchNorm statistics) by name."""
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def spatial_reference(seed: int) -> hacnn.SpatialAttention:
    module = _randomise(hacnn.SpatialAttention().double(), seed)
    with torch.no_grad():  # keep the map alive (a positive shift before conv1's ReLU), and let conv2's ReLU stop
        module.conv1.bn.bias.fill_(0.3)  # the weakest pixels: then conv2 does not commute with the resize, and
        module.conv2.conv.weight.fill_(1.5)  # conv2 applied before the resize gives other values
        module.conv2.bn.bias.fill_(-0.3)
    return module


# --------------------------------------------------------------------------------------------
# what known mistakes compute
# --------------------------------------------------------------------------------------------
def spatial_mistakes(ref: hacnn.SpatialAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(ref).eval()
    x = x.double()
    h, w = x.shape[2:]

    def variant(*, pool="mean", mode="bilinear", align=True, scaling=True, sigmoid=False, crop=False,
                scaling_first=False):
        s = {"mean": x.mean(1, keepdim=True), "max": x.amax(1, keepdim=True), "sum": x.sum(1, keepdim=True)}[pool]
        s = ref.conv1(s)
        if scaling_first:
            s, scaling = ref.conv2(s), False
        if crop:
            s = F.interpolate(s, size=(2 * s.shape[2], 2 * s.shape[3]), mode="bilinear", align_corners=True)[..., :h, :w]
        elif mode == "nearest":
            s = F.interpolate(s, size=(h, w), mode="nearest")
        elif mode == "bicubic":
            s = F.interpolate(s, size=(h, w), mode="bicubic", align_corners=align)
        else:
            s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=align)
        if scaling:
            s = ref.conv2(s)
        return torch.sigmoid(s) if sigmoid else s

    with torch.no_grad():
        out = {
            "align_corners_false": variant(align=False),
            "nearest": variant(mode="nearest"),
            "bicubic": variant(mode="bicubic"),
            "no_scaling_conv": variant(scaling=False),
            "scaling_before_resize": variant(scaling_first=True),
            "spatial_sigmoid": variant(sigmoid=True),
            "channel_max": variant(pool="max"),
            "channel_sum": variant(pool="sum"),
        }
        if h % 2 or w % 2:
            out["upsample_crop"] = variant(crop=True)
    return out


def channel_mistakes(ref: hacnn.ChannelAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(ref).eval()
    x = x.double()
    with torch.no_grad():
        return {
            "squeeze_max": ref.conv2(ref.conv1(x.amax((2, 3), keepdim=True))),
            "squeeze_sum": ref.conv2(ref.conv1(x.sum((2, 3), keepdim=True))),
            "squeeze_hh": ref.conv2(ref.conv1(x.sum((2, 3), keepdim=True) / x.shape[2] ** 2)),
            "squeeze_ww": ref.conv2(ref.conv1(x.sum((2, 3), keepdim=True) / x.shape[3] ** 2)),
            "channel_sigmoid": torch.sigmoid(ref.attention(x)),
            "channel_train_bn": copy.deepcopy(ref).train().attention(x),
            "channel_pool_last": ref.conv2(ref.conv1(x)).mean((2, 3), keepdim=True),
        }


def soft_mistakes(conv: hacnn.ConvBlock, s: torch.Tensor, c: torch.Tensor,
                  x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    conv = copy.deepcopy(conv).eval()
    with torch.no_grad():
        given_x = {} if x is None else {"soft_times_x": torch.sigmoid(conv(x.double() * s * c))}
        return {
            **given_x,
            "soft_tanh": torch.tanh(conv(s * c)),
            "soft_no_sigmoid": conv(s * c),
            "soft_sum": torch.sigmoid(conv(s + c)),
            "soft_no_conv": torch.sigmoid(s * c),
            "soft_sigmoid_first": conv(torch.sigmoid(s * c)),
            "soft_sigmoid_each": torch.sigmoid(s) * torch.sigmoid(c),
        }


def _pairs_swapped(theta: torch.Tensor) -> torch.Tensor:
    return theta.flip(-1)


def init_mistakes(regions: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    ty = (2 * torch.arange(regions, dtype=torch.float64) + 1) / regions - 1
    raw = torch.stack((torch.zeros_like(ty), ty), dim=1)  # (R, 2)
    layout = torch.cat((torch.zeros_like(ty), ty)).reshape(regions, 2)
    return torch.tanh(raw), {
        "theta_raw": raw,
        "theta_swapped": torch.tanh(_pairs_swapped(raw)),
        "theta_layout": torch.tanh(layout),
        "theta_zero": torch.zeros_like(raw),
        "theta_reshape": torch.tanh(raw.reshape(-1).reshape(2, regions).t()),
        "theta_sigmoid": torch.sigmoid(raw),
        "theta_edge": torch.tanh(torch.stack((torch.zeros_like(ty), 2 * torch.arange(regions, dtype=torch.float64)
                                              / regions - 1), dim=1)),
        "theta_i_over_r": torch.tanh(torch.stack((torch.zeros_like(ty), torch.arange(regions, dtype=torch.float64)
                                                  / regions), dim=1)),
        "theta_linspace": torch.tanh(torch.stack((torch.zeros_like(ty), torch.linspace(-1, 1, regions,
                                                                                        dtype=torch.float64)), dim=1)),
    }


def theta_mistakes(ref: hacnn.HardAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.double()
    r = ref.num_regions
    with torch.no_grad():
        z = x.mean((2, 3))
        pre = ref.fc(z)
        return {
            "theta_no_tanh": pre.reshape(-1, r, 2),
            "theta_bias_after": (torch.tanh(F.linear(z, ref.fc.weight)) + ref.fc.bias).reshape(-1, r, 2),
            "theta_swapped": _pairs_swapped(torch.tanh(pre).reshape(-1, r, 2)),
            "theta_max_pool": torch.tanh(ref.fc(x.amax((2, 3)))).reshape(-1, r, 2),
            "theta_reshape": torch.tanh(pre).reshape(-1, 2, r).transpose(1, 2),
            "theta_sigmoid": torch.sigmoid(pre).reshape(-1, r, 2),
        }


def _affine_from(theta: torch.Tensor, sx: float, sy: float, *, swap: bool = False,
                 ty_twice: bool = False) -> torch.Tensor:
    b, r, _ = theta.shape
    out = torch.zeros(b, r, 2, 3, dtype=theta.dtype)
    out[..., 0, 0], out[..., 1, 1] = sx, sy
    t = theta.flip(-1) if swap else theta[..., [1, 1]] if ty_twice else theta
    out[..., 0, 2], out[..., 1, 2] = t[..., 0], t[..., 1]
    return out


def affine_mistakes(ref: hacnn.HardAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r = ref.num_regions
    with torch.no_grad():
        theta = ref.attention(x.double())
    out = {
        "affine_vertical": _affine_from(theta, 1 / r, 1.0),
        "affine_identity": _affine_from(theta, 1.0, 1.0),
        "affine_big": _affine_from(theta, 1.0, float(r)),
        "affine_swapped": _affine_from(theta, 1.0, 1 / r, swap=True),
        "affine_ty_twice": _affine_from(theta, 1.0, 1 / r, ty_twice=True),
    }
    if r != 4:
        out["affine_quarter"] = _affine_from(theta, 1.0, 0.25)
    return out


def crops_mistakes(ref: hacnn.HardAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.double()
    b, c, h, w = x.shape
    r = ref.num_regions
    crop = (max(1, round(h / r)), w)
    with torch.no_grad():
        matrices = ref.affine(x).reshape(b * r, 2, 3)
    images = x.repeat_interleave(r, dim=0)

    def sample(align: bool, mode: str, padding: str = "zeros", given: torch.Tensor = images) -> torch.Tensor:
        with warnings.catch_warnings():  # align_corners=True on a unit-size grid warns; this is our own call
            warnings.simplefilter("ignore")
            grid = F.affine_grid(matrices, [b * r, c, *crop], align_corners=align)
            out = F.grid_sample(given, grid, mode=mode, padding_mode=padding, align_corners=align)
        return out.reshape(b, r, c, *crop)

    right = sample(False, "bilinear")
    return {"crops_align_true": sample(True, "bilinear"), "crops_nearest": sample(False, "nearest"),
            # x.repeat(R, 1, 1, 1) orders the images (r b), the matrices are (b r): images meet other images' regions
            "crops_repeat": sample(False, "bilinear", given=x.repeat(r, 1, 1, 1)),
            "crops_border": sample(False, "bilinear", "border"),
            "crops_reflection": sample(False, "bilinear", "reflection"),
            # affine_grid given (W, H) for the crop size, the crops transposed back to (H, W)
            "crops_size_swapped": _swapped_size(matrices, images, b, r, c, crop),
            # the (b r) batch unflattened as (r b) and transposed
            "crops_unflatten": right.reshape(b * r, c, *crop).reshape(r, b, c, *crop).transpose(0, 1)}


def _swapped_size(matrices: torch.Tensor, images: torch.Tensor, b: int, r: int, c: int,
                  crop: tuple[int, int]) -> torch.Tensor:
    grid = F.affine_grid(matrices, [b * r, c, crop[1], crop[0]], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, r, c, crop[1], crop[0]).transpose(-1, -2)


def hard_reference(channels: int, regions: int, seed: int) -> hacnn.HardAttention:
    module = hacnn.HardAttention(channels, regions).double()
    with torch.no_grad():
        module.fc.weight.copy_(float32_exact(seeded_randn(2 * regions, channels, seed=seed) * 0.6))
        module.fc.bias.copy_(float32_exact(seeded_randn(2 * regions, seed=seed + 1) * 0.3))
    return module


# --------------------------------------------------------------------------------------------
# stored expected values
# --------------------------------------------------------------------------------------------
def build_expected() -> dict:
    sp = spatial_reference(seed=401)
    x_odd = seeded_randn(3, 20, 9, 7, seed=402).float()
    x_even = seeded_randn(2, 20, 8, 6, seed=403).float()
    sp_eval = copy.deepcopy(sp).eval()
    with torch.no_grad():
        spatial = {
            "weights": weights(sp),
            "x_odd": x_odd,
            "x_even": x_even,
            "s_odd": sp_eval.attention(x_odd.double()),
            "s_even": sp_eval.attention(x_even.double()),
            "diagnoses_odd": spatial_mistakes(sp, x_odd),
            "diagnoses_even": spatial_mistakes(sp, x_even),
        }

    ch = _randomise(hacnn.ChannelAttention(32, 8).double(), seed=411)
    x_ch = seeded_randn(3, 32, 5, 7, seed=412).float()
    with torch.no_grad():
        channel = {
            "channels": 32,
            "reduction": 8,
            "weights": weights(ch),
            "x": x_ch,
            "c": copy.deepcopy(ch).eval().attention(x_ch.double()),
            "diagnoses": channel_mistakes(ch, x_ch),
        }

    soft_ref = _randomise(hacnn.SoftAttention(32).double(), seed=421)
    with torch.no_grad():
        soft_ref.spatial_attn.conv1.bn.bias.fill_(0.3)
        soft_ref.spatial_attn.conv2.conv.weight.fill_(1.5)
    soft_eval = copy.deepcopy(soft_ref).eval()
    x_soft = seeded_randn(3, 32, 5, 7, seed=422).float()
    s_fixed = float32_exact(F.relu(seeded_randn(3, 1, 5, 7, seed=423)))
    c_fixed = float32_exact(F.relu(seeded_randn(3, 32, 1, 1, seed=424)))
    with torch.no_grad():
        m = torch.sigmoid(soft_eval.conv(s_fixed * c_fixed))
        soft = {
            "channels": 32,
            "x": x_soft,
            "S": s_fixed,
            "C": c_fixed,
            "conv_weights": {f"conv.{k}": v for k, v in weights(soft_ref.conv).items()},
            "m": m,
            "y": x_soft.double() * m,
            "x_plus_m": x_soft.double() + m,
            "diagnoses": soft_mistakes(soft_ref.conv, s_fixed, c_fixed, x_soft),
            "all_weights": weights(soft_ref),
            "m_full": soft_eval.attention(x_soft.double()),
        }

    x_hard = seeded_randn(3, 24, 15, 7, seed=431).float()
    hard4 = hard_reference(24, 4, seed=432)
    hard3 = hard_reference(24, 3, seed=434)
    init4, init4_diag = init_mistakes(4)
    init3, init3_diag = init_mistakes(3)
    with torch.no_grad():
        hard = {
            "channels": 24,
            "x": x_hard,
            "init4": init4,
            "init4_diagnoses": init4_diag,
            "init3": init3,
            "init3_diagnoses": init3_diag,
            "fc": weights(hard4),
            "fc3": weights(hard3),
            "theta": hard4.attention(x_hard.double()),
            "theta_diagnoses": theta_mistakes(hard4, x_hard),
            "affine4": hard4.affine(x_hard.double()),
            "affine4_diagnoses": affine_mistakes(hard4, x_hard),
            "affine3": hard3.affine(x_hard.double()),
            "affine3_diagnoses": affine_mistakes(hard3, x_hard),
            "crops": hard4(x_hard.double()),
            "crops_diagnoses": crops_mistakes(hard4, x_hard),
            "crops_small": hard4(x_hard.double(), crop_size=(3, 5)),
        }
    return {"spatial": spatial, "channel": channel, "soft": soft, "hard": hard}


# --------------------------------------------------------------------------------------------
# hidden checks
# --------------------------------------------------------------------------------------------
def _student(cls: type, args: tuple, ref: torch.nn.Module, mode: str | None = None) -> Callable:
    """The sweep's builder: the student's module with the reference's weights by name (in ``mode``, if given)."""
    def student(dtype: torch.dtype, device: str) -> torch.nn.Module:
        module = build(cls, *args).to(dtype=dtype)  # weights copied at the trial's precision, not rounded to float32
        load_weights(module, weights(ref), what=f"{cls.__name__}{args}")
        return module.to(device=device) if mode is None else module.to(device=device).train(mode == "train")
    return student


def _noted_call(fn: Callable, *args, doing: str, **kwargs):
    """Call the student's code; a deprecation warning or a missing align_corners is a mistake of its own."""
    out, notes = call_recording(fn, *args, doing=doing, **kwargs)
    expect(not any("upsample" in n and "deprecated" in n for n in notes),
           f"{doing}: F.upsample is deprecated; use F.interpolate.", mistake="deprecated_upsample")
    expect(not any("align_corners" in n for n in notes),
           f"{doing}: pass align_corners explicitly.", mistake="align_corners")
    return out


def _sweep(cls: type, args: tuple, ref: torch.nn.Module, x64: torch.Tensor, results: Callable, *,
           modes: tuple[str, ...] = ("eval", "train")) -> None:
    """The sweep in each mode; ``results(ref in that mode, mode)`` gives the results to compare."""
    for mode in modes:
        ref_m = copy.deepcopy(ref).train(mode == "train")
        with torch.no_grad():
            wanted = results(ref_m, mode)
        # a check in one mode leaves the module in the mode it was built in
        sweep(_student(cls, args, ref, mode if len(modes) > 1 else None), x64, wanted, advice=ADVICE,
              call=_noted_call, unchanged=_unchanged,
              doing=f"{{call}} in {mode} mode with x of shape {{shape}}, {{dtype}}, {{layout}}, on {{device}}"
                    "{kwargs}")
    if "train" in modes:  # the BatchNorms' running statistics after one training-mode forward, too
        expect_training_step(_student(cls, args, ref)(torch.float64, "cpu"), ref, x64, what=f"{cls.__name__}{args}",
                             call=_call)


def _gradients(cls: type, args: tuple, ref: torch.nn.Module, x64: torch.Tensor, *, method: str, names: list[str],
               mode: str | None = "train", **kwargs) -> None:
    """Float64 gradients (of x and of the named parameters) equal the reference's."""
    module, ref = _student(cls, args, ref, mode)(torch.float64, "cpu"), copy.deepcopy(ref).train(mode != "eval")
    mine, theirs = dict(module.named_parameters()), dict(ref.named_parameters())
    expect_same_gradients(module, ref, x64, lambda shape: seeded_randn(*shape, seed=4999), method=method, call=_call,
                          params=[(name, mine[name], theirs[name]) for name in names], **kwargs)


@exercise("SpatialAttention (hidden)", budget_s=30)
def hidden_spatial_attention(cls: type) -> None:
    pick = seeded_picker(4040)
    for trial in range(4):
        b, c, h, w = pick(2, 4), pick(1, 24), pick(1, 13), pick(1, 13)
        if trial == 0:
            h, w = 11, 5  # odd on both axes
        ref = spatial_reference(seed=4100 + trial)
        x64 = seeded_randn(b, c, h, w, seed=4200 + trial)
        hint = "compare each step with (H2) and the shape table of §2; S has no sigmoid."
        _sweep(cls, (), ref, x64, lambda ref_m, mode: [Result(
            "attention", ref_m.attention(x64), spatial_mistakes(ref, x64) if mode == "eval" else {}, always=True,
            hint=hint)])
        _gradients(cls, (), ref, x64, method="attention",
                   names=["conv1.conv.weight", "conv2.conv.weight", "conv1.bn.weight"])


@exercise("ChannelAttention (hidden)", budget_s=30)
def hidden_channel_attention(cls: type) -> None:
    pick = seeded_picker(4041)
    for trial in range(3):
        reduction = (2, 4, 16)[trial]
        channels = reduction * pick(1, 4)
        b, h, w = pick(2, 4), pick(1, 9), pick(1, 9)
        ref = _randomise(hacnn.ChannelAttention(channels, reduction).double(), seed=4300 + trial)
        x64 = seeded_randn(b, channels, h, w, seed=4400 + trial)
        _sweep(cls, (channels, reduction), ref, x64, lambda ref_m, mode: [Result(
            "attention", ref_m.attention(x64), channel_mistakes(ref, x64) if mode == "eval" else {}, always=True,
            hint="compare each step with (H3); C has no sigmoid.")])
        _gradients(cls, (channels, reduction), ref, x64, method="attention",
                   names=["conv1.conv.weight", "conv2.conv.weight"])


@exercise("SoftAttention (hidden)", budget_s=30)
def hidden_soft_attention(cls: type) -> None:
    pick = seeded_picker(4042)
    for trial in range(3):
        channels = 16 * (trial + 1)
        b, h, w = pick(2, 4), pick(1, 11), pick(1, 11)
        ref = _randomise(hacnn.SoftAttention(channels).double(), seed=4500 + trial)
        x64 = seeded_randn(b, channels, h, w, seed=4600 + trial)
        hint = "compare each step with (H4); forward re-weights x with the mask."
        _sweep(cls, (channels,), ref, x64, lambda ref_m, mode: [Result("attention", ref_m.attention(x64), hint=hint),
                                                                 Result("forward", ref_m(x64), hint=hint)])
        _gradients(cls, (channels,), ref, x64, method="forward",
                   names=["conv.conv.weight", "spatial_attn.conv1.conv.weight", "channel_attn.conv1.conv.weight"])
        with torch.no_grad():
            m = _call(_student(cls, (channels,), ref, "eval")(torch.float64, "cpu").attention, x64,
                      doing="attention(x)")
        expect(bool((m >= 0.5).all() and (m < 1).all()), "the soft map should lie in [0.5, 1)")


@exercise("soft_map_interval (hidden)", budget_s=5)
def hidden_soft_map_interval(fn: Callable) -> None:
    got = _call(fn, doing="soft_map_interval()")
    expect(isinstance(got, (tuple, list)) and len(got) == 2 and (float(got[0]), float(got[1])) == (0.5, 1.0),
           f"soft_map_interval() returned {got!r}", mistake="sigmoid_range")
    # the claim itself, on the reference module with weights that push many inputs below 0 before the ReLU
    ref = _randomise(hacnn.SoftAttention(16).double(), seed=4700).eval()
    with torch.no_grad():
        ref.conv.bn.bias.fill_(-0.5)
        m = ref.attention(seeded_randn(2, 16, 6, 5, seed=4701))
    expect(float(m.min()) == 0.5 and float(m.max()) < 1.0, "internal: the reference soft map left [0.5, 1)")


@exercise("HardAttention.attention (hidden)", budget_s=30)
def hidden_hard_attention_theta(cls: type) -> None:
    pick = seeded_picker(4043)
    for trial in range(4):
        channels, regions = pick(1, 20), pick(1, 6)
        b, h, w = pick(2, 4), pick(1, 13), pick(1, 13)
        x64 = seeded_randn(b, channels, h, w, seed=4800 + trial)
        fresh = build(cls, channels, regions)
        init_ref = hacnn.HardAttention(channels, regions).double()
        theta = _call(fresh.double().attention, x64, doing=f"{cls.__name__}({channels}, {regions}).attention(x) at init")
        _close(theta, init_ref.attention(x64).detach(), what=f"theta at initialisation for num_regions={regions}",
               diagnoses={}, hint="compare with what §9 asks of reset_parameters, and with (H5).")
        ref = hard_reference(channels, regions, seed=4900 + 2 * trial)
        # no BatchNorm here: one mode is enough
        _sweep(cls, (channels, regions), ref, x64, lambda ref_m, mode: [Result(
            "attention", ref.attention(x64), theta_mistakes(ref, x64), always=True,
            hint="compare each step with (H5).")], modes=("eval",))


@exercise("HardAttention.forward (hidden)", budget_s=30)
def hidden_hard_attention_crops(cls: type) -> None:
    pick = seeded_picker(4044)
    for trial in range(4):
        channels, regions = pick(1, 12), pick(1, 6)
        b, h, w = pick(2, 3), pick(2, 17), pick(2, 11)
        crop = None if trial % 2 == 0 else (pick(1, 6), pick(1, 6))
        ref = hard_reference(channels, regions, seed=5000 + 2 * trial)
        x64 = seeded_randn(b, channels, h, w, seed=5100 + trial)
        kwargs = {} if crop is None else {"crop_size": crop}
        _sweep(cls, (channels, regions), ref, x64, lambda ref_m, mode: [
            Result("affine", ref.affine(x64), affine_mistakes(ref, x64), always=True,
                   hint="one matrix of (H6) per image and region."),
            Result("forward", ref(x64, **kwargs), crops_mistakes(ref, x64) if crop is None else {}, always=True,
                   hint="compare with §9: the stripes are sampled from x itself.", kwargs=kwargs)],
               modes=("eval",))
        _gradients(cls, (channels, regions), ref, x64, method="forward", names=["fc.weight", "fc.bias"], mode=None,
                   **kwargs)
    passed()
