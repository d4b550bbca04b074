"""Time and peak memory of the reference modules: ``python -m course_lib bench --out DIR`` (``make bench``).

What is measured
    One training step of each module: ``forward`` then ``backward`` of a fixed random output
    gradient, the module in training mode (BatchNorm on batch statistics), float32 on the CPU.

    * Modules at a realistic size (``MODULE_ROWS``): SE, CBAM (paper, timm's options, official),
      CTDNet SAM and HA-CNN soft attention at B = 8, C = 256, 28 x 28 (a ResNet-50 stage-2 sized
      map); DANet PAM (literal and memory-light), CAM (paper and official) and DualAttention at
      B = 2, C = 512, 32 x 32, the DANet head's 512 inner channels at output stride 8 on a 256 x 256
      crop (N = 1024). When timm is importable (``make bench`` runs in ``.venv-timm``), timm's
      ``SEModule`` and ``CbamModule`` at the same size and hidden width (C / 16) are measured too,
      and the SE and CBAM rows get the ratio course / timm (CBAM is compared with the course
      options that match timm: ``mlp_bias=False, pool_order="avg_max", batch_norm=True``).
      Without timm the column is left out.
    * Non-local, GCNet, ECA and Coordinate Attention at the same B = 8, C = 256, 28 x 28: each with
      the paper's (or the official code's) defaults, and, for the ratio against timm's
      ``NonLocalAttn``, ``GlobalContext``, ``EcaModule`` and ``CoordAttn``, the course module built
      with timm's options (tests/test_parity_timm_more.py proves it computes the timm layer's
      function), so the ratio compares implementations, not designs. The non-local block at C / 2
      is also timed on its memory-light path. A new module is one line in ``BUILDERS`` (how to build
      it) and one in ``MODULE_ROWS`` (its row).
    * Position attention, literal (the (B, N, N) map is formed) against the memory-light path
      (``fused=True``: queries in blocks, recomputed in backward, or the literal computation where
      one block would hold the whole map), at the six sizes of
      ``PAM_SIZES``: C = 64 and C = 512 (DANet's own inner width; query/key width C // 8) times
      N = 32^2, 64^2 and 96^2, with B = 1 and one thread: the sizes where DANet's memory problem
      shows (DANet issues #58, #104: N = 96^2 is a 768 x 768 crop at output stride 8).
      ``--pam-only`` runs just this table.

Time
    ``torch.utils.benchmark.Timer``: ``blocked_autorange`` warms up, picks how many steps make a
    block and times blocks until ``--min-seconds`` (split over the rounds); it sets the thread
    count for the measurement (and would synchronise on CUDA). The figure is the median over the
    blocks, with the interquartile range beside it. Modules compared with each other (course / timm,
    literal / memory-light PAM) are timed in one process in ``--rounds`` alternating rounds (the
    order reversed every round) whose measurements are merged (``Measurement.merge``), so that
    both see the same machine load. Other rows use torch's default intra-op thread count
    (reported; ``--threads`` overrides it); the PAM table always uses one thread. Relative numbers
    within a run are what this is for; absolute numbers depend on the machine and on its load
    (printed with the table: on a shared 2-core machine a busy neighbour can make a step several
    times slower).

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
    Markdown tables on stdout and in ``DIR/bench.md``, the same rows in ``DIR/bench.csv`` and a
    figure ``DIR/bench.png`` (module times; PAM time and peak memory against N for both widths).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

MODULE_SIZE = {"batch": 8, "channels": 256, "height": 28, "width": 28}
DANET_SIZE = {"batch": 2, "channels": 512, "height": 32, "width": 32}
#: the PAM table: (C, side) with N = side^2, B = 1, one thread
PAM_SIZES = ((64, 32), (64, 64), (64, 96), (512, 32), (512, 64), (512, 96))
PAM_QUICK_SIZES = ((64, 16), (64, 32))
PAM_THREADS = 1

#: builder key -> (module, class or factory, keyword arguments); called as factory(channels, **kwargs)
BUILDERS = {
    "se": ("course_lib.reference.se", "SqueezeExcitation", {}),
    "cbam_paper": ("course_lib.reference.cbam", "CBAM", {}),
    "cbam_timm_options": ("course_lib.reference.cbam", "CBAM", {"batch_norm": True, "bn_momentum": 0.1}),
    "cbam_official": ("course_lib.reference.cbam", "CBAM", {"variant": "official"}),
    "ctdnet_sam": ("course_lib.reference.ctdnet", "SpatialAttentionModule", {"out_channels": 64}),
    "hacnn_soft": ("course_lib.reference.hacnn", "SoftAttention", {}),
    "pam": ("course_lib.reference.danet", "PositionAttention", {}),
    "pam_fused": ("course_lib.reference.danet", "PositionAttention", {"fused": True}),
    "cam_paper": ("course_lib.reference.danet", "ChannelAttention", {"variant": "paper"}),
    "cam_official": ("course_lib.reference.danet", "ChannelAttention", {"variant": "official"}),
    "dual": ("course_lib.reference.danet", "DualAttention", {}),
    "timm_se": ("timm.layers.squeeze_excite", "SEModule", {"rd_ratio": 1.0 / 16, "rd_divisor": 1}),
    "timm_cbam": ("timm.layers.cbam", "CbamModule", {"rd_ratio": 1.0 / 16, "rd_divisor": 1}),
    "non_local": ("course_lib.reference.nonlocal_block", "NonLocalBlock", {}),
    "non_local_fused": ("course_lib.reference.nonlocal_block", "NonLocalBlock", {"fused": True}),
    "non_local_timm_options": ("course_lib.tools.bench", "non_local_timm_options", {}),
    "gcnet": ("course_lib.reference.gcnet", "GlobalContextBlock", {}),
    # timm's default GlobalContext: multiplicative, C / 8, LayerNorm eps 1e-6
    "gcnet_timm_options": ("course_lib.reference.gcnet", "GlobalContextBlock", {"reduction": 8, "fusion": "mul", "eps": 1e-6}),
    "eca": ("course_lib.reference.eca", "EfficientChannelAttention", {}),
    "coord_attention": ("course_lib.reference.coord_attention", "CoordinateAttention", {}),
    "coord_attention_timm_options": ("course_lib.tools.bench", "coord_attention_timm_options", {}),
    "timm_non_local": ("timm.layers.non_local_attn", "NonLocalAttn", {}),
    "timm_gcnet": ("timm.layers.global_context", "GlobalContext", {}),
    "timm_eca": ("timm.layers.eca", "EcaModule", {}),
    "timm_coord_attention": ("timm.layers.coord_attn", "CoordAttn", {}),
}


def non_local_timm_options(channels: int):
    """The course's Non-local block with timm's choices: C' = C / 8 (at least 8), energy scaled by C**-0.5."""
    from course_lib.reference.nonlocal_block import NonLocalBlock

    return NonLocalBlock(channels, inter_channels=max(8, channels // 8), scale=channels ** -0.5)


def coord_attention_timm_options(channels: int):
    """The course's Coordinate Attention with timm's choices: no conv biases, width make_divisible(C / 24, 8)."""
    from course_lib.reference.coord_attention import CoordinateAttention

    return CoordinateAttention(channels, hidden_channels=max(8, int(channels / 24 + 4) // 8 * 8), bias=False)


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
    "DANet PAM (memory-light)": ("pam_fused", DANET_SIZE, None),
    "DANet CAM (paper)": ("cam_paper", DANET_SIZE, None),
    "DANet CAM (official)": ("cam_official", DANET_SIZE, None),
    "DANet DualAttention": ("dual", DANET_SIZE, None),
    # Non-local, GCNet, ECA, Coordinate Attention: the paper's defaults, then the course module built
    # with timm's options (the same function as the timm layer) for the time / timm ratio
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
    if key not in BUILDERS:
        raise ValueError(f"unknown bench configuration {key!r}; known: {', '.join(BUILDERS)}")
    module, name, kwargs = BUILDERS[key]
    return getattr(importlib.import_module(module), name)(channels, **kwargs)


def _peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def _training_step(module, x, grad_out):
    """A closure that runs one forward + backward of ``module`` on x."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad_out)

    return step


def _timed(steps: dict, spec: dict) -> dict:
    """Time each step with ``torch.utils.benchmark.Timer`` in ``rounds`` alternating rounds; merge.

    Returns ``{key}_ms`` (median of the merged blocks, per step), ``{key}_iqr_ms`` and ``{key}_runs``
    (the number of blocks).
    """
    import torch
    from torch.utils.benchmark import Measurement, Timer

    threads = spec.get("threads") or torch.get_num_threads()
    rounds = max(1, spec.get("rounds", 1))
    min_run_time = spec.get("min_seconds", 1.0) / rounds
    timers = {key: Timer(stmt="step()", globals={"step": step}, num_threads=threads, label=key)
              for key, step in steps.items()}
    measured: dict[str, list] = {key: [] for key in steps}
    for i in range(rounds):
        for key in (list(steps) if i % 2 == 0 else list(reversed(steps))):
            measured[key].append(timers[key].blocked_autorange(min_run_time=min_run_time))
    result = {}
    for key, parts in measured.items():
        (merged,) = Measurement.merge(parts)
        result.update({f"{key}_ms": 1000 * merged.median, f"{key}_iqr_ms": 1000 * merged.iqr,
                       f"{key}_runs": len(merged.times)})
    result["threads"] = threads
    return result


def _run_worker(spec: dict) -> dict:
    """Peak extra memory of one training step of one module (and its time, unless ``memory_only``)."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    b, c, h, w = spec["batch"], spec["channels"], spec["height"], spec["width"]
    module = _build(spec["key"], c).train()

    # Warm-up at a tiny spatial size: loads kernels and thread pools and tells the output's channel
    # count, without allocating anything the full step needs (which would raise the baseline's mark).
    tiny = torch.randn(2, c, 3, 3, requires_grad=True)
    with torch.no_grad():
        c_out = module(tiny).shape[1]
    _training_step(module, tiny, torch.ones(2, c_out, 3, 3))()
    module.zero_grad(set_to_none=True)
    del tiny

    x = torch.randn(b, c, h, w, requires_grad=True)
    grad_out = torch.randn(b, c_out, h, w)
    baseline = _peak_rss_mib()
    _training_step(module, x, grad_out)()
    result = {"peak_extra_mib": _peak_rss_mib() - baseline, "threads": torch.get_num_threads()}
    if not spec.get("memory_only"):
        timed = _timed({"step": _training_step(module, x, grad_out)}, spec)
        result.update(time_ms=timed["step_ms"], iqr_ms=timed["step_iqr_ms"], runs=timed["step_runs"])
    return result


def _time_alternating(spec: dict) -> dict:
    """Several modules timed against each other in one process (same input; a memory-light PAM gets
    the literal one's weights), in alternating rounds, so that all of them see the same machine load."""
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
    result = _timed({key: _training_step(m, x, grad_out) for key, m in modules.items()}, spec)
    if "pam_fused" in modules:  # which computation the memory-light path chose for this size
        result["pam_fused_kernel"] = modules["pam_fused"].fused_kernel(b, h * w)
    return result


# --------------------------------------------------------------------------------------------------
# Parent: run every configuration, write the tables, CSV and figure
# --------------------------------------------------------------------------------------------------


def _measure(spec: dict) -> dict:
    """Run one configuration in a fresh interpreter (same Python, course_lib importable)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "course_lib.tools.bench", "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed for {spec}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _size_label(size: dict) -> str:
    return f"B={size['batch']}, C={size['channels']}, {size['height']}x{size['width']}"


def _module_rows(timing: dict, quick: bool, has_timm: bool) -> list[dict]:
    module_size = dict(MODULE_SIZE, height=14, width=14) if quick else MODULE_SIZE
    danet_size = dict(DANET_SIZE, channels=128, height=16, width=16) if quick else DANET_SIZE
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
    return rows


def _pam_rows(timing: dict, quick: bool) -> list[dict]:
    rows = []
    for channels, side in PAM_QUICK_SIZES if quick else PAM_SIZES:
        size = {"batch": 1, "channels": channels, "height": side, "width": side}
        print(f"  PAM literal vs memory-light at C = {channels}, N = {side}^2 ...", file=sys.stderr, flush=True)
        paired = _measure({"keys": ["pam", "pam_fused"], **timing, **size, "threads": PAM_THREADS})
        memory = {key: _measure({"key": key, "memory_only": True, "threads": PAM_THREADS, **size})["peak_extra_mib"]
                  for key in ("pam", "pam_fused")}
        rows.append({"group": "pam", "name": "PAM", "size": _size_label(size), "channels": channels, "side": side,
                     "n": side * side, "threads": paired["threads"], "kernel": paired["pam_fused_kernel"],
                     "literal_ms": paired["pam_ms"], "literal_iqr_ms": paired["pam_iqr_ms"],
                     "fused_ms": paired["pam_fused_ms"], "fused_iqr_ms": paired["pam_fused_iqr_ms"],
                     "literal_mib": memory["pam"], "fused_mib": memory["pam_fused"],
                     "time_ratio": paired["pam_fused_ms"] / paired["pam_ms"],
                     "memory_ratio": memory["pam"] / max(memory["pam_fused"], 1e-9)})
    return rows


def slower(row: dict) -> bool:
    """Is the memory-light path slower than the literal one, beyond the measurement's own spread?

    Where the size rule runs the literal computation on both sides (``kernel == "literal"``), the two
    timings measure the same code: only a difference larger than half the sum of their interquartile
    ranges counts. Where it blocks, any ratio above 1.0 counts.
    """
    if row["kernel"] == "literal":
        return row["fused_ms"] - row["literal_ms"] > (row["literal_iqr_ms"] + row["fused_iqr_ms"]) / 2
    return row["time_ratio"] > 1.0


def pam_verdict(rows: list[dict]) -> str:
    """The PAM target: memory-light <= 1.0x the literal time at every size, >= 5x less memory at N = 64^2."""
    at_64 = [r for r in rows if r["side"] == 64]
    if not at_64:
        return "target (defined at the six full sizes): not checked by a --quick run"
    slow = [f"C={r['channels']}, N={r['side']}^2 ({r['time_ratio']:.2f}x)" for r in rows if slower(r)]
    heavy = [f"C={r['channels']} ({r['memory_ratio']:.1f}x)" for r in at_64 if r["memory_ratio"] < 5]
    ok = not slow and not heavy
    lines = [f"target: memory-light <= 1.0x the literal time at every size and >= 5x less peak memory at "
             f"N = 64^2: {'met' if ok else 'NOT met'}"]
    if slow:
        lines.append("slower than literal at " + "; ".join(slow))
    if heavy:
        lines.append("less than 5x lighter at N = 64^2 for " + "; ".join(heavy))
    return " - ".join(lines)


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def run(out: Path, *, rounds: int = 3, quick: bool = False, threads: int | None = None, min_seconds: float = 1.0,
        pam_only: bool = False) -> int:
    has_timm = importlib.util.find_spec("timm") is not None
    timing = {"rounds": rounds, "min_seconds": min_seconds, "threads": threads}
    rows = [] if pam_only else _module_rows(timing, quick, has_timm)
    pam = _pam_rows(timing, quick)

    lines = []
    if rows:
        lines += [
            f"Forward + backward, float32, CPU ({os.cpu_count()} cores, {rows[0]['threads']} torch threads, load "
            f"average {_load()} at the end); torch.utils.benchmark.Timer.blocked_autorange, {rounds} round(s) of "
            f"{min_seconds:g} s in all per module, median per step (IQR); time / timm: timed in alternation in one "
            "process; peak extra memory = process RSS high-water mark above a warmed-up baseline "
            "(see course_lib/tools/bench.py).",
            "",
            "| module | input | time (ms) | IQR (ms) | peak extra memory (MiB) |" + (" time / timm |" if has_timm else ""),
            "|---|---|---:|---:|---:|" + ("---:|" if has_timm else ""),
        ]
        for r in rows:
            ratio = f" {_fmt(r['ratio'], 2)} |" if has_timm else ""
            lines.append(f"| {r['name']} | {r['size']} | {_fmt(r['time_ms'])} | {_fmt(r['iqr_ms'])} | "
                         f"{_fmt(r['peak_extra_mib'])} |{ratio}")
        lines.append("")
    lines += [
        f"DANet position attention, literal vs memory-light (fused=True): B = 1, {PAM_THREADS} thread, forward + "
        f"backward, float32, CPU (load average {_load()} at the end); both timed in {rounds} alternating round(s) "
        "in one process, median per step; peak extra memory in separate processes.",
        "",
        "| C | N | memory-light runs | literal time (ms) | memory-light time (ms) | memory-light / literal time "
        "| literal peak (MiB) | memory-light peak (MiB) | literal / memory-light memory |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in pam:
        lines.append(
            f"| {r['channels']} | {r['side']}^2 = {r['n']} | {r['kernel']} | "
            f"{_fmt(r['literal_ms'])} +- {_fmt(r['literal_iqr_ms'])} | "
            f"{_fmt(r['fused_ms'])} +- {_fmt(r['fused_iqr_ms'])} | {r['time_ratio']:.2f} | {_fmt(r['literal_mib'])} | "
            f"{_fmt(r['fused_mib'])} | {r['memory_ratio']:.1f} |"
        )
    lines += ["", "(+- is the interquartile range of the timed blocks. \"memory-light runs\": the computation "
                  "fused=True chose for that size; \"literal\" where one block would hold the whole map, so both "
                  "columns time the same code and only a gap beyond the spread counts as slower.)", "",
              pam_verdict(pam)]
    if rows:
        lines += ["", "DANet CAM (official) on the CPU: softmax(-energy) leaves many map entries subnormal in "
                      "float32, which slows CPU arithmetic; see the module docstring of course_lib/tools/bench.py."]
        if not has_timm:
            lines += ["", "timm is not importable here, so the timm rows and the ratio column are left out "
                          "(`make bench` runs in .venv-timm, where it is)."]
    table = "\n".join(lines)
    print(table)

    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(table + "\n")
    fields = ["group", "name", "size", "n", "time_ms", "iqr_ms", "peak_extra_mib", "ratio", "threads", "kernel",
              "literal_ms", "literal_iqr_ms", "fused_ms", "fused_iqr_ms", "time_ratio", "literal_mib", "fused_mib",
              "memory_ratio"]
    with open(out / "bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows + pam:
            writer.writerow({k: r.get(k) for k in fields})
    _plot(rows, pam, out / "bench.png")
    print(f"\nwrote {out / 'bench.md'}, {out / 'bench.csv'}, {out / 'bench.png'}", file=sys.stderr)
    return 0


def _plot(rows: list[dict], pam: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    if rows:
        names = [r["name"] for r in rows]
        axes[0].barh(names, [r["time_ms"] for r in rows], color="tab:blue")
        axes[0].invert_yaxis()
        axes[0].set_xscale("log")
        axes[0].xaxis.set_minor_formatter(NullFormatter())
        axes[0].set_xlabel("forward + backward time (ms, log scale)")
        axes[0].set_title("modules at a realistic size")
    else:
        axes[0].axis("off")
        axes[0].text(0.5, 0.5, "module rows not measured (--pam-only)", ha="center", va="center")
    for channels, style in zip(sorted({r["channels"] for r in pam}), ("o-", "s--")):
        pts = [r for r in pam if r["channels"] == channels]
        n = [r["n"] for r in pts]
        for key, label, color in (("literal", "literal", "tab:red"), ("fused", "memory-light", "tab:green")):
            axes[1].plot(n, [r[f"{key}_ms"] for r in pts], style, color=color, label=f"{label}, C={channels}")
            axes[2].plot(n, [r[f"{key}_mib"] for r in pts], style, color=color, label=f"{label}, C={channels}")
    for ax, key, ylabel, title in ((axes[1], "ms", "time (ms)", "PAM time vs N"),
                                   (axes[2], "mib", "peak extra memory (MiB)", "PAM memory vs N")):
        ax.set_xscale("log")
        # RSS is counted in whole pages: a tiny configuration can show 0 MiB, which a log axis cannot
        positive = all(r[f"literal_{key}"] > 0 and r[f"fused_{key}"] > 0 for r in pam)
        ax.set_yscale("log" if positive else "linear")
        ax.set_xlabel(f"N = H x W (B = 1, {PAM_THREADS} thread)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="folder for bench.md/.csv/.png")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of Timer.blocked_autorange per module (default 3)")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="seconds of timed steps per module, split over the rounds (default 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--pam-only", action="store_true", help="only the PAM table (literal vs memory-light)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for the module rows (default: torch's; the PAM table uses 1)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(_time_alternating(spec) if "keys" in spec else _run_worker(spec)))
        return 0
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; got {args.rounds}")
    if args.min_seconds < 0:
        parser.error(f"--min-seconds must be >= 0; got {args.min_seconds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    return run(args.out, rounds=args.rounds, quick=args.quick, threads=args.threads, min_seconds=args.min_seconds,
               pam_only=args.pam_only)


if __name__ == "__main__":
    raise SystemExit(main())
