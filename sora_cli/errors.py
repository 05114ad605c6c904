"""Errors the CLI turns into one line on stderr: bad input exits 2, a failure while rendering exits 1."""


class UsageError(Exception):
    """The user asked for something invalid; the message names the problem and the valid choices."""

    exit_code = 2


class RenderError(Exception):
    """Something failed while rendering a valid request."""

    exit_code = 1


class Stopped(Exception):
    """The user stopped a run (Ctrl-C) and nothing partial was left; the message says how to continue."""

    exit_code = 130
