"""Map `METHOD /path/{param}` patterns to handlers; `{name:path}` may contain slashes.

Routes match the decoded path (the server percent-decodes it once, as Go's
`r.URL.Path` is): a client asks for the network `test 01` as `/networks/test%2001`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from engine.api.http import Request, Response

if TYPE_CHECKING:
    from engine.engine import Engine

Handler = Callable[[Request, "Engine"], Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    pos = 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        name, kind = m.group(1), m.group(2)
        out.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    out.append("/?$")
    return re.compile("".join(out))


@attrs.define
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


@attrs.define
class Router:
    routes: list[Route] = attrs.field(factory=list)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), pattern, _compile(pattern), handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        found = self.find(method, path)
        return None if found is None else (found[0].handler, found[1])

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a request (a HEAD takes a GET's) and its path parameters."""
        for route in self.routes:
            if route.method != method and not (method == "HEAD" and route.method == "GET"):
                continue
            m = route.regex.match(path)
            if m:
                return route, dict(m.groupdict())
        return None


def route_table(routers: list[Router]) -> Router:
    merged = Router()
    for router in routers:
        merged.include(router)
    return merged


__all__ = ["Handler", "Route", "Router", "route_table"]
