"""Time and peak memory of the reference modules: ``python -m course_lib bench --out DIR`` (``make bench``).

What is measured
    One training step of each module: ``forward`` then ``backward`` of a fixed random output
    gradient, the module in training mode (BatchNorm on batch statistics), float32 on the CPU.

    * Modules at a realistic size: SE, CBAM (paper, timm's options, official), CTDNet SAM and HA-CNN
      soft attention at B = 8, C = 256, 28 x 28 (a ResNet-50 stage-2 sized map); DANet PAM (literal
      and fused), CAM (paper and official) and DualAttention at B = 2, C = 512, 32 x 32, the DANet
      head's 512 inner channels at output stride 8 on a 256 x 256 crop (N = 1024). When timm is
      importable (``make bench`` runs in ``.venv-timm``), timm's ``SEModule`` and ``CbamModule`` at
      the same size and hidden width (C / 16) are measured too, and the SE and CBAM rows get the
      ratio course / timm (CBAM is compared with the course options that match timm:
      ``mlp_bias=False, pool_order="avg_max", batch_norm=True``). Without timm the column is left out.
    * Non-local, GCNet, ECA and Coordinate Attention at the same B = 8, C = 256, 28 x 28: each with
      the paper's (or the official code's) defaults, and, for the ratio against timm's
      ``NonLocalAttn``, ``GlobalContext``, ``EcaModule`` and ``CoordAttn``, the course module built
      with timm's options (the same function; tests/test_parity_timm_more.py), so the ratio compares
      implementations, not designs. The non-local block at C / 2 is also timed fused.
    * Position attention, literal (the (B, N, N) map is formed) vs fused
      (``scaled_dot_product_attention``), at N = 32^2, 64^2 and 96^2, with B = 1 and C = 64
      (query/key width C // 8 = 8): the sizes where DANet's memory problem shows (DANet issues #58,
      #104: N = 96^2 is a 768 x 768 crop at output stride 8).

Time
    The median wall-clock time of at least ``--repeats`` steps (5) and at least ``--min-seconds`` (1 s)
    of them, at most 1000 steps, after one warm-up step at full size, with
    torch's default intra-op thread count (reported; ``--threads`` overrides it). The course / timm
    ratio and the literal vs fused times of the N sweep come from the two modules timed in one
    process, in alternation, so that both see the same machine load. Relative numbers within a run are what this is for; absolute numbers depend on the
    machine and on its load (the load average is printed with the table: on a shared 2-core machine a
    busy neighbour can make a 2-thread step several times slower).

Peak memory (CPU), and why it is measured this way
    PyTorch has no CPU counterpart of ``torch.cuda.max_memory_allocated``, so each configuration runs
    in a fresh subprocess and reads the operating system's high-water mark of the process's resident
    memory (``resource.getrusage(...).ru_maxrss``). The baseline is read after importing torch (and
    timm), building the module, creating the full-size input and output gradient, and running one
    forward + backward at a tiny spatial size (which loads kernels, thread pools and lazily created
    state without allocating anything the full step needs). One forward + backward at full size
    follows; "peak extra memory" is the high-water mark after it minus the baseline. It therefore
    counts everything the step keeps alive at its worst moment: activations saved for backward,
    temporaries such as the N x N map and its gradient, parameter and input gradients. It is coarse
    (whole pages, allocator slack included; a few MiB of noise) but honest: it is what the operating
    system had to provide. On a CUDA machine ``torch.cuda.max_memory_allocated`` would be the
    precise equivalent; this command measures the CPU only.

Known effect in the numbers
    On the CPU, DANet's official CAM can be several times slower than the paper's: softmax(-energy)
    of raw float32 features leaves many entries of the map subnormal (about 19 % for the random
    B = 2, C = 512, 32 x 32 input here, against none for softmax(energy)), and subnormal arithmetic is
    slow on x86 CPUs. ``torch.set_flush_denormal(True)`` removes the gap (measured: 367 -> 86 ms, one
    thread); the benchmark leaves PyTorch's default on.

Output
    A Markdown table on stdout and in ``DIR/bench.md``, the same rows in ``DIR/bench.csv`` and a
    figure ``DIR/bench.png`` (module times; PAM time and peak memory against N).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

MODULE_SIZE = {"batch": 8, "channels": 256, "height": 28, "width": 28}
DANET_SIZE = {"batch": 2, "channels": 512, "height": 32, "width": 32}
PAM_SCALING_SIDES = (32, 64, 96)
PAM_SCALING_SIZE = {"batch": 1, "channels": 64}

#: row name -> (builder key, size, timm counterpart for the ratio column or None)
MODULE_ROWS = {
    "SE": ("se", MODULE_SIZE, "timm SEModule"),
    "CBAM (paper)": ("cbam_paper", MODULE_SIZE, None),
    "CBAM (timm options)": ("cbam_timm_options", MODULE_SIZE, "timm CbamModule"),
    "CBAM (official)": ("cbam_official", MODULE_SIZE, None),
    "CTDNet SAM (256 -> 64)": ("ctdnet_sam", MODULE_SIZE, None),
    "HA-CNN soft": ("hacnn_soft", MODULE_SIZE, None),
    "timm SEModule": ("timm_se", MODULE_SIZE, None),
    "timm CbamModule": ("timm_cbam", MODULE_SIZE, None),
    "DANet PAM (literal)": ("pam", DANET_SIZE, None),
    "DANet PAM (fused)": ("pam_fused", DANET_SIZE, None),
    "DANet CAM (paper)": ("cam_paper", DANET_SIZE, None),
    "DANet CAM (official)": ("cam_official", DANET_SIZE, None),
    "DANet DualAttention": ("dual", DANET_SIZE, None),
    # Non-local, GCNet, ECA, Coordinate Attention: the paper's defaults, then the course module built
    # with timm's options (same function as the timm layer) for the time / timm ratio
    "Non-local (paper: C/2)": ("non_local", MODULE_SIZE, None),
    "Non-local (paper, fused)": ("non_local_fused", MODULE_SIZE, None),
    "Non-local (timm options)": ("non_local_timm_options", MODULE_SIZE, "timm NonLocalAttn"),
    "GCNet (paper: add, r=16)": ("gcnet", MODULE_SIZE, None),
    "GCNet (timm options: mul, C/8)": ("gcnet_timm_options", MODULE_SIZE, "timm GlobalContext"),
    "ECA (k = psi(C))": ("eca", MODULE_SIZE, "timm EcaModule"),
    "Coordinate Attention (official)": ("coord_attention", MODULE_SIZE, None),
    "Coordinate Attention (timm options)": ("coord_attention_timm_options", MODULE_SIZE, "timm CoordAttn"),
    "timm NonLocalAttn": ("timm_non_local", MODULE_SIZE, None),
    "timm GlobalContext": ("timm_gcnet", MODULE_SIZE, None),
    "timm EcaModule": ("timm_eca", MODULE_SIZE, None),
    "timm CoordAttn": ("timm_coord_attention", MODULE_SIZE, None),
}
TIMM_ROWS = {"timm SEModule", "timm CbamModule", "timm NonLocalAttn", "timm GlobalContext", "timm EcaModule",
             "timm CoordAttn"}


# --------------------------------------------------------------------------------------------------
# Worker: one configuration, in its own process
# --------------------------------------------------------------------------------------------------


def _build(key: str, channels: int):
    """The module for a builder key (imports here, so the parent process never imports torch)."""
    if key == "se":
        from course_lib.se import SqueezeExcitation

        return SqueezeExcitation(channels)
    if key.startswith("cbam"):
        from course_lib.cbam import CBAM

        options = {
            "cbam_paper": {},
            "cbam_timm_options": {"batch_norm": True},
            "cbam_official": {"variant": "official"},
        }[key]
        return CBAM(channels, **options)
    if key == "ctdnet_sam":
        from course_lib.ctdnet import SpatialAttentionModule

        return SpatialAttentionModule(channels, 64)
    if key == "hacnn_soft":
        from course_lib.hacnn import SoftAttention

        return SoftAttention(channels)
    if key in ("pam", "pam_fused"):
        from course_lib.danet import PositionAttention

        return PositionAttention(channels, fused=key == "pam_fused")
    if key in ("cam_paper", "cam_official"):
        from course_lib.danet import ChannelAttention

        return ChannelAttention(variant=key.removeprefix("cam_"))
    if key == "dual":
        from course_lib.danet import DualAttention

        return DualAttention(channels)
    if key.startswith("non_local"):
        from course_lib.nonlocal_block import NonLocalBlock

        if key == "non_local_timm_options":  # timm: C' = C / 8 (multiple of 8), energy scaled by C**-0.5
            return NonLocalBlock(channels, inter_channels=max(8, channels // 8), scale=channels ** -0.5)
        return NonLocalBlock(channels, fused=key == "non_local_fused")
    if key.startswith("gcnet"):
        from course_lib.gcnet import GlobalContextBlock

        if key == "gcnet_timm_options":  # timm's default GlobalContext: multiplicative, C / 8, LN eps 1e-6
            return GlobalContextBlock(channels, 8, fusion="mul", eps=1e-6)
        return GlobalContextBlock(channels)
    if key == "eca":
        from course_lib.eca import EfficientChannelAttention

        return EfficientChannelAttention(channels)
    if key.startswith("coord_attention"):
        from course_lib.coord_attention import CoordinateAttention

        if key == "coord_attention_timm_options":  # timm: no conv biases, width make_divisible(C / 24, 8)
            return CoordinateAttention(channels, hidden_channels=max(8, int(channels / 24 + 4) // 8 * 8), bias=False)
        return CoordinateAttention(channels)
    if key == "timm_non_local":
        from timm.layers.non_local_attn import NonLocalAttn

        return NonLocalAttn(channels)
    if key == "timm_gcnet":
        from timm.layers.global_context import GlobalContext

        return GlobalContext(channels)
    if key == "timm_eca":
        from timm.layers.eca import EcaModule

        return EcaModule(channels=channels)
    if key == "timm_coord_attention":
        from timm.layers.coord_attn import CoordAttn

        return CoordAttn(channels)
    if key == "timm_se":
        from timm.layers.squeeze_excite import SEModule

        return SEModule(channels, rd_ratio=1.0 / 16, rd_divisor=1)
    if key == "timm_cbam":
        from timm.layers.cbam import CbamModule

        return CbamModule(channels, rd_ratio=1.0 / 16, rd_divisor=1)
    raise ValueError(f"unknown bench configuration {key!r}")


def _peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def _run_worker(spec: dict) -> dict:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    b, c, h, w = spec["batch"], spec["channels"], spec["height"], spec["width"]
    module = _build(spec["key"], c).train()

    def step(inp, grad):
        module.zero_grad(set_to_none=True)
        inp.grad = None
        out = module(inp)
        out.backward(grad)

    # Warm-up at a tiny spatial size: loads kernels and thread pools and tells the output's channel
    # count, without allocating anything the full step needs (which would raise the baseline's mark).
    tiny = torch.randn(2, c, 3, 3, requires_grad=True)
    with torch.no_grad():
        c_out = module(tiny).shape[1]
    step(tiny, torch.ones(2, c_out, 3, 3))
    module.zero_grad(set_to_none=True)
    del tiny

    x = torch.randn(b, c, h, w, requires_grad=True)
    grad_out = torch.randn(b, c_out, h, w)
    baseline = _peak_rss_mib()
    step(x, grad_out)
    peak_extra = _peak_rss_mib() - baseline

    times: list[float] = []
    while _more(times, spec):
        start = time.perf_counter()
        step(x, grad_out)
        times.append(time.perf_counter() - start)
    return {"time_ms": 1000 * median(times), "peak_extra_mib": peak_extra, "threads": torch.get_num_threads(),
            "steps": len(times)}


#: a cap on the timed steps of one configuration, whatever --min-seconds asks
MAX_STEPS = 1000


def _more(times: list[float], spec: dict) -> bool:
    """Time another step? Until at least ``repeats`` steps and ``min_seconds`` of them (a 6 ms module
    timed 5 times is mostly scheduler noise on a shared 2-core machine), at most MAX_STEPS."""
    if len(times) >= MAX_STEPS:
        return False
    return len(times) < spec["repeats"] or sum(times) < spec.get("min_seconds", 0.0)


def _time_alternating(spec: dict) -> dict:
    """Several modules timed in alternation in one process (same input; the fused PAM gets the
    literal one's weights), so that all of them see the same machine load; the median of each."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    b, c, h, w = spec["batch"], spec["channels"], spec["height"], spec["width"]
    modules = {key: _build(key, c).train() for key in spec["keys"]}
    if "pam" in modules and "pam_fused" in modules:
        modules["pam_fused"].load_state_dict(modules["pam"].state_dict())
    x = torch.randn(b, c, h, w, requires_grad=True)
    grad_out = torch.randn(b, c, h, w)  # the modules timed this way keep the input's shape
    times: dict[str, list[float]] = {key: [] for key in modules}
    i = 0
    while i == 0 or any(_more(t, spec) for t in times.values()):  # round 0 is a warm-up
        order = list(modules) if i % 2 else list(reversed(modules))
        for key in order:
            modules[key].zero_grad(set_to_none=True)
            x.grad = None
            start = time.perf_counter()
            modules[key](x).backward(grad_out)
            if i:
                times[key].append(time.perf_counter() - start)
        i += 1
    return {f"{key}_ms": 1000 * median(t) for key, t in times.items()}


# --------------------------------------------------------------------------------------------------
# Parent: run every configuration, write the table, CSV and figure
# --------------------------------------------------------------------------------------------------


def _measure(spec: dict) -> dict:
    """Run one configuration in a fresh interpreter (same Python, course_lib importable)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "course_lib.bench", "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed for {spec}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _size_label(size: dict) -> str:
    return f"B={size['batch']}, C={size['channels']}, {size['height']}x{size['width']}"


def run(out: Path, *, repeats: int, quick: bool, threads: int | None = None, min_seconds: float = 1.0) -> int:
    has_timm = importlib.util.find_spec("timm") is not None
    module_size = dict(MODULE_SIZE, height=14, width=14) if quick else MODULE_SIZE
    danet_size = dict(DANET_SIZE, channels=128, height=16, width=16) if quick else DANET_SIZE
    sides = (16, 32) if quick else PAM_SCALING_SIDES
    timing = {"repeats": repeats, "min_seconds": min_seconds, "threads": threads}

    rows = []
    for name, (key, size, _) in MODULE_ROWS.items():
        if name in TIMM_ROWS and not has_timm:
            continue
        size = module_size if size is MODULE_SIZE else danet_size
        print(f"  measuring {name} ...", file=sys.stderr, flush=True)
        result = _measure({"key": key, **timing, **size})
        rows.append({"group": "modules", "name": name, "size": _size_label(size), **result})

    for r in rows:
        counterpart = MODULE_ROWS[r["name"]][2]
        r["ratio"] = None
        if has_timm and counterpart:
            key, timm_key = MODULE_ROWS[r["name"]][0], MODULE_ROWS[counterpart][0]
            print(f"  timing {r['name']} against {counterpart} in alternation ...", file=sys.stderr, flush=True)
            paired = _measure({"keys": [key, timm_key], **timing, **module_size})
            r["ratio"] = paired[f"{key}_ms"] / paired[f"{timm_key}_ms"]

    scaling = []
    for side in sides:
        size = dict(PAM_SCALING_SIZE, height=side, width=side)
        print(f"  measuring PAM literal vs fused at N = {side}^2 ...", file=sys.stderr, flush=True)
        paired = _measure({"keys": ["pam", "pam_fused"], **timing, **size})
        for key, label in (("pam", "literal"), ("pam_fused", "fused")):
            memory = _measure({"key": key, "repeats": 1, "threads": threads, **size})
            scaling.append({"group": "pam_scaling", "name": f"PAM {label}", "size": _size_label(size),
                            "n": side * side, "side": side, "ratio": None, "threads": memory["threads"],
                            "peak_extra_mib": memory["peak_extra_mib"], "time_ms": paired[f"{key}_ms"]})

    used_threads = rows[0]["threads"] if rows else "?"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"Forward + backward, float32, CPU ({os.cpu_count()} cores, {used_threads} torch threads, load average "
        f"{load} at the end); median of at least {repeats} steps and {min_seconds:g} s per module (time / timm and the N sweep: the modules compared are timed in alternation in one process); peak extra memory = process RSS "
        "high-water mark above a warmed-up baseline (see course_lib/bench.py).",
        "",
        "| module | input | time (ms) | peak extra memory (MiB) |" + (" time / timm |" if has_timm else ""),
        "|---|---|---:|---:|" + ("---:|" if has_timm else ""),
    ]
    for r in rows:
        ratio = f" {_fmt(r['ratio'], 2)} |" if has_timm else ""
        lines.append(f"| {r['name']} | {r['size']} | {_fmt(r['time_ms'])} | {_fmt(r['peak_extra_mib'])} |{ratio}")
    lines += ["", "| position attention | input | N | time (ms) | peak extra memory (MiB) |", "|---|---|---:|---:|---:|"]
    for r in scaling:
        lines.append(f"| {r['name']} | {r['size']} | {r['n']} | {_fmt(r['time_ms'])} | {_fmt(r['peak_extra_mib'])} |")

    verdict_side = 64 if 64 in sides else sides[-1]
    lit = next(r for r in scaling if r["side"] == verdict_side and r["name"] == "PAM literal")
    fus = next(r for r in scaling if r["side"] == verdict_side and r["name"] == "PAM fused")
    mem_ratio = lit["peak_extra_mib"] / max(fus["peak_extra_mib"], 1e-9)
    time_ratio = fus["time_ms"] / lit["time_ms"]
    ok = mem_ratio >= 5 and time_ratio <= 1.0
    target = (f"target: >= 5x less memory and not slower: {'met' if ok else 'NOT met'}" if verdict_side == 64
              else "the target is defined at N = 64^2, which a --quick run does not reach")
    lines += ["", (
        f"At N = {verdict_side}^2 the fused PAM needs {mem_ratio:.1f}x less peak memory than the literal one "
        f"and takes {time_ratio:.2f}x its time ({target})."
    )]
    lines += ["", "DANet CAM (official) on the CPU: softmax(-energy) leaves many map entries subnormal in float32, "
                  "which slows CPU arithmetic; see the module docstring of course_lib/bench.py."]
    if not has_timm:
        lines += ["", "timm is not importable here, so the timm rows and the ratio column are left out "
                      "(`make bench` runs in .venv-timm, where it is)."]
    table = "\n".join(lines)
    print(table)

    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(table + "\n")
    fields = ["group", "name", "size", "n", "time_ms", "peak_extra_mib", "ratio", "threads"]
    with open(out / "bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows + scaling:
            writer.writerow({k: r.get(k) for k in fields})
    _plot(rows, scaling, out / "bench.png")
    print(f"\nwrote {out / 'bench.md'}, {out / 'bench.csv'}, {out / 'bench.png'}", file=sys.stderr)
    return 0


def _plot(rows: list[dict], scaling: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    names = [r["name"] for r in rows]
    axes[0].barh(names, [r["time_ms"] for r in rows], color="tab:blue")
    axes[0].invert_yaxis()
    axes[0].set_xscale("log")
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_xlabel("forward + backward time (ms, log scale)")
    axes[0].set_title("modules at a realistic size")
    for label, color in (("PAM literal", "tab:red"), ("PAM fused", "tab:green")):
        pts = [r for r in scaling if r["name"] == label]
        n = [r["n"] for r in pts]
        axes[1].plot(n, [r["time_ms"] for r in pts], "o-", color=color, label=label)
        axes[2].plot(n, [r["peak_extra_mib"] for r in pts], "o-", color=color, label=label)
    for ax, key, ylabel, title in ((axes[1], "time_ms", "time (ms)", "PAM time vs N"),
                                   (axes[2], "peak_extra_mib", "peak extra memory (MiB)", "PAM memory vs N")):
        ax.set_xscale("log")
        # RSS is counted in whole pages: a tiny configuration can show 0 MiB, which a log axis cannot
        ax.set_yscale("log" if all(r[key] > 0 for r in scaling) else "linear")
        ax.set_xlabel("N = H x W (B = 1, C = 64)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="folder for bench.md/.csv/.png")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="keep timing each module until this many seconds of steps (median; default 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(_time_alternating(spec) if "keys" in spec else _run_worker(spec)))
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    if args.min_seconds < 0:
        parser.error(f"--min-seconds must be >= 0; got {args.min_seconds}")
    return run(args.out, repeats=args.repeats, quick=args.quick, threads=args.threads, min_seconds=args.min_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
