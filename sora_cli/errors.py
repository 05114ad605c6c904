"""Errors the CLI turns into one line on stderr, exiting with the error's own code."""


class SoraError(Exception):
    """A failure the user reads as one line; `exit_code` is what the process exits with."""

    exit_code = 1


class UsageError(SoraError):
    """The user asked for something invalid; the message names the problem and the valid choices."""

    exit_code = 2


class RenderError(SoraError):
    """Something failed while rendering a valid request."""

    exit_code = 1


class Stopped(SoraError):
    """The user stopped a run (Ctrl-C) and nothing partial was left; the message says how to continue."""

    exit_code = 130
