"""Output formats that must read exactly like docker's (go-units, tabwriter, templates)."""

from __future__ import annotations

import pytest

from engine.cli.formatting import (
    TemplateError,
    bytes_size,
    ellipsis,
    go_json,
    go_print,
    go_quote,
    human_duration,
    human_size,
    render_template,
    tabwrite,
    truncate_id,
)
from engine.cli.ps import format_ports
from engine.cli.system import version_text

MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "Less than a second"),
    (0.999, "Less than a second"),
    (1, "1 second"),
    (1.9, "1 second"),
    (2, "2 seconds"),
    (59, "59 seconds"),
    (60, "About a minute"),
    (119, "About a minute"),
    (120, "2 minutes"),
    (59 * MINUTE + 59, "59 minutes"),
    (HOUR, "About an hour"),
    (1.49 * HOUR, "About an hour"),
    (1.5 * HOUR, "2 hours"),
    (47.4 * HOUR, "47 hours"),
    (47.5 * HOUR, "2 days"),  # hours are rounded before the day count
    (13 * DAY, "13 days"),
    (14 * DAY, "2 weeks"),
    (59 * DAY, "8 weeks"),
    (60 * DAY, "2 months"),
    (729 * DAY, "24 months"),
    (730 * DAY, "2 years"),
    (3650 * DAY, "10 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("size", "precision", "text"), [
    (0, 3, "0B"),
    (999, 3, "999B"),
    (1000, 3, "1kB"),
    (1200, 3, "1.2kB"),
    (12_345, 3, "12.3kB"),
    (4_261_550, 3, "4.26MB"),
    (4_261_550, 4, "4.262MB"),
    (999_999, 3, "1e+03kB"),  # Go's %g does this too, and so docker prints it
    (999_999, 4, "1000kB"),
    (123_456_789_012, 3, "123GB"),
    (1500, 4, "1.5kB"),
    (10**24, 3, "1YB"),
    (10**27, 3, "1e+03YB"),
])
def test_human_size(size: int, precision: int, text: str) -> None:
    assert human_size(size, precision) == text


def test_bytes_size_uses_binary_units() -> None:
    assert bytes_size(1024) == "1KiB"
    assert bytes_size(33_554_432_000) == "31.25GiB"
    assert bytes_size(512) == "512B"


def test_tabwrite_matches_docker_table_spacing() -> None:
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest-long\tx"
    assert tabwrite(text).splitlines() == [
        "CONTAINER ID   IMAGE                 NAMES",
        "abc            busybox:latest-long   x",
    ]


def test_tabwrite_aligns_each_run_of_lines_separately() -> None:
    # docker version: lines without tabs end a column block; min width 20, padding 1.
    text = "Client:\n Version:\t1\n API version:\t2\n\nServer:\n  Experimental:\tfalse"
    assert tabwrite(text, minwidth=20, padding=1).splitlines() == [
        "Client:",
        " Version:           1",
        " API version:       2",
        "",
        "Server:",
        "  Experimental:     false",
    ]


def test_go_quote_like_strconv_quote() -> None:
    assert go_quote('echo "hi"\ttab') == '"echo \\"hi\\"\\ttab"'
    assert go_quote("sleep 1000000000000…") == '"sleep 1000000000000…"'
    assert go_quote("\x01\\") == '"\\x01\\\\"'


def test_ellipsis() -> None:
    assert ellipsis("short", 20) == "short"
    assert ellipsis("a" * 20, 20) == "a" * 20
    assert ellipsis("a" * 21, 20) == "a" * 19 + "…"
    assert ellipsis("abc", 1) == "a"


def test_truncate_id() -> None:
    assert truncate_id("sha256:" + "1" * 64) == "1" * 12
    assert truncate_id("f" * 64) == "f" * 12
    assert truncate_id("sha256:" + "1" * 64, full=True) == "sha256:" + "1" * 64


def test_go_json_escapes_html_only_when_asked() -> None:
    assert go_json({"a": "<b>&é"}) == '{"a":"\\u003cb\\u003e\\u0026é"}'
    assert go_json({"a": "<b>"}, escape_html=False) == '{"a":"<b>"}'
    assert go_json([{"x": 1}], indent=4) == '[\n    {\n        "x": 1\n    }\n]'


def test_go_print_values() -> None:
    assert go_print(None) == "<nil>"
    assert go_print(True) == "true"
    assert go_print(["A=1", "B=2"]) == "[A=1 B=2]"
    assert go_print({"b": 1, "a": "x"}) == "map[a:x b:1]"
    assert go_print(3.0) == "3"


def test_template_fields_functions_and_missing_keys() -> None:
    data = {"Name": "/web", "State": {"Status": "running", "Pid": 7},
            "Config": {"Env": ["A=1"], "Labels": {"k": "<v>"}}}
    assert render_template("{{.State.Status}} {{.State.Pid}}", data) == "running 7"
    assert render_template("{{json .Config.Labels}}", data) == '{"k":"<v>"}'
    assert render_template('{{index .Config.Labels "k"}}', data) == "<v>"
    assert render_template("{{join .Config.Env \",\"}}|{{upper .Name}}", data) == "A=1|/WEB"
    assert render_template("{{.Name | upper}}", data) == "/WEB"
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render_template("{{.Nope}}", data)


def test_ports_column_groups_like_docker() -> None:
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
        {"PrivatePort": 8000, "Type": "tcp"},
        {"PrivatePort": 8001, "Type": "tcp"},
        {"PrivatePort": 8002, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
        {"IP": "127.0.0.1", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 9001, "PublicPort": 9001, "Type": "tcp"},
    ]
    # Checked against docker 28's own output for the same ports.
    assert format_ports(ports) == (
        "443/tcp, 53/udp, 8000-8002/tcp, 127.0.0.1:9000-9001->9000-9001/tcp, "
        "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp")
    assert format_ports([]) == ""


def test_version_layout() -> None:
    client = {"Version": "0.1.0", "ApiVersion": "1.50", "PythonVersion": "3.11.2",
              "Os": "linux", "Arch": "amd64"}
    server = {"Platform": {"Name": "moorage"}, "Components": [
        {"Name": "Engine", "Version": "0.1.0", "Details": {
            "ApiVersion": "1.50", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
            "Experimental": "false"}},
        {"Name": "conmon", "Version": "2.1.6", "Details": {"package": "conmon_2.1.6"}},
    ]}
    assert version_text(client, server) == (
        "Client:\n"
        " Version:           0.1.0\n"
        " API version:       1.50\n"
        " Python version:    3.11.2\n"
        " OS/Arch:           linux/amd64\n"
        "\n"
        "Server: moorage\n"
        " Engine:\n"
        "  Version:          0.1.0\n"
        "  API version:      1.50 (minimum version 1.24)\n"
        "  OS/Arch:          linux/amd64\n"
        "  Experimental:     false\n"
        " conmon:\n"
        "  Version:          2.1.6\n"
        "  package:          conmon_2.1.6\n"
    )
