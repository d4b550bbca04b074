"""``make grader-report``: how well the checks grade the catalog of implementations in tests/catalog/.

For every graded exercise it prints: wrong implementations caught / total, caught with the right named hint
/ total, valid alternatives given full marks / total, and the slowest visible and hidden check times.
The catalog is test code (it holds near-solutions), so this command runs from a repository checkout.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_catalog():
    tests = REPO / "tests"
    if not (tests / "catalog" / "__init__.py").is_file():
        raise SystemExit(f"grader-report needs the repository's tests/catalog/ (looked in {tests})")
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import catalog  # noqa: PLC0415 - test code, found at run time

    return catalog


def build_table(outcomes) -> list[dict]:
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {
        "wrong": 0, "caught": 0, "right_hint": 0, "valid": 0, "full_marks": 0,
        "slowest_visible_s": 0.0, "slowest_hidden_s": 0.0, "misses": []})
    for o in outcomes:
        row = rows[(o.impl.exercise.chapter, o.impl.exercise.name)]
        row["slowest_visible_s"] = max(row["slowest_visible_s"], o.visible_s)
        row["slowest_hidden_s"] = max(row["slowest_hidden_s"], o.hidden_s)
        if o.impl.valid:
            row["valid"] += 1
            row["full_marks"] += o.passed
            if not o.passed:
                row["misses"].append(f"valid '{o.impl.label}' failed: {o.message.splitlines()[0]}")
        else:
            row["wrong"] += 1
            row["caught"] += not o.passed
            row["right_hint"] += o.right_hint
            if o.passed:
                row["misses"].append(f"wrong '{o.impl.label}' passed")
            elif not o.right_hint:
                row["misses"].append(f"wrong '{o.impl.label}': hint {o.mistake}, catalogued {o.impl.mistake}")
    return [{"chapter": ch, "exercise": ex, **vals} for (ch, ex), vals in sorted(rows.items())]


def render(rows: list[dict]) -> str:
    header = ("| chapter | exercise | wrong caught | right hint | valid full marks | slowest visible (s) "
              "| slowest hidden (s) |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    totals = defaultdict(float)
    for r in rows:
        lines.append(f"| {r['chapter']} | {r['exercise']} | {r['caught']}/{r['wrong']} | {r['right_hint']}/{r['wrong']} "
                     f"| {r['full_marks']}/{r['valid']} | {r['slowest_visible_s']:.3f} | {r['slowest_hidden_s']:.3f} |")
        for key in ("wrong", "caught", "right_hint", "valid", "full_marks"):
            totals[key] += r[key]
        totals["vis"] = max(totals["vis"], r["slowest_visible_s"])
        totals["hid"] = max(totals["hid"], r["slowest_hidden_s"])
    pct = lambda a, b: f"{100 * a / b:.0f} %" if b else "n/a"  # noqa: E731
    lines.append(f"| **all** | | {int(totals['caught'])}/{int(totals['wrong'])} ({pct(totals['caught'], totals['wrong'])}) "
                 f"| {int(totals['right_hint'])}/{int(totals['wrong'])} ({pct(totals['right_hint'], totals['wrong'])}) "
                 f"| {int(totals['full_marks'])}/{int(totals['valid'])} ({pct(totals['full_marks'], totals['valid'])}) "
                 f"| {totals['vis']:.3f} | {totals['hid']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib grader-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapter", action="append", help="only these chapters (repeatable)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every miss")
    args = parser.parse_args(argv)
    catalog = _load_catalog()
    _, impls = catalog.load_all()
    if args.chapter:
        impls = [i for i in impls if i.exercise.chapter in args.chapter]
    if not impls:
        print("the catalog is empty")
        return 1
    try:
        from tqdm import tqdm

        iterator = tqdm(impls, desc="grading the catalog", unit="impl", file=sys.stderr)
    except ImportError:  # pragma: no cover
        iterator = impls
    import contextlib
    import io

    outcomes = []
    for impl in iterator:
        with contextlib.redirect_stdout(io.StringIO()):  # the checks' "[ok]" lines
            outcomes.append(catalog.grade(impl))
    rows = build_table(outcomes)
    print(render(rows))
    misses = [m for r in rows for m in r["misses"]]
    if misses and args.verbose:
        print("\n".join(["", "misses:", *misses]))
    ok = all(r["caught"] == r["wrong"] and r["right_hint"] == r["wrong"] and r["full_marks"] == r["valid"]
             for r in rows)
    return 0 if ok else 1
