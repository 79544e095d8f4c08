"""The label interlock: an agreement with the shipping software, not a relay. It asks the station
(GET /api/label-permission, or MQTT request/response on the station's own topics) before it prints
or reprints a carton's label, and gets a yes only after that carton passed (with its light and
diverter confirmed) or a reviewer released it since its last attempt. Every reprint request and
every granted label is audited, so a dispute can see how many labels a carton got and why.

Runs on the loop; MQTT requests arrive on paho's thread and are handed over with `call_soon`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from station.events import (
    LabelPermissionRequest,
    LabelPermissionResponse,
    LabelPurpose,
    TopicKey,
)
from station.evidence import EvidenceStore
from station.mqtt import EventPublisher, ReceivedMessage
from station.session import CARTON_UNSEALED, LabelGranted, Session

log = logging.getLogger("packstation.interlock")
LABEL_PERMISSION = "label.permission"
# Audits of a carton leaving the station unverified since its last attempt or release.
# A carton a stop lost while its verdict record was still being written (the daemon's audit).
LEFT_AT_RESTART = "carton.left_at_restart"
LEFT_UNVERIFIED = (CARTON_UNSEALED, "carton.replaced", "carton.aborted", LEFT_AT_RESTART)


class Outputs(Protocol):
    @property
    def settled(self) -> bool:
        """Every output device confirmed the state last asked of it."""


def label_permission(
    attempts: list[dict[str, Any]],
    releases: list[dict[str, Any]],
    held: bool,
    shadow_station: bool,
    outputs_pending: bool = False,
    unsealed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Allowed after the carton's last attempt passed, or after a reviewer released it since.

    A station in shadow mode never stops a parcel, so its answer is always yes, flagged `shadow`
    so the shipping software can tell a verified carton from one that was merely recorded. A PASS
    whose light and diverter have not confirmed it yet (`outputs_pending`) is not a yes yet: if
    they fail, the PASS is withdrawn. Nor is a passed or released carton opened again at the
    station (`held`: being repacked), or one that left the station unverified since
    (`unsealed`: `carton.unsealed` without its label scan and final weight, or opened again and
    then replaced or aborted, after its last attempt or release): nothing proves it is still
    what passed, so it is verified again.
    """
    last = attempts[-1] if attempts else None
    release = None
    left = False
    if last is not None:
        # Ordered by chain position, not by the wall clock (NTP may step it).
        release = next((r for r in reversed(releases) if r["seq"] > last["seq"]), None)
        since = release["seq"] if release is not None else last["seq"]
        left = any(u["seq"] > since for u in unsealed or ())
    shadow = shadow_station or (last is not None and last["mode"] == "shadow")
    cleared = last is not None and (release is not None or last["verdict"]["outcome"] == "PASS")
    if last is None:
        reason = "not_verified"
    elif held:
        reason = "reopened" if cleared else "held"
    elif cleared and left:
        reason = "left_unsealed"
    elif release is not None:
        reason = "released"
    elif cleared:
        reason = "outputs_pending" if outputs_pending else "passed"
    else:
        reason = "not_passed"
    return {
        "allowed": shadow or reason in ("released", "passed"),
        "shadow": shadow,
        "reason": reason,
        "outcome": last["verdict"]["outcome"] if last else None,
        "attempt": last["attempt"] if last else None,
        "released_by": release["reviewer_badge"] if release else None,
    }


