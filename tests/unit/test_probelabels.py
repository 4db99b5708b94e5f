"""Engine-run probe labels: what `moorage.health.*` accepts and refuses (with what words),
moor's --health-http/--health-tcp flags, and how create combines a probe with Docker's
Healthcheck."""

from __future__ import annotations

from typing import Any

import pytest

from engine.cli.options import OptionError
from engine.cli.probeflags import probe_labels
from engine.containers.create import apply_probe_labels
from engine.containers.health import Timing, has_health_check, label_probe
from engine.containers.model import ContainerSpec
from engine.containers.probelabels import (
    ProbeLabelError,
    ProbeSpec,
    Target,
    parse_target,
    probe_from_labels,
)
from engine.durations import go_quote
from engine.errors import InvalidParameter
from engine.images.model import Healthcheck

S = 1_000_000_000
MS = 1_000_000


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("http", ":8080/healthz", Target("http", "127.0.0.1", 8080, "/healthz")),
    ("http", ":80", Target("http", "127.0.0.1", 80, "/")),
    ("http", ":1/a/b?full=1&x=%20", Target("http", "127.0.0.1", 1, "/a/b?full=1&x=%20")),
    ("http", "10.0.0.5:65535/", Target("http", "10.0.0.5", 65535, "/")),
    ("http", "[::1]:8080/x", Target("http", "::1", 8080, "/x")),
    ("http", "[0:0::1]:8080/x", Target("http", "::1", 8080, "/x")),
    ("tcp", ":5432", Target("tcp", "127.0.0.1", 5432, "")),
    ("tcp", "[fd00::2]:53", Target("tcp", "fd00::2", 53, "")),
])
def test_targets(kind: str, value: str, expected: Target) -> None:
    assert parse_target(kind, value) == expected


def test_target_addresses() -> None:
    assert parse_target("tcp", ":5432").address == "127.0.0.1:5432"
    assert parse_target("tcp", "[::1]:5432").address == "[::1]:5432"


@pytest.mark.parametrize(("kind", "value", "why"), [
    ("http", ":0/", "the port must be between 1 and 65535"),
    ("http", ":65536/", "the port must be between 1 and 65535"),
    ("http", ":99999999999999999999/", "the port must be between 1 and 65535"),
    ("http", ":8080healthz", "the path must start with / (as in :8080/healthz)"),
    ("http", ":8080/a b", "the path must be printable ASCII without spaces"),
    ("http", ":8080/caf\u00e9", "the path must be printable ASCII without spaces"),
    ("http", "8080/healthz", "expected [HOST]:PORT/PATH, as :8080/healthz"),
    ("http", ":/healthz", "no port"),
    ("http", "::1:8080/", "no port"),
    ("http", "localhost:8080/", "the host must be an IP address"),
    ("http", "[::1:8080/", "an IPv6 address needs its closing ]"),
    ("http", "[10.0.0.1]:80/", "an IPv6 address goes in brackets"),
    ("http", "[fe80::1%eth0]:80/", "an IPv6 address goes in brackets (without a zone)"),
    ("tcp", ":5432/x", "a TCP probe takes no path"),
    ("tcp", ":-1", "no port"),
    ("tcp", "5432", "expected [HOST]:PORT, as :5432"),
])
def test_bad_targets(kind: str, value: str, why: str) -> None:
    with pytest.raises(ProbeLabelError) as info:
        parse_target(kind, value)
    assert info.value.message.startswith(f"invalid label moorage.health.{kind}={go_quote(value)}: ")
    assert why in info.value.message
    assert info.value.label == f"moorage.health.{kind}"
    assert isinstance(info.value, InvalidParameter)  # a 400 at create


def test_labels_with_timing() -> None:
    spec = probe_from_labels({
        "moorage.health.http": ":8080/healthz", "moorage.health.interval": "5s",
        "moorage.health.timeout": "500ms", "moorage.health.retries": "2",
        "moorage.health.start-period": "1m", "moorage.health.start-interval": "1.5s",
        "moorage.health-on-failure": "restart",  # not a probe label: left alone
        "other": "x"})
    assert spec == ProbeSpec(Target("http", "127.0.0.1", 8080, "/healthz"), interval=5 * S,
                             timeout=500 * MS, start_period=60 * S, start_interval=1500 * MS,
                             retries=2)
    timing = Timing.of(spec)
    assert (timing.interval, timing.timeout, timing.retries) == (5.0, 0.5, 2)


def test_docker_defaults_when_unset() -> None:
    spec = probe_from_labels({"moorage.health.tcp": ":5432", "moorage.health.retries": "0"})
    assert spec is not None
    timing = Timing.of(spec)
    assert (timing.interval, timing.timeout, timing.start_period, timing.start_interval,
            timing.retries) == (30.0, 30.0, 0.0, 5.0, 3)


def test_no_probe_and_empty_values() -> None:
    assert probe_from_labels({}) is None
    assert probe_from_labels({"a": "b", "moorage.health-on-failure": "kill"}) is None
    # an empty value is no label (it cancels an image's), timing included
    assert probe_from_labels({"moorage.health.http": "", "moorage.health.interval": ""}) is None


