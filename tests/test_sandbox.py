"""The grading sandbox's parts, each with its counter-test (the same attack without the sandbox works).

tests/test_hostile.py grades whole notebooks; these tests are fast and look at one mechanism at a time:
the guard's policies (tests/hostile/guard_probe.py runs attacks as student code with the guard armed and
without it), the proofs, the resource limits, the config, and nbgrader's cell repair.
"""
from __future__ import annotations

import dis
import hmac
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import sandbox, sandbox_guard

TESTS = Path(__file__).resolve().parent
PROBE = TESTS / "hostile" / "guard_probe.py"

# what each attack must meet with the guard armed (a substring of its outcome)
ARMED = {
    "read_reference": "reading", "read_hidden": "reading", "reference_code": "code of the reference solution",
    "write_outside": "writing", "write_inside": "ok: 'written'", "ctypes": "ctypes", "subprocess": "subprocess",
    "thread_alive": "another thread is running your code", "gc_walk": "gc.get_objects",
    "audit_hook": "ok: 'not called'", "settrace": "sys.settrace", "socket": "socket", "proc_mem": "/mem",
    "kill_parent": "another process", "sqlite_outside": "database", "fake_library_code": "claims to come from",
    "proof": "ok: 'passed'", "frame_peek": "looking at frames while a check runs", "typing_frames": "ok: 'passed'",
    "frame_via_inspect": "looking at frames while a check runs",
    "torch_function": "__torch_function__", "delegate": "reference solution", "reload_reference": "reading",
    "global_hook": "a global hook was registered",
}
# ... and without it: every attack works (frame_peek gets the float32 values right by reading the check's
# locals, then fails at the float64 copy the visible check runs next, whose values it returns in float32)
UNGUARDED = {name: "ok:" for name in ARMED} | {"frame_peek": "in float64 returned torch.float32",
                                               "audit_hook": "ok: 'called'"}


def _probe(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PROBE), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(TESTS)})


@pytest.fixture(scope="module")
def probes():
    running = {mode: _probe(mode) for mode in ("on", "off")}
    found = {}
    for mode, proc in running.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        data = json.loads(out.strip().splitlines()[-1])
        found[mode] = {"key": data["key"], "escape": Path(data["escape"]), "results": data["results"]}
    yield found
    for mode in found.values():
        mode["escape"].unlink(missing_ok=True)


@pytest.mark.parametrize("attack", sorted(ARMED))
def test_guard_stops_the_attack(probes, attack):
    outcome = probes["on"]["results"][attack]["outcome"]
    assert ARMED[attack] in outcome, outcome


@pytest.mark.parametrize("attack", sorted(ARMED))
def test_without_the_guard_the_attack_works(probes, attack):
    outcome = probes["off"]["results"][attack]["outcome"]
    assert UNGUARDED[attack] in outcome, outcome


def test_nothing_escaped_with_the_guard(probes):
    assert not probes["on"]["escape"].exists()
    assert probes["off"]["escape"].exists()  # the counter-test


def test_a_pass_carries_a_proof_only_the_grader_can_check(probes):
    printed = probes["on"]["results"]["proof"]["printed"]
    found = re.findall(sandbox_guard.PROOF_PATTERN, printed)
    assert len(found) == 1, printed
    number, signature = int(found[0][0]), found[0][1]
    key = bytes.fromhex(probes["on"]["key"])
    want = hmac.new(key, sandbox_guard.proof_message(number, "SqueezeExcitation"), "sha256").hexdigest()[:32]
    assert signature == want
    other = hmac.new(b"another key", sandbox_guard.proof_message(number, "SqueezeExcitation"), "sha256")
    assert signature != other.hexdigest()[:32]
    assert "[proof" not in probes["off"]["results"]["proof"]["printed"]  # outside grading: nothing changes
    assert "[ok] SqueezeExcitation" in probes["off"]["results"]["proof"]["printed"]


def _nested_code(code: types.CodeType, path=()):
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield path + (const.co_name,), const
            yield from _nested_code(const, path + (const.co_name,))


def test_the_guard_reads_no_global_at_run_time():
    """Student code can replace module attributes (builtins too): the hook must not look any up."""
    used = {}
    for path, code in _nested_code(sandbox_guard.install.__code__):
        if "arm" in path:  # arm() runs once, before any student code
            continue
        names = {i.argval for i in dis.get_instructions(code) if i.opname in {"LOAD_GLOBAL", "LOAD_NAME"}}
        if names:
            used[".".join(path)] = sorted(names)
    assert used == {}


