"""Errors that the stage scripts report as one line instead of a traceback."""


class PretrainError(Exception):
    """A problem the user can fix: bad params, unreadable input, an empty corpus."""


class ConfigError(PretrainError):
    """params.yaml has an unknown key, a wrong type or an out-of-range value."""


class DataError(PretrainError):
    """Input data cannot be read or leaves nothing to work with."""
