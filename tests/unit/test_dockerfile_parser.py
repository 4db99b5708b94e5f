"""Dockerfile parser: a corpus of valid files, the records they give, and the errors
(line and Docker's wording) of invalid ones."""

from __future__ import annotations

import textwrap

import pytest

from engine import dockerfile as df
from engine.dockerfile import DockerfileError, parse
from engine.errors import InvalidParameter


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


NODE_APP = dedent(
    """
    # syntax=docker/dockerfile:1
    FROM busybox:1.36
    WORKDIR /app
    # the manifest first, so the install step stays cached when only the source changes
    COPY package.json ./
    RUN echo installing && \\
        touch node_modules.stamp
    COPY . .
    EXPOSE 3000
    CMD ["node", "server.js"]
    """
)


def test_node_style_example() -> None:
    parsed = parse(NODE_APP)
    assert parsed.directives == df.Directives(escape="\\", syntax="docker/dockerfile:1")
    assert parsed.args_before_from == ()
    (stage,) = parsed.stages
    assert (stage.index, stage.base, stage.name, stage.platform) == (0, "busybox:1.36", None, None)
    assert stage.from_.line == 2
    workdir, copy_manifest, run, copy_all, expose, cmd = stage.instructions
    assert workdir == df.Workdir(line=3, end_line=3, original="WORKDIR /app", path="/app")
    assert isinstance(copy_manifest, df.Copy)
    assert (copy_manifest.sources, copy_manifest.dest, copy_manifest.line) == (("package.json",), "./", 5)
    assert isinstance(run, df.Run)
    assert run.command == "echo installing &&     touch node_modules.stamp"
    assert (run.line, run.end_line) == (6, 7)
    assert run.original == "RUN echo installing &&     touch node_modules.stamp"
    assert isinstance(copy_all, df.Copy)
    assert (copy_all.sources, copy_all.dest) == ((".",), ".")
    assert isinstance(expose, df.Expose)
    assert expose.ports == ("3000",)
    assert isinstance(cmd, df.Cmd)
    assert cmd.command == ("node", "server.js")
    assert parsed.step_count == 7
    assert [i.keyword for i in parsed.steps()] == ["FROM", "WORKDIR", "COPY", "RUN", "COPY", "EXPOSE", "CMD"]


def test_multi_stage_with_copy_from() -> None:
    parsed = parse(
        dedent(
            """
            ARG GO_VERSION=1.22
            ARG BASE
            FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
            RUN go build -o /out/app .
            FROM scratch as final
            COPY --from=build --chown=1000:1000 /out/app /app
            COPY --from=0 /etc/ssl/certs /etc/ssl/certs
            ENTRYPOINT ["/app"]
            """
        )
    )
    assert [a.pairs for a in parsed.args_before_from] == [(("GO_VERSION", "1.22"),), (("BASE", None),)]
    build, final = parsed.stages
    assert (build.index, build.name, build.base, build.platform) == (
        0,
        "build",
        "golang:${GO_VERSION}",
        "$BUILDPLATFORM",
    )
    assert (final.index, final.name, final.base) == (1, "final", "scratch")
    copy_stage, copy_index, _ = final.instructions
    assert isinstance(copy_stage, df.Copy)
    assert isinstance(copy_index, df.Copy)
    assert (copy_stage.from_, copy_stage.chown, copy_stage.sources) == ("build", "1000:1000", ("/out/app",))
    assert copy_index.from_ == "0"
    assert parsed.stage("BUILD") is build
    assert parsed.stage("1") is final
    assert parsed.stage("nope") is None
    assert parsed.step_count == 2 + 2 + 4
    assert parsed.arg_names() == ["GO_VERSION", "BASE"]
    assert next(parsed.steps()).keyword == "ARG"


