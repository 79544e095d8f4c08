"""config/station.example.toml documents every key of the station's config (the issue's promise to
whoever configures a real station): each key appears in its table, set or commented out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from station.config import StationConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "station.example.toml"

_HEADER = re.compile(r"^\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


def documented_keys(text: str) -> set[str]:
    """Dotted key paths (array entries without an index) the file sets or shows commented out."""
    keys: set[str] = set()
    table = ""
    for raw in text.splitlines():
        line = raw.lstrip("#").strip()
        header = _HEADER.match(line)
        if header:
            table = header.group(1)
            keys.add(table)
            continue
        key = _KEY.match(line)
        if key:
            name, value = key.groups()
            path = f"{table}.{name}" if table else name
            keys.add(path)
            keys.update(f"{path}.{inner}" for inner in _INLINE_KEY.findall(value))
    return keys


def schema_keys() -> Iterator[tuple[str, bool]]:
    """(dotted key path, is a secret) for every field of every model, union members included."""
    schema = StationConfig.model_json_schema()
    definitions = schema["$defs"]

    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, bool]]:
        if "$ref" in node:
            yield from walk(definitions[node["$ref"].rsplit("/", 1)[-1]], path)
            return
        for alternative in node.get("anyOf", []) + node.get("oneOf", []):
            yield from walk(alternative, path)
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], path)
        for name, field in node.get("properties", {}).items():
            key = f"{path}.{name}" if path else name
            yield key, field.get("writeOnly", False) or _secret(field)
            yield from walk(field, key)

    yield from walk(schema, "")


def _secret(field: dict[str, Any]) -> bool:
    alternatives = field.get("anyOf", [field])
    return any(a.get("format") == "password" for a in alternatives)


def test_the_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    documented = documented_keys(text)
    undocumented = sorted(
        key
        for key, secret in set(schema_keys())
        if key not in documented
        # a secret is shown by its environment variable (its *_file twin is in the table)
        and not (secret and f"PACKSTATION__{key.upper().replace('.', '__')}" in text)
    )
    assert undocumented == []


def test_the_documented_key_finder_sees_commented_tables_and_inline_tables() -> None:
    text = '[mqtt]\nhost = "x"\n# [[rfid.readers]]\n# protocol = "llrp"   # note = 3\n'
    text += "# outputs = { green = 0, red = 2 }\n"
    assert documented_keys(text) == {
        "mqtt",
        "mqtt.host",
        "rfid.readers",
        "rfid.readers.protocol",
        "rfid.readers.outputs",
        "rfid.readers.outputs.green",
        "rfid.readers.outputs.red",
    }
