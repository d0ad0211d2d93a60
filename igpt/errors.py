"""The errors igpt raises for users. Each names the file, row, field or config key and says what to do."""


class IgptError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, missing stage output)."""


class ConfigError(IgptError, ValueError):
    """A profile, override or config key is wrong."""


class DataError(IgptError, ValueError):
    """An input file is malformed. The message names the file, the 1-based row and the field."""

    def __init__(self, path, row: int | None, field: str | None, problem: str):
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


class StageError(IgptError, RuntimeError):
    """A stage cannot run: an input it needs from an earlier stage is missing or incompatible."""


class LaunchError(IgptError, RuntimeError):
    """The processes a stage runs in are not what the launcher was asked for (see igpt.launch)."""
