"""Signals by name or number, as the Docker API accepts them."""

from __future__ import annotations

import signal as signals

from engine.errors import InvalidParameter


def parse_signal(value: str | int | None, default: str = "SIGKILL") -> int:
    """A signal by name (with or without SIG) or number; a bad one is Docker's 400."""
    if value is None or value == "":
        value = default
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
        raise InvalidParameter(f"Invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        for base, ref, sign in (("SIGRTMIN+", signals.SIGRTMIN, 1), ("SIGRTMAX-", signals.SIGRTMAX, -1)):
            offset = name.removeprefix(base)
            if name.startswith(base) and offset.isdigit():
                return int(ref) + sign * int(offset)
        raise InvalidParameter(f"Invalid signal: {text}") from None
