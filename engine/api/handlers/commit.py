"""`POST /commit`: a container's changes as a new image (`docker commit`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from engine.api.http import JSONResponse, Request
from engine.api.router import Router
from engine.containers.commit import CommitRequest, commit_container
from engine.errors import InvalidParameter
from engine.images.reference import parse_repository_and_tag
from engine.metrics.catalog import METRICS

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()

#: Container-config fields a commit body may set, as Dockerfile instructions would.
_BODY_CHANGES = ("Cmd", "Entrypoint", "Env", "Labels", "WorkingDir", "User", "ExposedPorts",
                 "Volumes", "StopSignal")


def _changes_from_body(body: Any) -> list[str]:
    """The request body's container config (docker-py's `conf`) as change instructions."""
    if body is None:
        return []
    if not isinstance(body, dict):
        raise InvalidParameter("commit config must be a JSON object")
    changes: list[str] = []
    for key in _BODY_CHANGES:
        value = body.get(key)
        if not value:
            continue
        if key in ("Cmd", "Entrypoint"):
            changes.append(f"{key.upper()} {json.dumps(value)}")
        elif key == "Env":
            changes += [f"ENV {item.partition('=')[0]}={json.dumps(item.partition('=')[2])}"
                        for item in value]
        elif key == "Labels":
            changes += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in value.items()]
        elif key == "ExposedPorts":
            changes += [f"EXPOSE {port}" for port in value]
        elif key == "Volumes":
            changes.append(f"VOLUME {json.dumps(sorted(value))}")
        elif key == "WorkingDir":
            changes.append(f"WORKDIR {value}")
        else:
            changes.append(f"{key.upper()} {value}")
    return changes


@router.route("POST", "/commit")
async def commit(req: Request, engine: Engine) -> JSONResponse:
    container = engine.containers.get(req.arg("container") or "")
    repo = req.arg("repo") or ""
    reference = parse_repository_and_tag(repo, req.arg("tag") or "") if repo else None
    body = await req.json()  # the container config to merge; empty or null: none
    request = CommitRequest(
        reference=reference,
        comment=req.arg("comment") or "",
        author=req.arg("author") or "",
        pause=req.flag("pause", True),
        changes=(*_changes_from_body(body), *req.args("changes")),
    )
    with METRICS.container_actions.time(action="commit"):
        image = await commit_container(engine.containers, container, request)
    return JSONResponse({"Id": image.id}, status=201)


__all__ = ["router"]
