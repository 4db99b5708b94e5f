"""Output as Docker prints it: go-units sizes and durations, tabwriter tables, templates.

People read these columns by eye and scripts parse them, so the wording follows the
docker CLI exactly ("About a minute", "4.26MB", three spaces between columns).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.units import human_duration

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's `%.<p>g`, which Python's `%g` matches for these magnitudes."""
    return f"%.{precision}g" % value


def _scaled(size: float, base: float, units: Sequence[str]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units `HumanSizeWithPrecision`: decimal units (`4.26MB` at precision 3)."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL_UNITS)
    return _go_g(value, precision) + unit


def bytes_size(size: float) -> str:
    """go-units `BytesSize`: binary units (`31.26GiB`), as `info` shows memory."""
    value, unit = _scaled(float(size), 1024.0, _BINARY_UNITS)
    return _go_g(value, 4) + unit


def since(timestamp: float, now: float | None = None) -> str:
    """`2 minutes ago`, from a unix time."""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - timestamp)) + " ago"


def go_time(timestamp: float) -> str:
    """Go's `time.Time.String()` in local time: `2024-01-02 15:04:05 +0000 UTC`."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def truncate_id(ident: str, full: bool = False) -> str:
    """12 hex digits without the `sha256:` prefix, as every docker listing shows IDs."""
    if full:
        return ident
    _, sep, rest = ident.partition(":")
    return (rest if sep else ident)[:12]


def ellipsis(text: str, width: int) -> str:
    """Cut to `width` characters, the last one an ellipsis (docker's `Ellipsis`)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return text[0]
    return text[: width - 1] + "…"


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r",
               "\t": r"\t", "\v": r"\v", "\\": r"\\", '"': r"\""}


def go_quote(text: str) -> str:
    """Go's `strconv.Quote` (how `ps` shows COMMAND): printable runes kept as they are."""
    out = ['"']
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's `text/tabwriter` with docker's settings (min width 10, padding 3, spaces).

    Each tab-terminated cell is a column cell; a column is aligned over each run of
    consecutive lines that have that cell. A line's last cell is never padded.
    """
    lines = text.split("\n")
    rows = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(row) - 1) for row in rows]
    columns = max((len(row) - 1 for row in rows), default=0)
    for col in range(columns):
        start = 0
        while start < len(rows):
            if len(rows[start]) - 1 <= col:
                start += 1
                continue
            end = start
            width = minwidth
            while end < len(rows) and len(rows[end]) - 1 > col:
                width = max(width, len(rows[end][col]) + padding)
                end += 1
            for i in range(start, end):
                widths[i][col] = width
            start = end
    out = []
    for row, row_widths in zip(rows, widths, strict=True):
        cells = [cell.ljust(w) for cell, w in zip(row, row_widths, strict=False)]
        cells.append(row[-1])
        out.append("".join(cells))
    return "\n".join(out)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A docker-style table: header line then rows, columns aligned by `tabwrite`."""
    lines = ["\t".join(headers)]
    lines.extend("\t".join(row) for row in rows)
    return tabwrite("\n".join(lines))


