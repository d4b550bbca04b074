"""``python -m course_lib checkpoints`` (``make checkpoints``): rebuild the trained checkpoints of chapters 01-08.

Each recipe of :data:`course_lib.learned.RECIPES` is trained from its seed with the course's reference module
(``course_lib.reference``), then saved in the package's ``checkpoints/`` with the numbers its chapter quotes.
``--remeasure`` keeps the stored weights and recomputes only those numbers (after ``learned.measure`` changed).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from course_lib import capstone as cap
from course_lib import learned
from course_lib.learned import CHECKPOINT_DIR, RECIPES


def reference_class(name: str) -> type:
    """The course's reference class of recipe ``name`` (``Recipe.reference``: "module:Class")."""
    module, cls = learned.get_recipe(name).reference.split(":")
    return getattr(importlib.import_module(f"course_lib.reference.{module}"), cls)


def train_reference(name: str, **kwargs: Any) -> tuple[cap.CapstoneNet, dict[str, Any]]:
    """:func:`course_lib.learned.train` with the reference class."""
    return learned.train(name, reference_class(name), **kwargs)


def load_reference(name: str, *, directory: Path = CHECKPOINT_DIR) -> cap.CapstoneNet:
    """:func:`course_lib.learned.load_trained` with the reference class."""
    return learned.load_trained(name, reference_class(name), directory=directory)


def build_checkpoints(names: Sequence[str] | None = None, *, directory: Path = CHECKPOINT_DIR,
                      device: str = "auto", progress: bool = True) -> list[dict[str, Any]]:
    """Train and save every recipe (or ``names``) from its seed; returns one summary row each."""
    rows = []
    for name in names or list(RECIPES):
        net, record = train_reference(name, device=device, progress=progress)
        path = learned.save_checkpoint(name, net, record, directory)
        rows.append({"name": name, "accuracy": record["accuracy"], "train_seconds": record["train_seconds"],
                     "bytes": path.stat().st_size, "device": record["device"]})
        print(f"{name:>20}: test accuracy {record['accuracy']:.4f}, trained in {record['train_seconds']:.1f} s "
              f"on {record['device']} (1 thread), {path.stat().st_size / 1024:.0f} KiB -> {path}", flush=True)
    return rows


def remeasure(names: Sequence[str] | None = None, *, directory: Path = CHECKPOINT_DIR) -> None:
    """Recompute the recorded numbers of stored checkpoints (after :func:`measure` changed), no training."""
    test = learned.test_split()
    for name in names or list(RECIPES):
        state = learned.read_checkpoint(name, directory)
        net = load_reference(name, directory=directory)
        state["numbers"] = learned.measure(name, net, test)
        torch.save(state, directory / f"{name}.pt")
        print(f"{name:>20}: numbers re-measured")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib checkpoints",
                                description="Rebuild the trained checkpoints of chapters 01-08 from their seeds.")
    p.add_argument("names", nargs="*", help=f"recipes to rebuild (default: all: {' '.join(RECIPES)})")
    p.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="folder (default: the package's checkpoints/)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--remeasure", action="store_true",
                   help="keep the stored weights, recompute only the recorded figure numbers")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    for n in args.names:
        learned.get_recipe(n)
    if args.remeasure:
        remeasure(args.names or None, directory=args.out)
        return 0
    build_checkpoints(args.names or None, directory=args.out, device=args.device, progress=not args.no_progress)
    return 0
