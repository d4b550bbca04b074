"""Relative links in the course's markdown (README, docs, notebooks' markdown cells): each must reach a file,
and a #fragment must name a heading of it (GitHub's anchor rule for .md files; JupyterLab's or GitHub's for
notebooks). Used for the repository (tests/test_links.py) and for the student bundle (tests/test_bundle.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
EXPLICIT = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def github_slug(heading: str) -> str:
    text = re.sub(r"`|\*\*|\*|__", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def jupyter_slug(heading: str) -> str:
    return heading.strip().replace(" ", "-")


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


def anchors(path: Path) -> set[str]:
    text = markdown_of(path)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    heads = HEADING.findall(text)
    found = set(EXPLICIT.findall(text))
    slugs: dict[str, int] = {}
    for h in heads:
        s = github_slug(h)
        n = slugs.get(s, 0)
        slugs[s] = n + 1
        found.add(s if n == 0 else f"{s}-{n}")
        found.add(jupyter_slug(h))
    return found


def broken_links(files: list[Path], root: Path) -> list[str]:
    """'file: target (why)' for every relative link in ``files`` that does not resolve inside ``root``."""
    bad = []
    for path in files:
        text = re.sub(r"```.*?```", "", markdown_of(path), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # http:, https:, mailto:
            where, _, fragment = unquote(target).partition("#")
            dest = (path.parent / where).resolve() if where else path
            name = f"{path.relative_to(root)}: {target}"
            if root.resolve() not in dest.parents and dest != root.resolve():
                bad.append(f"{name} (leaves {root.name}/)")
            elif not dest.exists():
                bad.append(f"{name} (no such file)")
            elif fragment and dest.suffix in {".md", ".ipynb"} and fragment not in anchors(dest):
                bad.append(f"{name} (no heading #{fragment} in {dest.name})")
    return bad


def course_markdown(root: Path) -> list[Path]:
    files = [root / "README.md", *sorted(root.glob("*.md")), *sorted((root / "docs").glob("*.md")),
             *sorted(root.glob("solutions/*/*.ipynb")), *sorted(root.glob("notebooks/*/*.ipynb"))]
    return sorted({f for f in files if f.exists()})
