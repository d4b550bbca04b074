"""Plotting helpers for the chapters. Each returns the arrays it plots, so tests assert on data, not pixels.

``common`` holds what every chapter uses; ``chNN`` modules hold one chapter's figures. None of them imports
the reference solutions: they take the student's (or any) module as an argument.
"""
