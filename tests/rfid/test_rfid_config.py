from __future__ import annotations

import random

import pytest
from pydantic import BaseModel, ValidationError

from rfid.config import (
    AntennaWindow,
    AsciiReaderConfig,
    ChafonReaderConfig,
    LlrpReaderConfig,
    ReadWindowConfig,
    ThingMagicReaderConfig,
    rfid_reader_config_from,
)
from rfid.identity import EpcSkuTable
from station.supervision import reconnect_delay_s


def test_protocol_picks_the_model_and_its_defaults():
    llrp = rfid_reader_config_from({"protocol": "llrp", "host": "10.0.0.20"})
    assert isinstance(llrp, LlrpReaderConfig)
    assert (llrp.endpoint, llrp.url, llrp.session) == (
        "10.0.0.20:5084",
        "socket://10.0.0.20:5084",
        1,
    )
    chafon = rfid_reader_config_from({"protocol": "chafon", "port": "/dev/ttyUSB0"})
    assert isinstance(chafon, ChafonReaderConfig) and chafon.baudrate == 57600
    tm = rfid_reader_config_from({"protocol": "thingmagic", "port": "/dev/ttyACM0"})
    assert isinstance(tm, ThingMagicReaderConfig) and tm.baudrate == 115200
    ascii_reader = rfid_reader_config_from({"protocol": "ascii", "port": "socket://h:4001"})
    assert isinstance(ascii_reader, AsciiReaderConfig) and ascii_reader.stale_after_s is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"protocol": "llrp", "host": "h", "port": "/dev/x"}, "Extra inputs"),
        ({"protocol": "llrp", "host": "h", "keepalive_s": 20}, "longer than keepalive_s"),
        ({"protocol": "llrp", "host": "h", "antenna_power_dbm": {3: 20}}, "not in antennas"),
        ({"protocol": "llrp", "host": "h", "session": 4}, "session"),
        ({"protocol": "llrp", "host": "h", "report_every_n_tags": 0}, "report_every_n_tags"),
        (
            {"protocol": "llrp", "host": "h", "target": "A", "impinj_search_mode": "dual_target"},
            "not both",
        ),
        ({"protocol": "llrp", "host": "h", "impinj_search_mode": "tagfocus"}, "impinj_search_mode"),
        ({"protocol": "chafon", "port": "socket://h"}, "needs host:port"),
        ({"protocol": "chafon", "port": "sockt://h:1"}, "unknown pyserial URL scheme"),
        ({"protocol": "chafon", "port": "/dev/x", "power_dbm": 31}, "less than or equal to 30"),
        ({"protocol": "chafon", "port": "/dev/x", "antennas": [1, 1]}, "antenna listed twice"),
        ({"protocol": "ascii", "port": "/dev/x", "line_pattern": "(?P<tag>.*)"}, "(?P<epc>"),
        ({"protocol": "ascii", "port": "/dev/x", "line_pattern": "(?P<epc>"}, "not a valid regex"),
        ({"protocol": "thingmagic", "port": "/dev/x", "target": "C"}, "target"),
        ({"protocol": "impinj", "host": "h"}, "impinj"),
    ],
)
def test_bad_settings_are_named(data, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("?", r"\?")):
        rfid_reader_config_from(data)


def test_window_config_validation():
    window = ReadWindowConfig(epc_prefixes=("30", "e2"))
    assert window.epc_prefixes == ("30", "E2") and window.floor_for(1) == -60.0
    assert window.floor_for(2) is None
    with pytest.raises(ValidationError, match="not hex"):
        ReadWindowConfig(epc_prefixes=("3G",))
    with pytest.raises(ValidationError, match="antenna listed twice"):
        ReadWindowConfig(antennas=(AntennaWindow(antenna=1), AntennaWindow(antenna=1)))


@pytest.mark.parametrize(
    "model",
    [
        LlrpReaderConfig,
        ChafonReaderConfig,
        ThingMagicReaderConfig,
        AsciiReaderConfig,
        ReadWindowConfig,
        AntennaWindow,
        EpcSkuTable,
    ],
)
def test_every_field_is_described_and_extras_forbidden(model: type[BaseModel]):
    assert model.model_config.get("extra") == "forbid"
    undescribed = [name for name, f in model.model_fields.items() if not f.description]
    assert undescribed == []


def test_backoff_stays_within_bounds():
    rng = random.Random(1)
    delays = [reconnect_delay_s(n, 0.5, 30, rng) for n in range(1, 12)]
    assert all(0.5 <= d <= 30 for d in delays) and delays[-1] >= 15