def test_heredocs_in_run() -> None:
    parsed = parse(
        dedent(
            """
            FROM busybox
            RUN <<EOF
            echo "hello $NAME"
            echo done
            EOF
            RUN <<-"END" sh -x
            \t\techo tabs go
            \tEND
            RUN 3<<A cat /dev/fd/3 && cat <<'B' > /b
            first
            A
            second $literal
            B
            RUN ["echo", "<<EOF"]
            """
        )
    )
    simple, chomped, several, exec_form = parsed.stages[0].instructions
    assert isinstance(simple, df.Run)
    assert simple.command == "<<EOF"
    assert simple.heredocs == (df.Heredoc(name="EOF", content='echo "hello $NAME"\necho done\n'),)
    assert (simple.line, simple.end_line) == (2, 5)
    assert isinstance(chomped, df.Run)
    (doc,) = chomped.heredocs
    assert (doc.name, doc.expand, doc.chomp) == ("END", False, True)
    assert doc.text == "echo tabs go\n"
    assert isinstance(several, df.Run)
    assert [(d.name, d.fd, d.expand, d.content) for d in several.heredocs] == [
        ("A", 3, True, "first\n"),
        ("B", None, False, "second $literal\n"),
    ]
    assert (several.line, several.end_line) == (9, 13)
    # JSON form never has heredocs: the next line is an instruction again
    assert isinstance(exec_form, df.Run)
    assert exec_form.command == ("echo", "<<EOF")
    assert exec_form.heredocs == ()


def test_heredoc_in_copy_and_onbuild() -> None:
    parsed = parse(
        dedent(
            """
            FROM busybox
            COPY --chmod=0755 <<script.sh <<-"conf" local.txt /dest/
            #!/bin/sh
            echo $HOME
            script.sh
            \tkey=value
            conf
            ONBUILD RUN <<EOF
            echo triggered
            EOF
            USER nobody
            """
        )
    )
    copy, onbuild, user = parsed.stages[0].instructions
    assert isinstance(copy, df.Copy)
    assert copy.sources == ("local.txt",)
    assert copy.dest == "/dest/"
    assert copy.chmod == "0755"
    script, conf = copy.inline
    assert (script.name, script.text, script.expand) == ("script.sh", "#!/bin/sh\necho $HOME\n", True)
    assert (conf.name, conf.text, conf.expand) == ("conf", "key=value\n", False)
    assert isinstance(onbuild, df.Onbuild)
    assert onbuild.expression == "RUN <<EOF\necho triggered\nEOF"
    assert isinstance(onbuild.trigger, df.Run)
    assert onbuild.trigger.heredocs[0].content == "echo triggered\n"
    assert isinstance(user, df.User)
    assert user.line == 11


def test_escape_directive_backtick() -> None:
    parsed = parse(
        dedent(
            """
            # escape=`
            # syntax = docker/dockerfile:1.7

            FROM mcr.microsoft.com/windows/servercore
            COPY testfile.txt c:\\
            RUN dir c:\\ `
                && echo done
            ENV PATH="c:\\tools;`
            c:\\bin"
            """
        )
    )
    assert parsed.escape == "`"
    assert parsed.directives.syntax == "docker/dockerfile:1.7"
    copy, run, env = parsed.stages[0].instructions
    assert isinstance(copy, df.Copy)
    assert copy.dest == "c:\\"
    assert isinstance(run, df.Run)
    assert run.command == "dir c:\\     && echo done"
    assert isinstance(env, df.Env)
    assert env.pairs == (("PATH", '"c:\\tools;c:\\bin"'),)


def test_directives_only_at_the_top() -> None:
    parsed = parse("# a comment\n# escape=`\nFROM busybox\nRUN echo \\\n  continued\n")
    assert parsed.escape == "\\"
    (run,) = parsed.stages[0].instructions
    assert isinstance(run, df.Run)
    assert run.command == "echo   continued"
    # a blank line ends the directive block too
    assert parse("\n# escape=`\nFROM busybox\n").escape == "\\"
    # directive names are case-insensitive, unknown ones end the block
    assert parse("# ESCAPE = `\nFROM busybox\n").escape == "`"
    assert parse("# foo=bar\n# escape=`\nFROM busybox\n").escape == "\\"


