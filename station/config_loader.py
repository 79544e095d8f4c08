"""Loading a station's TOML config: environment overrides, secrets, and errors a person can act on.

Environment overrides use the key path in upper case joined by double underscores after the
`PACKSTATION__` prefix: `PACKSTATION__MQTT__HOST=broker.local` sets `[mqtt] host`, and
`PACKSTATION__SCANNERS__0__PORT=/dev/ttyACM0` sets the port of the first `[[scanners]]` entry.
Values are parsed as TOML scalars where they look like one (numbers, booleans, quoted strings,
arrays), else taken as plain strings.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from station.logs import is_secret

ENV_PREFIX = "PACKSTATION__"

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key_path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.key_path or '<top level>'}{where}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file, each with its key path and line where known."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)")

    def report(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s) in the configuration"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def load_config(model: type[M], path: Path, environ: Mapping[str, str] | None = None) -> M:
    """Parse, override from the environment and validate; raise ConfigError with every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem("", None, f"cannot read the file: {exc}")]
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        problem = ConfigProblem("", line, f"not valid TOML: {exc}")
        raise ConfigError(source, [problem]) from exc
    overridden = apply_env_overrides(data, environ or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        problems = [_problem(model, err, lines, overridden) for err in exc.errors()]
        raise ConfigError(source, problems) from None


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Set each PACKSTATION__ variable's key in `data`; return dotted key path -> variable name,
    so a bad value is blamed on the variable and not on the file line it replaced."""
    overridden: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        # A secret is taken as written: "20240601" is a password, not a number.
        _set_path(data, path, raw if is_secret(path[-1]) else _parse_scalar(raw))
        overridden[".".join(path)] = name
    return overridden


def _set_path(data: Any, path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            index = int(part) if part.isdigit() else -1
            if not 0 <= index < len(node):
                raise ConfigError(
                    "environment",
                    [ConfigProblem(".".join(path), None, f"no list entry {part} to override")],
                )
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            where = ".".join(path[:i])
            raise ConfigError(
                "environment",
                [ConfigProblem(".".join(path), None, f"{where} is a value, not a table")],
            )
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths (array-of-table entries by index) to the line that sets them."""
    lines: dict[str, int] = {}
    table: str = ""
    array_counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(2)
            if header.group(1) == "[[":
                index = array_counts.get(name, -1) + 1
                array_counts[name] = index
                table = f"{name}.{index}"
            else:
                table = _resolve_arrays(name, array_counts)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = f"{table}.{key.group(1)}" if table else key.group(1)
            lines.setdefault(path, number)
    return lines


def _resolve_arrays(name: str, array_counts: dict[str, int]) -> str:
    # `[scanners.options]` after `[[scanners]]` belongs to the latest scanners entry.
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in array_counts:
            rest = parts[i:]
            return ".".join([prefix, str(array_counts[prefix]), *rest])
    return name


def _problem(
    model: type[BaseModel],
    err: Mapping[str, Any],
    lines: dict[str, int],
    overridden: Mapping[str, str],
) -> ConfigProblem:
    loc, parent = _walk(model, [str(p) for p in err["loc"]])
    path = ".".join(loc)
    variable = _nearest(loc, overridden)  # the key or a table above it came from the environment
    line = None if variable else _nearest(loc, lines)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        fields = list(getattr(parent, "model_fields", {}))
        close = difflib.get_close_matches(loc[-1], fields, n=1)
        message = f"unknown key {loc[-1]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    elif err["type"] == "missing":
        message = "this key is required but missing"
    elif err["type"] == "union_tag_not_found":
        key = str(err.get("ctx", {}).get("discriminator", "'type'"))
        message = (
            f"this entry has no {key} key, which says what kind it is: add it (the example "
            "config lists the kinds)"
        )
    elif "input" in err and not isinstance(err["input"], dict | list):
        message = f"{message} (got {_shown(loc, err['input'])})"
    if variable:
        message = f"{message}; set by the environment variable {variable}, not by the file"
    return ConfigProblem(path, line, message)


def _walk(model: type[BaseModel], raw_loc: list[str]) -> tuple[list[str], Any]:
    """Drop the union tags pydantic puts in error locations; return the path and the last model.

    A discriminated union adds the tag value ("serial") to the location, which is not a key the
    person wrote. We follow the models along the path and skip any part that names a union member.
    """
    loc: list[str] = []
    current: Any = model
    parent: Any = model
    for part in raw_loc:
        if part.isdigit():
            loc.append(part)
            continue
        members = _models_in(current)
        if len(members) > 1 and part not in _fields_of(members):
            current = _member_tagged(members, part) or current
            continue
        loc.append(part)
        model_here = members[0] if members else None
        parent = model_here
        info = getattr(model_here, "model_fields", {}).get(part)
        current = info.annotation if info is not None else None
    return loc, parent


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _fields_of(members: list[type[BaseModel]]) -> set[str]:
    return {name for m in members for name in m.model_fields}


def _member_tagged(members: list[type[BaseModel]], tag: str) -> type[BaseModel] | None:
    for member in members:
        for info in member.model_fields.values():
            if tag in getattr(info.annotation, "__args__", ()):
                return member
    return None


def _nearest(loc: list[str], by_path: Mapping[str, V]) -> V | None:
    """The entry for the key path or its closest enclosing table."""
    for i in range(len(loc), 0, -1):
        found = by_path.get(".".join(loc[:i]))
        if found:
            return found
    return None


# Keys whose values may carry credentials whatever their own names: HTTP headers
# ("Authorization: Bearer ...").
_HOLDS_SECRETS = frozenset({"headers"})


def _shown(loc: list[str], value: Any) -> str:
    if any(is_secret(part) or part in _HOLDS_SECRETS for part in loc):
        return "a hidden value"
    return repr(value)


def _toml_error_line(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None
