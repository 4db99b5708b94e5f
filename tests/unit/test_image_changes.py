"""`--change` instructions applied to an image config, as Docker's import does it."""

from __future__ import annotations

import pytest

from engine.dockerfile.substitution import expand as expand_word
from engine.dockerfile.substitution import expand_words
from engine.durations import parse_duration
from engine.errors import InvalidParameter
from engine.images.changes import (
    apply_changes,
    env_values,
    parse_exposed_port,
)
from engine.images.model import Healthcheck, ImageConfig


def apply(*changes: str, config: ImageConfig | None = None) -> ImageConfig:
    return apply_changes(config or ImageConfig(), list(changes))


def test_cmd_exec_and_shell_forms() -> None:
    assert apply('CMD ["sh", "-c", "echo hi"]').cmd == ["sh", "-c", "echo hi"]
    assert apply("CMD echo hi there").cmd == ["/bin/sh", "-c", "echo hi there"]
    assert apply("cmd []").cmd == []
    # not JSON: shell form; a JSON array of other things is refused, as in a Dockerfile
    assert apply("CMD [oops").cmd == ["/bin/sh", "-c", "[oops"]
    with pytest.raises(InvalidParameter, match="arrays must be comprised of strings only"):
        apply("CMD [1, 2]")


def test_entrypoint_and_cmd_interplay() -> None:
    base = ImageConfig(cmd=["old"])
    assert apply('ENTRYPOINT ["/init"]', config=base).cmd is None
    both = apply('CMD ["x"]', 'ENTRYPOINT ["/init"]', config=base)
    assert both.entrypoint == ["/init"]
    assert both.cmd == ["x"]
    assert apply("ENTRYPOINT exec top -b").entrypoint == ["/bin/sh", "-c", "exec top -b"]
    shell = ImageConfig(shell=["/bin/bash", "-lc"])
    assert apply("CMD ls", config=shell).cmd == ["/bin/bash", "-lc", "ls"]


def test_env_forms_and_expansion() -> None:
    cfg = apply(
        "ENV A=1 B=\"two words\" C='$A'",
        "ENV D=$A E=${B} F=${NOPE:-dflt} G=${A:+set} H=${NOPE:+x}",
        "ENV LEGACY some value  with spaces",
        "ENV A=replaced",
        "ENV ESC=a\\ b Q=\"say \\\"hi\\\"\"",
    )
    assert cfg.env == [
        "A=replaced",
        "B=two words",
        "C=$A",
        "D=1",
        "E=two words",
        "F=dflt",
        "G=set",
        "H=",
        "LEGACY=some value  with spaces",
        "ESC=a b",
        'Q=say "hi"',
    ]


def test_env_values_expand_against_the_previous_environment() -> None:
    cfg = apply("ENV X=1", "ENV X=2 Y=$X")
    assert cfg.env == ["X=2", "Y=1"]


def test_env_errors() -> None:
    with pytest.raises(InvalidParameter, match=r"can't find = in \"c\""):
        apply("ENV a=b c")
    with pytest.raises(InvalidParameter, match="ENV names can not be blank"):
        apply("ENV =x")
    with pytest.raises(InvalidParameter, match="at least one argument"):
        apply("ENV")
    with pytest.raises(InvalidParameter, match="matching double-quote"):
        apply('ENV a="open')


def test_label_expose_user_workdir_volume_stopsignal_onbuild() -> None:
    cfg = apply(
        "ENV PORT=8080 DIR=/srv",
        'LABEL a=b "c d"=e',
        "EXPOSE 80 53/udp $PORT 9000-9001/tcp",
        "EXPOSE 80/TCP",
        "USER nobody:nogroup",
        "WORKDIR $DIR",
        "WORKDIR app/../data",
        'VOLUME ["/data", "/logs"]',
        "VOLUME /cache $DIR/x",
        "STOPSIGNAL SIGQUIT",
        "ONBUILD RUN echo built",
    )
    assert cfg.labels == {"a": "b", "c d": "e"}
    assert cfg.exposed_ports == ["80/tcp", "53/udp", "8080/tcp", "9000/tcp", "9001/tcp"]
    assert cfg.user == "nobody:nogroup"
    assert cfg.working_dir == "/srv/data"
    assert cfg.volumes == ["/data", "/logs", "/cache", "/srv/x"]
    assert cfg.stop_signal == "SIGQUIT"
    assert cfg.on_build == ["RUN echo built"]


def test_healthcheck() -> None:
    hc = apply("HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f x").healthcheck
    assert hc == Healthcheck(
        test=("CMD-SHELL", "curl -f x"), interval=30_000_000_000, timeout=90_000_000_000,
        retries=3,
    )
    assert apply('HEALTHCHECK CMD ["true"]').healthcheck == Healthcheck(test=("CMD", "true"))
    assert apply("HEALTHCHECK NONE").healthcheck == Healthcheck(test=("NONE",))
    with pytest.raises(InvalidParameter, match="unknown flag: --bogus"):
        apply("HEALTHCHECK --bogus=1 CMD true")


