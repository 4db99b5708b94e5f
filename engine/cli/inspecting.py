"""Printing what an `inspect` command found, the way docker prints it."""

from __future__ import annotations

from typing import Any

from engine.cli.app import error_line, out
from engine.cli.errors import CommandError
from engine.cli.formatting import TemplateError, expand_escapes, go_json, render_template


def print_inspected(found: list[Any], errors: list[str], fmt: str | None) -> None:
    """A JSON array (or each object through `--format`), then the errors; exit 1 if any."""
    if fmt and fmt != "json":
        try:
            template = expand_escapes(fmt)
            out("".join(render_template(template, obj) + "\n" for obj in found))
        except TemplateError as exc:
            raise CommandError(f"template parsing error: {exc}") from None
    else:
        out(go_json(found, indent=4, escape_html=False) + "\n")
    if errors:
        for message in errors:
            error_line(message)
        raise CommandError("", 1)
