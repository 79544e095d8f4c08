"""Every string the screen shows comes from a message catalog, in both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

from station.api.config import ReviewSection
from station.session import NEXT_STEP, OTHER_NEXT_STEPS, SessionState
from station.verification import FindingStatus, Outcome

REPO = Path(__file__).resolve().parents[2]
I18N = REPO / "station" / "web" / "i18n"


def catalog(locale: str) -> dict[str, str]:
    return json.loads((I18N / f"{locale}.json").read_text(encoding="utf-8"))


def message_keys_in_code() -> set[str]:
    """Keys the session and daemon show (f-string families expanded by hand below)."""
    source = "".join(p.read_text() for p in (REPO / "station").glob("*.py"))
    keys = set(re.findall(r'ShowMessage\(\s*"\w+",\s*"([a-z_]+\.[a-z_]+)"', source))
    keys |= set(re.findall(r'return "(override\.[a-z_]+)"', source))
    keys |= {f"weigh.captured_{kind}" for kind in ("unit", "box", "unknown")}
    keys |= {f"weigh.{problem}" for problem in ("empty_platter", "platter_not_emptied")}
    return keys | {
        "logout.logout",
        "logout.inactivity",
        "close.use_code",
        "close.use_label",
        "degraded.started",
        "degraded.ended",
    }


def test_both_locales_have_the_same_keys() -> None:
    assert set(catalog("en")) == set(catalog("zh-CN"))


def test_every_message_state_step_and_reason_has_a_string() -> None:
    keys = set(catalog("en"))
    needed = message_keys_in_code()
    needed |= {f"state.{state.value}" for state in SessionState}
    needed |= {f"next.{step}" for step in (*NEXT_STEP.values(), *OTHER_NEXT_STEPS)}
    needed |= {f"reason.{code}" for code in ReviewSection().reason_codes}
    assert len(needed) > 40
    assert needed <= keys, sorted(needed - keys)


def test_the_page_uses_only_catalog_keys() -> None:
    page = (REPO / "station" / "web" / "index.html").read_text()
    keys = set(catalog("en"))
    assert set(re.findall(r'data-i18n="([^"]+)"', page)) <= keys


def test_the_script_uses_only_catalog_keys() -> None:
    """Whole keys the script names, and the families it builds from a prefix."""
    script = (REPO / "station" / "web" / "screen.js").read_text()
    keys = set(catalog("en"))
    named = set(re.findall(r'"((?:ui|error)\.[a-z_.]*[a-z_])"', script))
    [channels] = re.findall(r"const CHANNELS = \[([^\]]*)\]", script)
    families = {
        "ui.channel": re.findall(r'"([a-z]+)"', channels),
        "ui.device": ["up", "down", "connecting"],
        "ui.tick": [*(status.value for status in FindingStatus), "pending"],
        "error": ["403", "409", "429"],  # the statuses the override form explains
        "ui": [outcome.value.lower() for outcome in Outcome],
    }
    built = {f"{prefix}.{member}" for prefix, members in families.items() for member in members}
    assert len(named) > 30 and "vision" in families["ui.channel"]
    assert named | built <= keys, sorted((named | built) - keys)


def test_the_screen_loads_nothing_from_outside_the_station() -> None:
    """No CDN, no web fonts, no absolute URL: the kiosk works with the station PC alone."""
    for name in ("index.html", "screen.js", "screen.css"):
        text = (REPO / "station" / "web" / name).read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", text), name
