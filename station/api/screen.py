"""What the packer's screen shows, as one JSON document rebuilt from the station's status.

`ScreenModel` watches the session's effects for what the status alone does not hold: the last
message and the last verdict (a PASS ends the carton, but its green screen must stay up until the
packer starts the next one). Everything else comes from the `StationStatus` snapshot, so a screen
that reconnects gets the whole picture at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scale.weighing import scale_error_g
from station.api.pictures import ProductPictures
from station.domain import Catalog, CatalogItem, ItemKind
from station.evidence import to_plain
from station.session import (
    AttemptRecord,
    CartonView,
    Effect,
    RecordAttempt,
    ShowMessage,
)
from station.status import StationStatus
from station.verification import SCAN_RECOUNT, LineDelta, Verdict
from station.weight_check import (
    UnpredictableWeight,
    WeightCheckConfig,
    expected_weight,
    tolerance_g,
)

# Messages after which the last verdict no longer describes what is on the table.
# Messages after which no verdict may stay on screen (storage_failed: a verdict that could not be
# recorded must not be shown as decided).
_VERDICT_ENDS = frozenset(
    {
        "order.loading",
        "close.verifying",
        "login.welcome",
        "logout.logout",
        "logout.inactivity",
        "station.storage_failed",
    }
)
SCAN_CHANNEL = "scan"  # the packer's item scans, shown beside the verification channels


class ScreenModel:
    def __init__(
        self,
        catalog: Catalog,
        pictures: ProductPictures,
        weight_config: WeightCheckConfig,
        division_g: float,
        reason_codes: list[str],
    ) -> None:
        self._catalog = catalog
        self._pictures = pictures
        self._weight_config = weight_config
        self._division_g = division_g
        self._reason_codes = reason_codes
        self._message: ShowMessage | None = None
        self._verdict: dict[str, Any] | None = None

    def on_effect(self, effect: Effect) -> None:
        """A daemon observer: remembers the last message and the last verdict."""
        if isinstance(effect, RecordAttempt):
            self._verdict = self._verdict_view(effect.record)
        elif isinstance(effect, ShowMessage):
            self._message = effect
            if effect.key in _VERDICT_ENDS:
                self._verdict = None
            elif effect.key == "override.released" and self._verdict is not None:
                self._verdict = {**self._verdict, "released_by": effect.params["reviewer_badge"]}

    def view(
        self,
        status: StationStatus,
        camera: dict[str, Any] | None = None,
        live: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, Any]:
        """`camera`: the camera panel (None: the station has no camera). `live`: per channel,
        the units per SKU it has seen go in so far (ticks while packing, until a verdict)."""
        carton = status.carton
        return {
            "station": {
                "id": status.station_id,
                "site": status.site_id,
                "mode": status.mode,
                "locale": status.locale,
            },
            "state": status.state.value,
            "packer": status.packer,
            "carton": self._carton_view(carton, live or {}) if carton else None,
            "weight": {
                "grams": status.weight.grams,
                "state": status.weight.state.value,
                "window": self._window(carton) if carton else None,
            },
            "devices": [to_plain(d) for d in status.devices],
            "degraded": status.degraded,
            "camera": camera,
            "message": self._message_view(),
            "verdict": self._verdict,
            "review": {"reason_codes": self._reason_codes},
        }

    def _message_view(self) -> dict[str, Any] | None:
        message = self._message
        if message is None:
            return None
        return {"level": message.level, "key": message.key, "params": to_plain(message.params)}

    def _carton_view(
        self, carton: CartonView, live: Mapping[str, Mapping[str, int]]
    ) -> dict[str, Any]:
        return {
            "order_id": carton.order_id,
            "carton_id": carton.carton_id,
            "box": carton.box.code if carton.box else None,
            "suggested_box": carton.manifest.box_code if carton.manifest else None,
            "attempts": carton.attempts,
            "lines": self._checklist(carton, live),
        }

    def _checklist(
        self, carton: CartonView, live: Mapping[str, Mapping[str, int]]
    ) -> list[dict[str, Any]]:
        """One row per expected SKU (kits expanded) with a tick per channel that spoke about it:
        what each channel has seen so far while packing ("seen", with its units), then, once
        the carton was closed, what each decided."""
        rows = []
        must_scan = {c.sku for c in carton.coverage if c.must_scan}
        check = {c.sku for c in carton.coverage if c.lookalikes_unproven}
        recounting = _recounting(carton)
        for sku, expected in sorted(carton.expected_units.items()):
            scanned = carton.scanned_units.get(sku, 0)
            channels = {SCAN_CHANNEL: {"status": _scan_status(scanned, expected, sku in must_scan)}}
            if carton.last_verdict is None:
                channels |= {
                    name: {"status": "seen", "units": units[sku]}
                    for name, units in live.items()
                    if units.get(sku)
                }
            decided = _findings_for(carton.last_verdict, sku)
            if sku in recounting:  # the recount's scans, not the verdict's old count
                decided = {k: v for k, v in decided.items() if k != SCAN_CHANNEL}
            channels |= decided
            rows.append(
                {
                    **self._item(sku),
                    "expected": expected,
                    "scanned": scanned,
                    "must_scan": sku in must_scan,
                    "check_lookalikes": sku in check,
                    "channels": channels,
                }
            )
        return rows

    def _item(self, sku: str) -> dict[str, Any]:
        item: CatalogItem | None = self._catalog.items.get(sku)
        return {
            "sku": sku,
            "name": item.name if item else sku,
            "image_url": self._pictures.url(sku),
            "insert": bool(item and item.kind is ItemKind.INSERT),
        }

    def _window(self, carton: CartonView) -> dict[str, float] | None:
        """The weight the carton should reach, as the weight channel will judge it at close."""
        if carton.box is None or not carton.expected_units:
            return None
        materials = self._weight_config.packing_materials()
        try:
            mean, sigma = expected_weight(
                carton.expected_units, self._catalog, carton.box, materials
            )
        except UnpredictableWeight:
            return None
        tolerance = tolerance_g(sigma, scale_error_g(mean, self._division_g), self._weight_config)
        return {"expected_g": mean, "tolerance_g": tolerance}

    def _verdict_view(self, record: AttemptRecord) -> dict[str, Any]:
        verdict = record.verdict
        return {
            "outcome": verdict.outcome.value,
            "mode": record.mode,
            "order_id": record.order_id,
            "carton_id": record.carton_id,
            "attempt": record.attempt,
            "missing": self._lines(verdict.missing),
            "extra": self._lines(verdict.extra),
            "reasons": [to_plain(reason) for reason in verdict.reasons],
            "weight": to_plain(record.weight),
            "released_by": None,
        }

    def _lines(self, deltas: tuple[LineDelta, ...]) -> list[dict[str, Any]]:
        return [{**self._item(d.sku), "quantity": d.quantity} for d in deltas]


def _scan_status(scanned: int, expected: int, must_scan: bool) -> str:
    """The live scan tick: a must-scan SKU scanned too often shows as extra (its count is
    acted on; for other SKUs a scan too many is as likely a double scan, and not acted on)."""
    if must_scan and scanned > expected:
        return "extra"
    return "confirmed" if scanned >= expected else "pending"


def _recounting(carton: CartonView) -> set[str]:
    """SKUs whose recount the last verdict asked for and the packer has started scanning."""
    verdict = carton.last_verdict
    if verdict is None:
        return set()
    asked = {r.sku for r in verdict.reasons if r.code == SCAN_RECOUNT and r.sku}
    return asked - carton.recount_asked


def _findings_for(verdict: Verdict | None, sku: str) -> Mapping[str, dict[str, Any]]:
    if verdict is None:
        return {}
    found = {}
    for report in verdict.reports:
        finding = report.finding_for(sku)
        if finding is not None:
            found[report.channel] = {
                "status": finding.status.value,
                "confidence": round(finding.confidence, 3),
            }
    return found
