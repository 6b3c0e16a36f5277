"""Quoting what the user wrote in an error message, without echoing a 2 MB line."""

from __future__ import annotations

from typing import Final

QUOTE_LIMIT: Final = 60
"""The most characters of the user's input an error message quotes: a line of 2 MB is
named, not echoed."""


def quoted(text: str) -> str:
    """``text`` quoted for an error message (``repr``), cut to :data:`QUOTE_LIMIT`
    characters with an ellipsis and the length it had."""
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    head = repr(text[: QUOTE_LIMIT - 3])
    return f"{head[:-1]}...{head[-1]} ({len(text):,} characters)"
