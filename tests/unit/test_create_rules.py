"""Docker's create-time merge and validation rules."""

from __future__ import annotations

import pytest

from engine.containers.create import merge_env, merge_image_config, process_of, validate
from engine.containers.model import ContainerSpec, HostSpec, RestartPolicy
from engine.errors import InvalidParameter
from engine.images.model import ImageConfig


def _image(**kw: object) -> ImageConfig:
    return ImageConfig(**kw)  # type: ignore[arg-type]


def test_env_request_wins_and_order_kept() -> None:
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3"]) == ["PATH=/bin", "A=2", "B=3"]


def test_image_cmd_used_when_request_has_none() -> None:
    merged = merge_image_config(ContainerSpec("busybox"), _image(cmd=["sh"]))
    assert process_of(merged) == ("sh", [])


def test_request_cmd_replaces_image_cmd_but_keeps_entrypoint() -> None:
    image = _image(entrypoint=["/entry"], cmd=["default"])
    merged = merge_image_config(ContainerSpec("x", cmd=["echo", "hi"]), image)
    assert process_of(merged) == ("/entry", ["echo", "hi"])


def test_request_entrypoint_drops_image_cmd() -> None:
    image = _image(entrypoint=["/entry"], cmd=["default"])
    merged = merge_image_config(ContainerSpec("x", entrypoint=["/bin/echo"]), image)
    assert process_of(merged) == ("/bin/echo", [])


def test_empty_entrypoint_resets_it_and_keeps_image_cmd() -> None:
    image = _image(entrypoint=["/entry"], cmd=["sh"])
    merged = merge_image_config(ContainerSpec("x", entrypoint=[]), image)
    assert process_of(merged) == ("sh", [])


def test_no_command_is_a_400() -> None:
    merged = merge_image_config(ContainerSpec("x"), _image())
    with pytest.raises(InvalidParameter, match="No command specified"):
        process_of(merged)


def test_labels_and_ports_merge() -> None:
    image = _image(labels={"a": "1", "b": "1"}, exposed_ports=["80/tcp"])
    merged = merge_image_config(
        ContainerSpec("x", cmd=["true"], labels={"b": "2"}, exposed_ports=["53/udp"]), image)
    assert merged.labels == {"a": "1", "b": "2"}
    assert merged.exposed_ports == ["53/udp", "80/tcp"]


@pytest.mark.parametrize(
    ("spec", "host", "message"),
    [
        (ContainerSpec("x", working_dir="rel"), HostSpec(), "needs to be an absolute path"),
        (ContainerSpec("x"), HostSpec(restart_policy=RestartPolicy("sometimes")), "invalid restart policy"),
        (ContainerSpec("x"), HostSpec(restart_policy=RestartPolicy("always", 3)), "maximum retry count"),
        (ContainerSpec("x"), HostSpec(auto_remove=True, restart_policy=RestartPolicy("always")),
         "AutoRemove"),
        (ContainerSpec("x"), HostSpec(memory=1024), "Minimum memory limit"),
    ],
)
def test_invalid_create_requests(spec: ContainerSpec, host: HostSpec, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        validate(spec, host)