class LabelInterlock:
    def __init__(
        self,
        session: Session,
        evidence: EvidenceStore,
        outputs: Outputs,
        publisher: EventPublisher,
        now_utc: Callable[[], Any],
        call_soon: Callable[[Callable[[], None]], None],
        feed: Callable[[LabelGranted], object],
        left_at_restart: Callable[[str, str], float | None] = lambda order_id, carton_id: None,
    ) -> None:
        """`feed` gives the session a granted label (on the loop). `left_at_restart` gives the
        chain position at which a stop lost a carton while its verdict record was still being
        written (it left the station unverified), until the audit saying so is written."""
        self._session = session
        self._evidence = evidence
        self._outputs = outputs
        self._publisher = publisher
        self._now_utc = now_utc
        self._call_soon = call_soon
        self._feed = feed
        self._left_at_restart = left_at_restart

    def subscribe(self) -> None:
        self._publisher.subscribe(TopicKey.LABEL_PERMISSION_REQUEST, self._on_request)

    def decide(
        self,
        order_id: str,
        carton_id: str,
        purpose: LabelPurpose,
        via: str,
        requested_by: str | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """The answer for this carton now (on the loop); a reprint request or a granted label is
        audited. A granted `label` (tracking number) is the one the label scan must then read.

        Where the evidence store cannot answer or record it (a full disk, a record owed about
        this carton that cannot be written yet), the answer is a refusal saying so, not silence:
        nothing on the record proves the carton, and a grant that is not audited is not given.
        """
        try:
            return self._decide(order_id, carton_id, purpose, via, requested_by, label)
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "label permission refused: the evidence store cannot be read or written; free "
                "space under the data_dir or fix the file, and the shipping software's next ask "
                "is answered",
                extra={
                    "order_id": order_id,
                    "carton_id": carton_id,
                    "path": str(self._evidence.path),
                    "error": str(exc),
                },
            )
            shadow = self._session.mode == "shadow"
            return {
                **label_permission([], [], held=False, shadow_station=shadow),
                "reason": "evidence_unavailable",
                "purpose": purpose,
                "earlier_grants": 0,
            }

    def _decide(
        self,
        order_id: str,
        carton_id: str,
        purpose: LabelPurpose,
        via: str,
        requested_by: str | None,
        label: str | None,
    ) -> dict[str, Any]:
        key = (order_id, carton_id)
        session = self._session
        permission = label_permission(
            self._evidence.attempts(order_id, carton_id),
            self._evidence.releases(order_id, carton_id),
            held=session.open_carton == key,
            shadow_station=session.mode == "shadow",
            outputs_pending=session.awaiting_label == key and not self._outputs.settled,
            unsealed=self._unsealed(order_id, carton_id),
        )
        earlier = self._evidence.audits(order_id, carton_id, LABEL_PERMISSION)
        granted_before = sum(1 for entry in earlier if entry["allowed"])
        answer = {**permission, "purpose": purpose, "earlier_grants": granted_before}
        if purpose == "reprint" or permission["allowed"]:
            self._evidence.record_audit(
                LABEL_PERMISSION,
                {
                    "order_id": order_id,
                    "carton_id": carton_id,
                    "purpose": purpose,
                    "allowed": permission["allowed"],
                    "reason": permission["reason"],
                    "attempt": permission["attempt"],
                    "via": via,
                    "requested_by": requested_by,
                    "label": label,
                    "earlier_grants": granted_before,
                },
                self._now_utc(),
            )
        if label is not None and permission["allowed"]:
            self._feed(LabelGranted(order_id, carton_id, label))
        return answer

    def _unsealed(self, order_id: str, carton_id: str) -> list[dict[str, Any]]:
        """Where the carton left the station unverified: the audits, and a stop not audited yet."""
        audits = self._evidence.audits(order_id, carton_id, *LEFT_UNVERIFIED)
        stopped = self._left_at_restart(order_id, carton_id)
        return audits if stopped is None else [*audits, {"seq": stopped}]

    # -- MQTT ------------------------------------------------------------------------------------

    def _on_request(self, message: ReceivedMessage) -> None:
        """paho's thread: hand over to the loop, which owns the session and the evidence."""
        self._call_soon(lambda: self._answer(message))

    def _answer(self, message: ReceivedMessage) -> None:
        request = message.payload
        assert isinstance(request, LabelPermissionRequest)  # the topic table's model
        answer = self.decide(
            request.order_id,
            request.carton_id,
            request.purpose,
            "mqtt",
            request.requested_by,
            request.label,
        )
        response = LabelPermissionResponse(
            request_id=request.request_id,
            station_id=self._publisher.station_id,
            order_id=request.order_id,
            carton_id=request.carton_id,
            **answer,
        )
        if not self._publisher.send(
            TopicKey.LABEL_PERMISSION_RESPONSE, response, message.correlation_data
        ):
            log.warning(
                "label permission answer not sent: broker link down",
                extra={"order_id": request.order_id, "request_id": request.request_id},
            )
