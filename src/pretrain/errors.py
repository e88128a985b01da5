"""Errors that the stage scripts report as one line instead of a traceback, and warnings."""

import sys

LOW_YIELD = 0.05
"""A data stage that keeps under this share of its input warns (``warn``): it ran, but what it
passes on is too little for the stages after it to do their job (a tokenizer trained on one
document, a pack stage with no full row), and the stage that caused it says why."""


class PretrainError(Exception):
    """A problem the user can fix: bad params, unreadable input, an empty corpus."""


class ConfigError(PretrainError):
    """params.yaml has an unknown key, a wrong type or an out-of-range value."""


class DataError(PretrainError):
    """Input data cannot be read or leaves nothing to work with."""


def warn(message: str) -> None:
    """Print ``warning: <message>`` to stderr as one line (as stage errors print ``error: ...``):
    the stage goes on, but its result is not what its params asked for."""
    print("warning: " + " ".join(message.splitlines()), file=sys.stderr)