@pytest.mark.parametrize(("labels", "message"), [
    ({"moorage.health.intervall": "5s", "moorage.health.http": ":80/"},
     "unknown label moorage.health.intervall: moorage's probe labels are moorage.health.http, "),
    ({"moorage.health.http": ":80/", "moorage.health.tcp": ":80"},
     "conflicting labels moorage.health.http and moorage.health.tcp: a container has one probe"),
    ({"moorage.health.interval": "5s"},
     "label moorage.health.interval needs moorage.health.http or moorage.health.tcp"),
    ({"moorage.health.tcp": ":80", "moorage.health.interval": "5"},
     'invalid label moorage.health.interval="5": time: missing unit in duration "5"'),
    ({"moorage.health.tcp": ":80", "moorage.health.timeout": "-1s"},
     'invalid label moorage.health.timeout="-1s": a duration cannot be negative'),
    ({"moorage.health.tcp": ":80", "moorage.health.start-period": "10us"},
     'invalid label moorage.health.start-period="10us": a duration cannot be less than 1ms'),
    ({"moorage.health.tcp": ":80", "moorage.health.retries": "-1"},
     'invalid label moorage.health.retries="-1": expected a whole number'),
    ({"moorage.health.tcp": ":80", "moorage.health.retries": "\u0663"},
     "expected a whole number"),
    ({"moorage.health.tcp": ":80", "moorage.health.retries": "99999999999"},
     "at most 2147483647"),
])
def test_bad_labels(labels: dict[str, str], message: str) -> None:
    with pytest.raises(ProbeLabelError) as info:
        probe_from_labels(labels)
    assert message in info.value.message


def test_health_check_of_a_record() -> None:
    spec = ContainerSpec(image="x", labels={"moorage.health.tcp": ":80"})
    assert has_health_check(spec)
    assert label_probe(spec) is not None
    assert not has_health_check(ContainerSpec(image="x"))
    # a record whose labels were never checked (made before moorage read them) gets no probe
    old = ContainerSpec(image="x", labels={"moorage.health.tcp": "nonsense"})
    assert label_probe(old) is None
    assert not has_health_check(old)


# --- create: one health check per container ------------------------------------------

def _merged(healthcheck: Healthcheck | None, **labels: str) -> ContainerSpec:
    return ContainerSpec(image="x", healthcheck=healthcheck,
                         labels={f"moorage.health.{k}": v for k, v in labels.items()})


def test_probe_replaces_the_images_healthcheck() -> None:
    image_check = Healthcheck(test=("CMD-SHELL", "curl -f localhost"), interval=S)
    merged = _merged(image_check, http=":80/")
    apply_probe_labels(None, merged)
    assert merged.healthcheck is None
    # moor's --health-on-failure alone sends an empty Healthcheck: kept, no conflict
    merged = _merged(image_check, http=":80/")
    apply_probe_labels(Healthcheck(), merged)
    assert merged.healthcheck == Healthcheck()


def test_without_a_probe_nothing_changes() -> None:
    image_check = Healthcheck(test=("CMD", "true"))
    merged = _merged(image_check)
    apply_probe_labels(Healthcheck(interval=S), merged)
    assert merged.healthcheck == image_check


@pytest.mark.parametrize("own", [
    Healthcheck(test=("CMD-SHELL", "true")),
    Healthcheck(test=("NONE",)),
    Healthcheck(interval=S),
    Healthcheck(retries=2),
])
def test_probe_beside_a_requested_healthcheck_is_refused(own: Healthcheck) -> None:
    with pytest.raises(InvalidParameter, match="conflicting options: a probe label"):
        apply_probe_labels(own, _merged(None, tcp=":80"))


def test_bad_label_refused_at_create() -> None:
    with pytest.raises(ProbeLabelError, match="the port must be between 1 and 65535"):
        apply_probe_labels(None, _merged(None, tcp=":70000"))


# --- moor's flags ------------------------------------------------------------------------

def _params(**given: Any) -> dict[str, Any]:
    params: dict[str, Any] = {k: None for k in (
        "health_http", "health_tcp", "health_cmd", "health_interval", "health_timeout",
        "health_retries", "health_start_period", "health_start_interval")}
    params["no_healthcheck"] = False
    params.update(given)
    return params


def test_flags_become_labels() -> None:
    assert probe_labels(_params()) == {}
    assert probe_labels(_params(health_interval="5s")) == {}  # a Docker check's, not ours
    assert probe_labels(_params(health_http=":8080/healthz", health_interval="1s",
                                health_retries=2, health_timeout="500ms")) == {
        "moorage.health.http": ":8080/healthz", "moorage.health.interval": "1s",
        "moorage.health.retries": "2", "moorage.health.timeout": "500ms"}
    assert probe_labels(_params(health_tcp=":5432", health_start_period="10s",
                                health_start_interval="1s")) == {
        "moorage.health.tcp": ":5432", "moorage.health.start-period": "10s",
        "moorage.health.start-interval": "1s"}


@pytest.mark.parametrize(("given", "message"), [
    ({"health_http": ":80/", "health_tcp": ":80"},
     "conflicting options: --health-http and --health-tcp"),
    ({"health_http": ":80/", "health_cmd": "true"},
     "conflicting options: --health-cmd and --health-http/--health-tcp"),
    ({"health_tcp": ":80", "no_healthcheck": True},
     "--no-healthcheck conflicts with --health-http and --health-tcp"),
    ({"health_http": ":80healthz"},
     'invalid argument ":80healthz" for "--health-http" flag: the path must start with /'),
    ({"health_tcp": ":0"},
     'invalid argument ":0" for "--health-tcp" flag: the port must be between 1 and 65535'),
    ({"health_tcp": ":80", "health_interval": "5"},
     'invalid argument "5" for "--health-interval" flag: time: missing unit'),
    ({"health_tcp": ":80", "health_retries": -2},
     'invalid argument "-2" for "--health-retries" flag: expected a whole number'),
])
def test_bad_flags(given: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError) as info:
        probe_labels(_params(**given))
    assert message in str(info.value)
