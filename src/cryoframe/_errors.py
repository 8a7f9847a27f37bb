"""The project's own error types.

Every error caused by bad user input is an :class:`InputError` naming the file, the field and
what was expected, so the CLI can print one clear line.
"""

from __future__ import annotations

from pathlib import Path


class CryoframeError(Exception):
    """Base class of all errors raised on purpose by cryoframe."""


class InputError(CryoframeError):
    """Bad input: names the file, the field (column, header record, argument) and the expectation.

    Parameters
    ----------
    message : str
        What is wrong, in a few words.
    file : str or Path, optional
        The offending file.
    field : str, optional
        The column, header record, key or argument at fault.
    expected : str, optional
        What a valid value looks like.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.field = field
        self.expected = expected
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}")
        if field is not None:
            parts.append(f"field '{field}'")
        head = ": ".join(parts)
        text = f"{head}: {message}" if head else message
        if expected is not None:
            text += f" (expected {expected})"
        super().__init__(text)
