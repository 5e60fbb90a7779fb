"""Errors that reach the user as one line, without a traceback.

The CLI turns ``UserError`` into exit code 2 (bad option, file or data the user gave)
and ``RunError`` into exit code 1 (a run that started and failed).
"""


class TfxrayError(Exception):
    """Base class of every error tfxray reports to a user as one line."""

    exit_code = 1


class UserError(TfxrayError):
    """Bad input from the user: an option, a file, a manifest row, a recipe key."""

    exit_code = 2


class RunError(TfxrayError):
    """A run that started correctly and could not finish."""

    exit_code = 1
