"""Exercises: self-checks a student calls, the student edition and the grader.

Self-checks raise ``AssertionError`` with a message that says what was expected
and what arrived; they use tolerances, never exact float equality. See
``book/instructors.md`` for the authoring convention.
"""

from seqlib.exercises.checks import check_close, check_shape, check_true

__all__ = ["check_close", "check_shape", "check_true"]
