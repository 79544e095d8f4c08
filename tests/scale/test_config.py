from __future__ import annotations

import pytest
from pydantic import ValidationError

from scale.config import MtSicsScaleConfig, NciScaleConfig, _ScaleConfigBase, scale_config_from


def test_protocol_picks_the_model_and_its_serial_defaults():
    nci = scale_config_from({"protocol": "nci", "port": "/dev/ttyUSB0"})
    assert isinstance(nci, NciScaleConfig)
    assert nci.serial_summary == "9600 7E1"
    mtsics = scale_config_from({"protocol": "mtsics", "port": "socket://10.0.0.5:4001"})
    assert isinstance(mtsics, MtSicsScaleConfig)
    assert (mtsics.serial_summary, mtsics.mtsics_mode) == ("9600 8N1", "poll")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"protocol": "toledo", "mtsics_mode": "stream"}, "Extra inputs"),
        ({"read_timeout_s": 0}, "greater than 0"),
        ({"port": "sockt://host:1"}, "unknown pyserial URL scheme"),
        ({"port": "socket://host"}, "needs host:port"),
        ({"baudrate": 9601}, "baudrate"),
        ({"division_g": 20_000}, "division_g must be smaller"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"stale_after_s": 0.1, "poll_interval_s": 0.2}, "stale_after_s"),
        ({"protocol": "radwag"}, "radwag"),
    ],
)
def test_invalid_settings_are_rejected(changes, message):
    with pytest.raises(ValidationError, match=message):
        scale_config_from({"protocol": "mtsics", "port": "/dev/ttyUSB0", **changes})


def test_every_field_is_described():
    for model in (_ScaleConfigBase, MtSicsScaleConfig, NciScaleConfig):
        undocumented = [name for name, f in model.model_fields.items() if not f.description]
        assert undocumented == []