def test_continuations_comments_and_multiline_changes() -> None:
    cfg = apply("# a comment\nENV A=1 \\\n  B=2\n\nUSER x")
    assert cfg.env == ["A=1", "B=2"]
    assert cfg.user == "x"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ADD . /", "add is not a valid change command"),
        ("RUN echo", "run is not a valid change command"),
        ("FROM scratch", "from is not a valid change command"),
        ("Copy a b", "copy is not a valid change command"),
        ("EXPOSE http", "Invalid containerPort: http"),
        ("EXPOSE 70000", "Invalid containerPort: 70000"),
        ("EXPOSE 80/xyz", "invalid proto: xyz"),
        ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
        ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("CMD", "CMD requires at least one argument"),
    ],
)
def test_refused_changes(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        apply(change)
    assert info.value.message == message


def test_changes_are_validated_before_any_is_applied() -> None:
    base = ImageConfig()
    with pytest.raises(InvalidParameter):
        apply_changes(base, ["ENV A=1", "RUN x"])
    assert base.env == []


def test_input_config_is_not_modified() -> None:
    base = ImageConfig(env=["A=1"], labels={"x": "y"})
    apply("ENV B=2", "LABEL z=w", config=base)
    assert base.env == ["A=1"]
    assert base.labels == {"x": "y"}


def test_lexer_helpers() -> None:
    env = env_values(["HOME=/root", "EMPTY="])
    assert expand_word("$HOME/x", env) == "/root/x"
    assert expand_word("${EMPTY:-d} ${EMPTY-d}", env) == "d "
    assert expand_word("'$HOME' \"$HOME\" \\$HOME", env) == "$HOME /root $HOME"
    assert expand_word("cost $5", env) == "cost "
    assert expand_word("a $ b", env) == "a $ b"
    assert expand_words("a 'b c' d\\ e", env) == ["a", "b c", "d e"]


def test_ports_and_durations() -> None:
    assert parse_exposed_port("22") == ["22/tcp"]
    assert parse_exposed_port("1-3/udp") == ["1/udp", "2/udp", "3/udp"]
    assert parse_duration("1h2m3s") == 3_723_000_000_000
    assert parse_duration("1.5s") == 1_500_000_000
    assert parse_duration("250ms") == 250_000_000
    assert parse_duration("0") == 0
    with pytest.raises(InvalidParameter):
        parse_duration("10")


def test_times_are_go_s_rfc3339_including_the_zero_time() -> None:
    """Go's zero time is year 1; glibc's %Y would print `1-01-01…`, which the docker
    CLI cannot parse (it broke `docker image inspect` of intermediate images)."""
    import datetime as dt

    from engine.images.ociconfig import ZERO_TIME, format_time

    assert format_time(None) == format_time(ZERO_TIME) == "0001-01-01T00:00:00Z"
    when = dt.datetime(2026, 11, 25, 6, 5, 4, 120000, tzinfo=dt.UTC)
    assert format_time(when) == "2026-11-25T06:05:04.12Z"


# the Dockerfile parser's forms, which --change did not read before it used that parser ---


def test_healthcheck_flags_as_a_dockerfile_writes_them() -> None:
    hc = apply('HEALTHCHECK --interval="5s"\t--timeout=2s CMD ["true"]').healthcheck
    assert hc == Healthcheck(test=("CMD", "true"), interval=5_000_000_000,
                             timeout=2_000_000_000)
    with pytest.raises(InvalidParameter, match="duplicate flag specified: --interval"):
        apply("HEALTHCHECK --interval=1s --interval=2s CMD true")
    with pytest.raises(InvalidParameter, match='time: missing unit in duration "10"'):
        apply("HEALTHCHECK --interval=10 CMD true")
    with pytest.raises(InvalidParameter, match="cannot be less than 1ms"):
        apply("HEALTHCHECK --start-period=500us CMD true")


def test_escape_directive_and_its_continuations() -> None:
    cfg = apply("# escape=`", "ENV A=1 `", "  B=2 C=`$A", "WORKDIR C:\\data")
    assert cfg.env == ["A=1", "B=2", "C=$A"]
    assert cfg.working_dir == "/C:\\data"


def test_onbuild_with_a_heredoc_keeps_its_body() -> None:
    cfg = apply("ONBUILD RUN <<EOF\necho hi\nEOF")
    assert cfg.on_build == ["RUN <<EOF\necho hi\nEOF"]


def test_shell_is_not_a_change_even_if_a_dockerfile_takes_it() -> None:
    with pytest.raises(InvalidParameter) as info:
        apply('SHELL ["/bin/bash", "-c"]')
    assert info.value.message == "shell is not a valid change command"
