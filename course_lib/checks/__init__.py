"""Graded checks, shared by pytest and by the notebooks' test cells.

Visible checks (``course_lib.checks.chNN_*``) run from invariants and stored expected values and never
import the reference solutions; hidden checks (``course_lib.hidden.chNN_*``) compare with the
reference modules on random shapes and run at grading time.
"""
from .toolkit import MISTAKES, CheckFailure, define_mistake, exercise

__all__ = ["CheckFailure", "MISTAKES", "define_mistake", "exercise"]