def test_continuations_comments_and_blank_lines() -> None:
    parsed = parse(
        "FROM busybox\n"
        "RUN apk add \\\n"
        "# a comment inside the continuation\n"
        "    curl \\\n"
        "\n"
        "    git \\  \n"
        "  # indented comment\n"
        "    make\n"
        "RUN echo a\\\\\n"
        "RUN echo last \\"
    )
    install, escaped, last = parsed.stages[0].instructions
    assert isinstance(install, df.Run)
    assert install.command == "apk add     curl     git     make"
    assert (install.line, install.end_line) == (2, 8)
    assert parsed.warnings == ("Empty continuation line found in: RUN apk add     curl     git     make",)
    # an escaped escape at the end does not continue the line
    assert isinstance(escaped, df.Run)
    assert escaped.command == "echo a\\\\"
    # a continuation at the end of the file just ends the instruction
    assert isinstance(last, df.Run)
    assert last.command == "echo last"


def test_keywords_are_case_insensitive_and_crlf_bom() -> None:
    parsed = parse(b"\xef\xbb\xbffrom busybox AS One\r\nrun echo hi\r\nCmd echo bye\r\n")
    (stage,) = parsed.stages
    assert stage.name == "one"
    run, cmd = stage.instructions
    assert isinstance(run, df.Run)
    assert run.command == "echo hi"
    assert isinstance(cmd, df.Cmd)
    assert cmd.command == "echo bye"
    assert run.original == "run echo hi"


def test_env_forms() -> None:
    parsed = parse(
        dedent(
            """
            FROM busybox
            ENV LEGACY value with  spaces
            ENV A=1 B="two words" C=three\\ words D=
            ENV E='single $quoted' \\
                F=continued
            """
        )
    )
    legacy, modern, continued = parsed.stages[0].instructions
    assert isinstance(legacy, df.Env)
    assert legacy.legacy
    assert legacy.pairs == (("LEGACY", "value with  spaces"),)
    assert isinstance(modern, df.Env)
    assert not modern.legacy
    assert modern.pairs == (("A", "1"), ("B", '"two words"'), ("C", "three\\ words"), ("D", ""))
    assert isinstance(continued, df.Env)
    assert continued.pairs == (("E", "'single $quoted'"), ("F", "continued"))


def test_arg_label_and_simple_instructions() -> None:
    parsed = parse(
        dedent(
            """
            FROM busybox
            ARG ONE TWO=2 THREE="3 3"
            LABEL org.opencontainers.image.title="My app" version=1.0 "quoted key"=v
            LABEL legacy value here
            EXPOSE 8080/tcp 53/udp 443
            USER 1000:1000
            STOPSIGNAL SIGTERM
            MAINTAINER Jane Doe <jane@example.com>
            VOLUME ["/data", "/logs"]
            VOLUME /cache /tmp/x
            SHELL ["/bin/sh", "-eu", "-c"]
            """
        )
    )
    arg, label, legacy, expose, user, stop, maint, vol_json, vol_list, shell = parsed.stages[0].instructions
    assert isinstance(arg, df.Arg)
    assert arg.pairs == (("ONE", None), ("TWO", "2"), ("THREE", '"3 3"'))
    assert isinstance(label, df.Label)
    assert label.pairs == (
        ("org.opencontainers.image.title", '"My app"'),
        ("version", "1.0"),
        ('"quoted key"', "v"),
    )
    assert isinstance(legacy, df.Label)
    assert legacy.pairs == (("legacy", "value here"),)
    assert isinstance(expose, df.Expose)
    assert expose.ports == ("443", "53/udp", "8080/tcp")
    assert isinstance(user, df.User)
    assert user.user == "1000:1000"
    assert isinstance(stop, df.StopSignal)
    assert stop.signal == "SIGTERM"
    assert isinstance(maint, df.Maintainer)
    assert maint.name == "Jane Doe <jane@example.com>"
    assert isinstance(vol_json, df.Volume)
    assert vol_json.paths == ("/data", "/logs")
    assert isinstance(vol_list, df.Volume)
    assert vol_list.paths == ("/cache", "/tmp/x")
    assert isinstance(shell, df.Shell)
    assert shell.shell == ("/bin/sh", "-eu", "-c")


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ('CMD ["echo", "hi"]', ("echo", "hi")),
        ("CMD echo hi", "echo hi"),
        ("CMD []", ()),
        # not JSON: Docker falls back to the shell form, text unchanged
        ("CMD ['echo','single quotes']", "['echo','single quotes']"),
        ('CMD ["unterminated"', '["unterminated"'),
        ('CMD [ "a" ] trailing', '[ "a" ] trailing'),
        ('CMD "[\\"echo\\"]"', '"[\\"echo\\"]"'),
        ("ENTRYPOINT /bin/sh -c 'exec app'", "/bin/sh -c 'exec app'"),
        ('ENTRYPOINT ["/entry.sh"]', ("/entry.sh",)),
        ('RUN [ "\\/usr\\\\bin", "-f" ]', ("/usr\\bin", "-f")),
    ],
)
def test_shell_and_exec_forms(line: str, command: df.Command) -> None:
    (instruction,) = parse(f"FROM busybox\n{line}\n").stages[0].instructions
    assert isinstance(instruction, df.Cmd | df.Entrypoint | df.Run)
    assert instruction.command == command


