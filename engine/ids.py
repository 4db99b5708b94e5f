"""Random 64-hex IDs, never all-digit in their short form (that would read as a number)."""

from __future__ import annotations

import secrets


def new_id() -> str:
    while True:
        value = secrets.token_hex(32)
        if not value[:12].isdigit():
            return value


def is_hex_prefix(text: str) -> bool:
    return bool(text) and len(text) <= 64 and all(c in "0123456789abcdef" for c in text)
