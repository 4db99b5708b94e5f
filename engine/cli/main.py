"""Entry point of `moor`: the command tree, global flags, and how failures are reported."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

import engine
from engine.cli import (
    archives,
    build,
    commit,
    copying,
    events,
    execs,
    images,
    inspecting,
    lifecycle,
    logs,
    networks,
    observing,
    ps,
    registry,
    running,
    system,
    volumes,
)
from engine.cli.app import App, describe
from engine.cli.client import ClientError
from engine.cli.errors import CommandError
from engine.cli.options import OptionError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_SECTIONS = (
    ("Common Commands", ("run", "ps", "images", "pull", "logs", "inspect", "version",
                         "info")),
    ("Management Commands", ("container", "image", "network", "system", "volume")),
)


class SectionedGroup(click.Group):
    """A group whose help lists commands the way docker's does: common ones first."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed: set[str] = set()
        for title, names in _SECTIONS:
            rows = [(n, self.commands[n].get_short_help_str(80)) for n in names
                    if n in self.commands]
            listed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = sorted((n, c.get_short_help_str(80)) for n, c in self.commands.items()
                      if n not in listed and not c.hidden)
        if rest:
            with formatter.section("Commands"):
                formatter.write_dl(rest)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"moor version {engine.__version__}")
        ctx.exit()


@click.group(cls=SectionedGroup, context_settings=CONTEXT)
@click.option("-H", "--host", metavar="URL", envvar=None,
              help="Daemon socket to connect to, unix:///path (default: $MOORAGE_HOST, "
                   "then $DOCKER_HOST, then unix:///run/moorage/moorage.sock)")
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print version information and quit")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """A client for moord, the moorage container engine.

    moor speaks the Docker Engine API, so its commands and flags are docker's.
    """
    ctx.obj = App(host_flag=host)


def _group(name: str, help_text: str, commands: Sequence[tuple[str, click.Command]]) -> None:
    group = click.Group(name=name, help=help_text, context_settings=CONTEXT)
    for alias, command in commands:
        group.add_command(command, name=alias)
    cli.add_command(group)


for _name, _command in (
    ("run", running.run), ("ps", ps.ps), ("images", images.images),
    ("pull", images.pull), ("logs", logs.logs), ("inspect", inspecting.inspect),
    ("version", system.version), ("info", system.info),
    ("create", running.create), ("start", lifecycle.start), ("stop", lifecycle.stop),
    ("kill", lifecycle.kill), ("restart", lifecycle.restart), ("rm", lifecycle.rm),
    ("pause", lifecycle.pause), ("unpause", lifecycle.unpause),
    ("wait", lifecycle.wait), ("rename", lifecycle.rename),
    ("import", images.import_), ("tag", images.tag), ("rmi", images.rmi),
    ("attach", lifecycle.attach), ("events", events.events), ("update", events.update),
    ("history", images.history),
    ("push", registry.push), ("login", registry.login), ("logout", registry.logout),
    ("save", archives.save), ("load", archives.load), ("commit", commit.commit),
    ("build", build.build), ("exec", execs.exec_),
    ("top", observing.top), ("diff", observing.diff), ("stats", observing.stats),
    ("cp", copying.cp), ("export", archives.export),
):
    cli.add_command(_command, name=_name)

_group("container", "Manage containers", [
    ("attach", lifecycle.attach), ("commit", commit.commit), ("create", running.create),
    ("exec", execs.exec_),
    ("inspect", inspecting.inspect_command("container")),
    ("kill", lifecycle.kill), ("logs", logs.logs), ("ls", ps.ps),
    ("list", ps.ps), ("ps", ps.ps), ("pause", lifecycle.pause),
    ("prune", lifecycle.prune), ("rename", lifecycle.rename),
    ("restart", lifecycle.restart), ("rm", lifecycle.rm), ("run", running.run),
    ("start", lifecycle.start), ("stop", lifecycle.stop),
    ("unpause", lifecycle.unpause), ("update", events.update), ("wait", lifecycle.wait),
    ("top", observing.top), ("diff", observing.diff), ("stats", observing.stats),
    ("cp", copying.cp), ("export", archives.export),
])
_group("image", "Manage images", [
    ("import", images.import_), ("inspect", inspecting.inspect_command("image")),
    ("ls", images.images), ("list", images.images), ("prune", images.image_prune),
    ("pull", images.pull), ("push", registry.push), ("rm", images.rmi), ("tag", images.tag),
    ("build", build.build),
    ("history", images.history),
    ("save", archives.save), ("load", archives.load),
])
_group("builder", "Manage builds", [("build", build.build), ("prune", build.builder_prune)])
_group("system", "Manage moorage", [("df", system.df), ("events", events.events),
                                    ("info", system.info), ("version", system.version)])
cli.add_command(volumes.volume_group())
cli.add_command(networks.network_group())
cli.add_command(networks.port, name="port")


# docker spells some boolean flags `--flag=false`; click wants `--no-flag`.
_BOOL_REWRITES = {"--sig-proxy=false": "--no-sig-proxy", "--sig-proxy=true": "--sig-proxy",
                  "--human=false": "--no-human", "-H=false": "--no-human",
                  "--human=true": "--human", "-H=true": "--human"}


def main(argv: Sequence[str] | None = None) -> None:
    """Run one `moor` command and exit with docker's status conventions."""
    args = [_BOOL_REWRITES.get(a, a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        result = cli.main(args=args, prog_name="moor", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        exc.show()
        code = 125
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort:
        code = 130
    except CommandError as exc:
        if exc.message:
            _stderr(exc.message)
        code = exc.code
    except (ClientError, OptionError) as exc:
        _stderr(describe(exc))
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # Whoever read our output has gone (`moor logs x | head`); leave quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = code or 141
    sys.exit(code)


def _stderr(message: str) -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