def go_json(value: Any, indent: int | None = None, escape_html: bool = True) -> str:
    """JSON as Go's encoder writes it: non-ASCII kept, `<>&` escaped unless told not to.

    docker escapes in `ps --format json` (json.Marshal) but not in `inspect` output
    or the templates' `json` function (encoders with SetEscapeHTML(false)).
    """
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_print(value: Any) -> str:
    """How Go's template prints an interface value decoded from JSON (`{{.X}}`)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    return str(value)


# --- templates -----------------------------------------------------------------------

class TemplateError(Exception):
    """The `--format` template uses something this subset does not have."""


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s()]+')


def _lookup(data: Any, path: str) -> Any:
    """`.A.B` on nested mappings; a context object may offer `field(name)` instead."""
    value = data
    for name in (p for p in path.split(".") if p):
        if isinstance(value, Mapping):
            if name not in value:
                raise TemplateError(f'map has no entry for key "{name}"')
            value = value[name]
        elif hasattr(value, "field"):
            value = value.field(name)
        elif value is None:
            raise TemplateError(f"nil pointer evaluating .{name}")
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    return value


def _as_text(value: Any) -> str:
    return go_print(value) if not isinstance(value, str) else value


def _fn_json(value: Any) -> str:
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    return go_json(value, escape_html=False)


def _fn_index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list):
            value = value[int(key)]
        elif hasattr(value, "field"):
            value = value.field(key)
        else:
            return None
    return value


def _fn_join(value: Any, sep: str) -> str:
    return sep.join(_as_text(v) for v in (value or []))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _fn_json,
    "index": _fn_index,
    "join": _fn_join,
    "upper": lambda v: _as_text(v).upper(),
    "lower": lambda v: _as_text(v).lower(),
    "title": lambda v: _as_text(v).title(),
    "len": lambda v: len(v or []),
    "println": lambda *vs: " ".join(_as_text(v) for v in vs) + "\n",
}


def _evaluate(expr: str, data: Any) -> Any:
    tokens = _TOKEN.findall(expr)
    if not tokens:
        raise TemplateError("empty action")
    # A pipeline `A | fn` passes A as fn's last argument.
    if "|" in tokens:
        stages: list[list[str]] = [[]]
        for tok in tokens:
            if tok == "|":
                stages.append([])
            else:
                stages[-1].append(tok)
        value = _evaluate(" ".join(stages[0]), data)
        for stage in stages[1:]:
            value = _call(stage, data, extra=[value])
        return value
    return _call(tokens, data)


def _operand(token: str, data: Any) -> Any:
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("`"):
        return token[1:-1]
    if token.startswith("."):
        return data if token == "." else _lookup(data, token[1:])
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    raise TemplateError(f'function "{token}" not defined')


def _call(tokens: list[str], data: Any, extra: list[Any] | None = None) -> Any:
    head, *rest = tokens
    if head in _FUNCTIONS:
        args = [_operand(t, data) for t in rest] + (extra or [])
        return _FUNCTIONS[head](*args)
    if head.startswith(".") and rest and hasattr(data, "method"):
        # `{{.Label "com.example"}}`: a method of the listing's context.
        return data.method(head[1:], *[_operand(t, data) for t in rest])
    if rest or extra:
        raise TemplateError(f"can't give arguments to {head}")
    return _operand(head, data)


def render_template(template: str, data: Any) -> str:
    """Fill a Go-template-ish format: actions `{{.Field}}`, `{{json .}}`, `{{index . "k"}}`."""
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(template):
        out.append(template[pos : m.start()])
        out.append(_as_text(_evaluate(m.group(1), data)))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def template_fields(template: str) -> list[str]:
    """The `.Field` names a table template uses, in order, to build its header row."""
    names: list[str] = []
    for m in _ACTION.finditer(template):
        tokens = _TOKEN.findall(m.group(1))
        fields = [t for t in tokens if t.startswith(".") and len(t) > 1]
        names.append(fields[0][1:] if fields else "")
    return names


def expand_escapes(fmt: str) -> str:
    """Docker turns a literal `\\t` and `\\n` in `--format` into tab and newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def render_listing(
    fmt: str | None,
    contexts: Sequence[Any],
    default_table: str,
    headers: Mapping[str, str],
) -> str:
    """Render a listing (`ps`, `images`) for `--format`: table, json, or a template.

    `contexts` offer `field(name)` and `as_dict()`; `headers` maps field names to the
    column titles used by `table` templates.
    """
    if fmt is None or fmt == "" or fmt == "table":
        fmt = default_table
    if fmt == "json":
        return "".join(go_json(c.as_dict()) + "\n" for c in contexts)
    fmt = expand_escapes(fmt)
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip(" ")
        header_template = _ACTION.sub(
            lambda m: _header_for(m.group(1), headers), body)
        lines = [header_template]
        lines.extend(render_template(body, c) for c in contexts)
        return tabwrite("\n".join(lines)) + "\n"
    fmt = fmt.strip(" ")
    return "".join(render_template(fmt, c) + "\n" for c in contexts)


def _header_for(expr: str, headers: Mapping[str, str]) -> str:
    tokens = _TOKEN.findall(expr)
    fields = [t[1:] for t in tokens if t.startswith(".") and len(t) > 1]
    if not fields:
        return ""
    name = fields[0].split(".")[0]
    return headers.get(name, name.upper())
