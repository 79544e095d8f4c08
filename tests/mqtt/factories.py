"""Small builders of valid event payloads shared by the MQTT tests."""

from __future__ import annotations

from station.events import (
    MissingItemShippedShort,
    MissingLine,
    Mode,
    Outcome,
    ResponsibleStage,
    VerificationResult,
)

SITE = "site1"
STATION = "st7"


def verification(carton_id: str = "C-1", outcome: Outcome = Outcome.PASS) -> VerificationResult:
    return VerificationResult(
        station_id=STATION,
        site_id=SITE,
        order_id=f"O-{carton_id}",
        carton_id=carton_id,
        manifest_version=3,
        attempt=1,
        mode=Mode.ENFORCE,
        outcome=outcome,
    )


def shipped_short(carton_id: str = "C-1") -> MissingItemShippedShort:
    return MissingItemShippedShort(
        station_id=STATION,
        site_id=SITE,
        order_id=f"O-{carton_id}",
        carton_id=carton_id,
        manifest_version=3,
        attempt=2,
        mode=Mode.ENFORCE,
        packer_id="B-100",
        responsible=ResponsibleStage(picker_id="B-7", tote_id="T-9", wave_id="W-1"),
        missing_lines=[MissingLine(sku="SKU-1", name="Mug", quantity_missing=1, line_id="L1")],
        reviewer_id="B-200",
    )
