"""Exceptions with a meaning for the runner and the command line, and how warnings are shown."""
import warnings


class UserError(Exception):
    """A mistake in the user's input: shown as one line on stderr, exit status 2."""


class Diverged(Exception):
    """Training produced a non-finite loss: the cell is recorded as ``diverged``."""


class NotApplicable(Exception):
    """The strategy cannot run on this cell as it is (e.g. a peft method that wraps none of the
    backbone's layer types), which only building the cell shows: the cell is recorded as
    ``skipped`` with the message as its reason, not as failed."""


def one_line_warnings() -> None:
    """Show warnings as ``warning: message`` lines (not file:line plus source), in the command
    line's process and in every worker process it starts."""
    warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"warning: {message}\n"
