"""Load the station's catalog (items and box types) from a JSON file; see docs/master-data.md.

Every error names the file and the JSON path of the offending value in one sentence, because the
person who reads it is editing that file by hand or chasing an export from the WMS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from station.domain import BoxType, Catalog, CatalogItem

CATALOG_FORMAT = "packstation-catalog/1"


class CatalogFileError(ValueError):
    """The catalog file cannot be used; `str()` is the sentence to show."""

    def __init__(self, file: Path, json_path: str, problem: str) -> None:
        super().__init__(f"{file}: {json_path}: {problem}")
        self.file = file
        self.json_path = json_path
        self.problem = problem


class _CatalogDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["packstation-catalog/1"] = Field(description="File format and version.")
    items: list[CatalogItem] = Field(min_length=1, description="Every SKU the station may see.")
    boxes: list[BoxType] = Field(default_factory=list, description="Box types the packer uses.")


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; raises CatalogFileError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(path, "$", f"cannot be read ({exc})") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        raise CatalogFileError(path, "$", problem) from exc
    try:
        document = _CatalogDocument.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(path, raw, exc) from exc
    _reject_duplicates(path, "items", [item.sku for item in document.items], "SKU")
    _reject_duplicates(path, "boxes", [box.code for box in document.boxes], "box code")
    try:
        return Catalog.from_lists(document.items, document.boxes)
    except ValidationError as exc:  # cross-references: kit components, shared barcodes
        raise _first_error(path, raw, exc) from exc


def json_path(loc: Sequence[str | int]) -> str:
    """('items', 3, 'unit_weight_g') -> '$.items[3].unit_weight_g'."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _first_error(path: Path, raw: Any, exc: ValidationError) -> CatalogFileError:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("missing", "extra_forbidden") and loc:
        message += f" (found {_short(error['input'])})"
    return CatalogFileError(path, json_path(loc) + _sku_hint(raw, loc), message)


def _sku_hint(raw: Any, loc: tuple[str | int, ...]) -> str:
    """Name the SKU the path points into, so nobody has to count list entries."""
    if len(loc) < 2 or loc[0] != "items" or not isinstance(loc[1], int):
        return ""
    try:
        sku = raw["items"][loc[1]]["sku"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" (SKU {sku})" if isinstance(sku, str) else ""


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None) else "a value"
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_duplicates(path: Path, field: str, keys: list[str], what: str) -> None:
    first_seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in first_seen:
            where = json_path((field, first_seen[key]))
            raise CatalogFileError(
                path, json_path((field, index)), f"{what} {key} is already defined at {where}"
            )
        first_seen[key] = index
