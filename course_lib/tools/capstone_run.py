"""``python -m course_lib capstone`` (``make capstone``): train and compare every reference attention variant.

``python -m course_lib capstone [--quick] [--out DIR] [--seeds N] [--variants ...] [--epochs N]``
trains one network per variant and seed (:mod:`course_lib.capstone`'s network and training loop, the slot
filled from ``course_lib.reference.ATTENTION``), then writes to DIR (default ``out/capstone``):

* ``results.csv`` and ``results.md``: test accuracy (mean and std over seeds), parameters,
  multiply-adds per image, CPU latency per image, and how well each spatial map finds the digit;
* ``accuracy.png``, ``spatial_attention.png``, ``channel_weights.png``, ``pam_query.png``
  (drawn by :mod:`course_lib.figures.capstone`).

With ``--publish`` (what ``make capstone`` passes) a full run (the ``FULL`` budget, every variant) also
writes ``course_lib/results/capstone.json`` (:data:`course_lib.capstone.PUBLISHED`): the table's rows and every
network's per-image correctness, which ships with the student package so that chapter 09's section 11 can show
the table without training. ``tests/test_capstone_published.py`` holds that file to the code: its budget and
variants, its table recomputed from its per-image results, and one network retrained.

Budgets, fairness and the metrics are described in :mod:`course_lib.capstone`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from course_lib.capstone import (FULL, PUBLISHED, QUICK, QUICK_VARIANTS, VARIANTS, Budget, diagnose, pick_device,
                                 published_record, run_experiment, summarise, write_results)
from course_lib.reference import ATTENTION


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib capstone",
                                description="Train and compare every attention variant on cluttered digits.")
    p.add_argument("--quick", action="store_true", help="small data, one seed, short training (< 1 min on 2 cores)")
    p.add_argument("--out", type=Path, default=Path("out/capstone"), help="output folder (default: out/capstone)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 3, or 1 with --quick)")
    p.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                   help=f"variants to compare (default: all: {' '.join(VARIANTS)}; with --quick: "
                        f"{' '.join(QUICK_VARIANTS)})")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: from the budget)")
    p.add_argument("--num-train", type=int, default=None, help="training images (default: from the budget)")
    p.add_argument("--num-test", type=int, default=None, help="test images (default: from the budget)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; small convolutions gain little from more, and on a "
                        "shared machine extra threads spin and wait)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--publish", action="store_true",
                   help="also write the run to course_lib/results/capstone.json, which ships to students (only a "
                        "full run: the default budget, every variant)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    budget = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs), ("num_train", args.num_train),
                                   ("num_test", args.num_test), ("threads", args.threads)) if v is not None}
    for name, value in overrides.items():
        if value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1; got {value}")
    threads = overrides.pop("threads")
    budget = Budget(**{**asdict(budget), **overrides})
    variants = list(args.variants or (QUICK_VARIANTS if args.quick else VARIANTS))
    known = ["none", "conv_control", *ATTENTION]
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; expected names from: {' '.join(known)}")
    if args.publish and (budget != FULL or variants != list(VARIANTS)):
        raise SystemExit("--publish writes the run that ships with the course: only the full run (no --quick, no "
                         "budget options, every variant)")
    device = pick_device(args.device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(variants, budget, device, args.out, progress=not args.no_progress,
                    publish=PUBLISHED if args.publish else None)
    finally:
        torch.set_num_threads(before)


def _run(variants: Sequence[str], budget: Budget, device: torch.device, out: Path, *, progress: bool,
         publish: Path | None = None) -> int:
    from course_lib.figures import capstone as figs

    threads = torch.get_num_threads()
    start = time.perf_counter()
    print(f"capstone: {len(variants)} variants x {budget.seeds} seeds, {budget.num_train} train images, "
          f"{budget.epochs} epochs, on {device} ({threads} CPU thread(s))")
    results, models, (_, test) = run_experiment(variants, budget, device=device, progress=progress,
                                                 registry=ATTENTION)
    rows = summarise(results, models, (1, budget.canvas_size, budget.canvas_size))
    out.mkdir(parents=True, exist_ok=True)
    figures = figs.draw_all(rows, models, test, out)
    notes = diagnose(models, test)
    wall = time.perf_counter() - start
    csv_path, md_path = write_results(rows, out, budget=budget, wall_s=wall, device=device, figures=figures,
                                      notes=notes)
    print(md_path.read_text())
    print(f"wrote {csv_path}, {md_path} and {len(figures)} figures in {wall:.0f} s")
    if publish is not None:
        write_published(published_record(results, rows, budget=budget, wall_s=wall, device=device.type, notes=notes),
                        publish)
        print(f"wrote {publish} (ships with the student package)")
    return 0


def write_published(record: dict, path: Path = PUBLISHED) -> None:
    """Write a :func:`course_lib.capstone.published_record` as stable JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
