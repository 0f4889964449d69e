"""Exceptions that the CLI reports as one clean line, without a traceback."""

from __future__ import annotations


class TgkitError(Exception):
    """Base class of every error that tgkit raises on bad user input."""


class DeepHFormatError(TgkitError):
    """A DeepH directory or file breaks the format.

    The message always names the file (and the key or line where relevant) and says what is
    wrong, e.g. ``hamiltonians.h5: key '[0, 0, 0, 1, 2]': shape (13, 5) but orbital_types.dat
    gives (13, 13)``.
    """

    def __init__(self, path: object, problem: str, key: str | None = None) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = self.path if key is None else f"{self.path}: key {key!r}"
        super().__init__(f"{where}: {problem}")


class ConfigError(TgkitError):
    """A configuration value is unknown or impossible."""


class TrainingDiverged(TgkitError):
    """The loss or a parameter became NaN or inf during training."""
