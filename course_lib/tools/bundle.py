"""``python -m course_lib student-bundle --out DIR`` (``make student-bundle``): what students receive.

The bundle holds the released notebooks (``notebooks/``, as ``make release`` wrote them) and
``course_lib`` without what would hand a student the answers or is of no use to them:

====================  ==========================================================================
left out              why
====================  ==========================================================================
``reference/``        the reference solutions and the ``ATTENTION`` registry
``hidden/``           the hidden checks (they compare with the reference solutions)
``grading/``          the class grader (batch grading, the sandbox)
``tools/``            the maintainers' tools (release, this bundle, grader report, benchmarks,
                      the expected values and checkpoints built from the reference solutions)
====================  ==========================================================================

Everything else in ``course_lib/`` ships: the student side of the package (``pyproject.toml``'s
import-linter contracts prove that none of it imports the folders above).

The visible checks stay: they run from invariants and the stored expected values in
``checks/expected/`` (tests/test_bundle.py runs every released chapter's checks from the bundle, with the
reference modules out of reach). A ``pyproject.toml`` with the course's runtime dependencies and a
``README.md`` make it installable: ``pip install ./DIR`` (or ``pip install -e ./DIR``), then
``jupyter lab DIR/notebooks``.

The build refuses to write a bundle whose notebooks still contain a solution or hidden tests, and lists
the functions of the kept modules that need a left-out module (they fail in the bundle if called).

``--wheel DIR`` (``make student-wheel``) also builds the bundle's ``course_lib`` as a wheel,
``course_lib-<version>-py3-none-any.whl``: what the chapters' setup cell installs on Colab, from the
GitHub release tagged ``v<version>`` of the repository named in course.toml (tests/test_colab_setup.py
installs one into a fresh environment and runs a chapter's checks from it).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.tools import notebooks as nbs

#: The folders of course_lib/ that the bundle leaves out (see the module docstring).
EXCLUDED = ("reference", "hidden", "grading", "tools")
#: Text that must never reach a student's notebook.
FORBIDDEN_IN_NOTEBOOKS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "course_lib.hidden")
MARKER = ".student-bundle"
_JUNK = ("__pycache__", "*.pyc", "*.pyo", ".ipynb_checkpoints", ".DS_Store")


@dataclass
class Bundle:
    out: Path
    chapters: list[str]
    files: list[Path]
    lazy_needs: list[str] = field(default_factory=list)  # "module.function needs course_lib.x"


def _excluded_modules() -> set[str]:
    names = set()
    for item in EXCLUDED:
        dotted = "course_lib." + item.removesuffix(".py").replace("/", ".")
        names.add(dotted)
    return names


def _imported(node: ast.AST, module: str) -> list[str]:
    """Absolute names of the modules an import statement brings in (``module``: where it stands)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".")[:-1]  # a module's package; for pkg/__init__ that is pkg itself
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    return []


def needs_of(path: Path, module: str, excluded: set[str]) -> tuple[list[str], list[str]]:
    """(module-level imports of excluded modules, functions that import one) in the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def hits(node: ast.AST) -> list[str]:
        found = []
        for name in _imported(node, module):
            for bad in excluded:
                if name == bad or name.startswith(bad + "."):
                    found.append(bad)
        return sorted(set(found))

    top, lazy = [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top += hits(node)
        elif isinstance(node, (ast.If, ast.Try)):  # `if TYPE_CHECKING:` blocks import nothing at run time
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    top += hits(inner)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    where = module.removesuffix(".__init__")
                    lazy += [f"{where}.{node.name} needs {bad}" for bad in hits(inner)]
    return sorted(set(top)), sorted(set(lazy))


def _ignore(package: Path):
    excluded = {package / item for item in EXCLUDED}
    junk = shutil.ignore_patterns(*_JUNK)

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = set(junk(folder, names))
        skip |= {name for name in names if Path(folder) / name in excluded}
        return skip

    return ignore


def _pyproject(root: Path) -> str:
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    # the same data files as the full package (stored expected values, trained checkpoints, ...)
    package_data = config["tool"]["setuptools"]["package-data"]["course_lib"]
    lab = [spec for spec in project.get("optional-dependencies", {}).get("lab", []) if not spec.startswith("nbgrader")]

    def array(items: list[str]) -> str:
        return "[\n" + "".join(f'    "{item}",\n' for item in items) + "]"

    return f"""# The student bundle of the course (built by `make student-bundle`): install with `pip install .`
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{project['name']}"
version = "{project['version']}"
description = "{project.get('description', '')} (student edition: no reference solutions)"
readme = "README.md"
requires-python = "{project.get('requires-python', '>=3.10')}"
dependencies = {array(project['dependencies'])}

