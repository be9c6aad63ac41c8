"""The one exception the normalisers raise."""

from __future__ import annotations


class Invalid(ValueError):
    """A value that cannot be normalised. ``message`` never contains the value itself."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
