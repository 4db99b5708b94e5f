"""Swarm's endpoints answer as a dockerd outside a swarm: 503 in its words, never 404."""

from __future__ import annotations

from typing import Any, cast

import pytest

from engine.api.errors import status_for
from engine.api.handlers.swarm import NOT_A_MANAGER, NOT_IN_A_SWARM, NOT_OFFERED, router
from engine.errors import Unavailable


@pytest.mark.parametrize(("method", "path", "message"), [
    ("POST", "/swarm/leave", NOT_IN_A_SWARM),
    ("POST", "/swarm/unlock", NOT_IN_A_SWARM),
    ("GET", "/swarm", NOT_A_MANAGER),
    ("GET", "/services", NOT_A_MANAGER),
    ("GET", "/services/abc", NOT_A_MANAGER),
    ("GET", "/nodes", NOT_A_MANAGER),
    ("GET", "/tasks", NOT_A_MANAGER),
    ("GET", "/secrets", NOT_A_MANAGER),
    ("POST", "/configs/create", NOT_A_MANAGER),
    ("POST", "/swarm/init", NOT_OFFERED),
    ("POST", "/swarm/join", NOT_OFFERED),
])
async def test_swarm_endpoints_answer_503(method: str, path: str, message: str) -> None:
    found = router.match(method, path)
    assert found is not None, f"{method} {path} has no route"
    handler, _ = found
    with pytest.raises(Unavailable) as caught:
        await handler(cast(Any, None), cast(Any, None))
    assert caught.value.message == message
    assert status_for(caught.value) == 503


def test_dockerds_words() -> None:
    assert NOT_IN_A_SWARM == "This node is not part of a swarm"
    assert NOT_A_MANAGER == ('This node is not a swarm manager. Use "docker swarm init" or '
                             '"docker swarm join" to connect this node to swarm and try again.')
