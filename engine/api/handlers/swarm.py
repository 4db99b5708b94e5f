"""Swarm's endpoints, answered as a dockerd outside a swarm answers them.

moorage offers no swarm mode, but clients probe these endpoints and act on the answer:
docker-py's tests call `POST /swarm/leave` after every network test and accept the
503 a non-swarm dockerd gives, `docker info` users and orchestrators read
`GET /swarm`. So each answers 503 in dockerd's own words, never 404. Creating or
joining a swarm is refused with a 503 that says swarm mode is not offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.api.http import Request, Response
from engine.api.router import Router
from engine.errors import Unavailable

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or '
                 '"docker swarm join" to connect this node to swarm and try again.')
NOT_IN_A_SWARM = "This node is not part of a swarm"
NOT_OFFERED = "swarm mode is not offered by moorage: this node cannot create or join a swarm"

#: Paths a manager serves (dockerd answers NOT_A_MANAGER on each, whatever the method).
_MANAGER_PATHS = (
    ("GET", "/swarm"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"), ("POST", "/services/{id}/update"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"), ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"), ("POST", "/configs/{id}/update"),
)


async def _not_a_manager(req: Request, engine: Engine) -> Response:
    raise Unavailable(NOT_A_MANAGER)


async def _not_in_a_swarm(req: Request, engine: Engine) -> Response:
    raise Unavailable(NOT_IN_A_SWARM)


async def _not_offered(req: Request, engine: Engine) -> Response:
    raise Unavailable(NOT_OFFERED)


for _method, _path in _MANAGER_PATHS:
    router.route(_method, _path)(_not_a_manager)
router.route("POST", "/swarm/leave")(_not_in_a_swarm)
router.route("POST", "/swarm/unlock")(_not_in_a_swarm)
router.route("POST", "/swarm/init")(_not_offered)
router.route("POST", "/swarm/join")(_not_offered)