def test_healthcheck() -> None:
    parsed = parse(
        dedent(
            """
            FROM busybox
            HEALTHCHECK NONE
            HEALTHCHECK --interval=5s --timeout=1m30s --start-period=1.5s --start-interval=500ms \\
              --retries=3 CMD wget -q -O- http://localhost/ || exit 1
            HEALTHCHECK CMD ["/bin/check", "--quiet"]
            """
        )
    )
    none, shell, exec_form = parsed.stages[0].instructions
    assert isinstance(none, df.Healthcheck)
    assert none.test == ("NONE",)
    assert isinstance(shell, df.Healthcheck)
    assert shell.test == ("CMD-SHELL", "wget -q -O- http://localhost/ || exit 1")
    assert (shell.interval, shell.timeout) == (5_000_000_000, 90_000_000_000)
    assert (shell.start_period, shell.start_interval, shell.retries) == (1_500_000_000, 500_000_000, 3)
    assert isinstance(exec_form, df.Healthcheck)
    assert exec_form.test == ("CMD", "/bin/check", "--quiet")
    assert exec_form.interval == 0


def test_run_flags() -> None:
    (run,) = (
        parse(
            "FROM busybox\n"
            "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=bind,source=.,ro "
            "--network=none apk add git\n"
        )
        .stages[0]
        .instructions
    )
    assert isinstance(run, df.Run)
    assert run.command == "apk add git"
    cache, bind = run.mounts
    assert (cache.type, cache.target, cache.options) == ("cache", "/root/.cache", {"sharing": "locked"})
    assert (bind.type, bind.source, bind.readonly) == ("bind", ".", True)
    assert run.network == "none"
    assert run.flags_used == ("mount", "network")


def test_copy_and_add_flags_and_json_form() -> None:
    copy, add, json_copy = (
        parse(
            dedent(
                """
                FROM busybox
                COPY --link --parents --exclude=*.tmp --exclude=.git a/ b/ /dst/
                ADD --checksum=sha256:abc --keep-git-dir=false --unpack https://x/y.tar.gz /src/
                COPY ["with space.txt", "/dest dir/"]
                """
            )
        )
        .stages[0]
        .instructions
    )
    assert isinstance(copy, df.Copy)
    assert (copy.link, copy.parents, copy.excludes, copy.sources) == (
        True,
        True,
        ("*.tmp", ".git"),
        ("a/", "b/"),
    )
    assert isinstance(add, df.Add)
    assert (add.checksum, add.keep_git_dir, add.unpack) == ("sha256:abc", False, True)
    assert isinstance(json_copy, df.Copy)
    assert (json_copy.sources, json_copy.dest) == (("with space.txt",), "/dest dir/")


