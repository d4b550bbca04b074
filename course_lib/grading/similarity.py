"""``python -m course_lib similarity CHAPTER``: pairs of submissions whose answers are near-identical.

For the lecturer only. It reads the notebooks that ``python -m course_lib grade`` put in the course folder
(``OUT/submitted/<student>/CHAPTER/``), takes each student's answer cells (the code cells nbgrader marks
``solution``, in notebook order) and compares every pair with copydetect (https://github.com/blingenf/copydetect),
a maintained implementation of the winnowing fingerprints behind MOSS: the code is tokenised with Pygments and
every variable, function, class and string is replaced by one letter, so renaming and reformatting do not
hide a copy, and comments do not count. What the chapter hands out (the stubs of the release) and its model
answer are *boilerplate*: their fingerprints count for nobody, so a student who left a stub, or wrote the
model answer's obvious lines, matches no one for that.

Written under ``OUT/CHAPTER/``, never under ``feedback/``:

    similarity.csv      every pair at or above --threshold: the share of each one's answer code found in the
                        other's, and the matching tokens, most similar first
    similarity.html     copydetect's report: the flagged pairs side by side, the copied parts highlighted
    similarity/<student>.py   the answer cells that were compared

A flag is a reason to read two notebooks, not a verdict: short answers to a small exercise can look alike.
Exit status: 0 (pairs flagged or not), 2 when the chapter has no graded submissions in the folder.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pair", "answer_code", "compare", "main"]

#: copydetect's fingerprint length in characters of tokenised code (its default), and the default share
#: of one answer found in another that flags a pair
NOISE = 25
THRESHOLD = 0.6


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    share_a: float  # the share of a's answer code that is also in b's
    share_b: float
    tokens: int

    @property
    def similarity(self) -> float:
        return max(self.share_a, self.share_b)


def answer_code(nb) -> str:
    """The code of the notebook's answer cells (nbgrader ``solution`` code cells), in order, one block each."""
    blocks = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution"):
            source = cell.get("source", "")
            blocks.append(f"# {meta.get('grade_id', 'answer')}\n{''.join(source) if isinstance(source, list) else source}")
    return "\n\n".join(blocks).strip() + "\n"


def _read(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - anything unreadable is listed and left out
        raise ValueError(f"{type(err).__name__}: {str(err)[:120]}") from None


def _notebook(folder: Path, chapter: str) -> Path | None:
    named = folder / f"{chapter}.ipynb"
    if named.is_file():
        return named
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    return found[0] if len(found) == 1 else None


def compare(answers: dict[str, Path], boilerplate: list[Path], threshold: float) -> list[Pair]:
    """Every pair of ``answers`` (student -> a .py file) whose similarity is at or above ``threshold``."""
    from copydetect import CopyDetector

    detector = CopyDetector(extensions=["py"], noise_t=NOISE, guarantee_t=NOISE, display_t=0.0,
                            autoopen=False, silent=True, force_language="python")
    for path in answers.values():
        detector.add_file(str(path))
    for path in boilerplate:
        detector.add_file(str(path), type="boilerplate")
    detector.run()
    if len(detector.similarity_matrix) == 0:
        return []
    index = {str(p): i for i, p in enumerate(detector.test_files)}
    pairs = []
    names = sorted(answers)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ia, ib = index[str(answers[a])], index[str(answers[b])]
            share_a, share_b = (float(x) for x in detector.similarity_matrix[ia, ib])
            if share_a < 0:  # not compared (copydetect could not read one of them)
                continue
            pair = Pair(a, b, share_a, share_b, int(detector.token_overlap_matrix[ia, ib]))
            if pair.similarity >= threshold and pair.tokens > 0:
                pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))


def _report(answers: dict[str, Path], boilerplate: list[Path], threshold: float, target: Path) -> None:
    """copydetect's own HTML report of the flagged pairs."""
    from copydetect import CopyDetector

    detector = CopyDetector(extensions=["py"], noise_t=NOISE, guarantee_t=NOISE, display_t=max(threshold - 1e-9, 0),
                            autoopen=False, silent=True, force_language="python", out_file=str(target))
    for path in answers.values():
        detector.add_file(str(path))
    for path in boilerplate:
        detector.add_file(str(path), type="boilerplate")
    detector.run()
    import matplotlib

    matplotlib.use("Agg")
    detector.generate_html_report()


