"""Structured logs: JSON lines with extras, secrets masked."""

import json
import logging

from station.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "packstation.test", "levelname": "INFO", "msg": "hello"})
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_carries_extras() -> None:
    line = json.loads(JsonFormatter().format(record(port="/dev/pts/3", grams=12.5)))
    assert line["msg"] == "hello"
    assert line["port"] == "/dev/pts/3"
    assert line["grams"] == 12.5
    assert line["logger"] == "packstation.test"


def test_secrets_are_masked_in_both_formats() -> None:
    rec = record(mqtt_password="hunter2", api_token="abc", reviewer_pin="1234")
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(rec)
        assert "hunter2" not in text and "abc" not in text and "1234" not in text
        assert "***" in text


def test_secret_names_are_whole_words() -> None:
    from station.logs import is_secret

    assert is_secret("pin_hash") and is_secret("api_token") and is_secret("password")
    assert not is_secret("shipping_label") and not is_secret("spinner")