def test_onbuild() -> None:
    (trigger, copy) = (
        parse("FROM busybox\nONBUILD  RUN echo hi\nonbuild COPY . /app\n").stages[0].instructions
    )
    assert isinstance(trigger, df.Onbuild)
    assert trigger.expression == "RUN echo hi"
    assert isinstance(trigger.trigger, df.Run)
    assert trigger.trigger.command == "echo hi"
    assert isinstance(copy, df.Onbuild)
    assert isinstance(copy.trigger, df.Copy)
    assert copy.expression == "COPY . /app"


def test_parse_instruction_for_stored_triggers() -> None:
    instruction = df.parse_instruction("COPY . /app")
    assert isinstance(instruction, df.Copy)
    assert instruction.dest == "/app"
    with pytest.raises(DockerfileError, match="unknown instruction: NOPE"):
        df.parse_instruction("NOPE x")


VALID_CORPUS = {
    "minimal": ("FROM scratch\n", 1),
    "only-from-with-comments": ("# hello\n\n  # indented comment\nFROM busybox\n# bye\n", 1),
    "arg-only-before-from": ("ARG A\nARG B=2\nFROM busybox:${B}\n", 3),
    "windows-escape": ("# escape=`\nFROM x\nRUN a `\n b\n", 2),
    "empty-run": ("FROM busybox\nRUN\n", 2),
    "stage-name-symbols": ("FROM busybox AS my-stage_1.0\n", 1),
    "expose-ranges": ("FROM busybox\nEXPOSE 8000-8010/tcp\n", 2),
    "onbuild-add": ("FROM busybox\nONBUILD ADD . /src\n", 2),
    "healthcheck-none-ignores-flags": ("FROM busybox\nHEALTHCHECK --interval=1s NONE\n", 2),
    "stopsignal-number": ("FROM busybox\nSTOPSIGNAL 9\n", 2),
    "double-dash-ends-flags": ("FROM busybox\nRUN -- --not-a-flag\n", 2),
    "many-stages": ("FROM a AS one\nFROM one AS two\nFROM two\nRUN true\n", 4),
}


@pytest.mark.parametrize("name", sorted(VALID_CORPUS))
def test_valid_corpus(name: str) -> None:
    text, steps = VALID_CORPUS[name]
    assert parse(text).step_count == steps


