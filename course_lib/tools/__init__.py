"""The maintainers' tools: nothing here ships to students, and nothing on the student side imports it.

- ``notebooks``: the chapter pipeline (normalise, release with nbgrader, execute, autograde);
- ``bundle``: the student bundle and its wheel (``python -m course_lib student-bundle``);
- ``grader_report``: how well the checks grade the catalog of implementations (``grader-report``);
- ``giveaways``: how much of each answer the student notebooks show (``giveaways``);
- ``build_expected``: the visible checks' stored expected values, from the hidden modules (``build-expected``);
- ``checkpoints``: the trained checkpoints of chapters 01-08, from the reference modules (``checkpoints``);
- ``capstone_run``: every reference variant in the capstone's network (``capstone``);
- ``bench``: time and peak memory of the reference modules against timm (``bench``).
"""
