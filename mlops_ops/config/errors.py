"""The errors of spec validation: a bad spec, and a check across fields."""

from __future__ import annotations


class SpecError(ValueError):
    """A pipeline spec is invalid. The message names the file, the field and the fix."""


class FieldError(ValueError):
    """A check across fields, reported at the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
