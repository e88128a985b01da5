"""Range and choice checks of params values, raising ValueError("<key>: ...") that the params
loader (pretrain.config.build) turns into a one-line error naming the file and the key."""

from __future__ import annotations

import urllib.parse
from typing import Any


def one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def positive(name: str, value: Any, allow_none: bool = False, zero: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}: expected a value {bound}, got {value!r}")


def fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value!r}")


def http_url(name: str, url: str) -> None:
    """Only http(s) is fetched: file:, ftp: and the like would read local files or other services."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: expected an http:// or https:// URL, got {url!r}")
