"""Go's `path.Match` / `filepath.Match` patterns (on Linux the same): `*` and `?` stop at
`/`, `[…]` classes with ranges and `^`, `\\` escapes. Docker matches image references
(`reference=` filters) and COPY sources with them; `.dockerignore` has its own rules.
"""

from __future__ import annotations

import re


def go_pattern(pattern: str) -> re.Pattern[str] | None:
    """The pattern as a regex matching what `path.Match` matches; None when Go would
    answer ErrBadPattern."""
    out: list[str] = []
    i, n = 0, len(pattern)

    def escaped(j: int) -> tuple[str, int] | None:
        if j >= n or pattern[j] in "-]":
            return None
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                return None
        return pattern[j], j + 1

    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                return None
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            i += negate
            ranges: list[str] = []
            first = True
            while first or i >= n or pattern[i] != "]":
                first = False
                lo = escaped(i)
                if lo is None:
                    return None
                low, i = lo
                high = low
                if i < n and pattern[i] == "-":
                    hi = escaped(i + 1)
                    if hi is None:
                        return None
                    high, i = hi
                if low <= high:
                    ranges.append(f"{re.escape(low)}-{re.escape(high)}")
            body = "".join(ranges)
            out.append(("[^" + body + "]" if body else "(?s:.)") if negate
                       else ("[" + body + "]" if body else "(?!)"))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


__all__ = ["go_pattern"]
