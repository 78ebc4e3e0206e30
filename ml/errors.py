"""Errors a user can cause and fix; the CLI prints their message without a traceback."""


class UserFacingError(Exception):
    """Base class: the message alone says what is wrong and where."""


class LandingError(UserFacingError, ValueError):
    """An input file that cannot be landed; the message names the file and the problem."""


class DbtError(UserFacingError, RuntimeError):
    """A dbt command failed; the message carries the end of its output."""


class ModelError(UserFacingError, RuntimeError):
    """A model cannot be trained, registered, promoted or used as asked."""


class ConfigError(UserFacingError, ValueError):
    """An environment setting with a value the pipeline cannot use."""


class WarehouseLockedError(UserFacingError, RuntimeError):
    """The DuckDB warehouse is held by another process (a dbt build, the DAG); the message names it."""


class WriterBusyError(UserFacingError, RuntimeError):
    """Another process held the shop's writer lock past the timeout (ml.writer_lock); the message names it."""
