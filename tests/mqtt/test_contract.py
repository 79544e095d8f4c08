"""The committed contract matches the models; payloads validate against the published schemas."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import jsonschema

from station.contract import add_commands, contract_files, drift, write
from station.events import TOPICS, EventType, TopicKey, event_source, topic_for
from station.outbox import Outbox
from tests.mqtt.factories import SITE, STATION, shipped_short

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTRACT_DIR = DOCS / "contract"


def test_committed_contract_matches_the_models() -> None:
    assert drift(CONTRACT_DIR) == [], "run: python -m station.contract --write docs/contract"


def test_drift_is_detected(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "schemas" / "availability.json").write_text("{}\n")
    (tmp_path / "schemas" / "retired.json").write_text("{}\n")
    assert drift(tmp_path) == [
        "schemas/availability.json: out of date",
        "schemas/retired.json: no longer generated",
    ]


def test_every_topic_and_event_type_is_in_the_asyncapi_document() -> None:
    document = json.loads(contract_files()["asyncapi.json"])
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert "packstation/v1/{site}/{station}/manifest/response" in addresses
    assert len(addresses) == len(TopicKey)
    # availability, manifest request and response, open EPCs, returns, label permission
    # request and response
    assert len(document["components"]["messages"]) == len(EventType) + 7
    assert "packstation/v1/{site}/{station}/label/permission/request" in addresses
    # The site-wide RFID topics: no station level, sent and received by every station.
    assert "packstation/v1/{site}/rfid/epcs_shipped" in addresses
    assert "packstation/v1/{site}/wms/rfid/returns" in addresses
    actions = {name: op["action"] for name, op in document["operations"].items()}
    assert actions["publishRfidEpcsShipped"] == "send"
    assert actions["subscribeRfidEpcsShipped"] == "receive"
    assert actions["subscribeRfidReturns"] == "receive"
    assert document["channels"]["rfidEpcsOpen"]["parameters"].keys() == {"site"}


def test_a_published_event_validates_against_its_schema(tmp_path: Path) -> None:
    stored = Outbox(tmp_path / "o.db").commit(
        EventType.MISSING_ITEM_SHIPPED_SHORT,
        topic_for(EventType.MISSING_ITEM_SHIPPED_SHORT, SITE, STATION),
        shipped_short(),
        source=event_source(SITE, STATION),
        subject="C-1",
    )
    schema = json.loads(contract_files()["schemas/missingItemShippedShort.json"])
    jsonschema.validate(json.loads(stored.payload), schema)


def test_contract_subcommand_checks_a_directory(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    written = parser.parse_args(["contract", "--write", str(tmp_path)])
    assert written.func(written) == 0
    checked = parser.parse_args(["contract", "--check", str(tmp_path)])
    assert checked.func(checked) == 0


def test_the_topic_table_in_mqtt_md_is_the_topic_table_in_the_code() -> None:
    """docs/mqtt.md is read by people; its table must say what TOPICS does."""
    row = re.compile(r"^\| `(\{prefix\}/[^`]+)` \| ([a-z +]+) \| (\d) \| (yes|no) \|", re.M)
    documented = {
        (pattern, direction, int(qos), retain == "yes")
        for pattern, direction, qos, retain in row.findall((DOCS / "mqtt.md").read_text())
    }
    in_code = {
        (
            spec.pattern,
            "publish + subscribe" if spec.shared else spec.direction.value,
            spec.qos,
            spec.retain,
        )
        for spec in TOPICS.values()
    }
    assert documented == in_code