[project.optional-dependencies]
lab = {array(lab)}

[tool.setuptools.packages.find]
include = ["course_lib*"]

[tool.setuptools.package-data]
course_lib = {json.dumps(package_data)}
"""


README = """# Attention mechanisms for CNNs: the course notebooks

This folder holds the chapters (`notebooks/`) and the `course_lib` package their checks come from.

    python -m venv .venv && . .venv/bin/activate
    pip install ".[lab]"          # or `pip install -e ".[lab]"`; GPU users install their torch build first
    jupyter lab notebooks

Run each notebook from the top. Write your code where a cell says `# YOUR CODE HERE`, then run the test
cell below it: it prints `[ok] ...` when your code passes the checks, or explains what went wrong. Your
instructor grades the same exercises with more checks, so a passing visible check is a good sign, not a
promise.

On Colab: open a chapter from the course's GitHub repository and run its first cell; it installs this
package as a wheel published with the repository's releases (no reference solutions, no hidden checks).

Chapters: {chapters}
"""


#: Sections of the repository's README that the chapters link to, copied into the bundle's README.
STUDENT_README_SECTIONS = ("Course map", "Paper or official code?")
#: Files outside course_lib/ that the chapters link to.
STUDENT_DOCS = ("docs/glossary.md",)


def _readme_sections(root: Path, titles: tuple[str, ...]) -> str:
    """The named ``## `` sections of ``root``'s README.md, verbatim (one source for both READMEs)."""
    readme = root / "README.md"
    if not readme.exists():
        return ""
    text, out = readme.read_text(encoding="utf-8"), []
    for title in titles:
        head = f"\n## {title}\n"
        start = text.find(head)
        if start < 0:
            continue
        end = text.find("\n## ", start + len(head))
        out.append(text[start:end if end >= 0 else len(text)].rstrip() + "\n")
    return "".join(out)


def check_notebooks(folder: Path) -> list[str]:
    """Released notebooks that still contain something a student must not see."""
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        found += [f"{path}: contains {marker!r}" for marker in FORBIDDEN_IN_NOTEBOOKS if marker in text]
    return found