INVALID_CORPUS = [
    ("FROM busybox\nRUN true\nFORM alpine\n", 3, "unknown instruction: FORM (did you mean FROM?)"),
    ("FROM busybox\nfrobnicate x\n", 2, "unknown instruction: frobnicate"),
    ("FROM busybox\nRUN true\ncopi . /\n", 3, "unknown instruction: copi (did you mean copy?)"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    # no trailing comments in Dockerfiles: `#` mid-line is an argument
    ("\nFROM busybox # comment\n", 2, "FROM requires either one or three arguments"),
    ("FROM a AS b c\n", 1, "FROM requires either one or three arguments"),
    (
        "FROM a AS 1st\n",
        1,
        'invalid name for build stage: "1st", name can\'t start with a number or contain symbols',
    ),
    ("RUN echo hi\nFROM busybox\n", 1, "no build stage in current context"),
    ("ARG A\nENV B=1\nFROM x\n", 2, "no build stage in current context"),
    ("FROM x\nRUN a\nRUN b\nRUN c\nENV =oops\n", 5, "ENV names can not be blank"),
    ("FROM busybox\n\nENV PATH\n", 3, "ENV must have two arguments"),
    ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM busybox\nENV a=1 b\n", 2, 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("FROM busybox\nLABEL =x\n", 2, "LABEL names can not be blank"),
    ("FROM busybox\nARG =x\n", 2, "ARG names can not be blank"),
    ("FROM busybox\nARG\n", 2, "ARG requires at least one argument"),
    (
        "FROM busybox\nCOPY onlyone\n",
        2,
        "COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    ("FROM busybox\nADD x\n", 2, "ADD requires at least two arguments"),
    (
        "FROM busybox\nCOPY <<EOF <<DEST\nx\nEOF\ny\nDEST\n",
        2,
        "COPY cannot accept a heredoc as a destination",
    ),
    ("FROM busybox\nCOPY --foo a b\n", 2, "unknown flag: --foo"),
    ("FROM busybox\nCOPY --form=x a b\n", 2, "unknown flag: --form (did you mean from?)"),
    ("FROM busybox\nCOPY --from a b\n", 2, "missing a value on flag: --from"),
    ("FROM busybox\nCOPY --from=a --from=b a b\n", 2, "duplicate flag specified: --from"),
    ("FROM busybox\nCOPY --link=maybe a b\n", 2, "expecting boolean value for flag --link, not: maybe"),
    ("FROM busybox\nCOPY --link= a b\n", 2, "missing a value on flag: --link"),
    ("FROM busybox\nWORKDIR --x=1 /a\n", 2, "unknown flag: --x"),
    ("FROM --platfrom=linux/amd64 busybox\n", 1, "unknown flag: --platfrom (did you mean platform?)"),
    ("FROM busybox\nRUN <<EOF\necho never ends\n", 2, "unterminated heredoc"),
    ("FROM busybox\nRUN --network=bridge true\n", 2, 'invalid network mode "bridge"'),
    ("FROM busybox\nRUN --mount=type=nfs,target=/x true\n", 2, 'unsupported mount type "nfs"'),
    ("FROM busybox\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM busybox\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM busybox\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM busybox\nVOLUME\n", 2, "VOLUME requires at least one argument"),
    ('FROM busybox\nVOLUME [""]\n', 2, "VOLUME specified can not be an empty string"),
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nSHELL []\n", 2, "SHELL requires at least one argument"),
    (
        'FROM busybox\nCMD [ "echo", [ "nested json" ] ]\n',
        2,
        "when using JSON array syntax, arrays must be comprised of strings only",
    ),
    ("FROM busybox\nHEALTHCHECK\n", 2, "HEALTHCHECK requires at least one argument"),
    ("FROM busybox\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM busybox\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM busybox\nHEALTHCHECK CONNECT TCP 7000\n", 2, 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("FROM busybox\nHEALTHCHECK --interval=1us CMD true\n", 2, 'Interval "interval" cannot be less than 1ms'),
    ("FROM busybox\nHEALTHCHECK --timeout=5 CMD true\n", 2, 'time: missing unit in duration "5"'),
    ("FROM busybox\nHEALTHCHECK --timeout=5y CMD true\n", 2, 'time: unknown unit "y" in duration "5y"'),
    ("FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", 2, "--retries cannot be negative (-1)"),
    ("FROM busybox\nHEALTHCHECK --retries=x CMD true\n", 2, 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("FROM busybox\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM busybox\nONBUILD from alpine\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD MAINTAINER me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("# escape=x\nFROM busybox\n", 1, "invalid escape token 'x' does not match ` or \\"),
    ("# escape=`\n# escape=\\\nFROM busybox\n", 2, "only one escape parser directive can be used"),
]


@pytest.mark.parametrize(("text", "line", "detail"), INVALID_CORPUS)
def test_invalid_corpus(text: str, line: int, detail: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    assert caught.value.line == line
    assert caught.value.detail.startswith(detail)
    assert str(caught.value).startswith(f"dockerfile parse error on line {line}: {detail}")
    assert isinstance(caught.value, InvalidParameter)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# x\n"])
def test_no_instructions(text: str) -> None:
    with pytest.raises(DockerfileError, match=r"^file with no instructions$"):
        parse(text)


def test_error_lines_span_a_continued_instruction() -> None:
    with pytest.raises(DockerfileError) as caught:
        parse("FROM busybox\nCOPY \\\n  onlyone\n")
    assert (caught.value.line, caught.value.end_line) == (2, 3)
