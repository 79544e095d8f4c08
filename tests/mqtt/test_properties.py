"""Property tests: outbox ordering and numbering; event JSON round trip."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from station.events import (
    PAYLOAD_MODELS,
    CloudEvent,
    EventType,
    event_source,
    parse_event,
    topic_for,
)
from station.outbox import Outbox
from tests.mqtt.factories import SITE, STATION, verification

SOURCE = event_source(SITE, STATION)
TOPIC = topic_for(EventType.VERIFICATION_RESULT, SITE, STATION)

# A run: commit some events to a few cartons, acking a random subset now and then, and
# sometimes reopening the database (a restart).
operations = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.sampled_from(["C-1", "C-2", "C-3"])),
        st.tuples(st.just("ack"), st.sets(st.integers(min_value=0, max_value=30), max_size=5)),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(operations)
def test_outbox_keeps_order_and_numbers_without_gaps(run: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "o.db"
        outbox = Outbox(path)
        committed: list[int] = []
        acked: set[int] = set()
        carton_versions: dict[str, int] = {}
        for operation, argument in run:
            if operation == "commit":
                carton = str(argument)
                stored = outbox.commit(
                    EventType.VERIFICATION_RESULT,
                    TOPIC,
                    verification(carton),
                    source=SOURCE,
                    subject=carton,
                )
                committed.append(stored.station_seq)
                carton_versions[carton] = carton_versions.get(carton, 0) + 1
                assert parse_event(stored.payload).cartonversion == carton_versions[carton]
            elif operation == "ack":
                picked = {committed[i] for i in argument if i < len(committed)}  # type: ignore[union-attr]
                outbox.ack(*picked)
                acked |= picked
            else:
                outbox.close()
                outbox = Outbox(path)
        assert committed == list(range(1, len(committed) + 1))
        pending = [event.station_seq for event in outbox.pending(1000)]
        assert pending == [seq for seq in committed if seq not in acked]
        outbox.close()


@st.composite
def cloud_events(draw: st.DrawFn) -> CloudEvent:  # type: ignore[type-arg]
    event_type = draw(st.sampled_from(list(EventType)))
    model = PAYLOAD_MODELS[event_type]
    epcs = st.lists(st.binary(min_size=12, max_size=12).map(lambda b: b.hex().upper()), min_size=1)
    data = draw(st.builds(model, epcs=epcs) if "epcs" in model.model_fields else st.builds(model))
    return CloudEvent[model](  # type: ignore[valid-type]
        id=draw(st.uuids()).hex,
        source=SOURCE,
        type=event_type,
        time=draw(st.datetimes(timezones=st.timezones())),
        subject=draw(st.none() | st.text(min_size=1, max_size=12)),
        stationseq=draw(st.integers(min_value=1, max_value=2**53)),
        cartonversion=draw(st.none() | st.integers(min_value=1, max_value=10**6)),
        data=data,
    )


@settings(max_examples=100, deadline=None)
@given(cloud_events())
def test_event_json_round_trip(event: CloudEvent) -> None:  # type: ignore[type-arg]
    encoded = event.to_json()
    decoded = parse_event(encoded)
    assert decoded == event
    assert decoded.to_json() == encoded
