"""``make test-gpu`` without a GPU: it stops at once with a clear message, sets nothing up, runs nothing.

On a CUDA machine these tests skip; ``make test-gpu`` itself is the GPU run. The report writer and the
helpers of ``run_gpu_check.py`` are checked here on made-up results, so that the one GPU run does not
find a bug in them.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "gpu" / "run_gpu_check.py"
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: make test-gpu would run")
MAKE = shutil.which("make")


def load_script():
    spec = importlib.util.spec_from_file_location("run_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_make(*args: str, path: str | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    start = time.perf_counter()
    proc = subprocess.run([MAKE, "--no-print-directory", "test-gpu", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.perf_counter() - start


@NO_GPU
@pytest.mark.skipif(MAKE is None, reason="no make")
def test_make_test_gpu_stops_before_any_setup_without_a_gpu(tmp_path):
    """No nvidia-smi with a GPU: make stops before creating the CUDA environment (no download)."""
    venv = REPO / "out" / "venv-gpu"
    existed = venv.exists()
    bin_dir = tmp_path / "bin"  # a PATH with grep alone: whatever the machine has, no nvidia-smi
    bin_dir.mkdir()
    (bin_dir / "grep").symlink_to(shutil.which("grep"))
    proc, seconds = run_make(path=str(bin_dir))
    assert proc.returncode != 0
    assert "make test-gpu needs an NVIDIA GPU: nvidia-smi is missing or lists no GPU here" in proc.stderr, proc.stderr
    assert "nothing was set up or run" in proc.stderr and "GPU_PYTHON=" in proc.stderr
    assert seconds < 30, seconds
    assert venv.exists() == existed, "make test-gpu created the CUDA environment on a machine without a GPU"


@NO_GPU
@pytest.mark.skipif(MAKE is None, reason="no make")
def test_make_test_gpu_with_a_cpu_torch_says_cuda_is_unavailable():
    report = REPO / "out" / "gpu" / "report.md"
    before = report.stat().st_mtime if report.exists() else None
    proc, seconds = run_make(f"GPU_PYTHON={sys.executable}")
    assert proc.returncode != 0
    assert "make test-gpu: no CUDA device: torch.cuda.is_available() is False" in proc.stderr, proc.stderr
    assert sys.executable in proc.stderr and "nothing was run" in proc.stderr
    assert seconds < 60, seconds
    assert (report.stat().st_mtime if report.exists() else None) == before, "a report was written"


@NO_GPU
def test_the_script_exits_2_without_cuda():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", "/nonexistent/never-made"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "torch.cuda.is_available() is False" in proc.stderr
    assert not Path("/nonexistent/never-made").exists()


def test_the_cuda_step_selects_the_files_with_cuda_cases():
    files = load_script().cuda_test_files()
    assert "tests/test_autocast.py" not in files  # its own step
    for expected in ("tests/test_ch01_se.py", "tests/test_learned.py", "tests/test_reference_nonlocal_gcnet.py",
                     "tests/test_reference_invariants.py"):
        assert expected in files, (expected, files)
    assert "tests/test_cli.py" not in files


def test_junit_counts_and_the_report(tmp_path):
    script = load_script()
    xml = tmp_path / "x.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_a" name="ok"/><testcase classname="tests.test_a" name="bad">'
        '<failure message="boom"/></testcase><testcase classname="tests.test_a" name="skip"><skipped/></testcase>'
        '<testcase classname="tests.test_a" name="ok2"/></testsuite></testsuites>')
    counts = script.junit_counts(xml)
    assert (counts["passed"], counts["failed"], counts["errors"], counts["skipped"]) == (2, 1, 0, 1)
    assert counts["failed_tests"] == ["tests.test_a::bad"]
    results = {
        "cuda": {"ok": False, "seconds": 12.0, **counts},
        "autocast": {"ok": True, "passed": 84, "failed": 0, "errors": 0, "skipped": 0, "seconds": 5.0},
        "autocast_table": {"ok": True, "seconds": 3.0, "seeds": 12, "device": "cuda",
                           "rows": [{"case": "se", "group": "GATE", "float16": 0.0004, "float16_bound": 0.005,
                                     "bfloat16": 0.003, "bfloat16_bound": 0.02}]},
        "chapter": {"ok": True, "seconds": 20.0, "chapter": "07_nonlocal_gcnet", "check_devices": ["cpu", "cuda"],
                    "graded_cells": {"passed": 10, "failed": 0}, "failures": [], "other_errors": [], "passed": 10,
                    "failed": 0},
        "training": {"ok": True, "seconds": 30.0, "accuracy": 0.95, "device": "cuda", "budget": "full",
                     "train_seconds": 9.5, "shipped_accuracy": 0.9525, "shipped_device": "cpu"},
    }
    env = {"gpu": "Made-up GPU", "torch": "2.x", "torch_cuda": "12.6"}
    report = script.write_report(tmp_path, env, results, 70.0, 360.0).read_text()
    assert "- gpu: Made-up GPU" in report and "- total: 70 s (step budget 360 s)" in report
    assert "| cuda | FAIL | 2 | 1 | 0 | 1 | 12.0 |" in report
    assert "- tests.test_a::bad" in report
    assert "checks swept cpu, cuda" in report
    assert "accuracy 0.9500 on cuda (full budget, 9.5 s training); shipped checkpoint (cpu): 0.9525" in report
    assert "| se | 0.0004 (0.005) | 0.003 (0.02) |" in report


def test_readme_documents_make_test_gpu():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next((line for line in readme.splitlines() if line.startswith("| `make test-gpu`")), None)
    assert row is not None, "README's 'Other commands' table has no make test-gpu row"
    assert "out/gpu/report.md" in row and "torch.cuda.is_available()" in row
