"""Exceptions with a meaning for the runner and the command line."""


class UserError(Exception):
    """A mistake in the user's input: shown as one line on stderr, exit status 2."""


class Diverged(Exception):
    """Training produced a non-finite loss: the cell is recorded as ``diverged``."""