def test_the_counter_test_of_the_global_check_sees_globals():
    def leaky():
        return len([])

    assert any(i.opname == "LOAD_GLOBAL" for i in dis.get_instructions(leaky.__code__))


# --------------------------------------------------------------------------------------------
# the grader's side: proofs, expected checks, limits, config, cell repair
# --------------------------------------------------------------------------------------------
TEST_SE = ("from course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\n"
           "from course_lib.hidden.ch01_se import hidden_se\nhidden_se(SqueezeExcitation)")


def test_expected_checks_reads_the_calls_of_a_test_cell():
    assert sandbox.expected_checks(TEST_SE) == [{"SqueezeExcitation"}, {"SqueezeExcitation (hidden)"}]
    aliased = "import course_lib.checks.ch01_se as c\nc.check_se_parameter_count(f)"
    assert sandbox.expected_checks(aliased) == [{"se_parameter_count"}]
    assert sandbox.expected_checks("assert double(3) == 6") == []
    assert sandbox.expected_checks("this is not python (") == []


def _graded(source: str, *texts: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "t",
                                 "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in texts]
    return cell


def _proof(key: str, number: int, name: str, *, forged: bool = False) -> str:
    sig = hmac.new(bytes.fromhex(key), sandbox_guard.proof_message(number, name), "sha256").hexdigest()[:32]
    return f"[ok] {name}: 3 checks passed (0.1 s) [proof {number}:{'0' * 32 if forged else sig}]\n"


def _checked(*cells) -> nbformat.NotebookNode:
    executor = sandbox.SandboxExecute()
    executor._key = "ab" * 32
    nb = nbformat.v4.new_notebook(cells=list(cells))
    executor._check_proofs(nb)
    return nb


def _errors(cell) -> list[str]:
    return [o["ename"] for o in cell.outputs if o.get("output_type") == "error"]


def test_valid_proofs_give_the_points_and_are_removed():
    key = "ab" * 32
    nb = _checked(_graded(TEST_SE, _proof(key, 1, "SqueezeExcitation"),
                          _proof(key, 2, "SqueezeExcitation (hidden)")))
    assert _errors(nb.cells[0]) == []
    assert "[proof" not in "".join(o["text"] for o in nb.cells[0].outputs)
    assert "[ok] SqueezeExcitation" in nb.cells[0].outputs[0]["text"]


@pytest.mark.parametrize("trouble", ["missing", "forged", "replayed", "other_check"])
def test_a_cell_without_its_proofs_scores_zero(trouble):
    key = "ab" * 32
    first = _graded(TEST_SE, _proof(key, 1, "SqueezeExcitation"), _proof(key, 2, "SqueezeExcitation (hidden)"))
    texts = {
        "missing": [_proof(key, 3, "SqueezeExcitation")],
        "forged": [_proof(key, 3, "SqueezeExcitation"), _proof(key, 4, "SqueezeExcitation (hidden)", forged=True)],
        "replayed": [_proof(key, 1, "SqueezeExcitation"), _proof(key, 2, "SqueezeExcitation (hidden)")],
        "other_check": [_proof(key, 3, "SqueezeExcitation"), _proof(key, 4, "se_parameter_count")],
    }[trouble]
    nb = _checked(first, _graded(TEST_SE, *texts))
    assert _errors(nb.cells[0]) == []
    assert nb.cells[1].outputs[0]["output_type"] == "error"
    assert nb.cells[1].outputs[0]["ename"] == sandbox.ERROR_NAME
    from nbgrader.utils import determine_grade

    assert determine_grade(nb.cells[1])[0] == 0 and determine_grade(nb.cells[0])[0] == 2


def test_an_error_comes_before_any_partial_credit():
    """nbgrader reads the first execute_result as partial credit and stops looking: the error must be first."""
    cell = _graded("assert False")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2.0"}, execution_count=1),
                    nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])]
    from nbgrader.utils import determine_grade

    assert determine_grade(cell)[0] == 2  # the hole
    nb = _checked(cell)
    assert determine_grade(nb.cells[0])[0] == 0


def _run_limited(code: str, limits: dict) -> subprocess.CompletedProcess:
    script = ("import json, sys\nfrom course_lib.grading.sandbox_launcher import apply_limits\n"
              f"apply_limits({limits!r})\n{code}")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_the_memory_limit_turns_a_bomb_into_a_memory_error():
    bomb = "blocks = []\ntry:\n    while True:\n        blocks.append(bytearray(64 * 2**20))\n" \
           "except MemoryError:\n    print('stopped at', len(blocks) * 64, 'MiB')"
    done = _run_limited(bomb, {"memory_mb": 512})
    assert done.returncode == 0 and "stopped at" in done.stdout, done.stderr
    assert int(done.stdout.split()[2]) <= 512 + 64


