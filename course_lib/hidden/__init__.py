"""Hidden checks: run at grading time, may use the reference modules.

Each chapter module may define ``build_expected() -> dict``, the values its visible twin compares
against; ``python -m course_lib build-expected`` stores them under ``checks/expected/``. ``toolkit`` holds
what the chapters share: the one sweep against the reference (devices, dtypes, memory layouts, gradients).
"""
