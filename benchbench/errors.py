"""Errors benchbench raises on bad input or a failed step.

Every error carries the fix in its message; the CLI prints it to stderr on one line and exits
with ``exit_code`` (2 for anything the user can correct).
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``,
    ``\\udcff`` for an undecodable byte of a file name), so an error stays one printable line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class BenchbenchError(Exception):
    """Base class: a problem the user can act on. The message says what to do."""

    exit_code = 2


class SuiteError(BenchbenchError):
    """A suite file is missing, malformed or asks for something not allowed."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(one_line(where + problem))


class PluginError(BenchbenchError):
    """A plugin is missing, duplicated or broken."""


class DataError(BenchbenchError):
    """A dataset could not be acquired, read or verified."""


class RunDirError(BenchbenchError):
    """A run directory holds results that do not fit the command (another suite, missing store)."""


class RunFault(BenchbenchError):
    """Not a cell's doing (the disk is full, a path benchbench owns is a symbolic link): the run
    stops with this one line and no cell is recorded as failed, so a rerun picks up where it
    stopped."""


class OutputError(RunFault):
    """A file benchbench was asked to write cannot be written there (a directory, say)."""


class DiskFullError(OutputError):
    """A write failed for want of space (ENOSPC, EDQUOT, SQLite's "database or disk is full")."""


class SymlinkError(RunFault, RunDirError):
    """A path benchbench owns inside a run directory is a symbolic link: never followed."""


class VerifierError(BenchbenchError):
    """A verifier cannot bound this model or property (an unsupported layer, norm or key)."""


class ArgumentError(BenchbenchError, ValueError):
    """An argument of the Python API (``benchbench.evaluate``, ``run``, ``load``) is not
    allowed: the message names the function, the argument (and entry, key) and what is."""
