"""Hostile and broken submissions for the grading sandbox (tests/test_hostile.py, tests/test_sandbox.py)."""