def build(out: Path, *, root: Path = nbs.REPO, chapters: list[str] | None = None) -> Bundle:
    """Write the student bundle to ``out`` (replaced if it exists) from the repository at ``root``."""
    root, out = Path(root).resolve(), Path(out).resolve()
    inside = [root / "course_lib", root / nbs.RELEASE, root / nbs.SOURCE, root / "tests"]
    if out == root or out in root.parents or any(out == p or p in out.parents for p in inside):
        raise ValueError(f"out must be a folder of its own, not {out}")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ValueError(f"{out} is not empty and holds no earlier bundle ({MARKER}); choose another --out")
    released = nbs.chapters(root, nbs.RELEASE)
    chapters = released if chapters is None else chapters
    missing = sorted(set(chapters) - set(released))
    if missing:
        raise ValueError(f"no released notebook for {missing}: run `make release` (released: {released})")
    leaks = check_notebooks(root / nbs.RELEASE)
    if leaks:
        raise ValueError("released notebooks that must not reach students:\n  " + "\n  ".join(leaks))

    package = root / "course_lib"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(package, out / "course_lib", ignore=_ignore(package))
    for chapter in chapters:
        shutil.copytree(root / nbs.RELEASE / chapter, out / nbs.RELEASE / chapter, ignore=shutil.ignore_patterns(*_JUNK))
    (out / "pyproject.toml").write_text(_pyproject(root), encoding="utf-8")
    (out / MARKER).write_text("built by `python -m course_lib student-bundle`; rebuilt in place\n", encoding="utf-8")
    (out / "README.md").write_text(README.format(chapters=", ".join(chapters) or "none yet")
                                   + _readme_sections(root, STUDENT_README_SECTIONS), encoding="utf-8")
    for doc in STUDENT_DOCS:  # the glossary the chapters link to
        if (root / doc).exists():
            (out / doc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / doc, out / doc)

    excluded = _excluded_modules()
    broken, lazy = [], []
    for path in sorted((out / "course_lib").rglob("*.py")):
        parts = path.relative_to(out).with_suffix("").parts
        top, needs = needs_of(path, ".".join(parts), excluded)
        broken += [f"{'.'.join(parts)} imports {bad}" for bad in top]
        lazy += needs
    if broken:
        shutil.rmtree(out)
        raise ValueError("modules kept in the bundle import a left-out module and would not import:\n  "
                         + "\n  ".join(broken))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return Bundle(out=out, chapters=list(chapters), files=files, lazy_needs=lazy)


def build_wheel(bundle: Path, dist: Path) -> Path:
    """Build the bundle at ``bundle`` into a wheel in ``dist``; return its path."""
    bundle, dist = Path(bundle), Path(dist)
    if not (bundle / MARKER).exists():
        raise ValueError(f"{bundle} is not a student bundle (no {MARKER}); build one first")
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("course_lib-*.whl"):
        old.unlink()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
               str(bundle), "-w", str(dist)]
    if importlib.util.find_spec("setuptools") is not None:  # build offline with the setuptools at hand
        command.insert(5, "--no-build-isolation")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = sorted(dist.glob("course_lib-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"building the student wheel failed (pip exit {done.returncode}):\n{done.stderr[-3000:]}")
    # the build leaves its work folders in the bundle; the bundle stays what students receive
    for junk in ("build", "course_lib.egg-info"):
        shutil.rmtree(bundle / junk, ignore_errors=True)
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib student-bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/student-bundle"), help="where to write it")
    parser.add_argument("--wheel", type=Path, metavar="DIR", help="also build the bundle's course_lib as a wheel in DIR")
    parser.add_argument("chapters", nargs="*", help="chapters to include (default: every released one)")
    args = parser.parse_args(argv)
    try:
        bundle = build(args.out, chapters=args.chapters or None)
        wheel = build_wheel(bundle.out, args.wheel) if args.wheel else None
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in bundle.files)
    print(f"student bundle: {bundle.out} ({len(bundle.files)} files, {size / 2**20:.1f} MiB)")
    print(f"  chapters: {', '.join(bundle.chapters) or 'none (run `make release`)'}")
    print(f"  left out of course_lib: {', '.join(EXCLUDED)}")
    if bundle.lazy_needs:
        print("  these functions need a left-out module and fail if a student calls them:")
        for line in bundle.lazy_needs:
            print(f"    {line}")
    print(f"  install: pip install {bundle.out}  (then: jupyter lab {bundle.out / nbs.RELEASE})")
    if wheel is not None:
        where = nbs.publishing()
        print(f"student wheel: {wheel}")
        if wheel.name != where.wheel_name:
            print(f"error: the chapters' setup cell installs {where.wheel_name}, not {wheel.name}", file=sys.stderr)
            return 2
        print(f"  publish it as an asset of the GitHub release v{where.version} of {where.repository}:")
        print(f"  the setup cell downloads {where.wheel_url}")
    return 0
