from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from station.catalog_file import load_catalog
from station.clock import ManualClock
from station.domain import Catalog, expected_units
from station.manifests import (
    ChangeKind,
    DirectoryManifestSource,
    DirectoryManifestSourceConfig,
    FetchedManifest,
    HttpManifestSourceConfig,
    ManifestRefusal,
    ManifestService,
    ManifestSourceConfig,
    ManifestSourceUnavailable,
    MqttManifestSourceConfig,
    RefusalCode,
    parse_manifest,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
CATALOG = load_catalog(CONFIG_DIR / "catalog.example.json")
GOOD = json.loads((CONFIG_DIR / "manifests" / "ORD-1001" / "C1.json").read_text())


def line(sku: str, quantity, line_id: str = "1") -> dict:
    return {"line_id": line_id, "sku": sku, "quantity": quantity}


def manifest_bytes(**changes) -> bytes:
    return json.dumps(GOOD | changes).encode()


class SwitchableSource:
    """Wraps the directory source; `down = True` simulates a network outage."""

    def __init__(self, root: Path) -> None:
        self.inner = DirectoryManifestSource(DirectoryManifestSourceConfig(path=root))
        self.down = False

    def fetch(self, order_id: str, carton_id: str) -> bytes:
        if self.down:
            raise ManifestSourceUnavailable("the WMS cannot be reached (simulated outage)")
        return self.inner.fetch(order_id, carton_id)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def manifests_dir(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    shutil.copytree(CONFIG_DIR / "manifests", root)
    return root


@pytest.fixture
def source(manifests_dir: Path) -> SwitchableSource:
    return SwitchableSource(manifests_dir)


@pytest.fixture
def service(source: SwitchableSource, tmp_path: Path) -> ManifestService:
    return ManifestService(source, CATALOG, tmp_path / "cache", max_bytes=4096, clock=ManualClock())


def put(root: Path, order_id: str, carton_id: str, body: bytes) -> None:
    (root / order_id).mkdir(exist_ok=True)
    (root / order_id / f"{carton_id}.json").write_bytes(body)


def test_every_shipped_manifest_is_accepted_and_expands(service: ManifestService) -> None:
    shipped = sorted((CONFIG_DIR / "manifests").glob("*/*.json"))
    assert len(shipped) >= 5
    for path in shipped:
        result = service.fetch(path.parent.name, path.stem)
        assert isinstance(result, FetchedManifest), result
        assert not result.from_cache
    kit = service.fetch("ORD-1004", "C1").manifest
    assert expected_units(kit, CATALOG) == {
        "MUG-BLUE": 1, "TEA-GREEN-250": 2, "EAR-SILVER": 1, "NOTE-GIFT": 1
    }  # fmt: skip
    later = service.fetch("ORD-1003", "C1").manifest
    assert "VITAMIN-D3" not in expected_units(later, CATALOG)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (manifest_bytes(picker_id="x" * 5000), RefusalCode.TOO_LARGE),
        (b'{"order_id": "ORD-9", ', RefusalCode.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", RefusalCode.MALFORMED_JSON),
        (manifest_bytes(lines=[]), RefusalCode.INVALID_MANIFEST),
        (manifest_bytes(version="latest"), RefusalCode.INVALID_MANIFEST),
        (b"[1, 2, 3]", RefusalCode.INVALID_MANIFEST),
        (manifest_bytes(lines=[line("MUG-BLUE", 0)]), RefusalCode.BAD_QUANTITY),
        (manifest_bytes(lines=[line("MUG-BLUE", -2)]), RefusalCode.BAD_QUANTITY),
        (manifest_bytes(lines=[line("MUG-BLUE", "two")]), RefusalCode.BAD_QUANTITY),
        (manifest_bytes(lines=[line("MUG-GREEN", 1)]), RefusalCode.UNKNOWN_SKU),
        (manifest_bytes(order_id="ORD-1002"), RefusalCode.ID_MISMATCH),
        (manifest_bytes(status="cancelled"), RefusalCode.CANCELLED),
        # Customer personal data never enters the station (so no event can carry it).
        (manifest_bytes(ship_to={"name": "A. Customer"}), RefusalCode.INVALID_MANIFEST),
    ],
)  # fmt: skip
def test_bad_manifests_are_refused_with_their_code(service, manifests_dir, body, code) -> None:
    put(manifests_dir, "ORD-9", "C1", body.replace(b"ORD-1001", b"ORD-9"))
    result = service.fetch("ORD-9", "C1")
    assert isinstance(result, ManifestRefusal)
    assert result.code is code
    assert result.message.startswith(("Order ORD-9", "Order ORD-1002")), result.message


def test_refusals_say_what_to_do(service: ManifestService, manifests_dir: Path) -> None:
    lines = [line("MUG-GREEN", 1), line("X-1", 1, line_id="2")]
    put(manifests_dir, "ORD-9", "C1", manifest_bytes(order_id="ORD-9", lines=lines))
    assert service.fetch("ORD-9", "C1").message == (
        "Order ORD-9 carton C1: the station's catalog does not know MUG-GREEN, X-1; "
        "set the carton aside until the catalog is updated."
    )


def test_unknown_order_and_unsafe_ids(service: ManifestService) -> None:
    assert service.fetch("ORD-404", "C1").code is RefusalCode.NOT_FOUND
    assert service.fetch("..", "C1").code is RefusalCode.INVALID_ID
    assert service.fetch("ORD-1001", "../../etc/passwd").code is RefusalCode.INVALID_ID


def test_outage_falls_back_to_the_cached_copy(service, source) -> None:
    first = service.fetch("ORD-1001", "C1")
    source.down = True
    cached = service.fetch("ORD-1001", "C1")
    assert isinstance(cached, FetchedManifest) and cached.from_cache
    assert cached.manifest == first.manifest
    assert cached.fetched_at == first.fetched_at


def test_outage_without_a_cached_copy_is_refused(service, source) -> None:
    source.down = True
    result = service.fetch("ORD-1001", "C1")
    assert result.code is RefusalCode.UNAVAILABLE
    assert "simulated outage" in result.message and "pack another order" in result.message


def test_a_cache_that_cannot_be_written_costs_no_carton(
    service, manifests_dir, tmp_path, caplog
) -> None:
    """A full disk (here: the cache file replaced by a directory, so SQLite cannot open it):
    the manifest that arrived is used all the same; only the offline fallback misses it."""
    cache = tmp_path / "cache" / "manifests.sqlite3"
    cache.unlink()
    cache.mkdir()
    fetched = service.fetch("ORD-1001", "C1")
    assert isinstance(fetched, FetchedManifest) and not fetched.from_cache
    put(manifests_dir, "ORD-1001", "C1", manifest_bytes(version=2, lines=GOOD["lines"][:2]))
    assert service.check_current(fetched.manifest).kind is ChangeKind.SUPERSEDED
    warned = [r.getMessage() for r in caplog.records if "not cached" in r.getMessage()]
    assert len(warned) == 2 and "free disk space under" in warned[0], warned


def test_a_cancellation_seen_once_survives_an_outage(service, source, manifests_dir) -> None:
    service.fetch("ORD-1001", "C1")
    put(manifests_dir, "ORD-1001", "C1", manifest_bytes(version=2, status="cancelled"))
    assert service.fetch("ORD-1001", "C1").code is RefusalCode.CANCELLED
    source.down = True
    assert service.fetch("ORD-1001", "C1").code is RefusalCode.CANCELLED


def test_check_current_sees_a_newer_version(service, manifests_dir) -> None:
    packing = service.fetch("ORD-1001", "C1").manifest
    assert service.check_current(packing) is None
    put(manifests_dir, "ORD-1001", "C1", manifest_bytes(version=2, lines=GOOD["lines"][:2]))
    change = service.check_current(packing)
    assert change.kind is ChangeKind.SUPERSEDED
    assert change.current.version == 2
    assert "(version 1 to 2)" in change.message


def test_check_current_sees_a_cancellation(service, manifests_dir) -> None:
    packing = service.fetch("ORD-1001", "C1").manifest
    put(manifests_dir, "ORD-1001", "C1", manifest_bytes(status="cancelled"))
    change = service.check_current(packing)
    assert change.kind is ChangeKind.CANCELLED
    assert change.message.startswith("Order ORD-1001 was cancelled while it was packed")


def test_check_current_sees_a_withdrawn_carton(service, manifests_dir) -> None:
    packing = service.fetch("ORD-1001", "C1").manifest
    (manifests_dir / "ORD-1001" / "C1.json").unlink()
    change = service.check_current(packing)
    assert (change.kind, change.current) == (ChangeKind.CANCELLED, None)
    assert change.message.startswith("The WMS no longer knows order ORD-1001 carton C1")


def test_check_current_during_an_outage_does_not_stop_the_carton(service, source) -> None:
    packing = service.fetch("ORD-1001", "C1").manifest
    source.down = True
    assert service.check_current(packing) is None


def test_size_limit_is_checked_before_parsing() -> None:
    # Over the limit by one byte and not even JSON: the size is what gets reported.
    result = parse_manifest(b"x" * 101, "ORD-1", "C1", CATALOG, max_bytes=100)
    assert result.code is RefusalCode.TOO_LARGE


def test_source_configs_are_a_discriminated_union(tmp_path: Path) -> None:
    adapter = TypeAdapter(ManifestSourceConfig)
    http = adapter.validate_python(
        {"type": "http", "url_template": "https://wms/api/orders/{order_id}/cartons/{carton_id}",
         "token": "s3cret"}
    )  # fmt: skip
    assert isinstance(http, HttpManifestSourceConfig)
    assert "s3cret" not in repr(http) and "s3cret" not in http.model_dump_json()
    assert isinstance(adapter.validate_python({"type": "mqtt"}), MqttManifestSourceConfig)
    assert isinstance(
        adapter.validate_python({"type": "directory", "path": str(tmp_path)}),
        DirectoryManifestSourceConfig,
    )
    with pytest.raises(ValueError, match="carton_id"):
        adapter.validate_python({"type": "http", "url_template": "https://wms/{order_id}"})
    with pytest.raises(ValueError, match="Extra inputs"):
        adapter.validate_python({"type": "directory", "path": "x", "recursive": True})


# --- fuzzing: the parser refuses, it never raises ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
line_values = st.fixed_dictionaries(
    {"line_id": st.text(max_size=5), "sku": st.sampled_from([*CATALOG.items, "NOPE", ""]),
     "quantity": st.integers(-3, 20_000) | st.text(max_size=3)},
    optional={"ship_later": json_values},
)  # fmt: skip
manifest_like = st.fixed_dictionaries(
    {"order_id": st.sampled_from(["ORD-1", "ORD-2", ""]), "carton_id": st.just("C1"),
     "version": st.integers(-1, 3) | json_values, "lines": st.lists(line_values, max_size=4)},
    optional={"status": st.sampled_from(["open", "cancelled", "lost"]), "extra": json_values},
)  # fmt: skip


def _parses_or_refuses(raw: bytes, catalog: Catalog = CATALOG) -> None:
    result = parse_manifest(raw, "ORD-1", "C1", catalog, max_bytes=10_000)
    assert isinstance(result, ManifestRefusal) or result.key == ("ORD-1", "C1")
    if isinstance(result, ManifestRefusal):
        assert result.message.endswith(".") and len(result.message) < 400


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _parses_or_refuses(raw)


@settings(max_examples=300)
@given(json_values | manifest_like)
def test_arbitrary_json_never_raises(value) -> None:
    _parses_or_refuses(json.dumps(value).encode())


def test_deeply_nested_json_is_refused() -> None:
    _parses_or_refuses(b"[" * 5000 + b"]" * 5000)
