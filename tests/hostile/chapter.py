"""A tiny stand-in chapter graded by the course's real checks (chapter 01's SE checks, visible and hidden).

Three exercises, 4 points: ``SqueezeExcitation`` (2 points: visible + hidden checks), ``se_parameter_count``
(1 point: visible + hidden checks), ``double`` (1 point: a plain ``assert`` test, which the course's checks
do not back, so it shows what nbgrader alone gives).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib import notebooks as nbs

CHAPTER = "97_guarded"

SE = '''import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        ### BEGIN SOLUTION
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        ### END SOLUTION

    def attention(self, x):
        ### BEGIN SOLUTION
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return x * self.attention(x)
        ### END SOLUTION'''

TEST_SE = '''from course_lib.checks.ch01_se import check_se
check_se(SqueezeExcitation)
### BEGIN HIDDEN TESTS
from course_lib.checks.hidden.ch01_se import hidden_se
hidden_se(SqueezeExcitation)
### END HIDDEN TESTS'''

COUNT = '''def se_parameter_count(channels, reduction=16):
    ### BEGIN SOLUTION
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels
    ### END SOLUTION'''

TEST_COUNT = '''from course_lib.checks.ch01_se import check_se_parameter_count
check_se_parameter_count(se_parameter_count)
### BEGIN HIDDEN TESTS
from course_lib.checks.hidden.ch01_se import hidden_se_parameter_count
hidden_se_parameter_count(se_parameter_count)
### END HIDDEN TESTS'''

DOUBLE = '''def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION'''

TEST_DOUBLE = '''assert double(3) == 6, "double(3) should be 6"
### BEGIN HIDDEN TESTS
assert double(-2) == -4
### END HIDDEN TESTS'''

#: grade cell -> points
POINTS = {"test_se": 2.0, "test_count": 1.0, "test_double": 1.0}
SOLUTION_IDS = {"se": "se_solution", "count": "count_solution", "double": "double_solution"}


def source_notebook() -> nbformat.NotebookNode:
    return nbs.new_notebook(
        [
            nbs.md("# A guarded chapter\nWrite `SqueezeExcitation`, `se_parameter_count` and `double`."),
            nbs.solution(SE, SOLUTION_IDS["se"]),
            nbs.test(TEST_SE, "test_se", POINTS["test_se"]),
            nbs.md("Count the parameters."),
            nbs.solution(COUNT, SOLUTION_IDS["count"]),
            nbs.test(TEST_COUNT, "test_count", POINTS["test_count"]),
            nbs.solution(DOUBLE, SOLUTION_IDS["double"]),
            nbs.test(TEST_DOUBLE, "test_double", POINTS["test_double"]),
        ],
        budget_s=60,
    )


def write_source(root: Path) -> Path:
    """Write the chapter under ``root/solutions/``; return its path."""
    path = nbs.notebook_path(CHAPTER, root)
    nbs.write_atomic(path, nbs.dumps(source_notebook()))
    return path
