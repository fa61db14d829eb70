"""One error type for everything a user can get wrong; the CLI prints it as one line, never a traceback."""
from __future__ import annotations


class EcrsError(Exception):
    """A user-facing error: bad input, a missing file or artifact, an invalid config."""


class DataError(EcrsError):
    """A data file is missing, corrupt or malformed. The message names the file (and line when known)."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = f"{path}" if path is not None else ""
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
