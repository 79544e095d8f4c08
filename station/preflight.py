"""What a valid config refers to, checked before anything starts: files that must exist and
parse, folders that must be there, a data directory that can be written.

The config's structure is pydantic's job (`config_loader`); this is the part a typo in a path
gets past: a catalog exported elsewhere, a password file not copied, a model not installed. Each
problem names the key, the file and what to do, and `packstation check-config` reports the same
ones `packstation run` refuses to start with, so a technician finds them before the packer does.
Only what the station cannot work without: product pictures (the screen shows none) and a
simulator's scene file (written by the test that drives it) are not checked. A manifests folder on
a network share must be mounted before the service starts (systemd `RequiresMountsFor=`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from station.catalog_file import CatalogFileError, load_catalog
from station.config import StationConfig
from station.config_loader import ConfigProblem
from station.domain import Catalog
from station.weight_check import weighs_per_unit

T = TypeVar("T")


def preflight(config: StationConfig) -> list[ConfigProblem]:
    """Every problem with what `config` (paths resolved) refers to; empty when it can start."""
    problems: list[ConfigProblem] = []

    def need(key: str, path: Path | None, what: str, folder: bool = False) -> bool:
        """`path` (when set) must be a readable file, or a folder; False (and a problem) if not."""
        if path is None:
            return True
        found = path.is_dir() if folder else path.is_file()
        if found and os.access(path, os.R_OK):
            return True
        kind = "folder" if folder else "file"
        state = "cannot be read" if found else "does not exist"
        problems.append(ConfigProblem(key, None, f"{kind} {path} {state}: {what}"))
        return False

    def parses(key: str, load: Callable[[], T], what: str) -> T | None:
        try:
            return load()
        except (CatalogFileError, OSError, ValueError) as exc:
            problems.append(ConfigProblem(key, None, f"{exc}: {what}"))
            return None

    catalog = config.catalog
    if need("catalog.path", catalog.path, "export the catalog there or fix the path"):
        loaded = parses("catalog.path", lambda: load_catalog(catalog.path), "fix the export")
        if loaded is not None:
            problems += _unknown_extras(config.weight.common_extras, loaded)
    source = config.manifests.source
    need(
        "manifests.source.path",
        getattr(source, "path", None),
        "create it or point it at the folder the WMS writes manifests to",
        folder=True,
    )
    need("manifests.source.token_file", getattr(source, "token_file", None), "copy it there")
    need("api.token_file", config.api.token_file, "copy the API token file there")
    mqtt = config.mqtt
    need("mqtt.password_file", mqtt.password_file, "copy the broker password file there")
    for name in ("ca_file", "cert_file", "key_file"):
        need(f"mqtt.tls.{name}", getattr(mqtt.tls, name, None), "install it there")
    rfid = config.rfid
    if rfid is not None and need(
        "rfid.epc_table_csv", rfid.epc_table_csv, "export the EPC table there or fix the path"
    ):
        parses("rfid.epc_table_csv", rfid.site_table, "fix the table")
    if config.vision is not None:
        vision = config.vision
        need("vision.detector.model", vision.detector.model, "install the model there")
        source_path = getattr(vision.source, "path", None)  # a file, or a folder of images
        folder = vision.source.type == "folder"
        need("vision.source.path", source_path, "fix the path", folder=folder)
    problems += _data_dir(config.station.data_dir)
    return problems


def _unknown_extras(skus: tuple[str, ...], catalog: Catalog) -> list[ConfigProblem]:
    """Common extras must be catalog SKUs with a fixed unit weight, else they explain nothing."""
    return [
        ConfigProblem(
            f"weight.common_extras[{i}]",
            None,
            f"{sku} is not in the catalog with a fixed unit weight: fix the SKU or add its weight",
        )
        for i, sku in enumerate(skus)
        if not weighs_per_unit(catalog.items.get(sku))
    ]


def _data_dir(data_dir: Path) -> list[ConfigProblem]:
    """The data directory, or the nearest folder above it that exists, must be a writable
    folder: the station keeps its outbox, evidence and session there."""
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return []
    what = "is not a folder" if not existing.is_dir() else "cannot be written by this user"
    message = f"{existing} {what}: the station keeps its outbox, evidence and session in {data_dir}"
    return [ConfigProblem("station.data_dir", None, message)]
