"""The small interface every verification channel implements, and what the daemon lends it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from station.clock import Clock
from station.domain import Catalog
from station.metrics import Metrics
from station.session import (
    CartonView,
    CollectEvidence,
    Effect,
    FetchManifest,
    RecordAttempt,
    RecordAudit,
)
from station.verification import ChannelReport

if TYPE_CHECKING:
    from station.mqtt import EventPublisher


@dataclass(frozen=True, slots=True)
class ChannelContext:
    clock: Clock
    catalog: Catalog
    # Run a function on the station loop; safe from any thread.
    call_soon: Callable[[Callable[[], None]], None]
    # (device, up, detail), on the loop: a fault raised or cleared, shown and published.
    report_health: Callable[[str, bool, str], None]
    # Whether a device is currently at fault (on the loop).
    is_down: Callable[[str], bool]
    # Whether no carton is open (between parcels), for checks that only make sense then.
    is_idle: Callable[[], bool]
    # The open carton as the session sees it (None between cartons), on the loop.
    open_carton: Callable[[], CartonView | None] = lambda: None


_CARTON_ENDS = frozenset({"carton.aborted", "carton.released", "carton.replaced"})

Carton = tuple[str, str]  # (order id, carton id)


def carton_after(effect: Effect, current: Carton | None) -> Carton | None:
    """The carton on the platter once `effect` is carried out: a newly opened order's, none once
    it left (passed, done in shadow mode, aborted, released, replaced), else still `current`. A
    re-fetch of the open carton's manifest (superseded) keeps it."""
    if isinstance(effect, FetchManifest):
        return (effect.order_id, effect.carton_id)
    if isinstance(effect, RecordAttempt):
        record = effect.record
        return None if record.verdict.passed or record.mode == "shadow" else current
    if isinstance(effect, RecordAudit) and effect.kind in _CARTON_ENDS:
        return None
    return current


class EvidenceChannel(ABC):
    """One verification channel (weight, RFID, vision...)."""

    name: str

    @property
    @abstractmethod
    def devices(self) -> tuple[str, ...]:
        """Names of the devices this channel reports health for."""

    @abstractmethod
    def start(self) -> None:
        """Start the device threads."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the device threads; prompt."""

    @abstractmethod
    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        """This channel's report for the carton being closed. `requested_at` is when the close
        came (monotonic); by `deadline` the channel must answer, failing closed if it must."""

    def attach_metrics(self, metrics: Metrics) -> None:  # noqa: B027 - optional hook
        """Register this channel's own metric families (optional)."""

    def attach_publisher(self, publisher: EventPublisher) -> None:  # noqa: B027 - optional hook
        """The station's MQTT link, for channels that talk to the site (optional): subscribe
        here (renewed on reconnect), publish durable events or plain messages later."""

    def observations(self) -> Mapping[str, object]:
        """What the channel saw for the carton it last reported on, for the evidence record (raw
        readings, EPCs read and rejected, image references with their SHA-256, a `model` entry
        naming the model version). Called right after `collect` returned (optional)."""
        return {}

    def on_effect(self, effect: Effect) -> None:  # noqa: B027 - optional hook
        """Every effect the daemon carried out, e.g. a verdict recorded (optional)."""

    def latest_frame(self) -> tuple[bytes, str] | None:
        """The newest annotated image to show the packer, as (JPEG, SHA-256) (camera channels;
        optional)."""
        return None

    def second_look_g(self) -> float | None:
        """The weight of an item the packer is asked to lift again and set down where it
        covers nothing, so the camera sees what it hid (camera channels; optional)."""
        return None

    def live_units(self, carton: CartonView) -> Mapping[str, int]:
        """Units per SKU this channel has seen go into the open carton so far, for the packer's
        checklist while packing (optional). Provisional: every channel decides again at close.
        Called on the loop at each screen refresh, so it must be cheap."""
        return {}
