"""Reading a JSON document that must be an object, with one way of saying it is not.

Config blobs, manifests and plugin configs arrive as bytes from registries, archives and
users; each caller names what it reads, and the error carries that name the way dockerd's do.
"""

from __future__ import annotations

import json
from typing import Any

from engine.errors import InvalidParameter


def load_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse `data` as a JSON object, or raise `InvalidParameter("<what>: <why>")`."""
    try:
        doc = json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise InvalidParameter(f"{what}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter(f"{what}: not a JSON object")
    return doc
