"""Station metrics in the Prometheus text format (0.0.4), written out by hand: a handful of
counters, one histogram family and gauges read at scrape time do not warrant a dependency.

Only the loop thread updates and renders them, so there is no locking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from station.session import CollectEvidence, Effect, RecordAttempt

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class _Family:
    name: str
    help: str
    kind: str  # counter | gauge


@dataclass
class _Histogram:
    buckets: Counter[float] = field(default_factory=Counter)
    count: int = 0
    total: float = 0.0


class Metrics:
    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._values: dict[str, Counter[Labels]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def counter(self, name: str, help: str) -> None:
        self._families[name] = _Family(name, help, "counter")
        self._values[name] = Counter()

    def histogram(self, name: str, help: str) -> None:
        self._families[name] = _Family(name, help, "histogram")
        self._histograms[name] = {}

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A value read when scraped (outbox depth, devices up)."""
        self._families[name] = _Family(name, help, "gauge")
        self._gauges[name] = read

    def inc(self, name: str, labels: Mapping[str, str] | None = None, by: float = 1) -> None:
        self._values[name][_labels(labels)] += by

    def observe(self, name: str, seconds: float, labels: Mapping[str, str] | None = None) -> None:
        histogram = self._histograms[name].setdefault(_labels(labels), _Histogram())
        histogram.count += 1
        histogram.total += seconds
        for bound in LATENCY_BUCKETS_S:
            if seconds <= bound:
                histogram.buckets[bound] += 1

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self._values[name][_labels(labels)]

    def render(self) -> str:
        lines: list[str] = []
        for family in self._families.values():
            lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
            lines += self._samples(family)
        return "\n".join(lines) + "\n"

    def _samples(self, family: _Family) -> list[str]:
        name = family.name
        if family.kind == "gauge":
            return [f"{name} {_number(self._gauges[name]())}"]
        if family.kind == "counter":
            return [f"{name}{_text(k)} {_number(v)}" for k, v in sorted(self._values[name].items())]
        lines = []
        for labels, h in sorted(self._histograms[name].items()):
            for bound in LATENCY_BUCKETS_S:
                bucket = (*labels, ("le", _number(bound)))
                lines.append(f"{name}_bucket{_text(bucket)} {h.buckets[bound]}")
            lines.append(f"{name}_bucket{_text((*labels, ('le', '+Inf')))} {h.count}")
            lines.append(f"{name}_sum{_text(labels)} {_number(h.total)}")
            lines.append(f"{name}_count{_text(labels)} {h.count}")
        return lines


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _text(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class StationMetrics(Metrics):
    """The station's own families; the daemon feeds it effects and device events."""

    def __init__(self, outbox_depth: Callable[[], float], devices_down: Callable[[], float]):
        super().__init__()
        self.counter("packstation_verdicts_total", "Verdicts by outcome and mode.")
        self.counter("packstation_verdict_reasons_total", "Reasons given with verdicts, by code.")
        self.histogram(
            "packstation_verification_seconds", "From a close to its verdict, in seconds."
        )
        self.histogram(
            "packstation_channel_latency_seconds", "Time a channel took to report, by channel."
        )
        self.counter("packstation_device_reconnects_total", "A device came back after a fault.")
        self.counter("packstation_overrides_total", "Held cartons released by a reviewer.")
        self.counter("packstation_reviewer_rejections_total", "Refused overrides, by reason.")
        self.counter("packstation_evidence_pruned_total", "Evidence records and images pruned.")
        self.gauge("packstation_outbox_depth", "Events waiting in the outbox.", outbox_depth)
        self.gauge("packstation_devices_down", "Devices currently at fault.", devices_down)
        self._closed_at: float | None = None

    def on_effect(self, effect: Effect, now: float) -> None:
        """A daemon observer: times each close to its verdict and counts the verdicts."""
        if isinstance(effect, CollectEvidence):
            self._closed_at = now
        elif isinstance(effect, RecordAttempt):
            record = effect.record
            codes = [reason.code for reason in record.verdict.reasons]
            self.verdict(record.verdict.outcome.value, record.mode, codes, now)

    def verdict(self, outcome: str, mode: str, reason_codes: list[str], at: float) -> None:
        self.inc("packstation_verdicts_total", {"outcome": outcome, "mode": mode})
        for code in reason_codes:
            self.inc("packstation_verdict_reasons_total", {"outcome": outcome, "reason": code})
        if self._closed_at is not None:
            self.observe("packstation_verification_seconds", at - self._closed_at)
            self._closed_at = None

    def channel_reported(self, channel: str, seconds: float) -> None:
        self.observe("packstation_channel_latency_seconds", seconds, {"channel": channel})

    def reconnected(self, device: str) -> None:
        self.inc("packstation_device_reconnects_total", {"device": device})

    def evidence_pruned(self, records: int, images: int) -> None:
        self.inc("packstation_evidence_pruned_total", {"what": "records"}, records)
        self.inc("packstation_evidence_pruned_total", {"what": "images"}, images)

    def overridden(self, reason_code: str) -> None:
        self.inc("packstation_overrides_total", {"reason": reason_code})

    def override_rejected(self, why: str) -> None:
        self.inc("packstation_reviewer_rejections_total", {"reason": why})
