"""environment.yml (conda users) installs the same packages, with the same version bounds, as the pip path
(pyproject.toml: runtime dependencies + the lab and test extras). conda is not reachable here, so we parse."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "psycopg2": "psycopg2-binary"}  # conda-forge names that differ from PyPI's
#: lab or test packages that environment.yml installs from PyPI (its pip section) rather than from conda-forge
FROM_PYPI = {"copydetect"}


def _split(spec: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*?)\s*", spec)
    assert match, f"cannot parse requirement {spec!r}"
    name, version = match.groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def pip_requirements(pyproject: dict) -> dict[str, str]:
    project = pyproject["project"]
    specs = list(project["dependencies"])
    for extra in ("lab", "test"):
        specs += [s for s in project["optional-dependencies"][extra] if not s.startswith("course-lib")]
    return dict(_split(s) for s in specs)


def conda_requirements(env: dict) -> dict[str, str]:
    found = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):  # the nested pip section: only the packages named in FROM_PYPI count here
            for spec in item["pip"]:
                if not spec.startswith("-") and _split(spec)[0] in FROM_PYPI:
                    name, version = _split(spec)
                    found[name] = version
            continue
        name, version = _split(item)
        if name in {"python", "pip"}:
            continue
        found[CONDA_TO_PIP.get(name, name)] = version
    return found


def _load():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    return pyproject, env


def test_environment_yml_matches_pyproject():
    pyproject, env = _load()
    assert conda_requirements(env) == pip_requirements(pyproject)


def test_environment_yml_installs_the_course_package_and_python_range():
    pyproject, env = _load()
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert "--editable ." in pip_section
    python = next(i for i in env["dependencies"] if isinstance(i, str) and i.startswith("python"))
    assert _split(python)[1] == pyproject["project"]["requires-python"]


def test_comparison_notices_a_drift():
    # the check must be able to fail: drop one package and loosen another
    pyproject, env = _load()
    env["dependencies"] = [d for d in env["dependencies"] if not (isinstance(d, str) and d.startswith("einops"))]
    env["dependencies"] = [("nbgrader" if isinstance(d, str) and d.startswith("nbgrader") else d)
                           for d in env["dependencies"]]
    assert conda_requirements(env) != pip_requirements(pyproject)
    missing = set(pip_requirements(pyproject)) - set(conda_requirements(env))
    assert missing == {"einops"}
