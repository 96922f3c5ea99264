"""Problems found in a dataset on disk, and the error that carries one.

The RAM-H1200 reader and :func:`ramh_train.datasets.validate.validate` share one parser. It reports what it finds to a
:class:`Problems` sink: the reader's sink raises :class:`DatasetError` at the first error (and keeps warnings), the
validator's sink collects everything so that a whole dataset is checked in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about a dataset.

    Attributes:
        file: the file or folder concerned, relative to the dataset root where it lies under it (POSIX separators).
        record: the record inside it (``"image 'X_L.bmp' (id 3)"``, ``"annotation id 17"``, ``"key 'BE_Q'"``...),
            or None when the problem concerns the whole file.
        message: what is wrong.
        severity: ``"error"`` (the data cannot be read as documented) or ``"warning"`` (readable, but suspicious or
            incomplete).
    """

    file: str
    record: str | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}: {self.record}" if self.record else self.file
        return f"{where}: {self.message}"


class DatasetError(Exception):
    """A dataset on disk does not follow the documented layout.

    The message names the file, the record and the problem; the same facts are on :attr:`problem`.
    """

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem

    @property
    def file(self) -> str:
        return self.problem.file

    @property
    def record(self) -> str | None:
        return self.problem.record


class Problems:
    """Sink for problems found while parsing.

    Args:
        raise_errors: True: :meth:`error` raises :class:`DatasetError` at once (reader behaviour); False: errors are
            collected like warnings (validator behaviour).
    """

    def __init__(self, raise_errors: bool):
        self.raise_errors = raise_errors
        self.items: list[Problem] = []

    def error(self, file: str, record: str | None, message: str) -> None:
        """Report an error (raises :class:`DatasetError` when ``raise_errors``)."""
        p = Problem(file, record, message, "error")
        if self.raise_errors:
            raise DatasetError(p)
        self.items.append(p)

    def warning(self, file: str, record: str | None, message: str) -> None:
        """Report a warning (always collected, never raised)."""
        self.items.append(Problem(file, record, message, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]
