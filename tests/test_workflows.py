"""The release pipeline (issue 28): GitHub Actions workflows in .github/workflows/, checked here because they cannot
run here.

- every workflow is valid against GitHub's workflow schema (the copy that PyPI's check-jsonschema ships:
  ``check-jsonschema --builtin-schema vendor.github-workflows``) and has no finding of zizmor, the workflow
  linter (offline, its default "regular" persona: template injection, credentials left in the checkout, excessive
  permissions, actions not pinned to a commit, ...);
- tests.yml runs the README's ``make test`` (through .ci/run) on every push and pull request;
- release.yml, on a tag v*, checks that the tag names pyproject.toml's version, builds the student wheel with
  ``make student-wheel`` and attaches it to the release of the tag (where the setup cells download it:
  ``course_lib.tools.notebooks.Publishing.wheel_url``), builds the book with ``make book`` and deploys it to
  GitHub Pages (the address course.toml gives; tests/test_pipeline.py checks that one).

Each check is shown to fail on a copy of a workflow with the mistake it exists to catch.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from course_lib.tools import notebooks as nbs

REPO = nbs.REPO
WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent
SHA = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _triggers(workflow: dict) -> dict:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def _steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec.get("steps", [])]


def _tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is not installed beside {sys.executable}: pip install -e '.[test]'"
    return str(path)


def schema_errors(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def zizmor(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_workflows_are_there():
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["release.yml", "tests.yml"]


def test_workflows_are_valid_against_githubs_schema():
    result = schema_errors(sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_counter_the_schema_check_fails_on_an_invalid_workflow(tmp_path):
    text = (WORKFLOWS / "tests.yml").read_text(encoding="utf-8")
    broken = tmp_path / "tests.yml"
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"), encoding="utf-8")
    result = schema_errors([broken])
    assert result.returncode != 0 and "runs_on" in result.stdout + result.stderr, result.stdout + result.stderr


def test_zizmor_finds_nothing_in_the_workflows():
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mistake, audit", [
    # the tag name pasted into the shell: a tag named `v1";curl ...` runs
    (("        env:\n          TAG: ${{ github.ref_name }}\n        run: |\n"
      "          version=", "        run: |\n          TAG=${{ github.ref_name }}\n          version="), "template-injection"),
    # the checkout leaves the token in .git/config for every later step
    (("        with:\n          persist-credentials: false\n", "\n"), "artipacked"),
    # an action pinned to a tag that can be moved
    (("actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97  # v7.0.0", "actions/setup-python@v7"),
     "unpinned-uses"),
])
def test_counter_zizmor_finds_a_planted_mistake(tmp_path, mistake, audit):
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    old, new = mistake
    assert old in text, old
    planted = tmp_path / ".github" / "workflows" / "release.yml"
    planted.parent.mkdir(parents=True)
    planted.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = zizmor(planted)
    assert result.returncode != 0 and audit in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit():
    uses = [step["uses"] for name in ("tests.yml", "release.yml") for _, step in _steps(_workflow(name))
            if "uses" in step]
    assert uses and all(SHA.match(u) for u in uses), [u for u in uses if not SHA.match(u)]


def test_tests_run_make_test_on_every_push_and_pull_request():
    workflow = _workflow("tests.yml")
    triggers = _triggers(workflow)
    assert "push" in triggers and "pull_request" in triggers
    assert not (triggers["push"] or {}).get("branches") and not (triggers["push"] or {}).get("paths")
    runs = [step.get("run", "") for _, step in _steps(workflow)]
    assert "bash .ci/run" in runs, runs
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "make test", ".ci/run no longer ends with the README's `make test`"
    assert "make test" in (REPO / "README.md").read_text(encoding="utf-8")


def test_release_attaches_the_student_wheel_where_the_setup_cells_download_it():
    workflow = _workflow("release.yml")
    assert _triggers(workflow)["push"] == {"tags": ["v*"]}
    where = nbs.publishing()
    # the setup cells download releases/download/v<version>/<wheel_name>: a release named by the tag
    assert where.wheel_url.endswith(f"/releases/download/v{where.version}/{where.wheel_name}")
    steps = [step for job, step in _steps(workflow) if job == "wheel"]
    script = "\n".join(step.get("run", "") for step in steps)
    assert '[ "$TAG" != "v$version" ]' in script and "exit 1" in script  # a tag that is not v<version> fails
    assert 'WHEEL=out/dist/course_lib-$version-py3-none-any.whl' in script
    assert where.wheel_name == f"course_lib-{where.version}-py3-none-any.whl"
    assert script.index("make student-wheel") < script.index('gh release upload "$TAG" "$WHEEL"')
    assert workflow["jobs"]["wheel"]["permissions"] == {"contents": "write"}


def test_release_builds_the_book_and_deploys_it_to_pages():
    workflow = _workflow("release.yml")
    book = [step for job, step in _steps(workflow) if job == "book"]
    assert any(step.get("run") == "make book" for step in book)
    upload = next(step for step in book if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "out/book"
    assert "out/book" in (REPO / "Makefile").read_text(encoding="utf-8").split("\nbook:")[1].split("\n\n")[0]
    pages = workflow["jobs"]["pages"]
    assert set(pages["needs"]) == {"book", "wheel"}
    assert pages["environment"]["name"] == "github-pages"
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in pages["steps"])


def test_no_job_has_more_than_it_needs():
    for name in ("tests.yml", "release.yml"):
        workflow = _workflow(name)
        assert workflow["permissions"] == {}, f"{name}: the default token must have no permission"
        for job, spec in workflow["jobs"].items():
            assert "permissions" in spec, f"{name}: job {job} must say which permissions it needs"