def run(out: Path, chapter: str, *, threshold: float = THRESHOLD) -> tuple[list[Pair], dict[str, Path], list[str]]:
    """Compare the answers of ``chapter``'s submissions in the course folder ``out``; write the report files.
    Returns (flagged pairs, student -> answer file, students left out with the reason)."""
    from course_lib.tools import notebooks as nbs

    out = Path(out)
    source = nbs.notebook_path(chapter, out, nbs.SOURCE)
    release = nbs.notebook_path(chapter, out, nbs.RELEASE)
    submitted = out / "submitted"
    folders = sorted(p / chapter for p in submitted.glob("*") if (p / chapter).is_dir()) if submitted.is_dir() else []
    if not source.is_file() or not folders:
        raise FileNotFoundError(f"{out} holds no graded submissions of {chapter!r} (expected "
                                f"{out / 'submitted' / '<student>' / chapter}/ and {source}): pass a chapter and the "
                                "--out folder that `python -m course_lib grade` graded it into")
    work = out / chapter / "similarity"
    if work.exists():
        shutil.rmtree(work)
    (work / "boilerplate").mkdir(parents=True)
    boilerplate = []
    for name, path in (("model_answer", source), ("released_stubs", release)):
        if path.is_file():
            target = work / "boilerplate" / f"{name}.py"
            target.write_text(answer_code(_read(path)), encoding="utf-8")
            boilerplate.append(target)
    stub = answer_code(_read(release)) if release.is_file() else None
    answers, left_out = {}, []
    for folder in folders:
        student = folder.parent.name
        notebook = _notebook(folder, chapter)
        if notebook is None:
            left_out.append(f"{student}: no single notebook in {folder.relative_to(out)}")
            continue
        try:
            code = answer_code(_read(notebook))
        except ValueError as err:
            left_out.append(f"{student}: {notebook.name} is not a readable notebook ({err})")
            continue
        if stub is not None and code == stub:
            left_out.append(f"{student}: the answer cells are the released stubs (nothing written)")
            continue
        target = work / f"{student}.py"
        target.write_text(code, encoding="utf-8")
        answers[student] = target
    pairs = compare(answers, boilerplate, threshold) if len(answers) > 1 else []
    with open(out / chapter / "similarity.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_a", "student_b", "similarity", "share_of_a_in_b", "share_of_b_in_a", "matching_tokens"])
        for p in pairs:
            writer.writerow([p.a, p.b, f"{p.similarity:.2f}", f"{p.share_a:.2f}", f"{p.share_b:.2f}", p.tokens])
    html = out / chapter / "similarity.html"
    if pairs:
        _report(answers, boilerplate, threshold, html)
    else:
        html.write_text(f"<!doctype html><title>{chapter}: similar submissions</title><p>No pair of the "
                        f"{len(answers)} submissions compared is at or above {threshold:.0%} similar.</p>\n",
                        encoding="utf-8")
    return pairs, answers, left_out


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, e.g. 0.6, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, e.g. 0.6, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    from course_lib.grading.cli import course_dir

    parser = argparse.ArgumentParser(prog="python -m course_lib similarity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", help="the chapter, e.g. 01_se")
    parser.add_argument("--out", type=Path, default=course_dir(),
                        help="the graded course folder, the --out of `python -m course_lib grade` "
                             "(default: $COURSE_DIR, else out/grading)")
    parser.add_argument("--threshold", type=_share, default=THRESHOLD,
                        help=f"flag a pair when this share of one answer is found in the other (default {THRESHOLD})")
    args = parser.parse_args(argv)
    try:
        pairs, answers, left_out = run(args.out, args.chapter, threshold=args.threshold)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = args.out / args.chapter
    print(f"{args.chapter}: {len(answers)} submissions compared, {len(pairs)} pair{'s' if len(pairs) != 1 else ''} "
          f"at or above {args.threshold:.0%} similar (for you only: {where / 'similarity.html'}, "
          f"{where / 'similarity.csv'})")
    for p in pairs:
        print(f"  {p.a} / {p.b}: {p.similarity:.0%} ({p.share_a:.0%} of {p.a}'s answer code is in {p.b}'s, "
              f"{p.share_b:.0%} the other way; {p.tokens} tokens)")
    if left_out:
        print("not compared:\n" + "\n".join(f"  {line}" for line in left_out))
    return 0
