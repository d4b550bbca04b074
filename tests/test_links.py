"""Every relative link in the README, docs and chapters reaches its file and heading (tests/links.py)."""
from __future__ import annotations

from pathlib import Path

from links import anchors, broken_links, course_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_every_relative_link_resolves():
    bad = broken_links(course_markdown(ROOT), ROOT)
    assert not bad, "broken links:\n  " + "\n  ".join(bad)


def test_the_link_check_fails_on_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "glossary.md").write_text("# Glossary\n\n## Output stride\n\ntext\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/glossary.md#output-stride) [gone](docs/missing.md) "
                    "[no anchor](docs/glossary.md#mIoU) [web](https://example.org/x) `[code](nowhere.md)`\n")
    bad = broken_links([page], tmp_path)
    assert [b.split(": ", 1)[1] for b in bad] == ["docs/missing.md (no such file)",
                                                  "docs/glossary.md#mIoU (no heading #mIoU in glossary.md)"]
    assert "output-stride" in anchors(tmp_path / "docs" / "glossary.md")