def test_the_file_size_limit_fails_the_write_and_keeps_the_process():
    write = ("import tempfile\nf = tempfile.TemporaryFile()\ntry:\n    f.write(b'x' * (3 * 2**20)); f.flush()\n"
             "except OSError as err:\n    print('refused', err.errno)")
    done = _run_limited(write, {"file_mb": 1})
    assert done.returncode == 0 and "refused" in done.stdout, (done.returncode, done.stderr)
    unlimited = _run_limited(write, {})
    assert unlimited.returncode == 0 and "refused" not in unlimited.stdout


def test_harden_swaps_nbgraders_preprocessors(monkeypatch):
    from traitlets.config import Config

    monkeypatch.delenv("COURSE_SANDBOX", raising=False)
    config = sandbox.harden(Config(), memory_mb=1000)
    assert sandbox.is_hardened(config)
    assert config.SandboxExecute.memory_mb == 1000
    assert sandbox.SandboxOverwriteCells in config.Autograde.sanitize_preprocessors
    assert not sandbox.is_hardened(Config())
    with pytest.raises(TypeError, match="unknown sandbox setting"):
        sandbox.harden(Config(), memory=1000)
    monkeypatch.setenv("COURSE_SANDBOX", "off")
    assert not sandbox.is_hardened(sandbox.harden(Config()))


def test_deduplication_leaves_no_empty_metadata_and_unique_ids():
    nb = nbformat.v4.new_notebook()
    first = _graded("check()")
    second = _graded("print('a copy')")
    second["id"] = first["id"]
    nb.cells = [first, nbformat.v4.new_code_cell("x = 1"), second]
    nb.cells[1]["id"] = first["id"]
    from nbgrader.preprocessors import DeduplicateIds

    plain, _ = DeduplicateIds().preprocess(nbformat.from_dict(json.loads(json.dumps(nb))), {})
    assert plain.cells[0].metadata["nbgrader"] == {}  # what makes nbgrader's OverwriteCells fail later
    fixed, _ = sandbox.SandboxDeduplicateIds().preprocess(nb, {})
    assert "nbgrader" not in fixed.cells[0].metadata and fixed.cells[2].metadata["nbgrader"]["grade_id"] == "t"
    assert len({c["id"] for c in fixed.cells}) == 3


def test_a_released_test_cell_gets_its_hidden_tests_back_without_a_tampering_warning(tmp_path, monkeypatch):
    """A lecturer trial: every autograde warned "Attribute 'checksum' for cell test_se has changed!" for every
    test cell of every student, since the gradebook keeps the cells with their hidden tests (and checksums of
    those) and students get them without. The released cell is restored quietly; an edited one still warns."""
    from nbgrader import utils
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import OverwriteCells

    full = "check_se(SE)\n### BEGIN HIDDEN TESTS\ncheck_se_hidden(SE)\n### END HIDDEN TESTS"
    released = "check_se(SE)"
    meta = {"grade": True, "grade_id": "test_se", "locked": True, "points": 3.0, "solution": False,
            "schema_version": 3}
    source = nbformat.v4.new_code_cell(full, metadata={"nbgrader": dict(meta)})
    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        gb.add_assignment("ch")
        gb.add_notebook("ch", "ch")
        gb.add_grade_cell("test_se", "ch", "ch", max_score=3, cell_type="code")
        gb.add_source_cell("test_se", "ch", "ch", cell_type="code", locked=True, source=full,
                           checksum=utils.compute_checksum(source))
    resources = {"nbgrader": {"notebook": "ch", "assignment": "ch", "db_url": db_url}}

    def graded(text: str, overwrite) -> tuple[str, list]:
        reported = []
        monkeypatch.setattr(overwrite, "report_change", lambda self, *args: reported.append(args))
        cell = nbformat.v4.new_code_cell(text, metadata={"nbgrader": dict(meta)})
        nb, _ = overwrite().preprocess(nbformat.v4.new_notebook(cells=[cell]), resources)
        return nb.cells[0].source, reported

    assert graded(released, OverwriteCells)[0] == full  # nbgrader restores it too, ...
    assert [r[1] for r in graded(released, OverwriteCells)[1]] == ["checksum"]  # ... reporting a change
    assert graded(released, sandbox.SandboxOverwriteCells) == (full, [])
    edited, reported = graded("pass  # no checks here", sandbox.SandboxOverwriteCells)
    assert edited == full and [r[1] for r in reported] == ["checksum"]
