"""The teachers' error (no torch here: the class-name readers and the app raise it too)."""

from __future__ import annotations


class TeacherLoadError(RuntimeError):
    """A teacher could not be loaded; the message names the file and the fix."""
