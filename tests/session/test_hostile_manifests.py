"""Hostile manifests through the real path: bytes from the source -> ManifestService (size limit,
JSON, schema, id and catalog checks, cache) -> the daemon's `manifest_input` -> the session. A
manifest that is refused publishes a `station.fault` (valid against the event contract), aborts
only the carton that waited for it and changes nothing else; one that is accepted is exactly
what was sent. (The MQTT answer envelope is fuzzed in tests/mqtt/test_manifest_mqtt.py.)"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from station.carton_policy import Fallback, StationPolicy
from station.clock import ManualClock
from station.codes import BadgeCode, OrderCartonCode
from station.daemon import manifest_input
from station.domain import Manifest
from station.event_shapes import to_event
from station.manifests import FetchedManifest, ManifestService
from station.session import (
    STATION_FAULT,
    DegradedModeRequested,
    PublishEvent,
    Scanned,
    Session,
    SessionState,
    WorkflowConfig,
)
from tests.core.test_manifests import CATALOG, GOOD

MAX_BYTES = 4_096

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
lines = st.lists(
    st.fixed_dictionaries(
        {
            "line_id": st.sampled_from(["1", "2", "3"]) | st.text(max_size=5),
            "sku": st.sampled_from(sorted(CATALOG.items))
            | st.sampled_from(sorted(CATALOG.items))
            | st.text(max_size=12),
            "quantity": st.integers(1, 3) | st.integers(-2, 10_002) | json_values,
        }
    ),
    min_size=1,
    max_size=4,
)
mutated = st.builds(
    lambda field, value: {**GOOD, field: value},
    st.sampled_from([*GOOD, "unexpected"]),
    json_values | lines | st.sampled_from(["ORD-1002", "C2", "cancelled", "open", 2, 0]),
)
relined = st.builds(
    lambda new_lines: {**GOOD, "lines": [{**line, "line_id": str(i)} for i, line in new_lines]},
    lines.map(lambda drawn: list(enumerate(drawn, 1))),
)
payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda value: json.dumps(value).encode())
    | mutated.map(lambda document: json.dumps(document).encode())
    | relined.map(lambda document: json.dumps(document).encode())
    | st.builds(lambda pad: json.dumps({**GOOD, "pad": "x" * pad}).encode(), st.integers(0, 6000))
)


class FixedBytesSource:
    """The WMS answering `raw` for every carton (the attacker's or the buggy WMS's bytes)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def fetch(self, order_id: str, carton_id: str) -> bytes:
        return self.raw

    def close(self) -> None:
        pass


def waiting_session() -> Session:
    """Logged in, under a degraded mode, the carton ORD-1001/C1 waiting for its manifest."""
    session = Session(
        WorkflowConfig(), CATALOG, StationPolicy(), ManualClock(), lambda e, b: dict.fromkeys(e, 1)
    )
    session.handle(Scanned(BadgeCode("A1")))
    session.handle(DegradedModeRequested(Fallback.SCAN_FOR_RFID, "R9", "reader_down", 600))
    session.handle(Scanned(OrderCartonCode("ORD-1001", "C1")))
    assert session.state is SessionState.LOADING
    return session


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=payloads)
def test_a_refused_manifest_is_a_fault_and_changes_nothing_else(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as cache_dir:
        service = ManifestService(
            FixedBytesSource(raw), CATALOG, Path(cache_dir), MAX_BYTES, ManualClock()
        )
        result = service.fetch("ORD-1001", "C1")
        service.close()
    session = waiting_session()
    before = session.snapshot()
    effects = session.handle(manifest_input(result, "ORD-1001", "C1"))
    after = session.snapshot()
    event("accepted" if isinstance(result, FetchedManifest) else f"refused: {result.code}")

    if isinstance(result, FetchedManifest):
        sent = Manifest.model_validate_json(raw)
        assert result.manifest == sent and not result.from_cache
        assert after.carton is not None and after.carton.manifest == sent
        assert session.state is SessionState.AWAITING_BOX
        return
    faults = [e for e in effects if isinstance(e, PublishEvent)]
    assert [f.kind for f in faults] == [STATION_FAULT]
    assert faults[0].data["fault"] == "manifest_refused"
    _type, payload, subject = to_event(faults[0], "pack-01", "dc-1")  # contract-valid
    assert subject == "ORD-1001/C1" and payload.model_dump()["state"] == "raised"
    # Only the waiting carton is gone: the packer and the degraded mode are as they were.
    assert after.same_state(replace(before, state=SessionState.IDLE, carton=None))
