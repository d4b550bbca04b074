"""What the browser tests share: Debian's chromium driven by Playwright (never `playwright install`)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_browser() -> str | None:
    """Why Playwright cannot drive Debian's chromium here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file():
        return f"no browser at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    return None


@contextlib.contextmanager
def chromium(what: str, also_needs: Callable[[], str | None] = lambda: None) -> Iterator:
    """A headless chromium, or a skip that says why (a failure in CI, where the browser tests must run).
    ``also_needs()`` names anything else the test needs that is missing, or returns None."""
    reason = missing_browser() or also_needs()
    if reason:
        if IN_CI:
            pytest.fail(f"{what} must run in CI, but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium's sandbox refuses root
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()
