"""The station's learned weights: fed from the daemon's effects, read by the weight channel.

Runs on the daemon's loop (an observer of every effect; `record_capture` is the effect
`RecordWeightSample` carried out; `offer_insertion_samples` is the per-insertion channel's clean
steps at close, kept until the verdict). SQLite writes take a fraction of a millisecond (figures in
docs/master-data.md), so they stay on the loop like the evidence store's.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from station.clock import Clock
from station.domain import BoxType, Catalog, expected_units
from station.insertion_check import InsertionSample
from station.learning.estimator import (
    Estimate,
    LearningConfig,
    SampleSource,
    WeightSample,
    estimate,
)
from station.learning.samples import (
    carton_unit_sample,
    count_confirmation,
    settled_gross_g,
    single_sku,
)
from station.learning.store import LearnedWeightStore, Subject
from station.session import (
    AttemptRecord,
    CollectEvidence,
    Effect,
    RecordAttempt,
    RecordAudit,
    RecordWeightSample,
)
from station.weight_check import WeightCheckConfig

log = logging.getLogger("packstation.learning")

CATALOG, LEARNED = "catalog", "learned"
_HELD_CARTONS = 64  # blocked cartons remembered for a reviewer's release; older ones are dropped


@dataclass(frozen=True, slots=True)
class EffectiveWeights:
    """The catalog and box the weight check measures against, and where each figure came from."""

    catalog: Catalog
    box: BoxType | None
    provenance: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Opened:
    attempt: int
    collect: CollectEvidence


class LearnedWeights:
    def __init__(
        self,
        config: LearningConfig,
        catalog: Catalog,
        weight_config: WeightCheckConfig,
        store: LearnedWeightStore,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self._catalog = catalog
        self._weight_config = weight_config
        self._clock = clock
        self._estimates: dict[tuple[Subject, str], Estimate | None] = {}
        self._collected: OrderedDict[tuple[str, str], CollectEvidence] = OrderedDict()
        self._held: OrderedDict[tuple[str, str], AttemptRecord] = OrderedDict()
        # Per carton: (attempt, steps that were one scanned unit), until that attempt's verdict.
        self._insertions: OrderedDict[tuple[str, str], tuple[int, tuple[InsertionSample, ...]]] = (
            OrderedDict()
        )

    # -- estimates -------------------------------------------------------------------------------

    def estimate(self, subject: Subject, key: str) -> Estimate | None:
        cache_key = (subject, key)
        if cache_key not in self._estimates:
            samples = self.store.samples(subject, key)
            if subject is Subject.SKU:
                samples = [s.rebased(self._tare_now(s.box)) for s in samples]
            self._estimates[cache_key] = estimate(samples, self.config)
        return self._estimates[cache_key]

    def _tare_now(self, box_code: str | None) -> float | None:
        """The tare a carton sample's box is known by now: learned when confident (as learning
        subtracts it), else the catalog's (which a catalog update may have corrected)."""
        if box_code is None:
            return None
        learned = self.confident(Subject.BOX, box_code)
        if learned is not None:
            return learned.mean_g
        box = self._catalog.boxes.get(box_code)
        return box.tare_g if box is not None else None

    def confident(self, subject: Subject, key: str) -> Estimate | None:
        learned = self.estimate(subject, key)
        return learned if learned is not None and learned.confident else None

    def effective(self, skus: Iterable[str], box: BoxType | None) -> EffectiveWeights:
        """In `use` mode the learned mean and spread of every confident SKU (and the box);
        otherwise the catalog's. Provenance names the source of each."""
        return self._overlay(skus, box, use=self.config.mode == "use")

    def _overlay(self, skus: Iterable[str], box: BoxType | None, use: bool) -> EffectiveWeights:
        items = dict(self._catalog.items)
        provenance: dict[str, str] = {}
        for sku in skus:
            item = items.get(sku)
            learned = self.confident(Subject.SKU, sku) if use and item is not None else None
            if item is None or item.variable_weight or learned is None:
                provenance[sku] = CATALOG
                continue
            items[sku] = item.model_copy(
                update={"unit_weight_g": learned.mean_g, "weight_spread_g": learned.spread_g}
            )
            provenance[sku] = LEARNED
        if box is not None:
            learned_box = self.confident(Subject.BOX, box.code) if use else None
            if learned_box is not None:
                box = box.model_copy(
                    update={"tare_g": learned_box.mean_g, "tare_spread_g": learned_box.spread_g}
                )
            provenance[f"box:{box.code}"] = LEARNED if learned_box else CATALOG
        replaced = LEARNED in (provenance[sku] for sku in provenance if sku in items)
        catalog = self._catalog.model_copy(update={"items": items}) if replaced else self._catalog
        return EffectiveWeights(catalog, box, provenance)

    # -- samples in ------------------------------------------------------------------------------

    def record_insertion_sample(
        self, sku: str, grams: float, confirmed_by: str, ref: str | None = None
    ) -> bool:
        """One unit's weight step while packing, confirmed by a unit scan or an RFID read
        (`confirmed_by`: "unit_scan", "rfid"). Returns whether it was kept: an unknown SKU, a
        variable-weight one or a non-positive step is not a unit weight."""
        item = self._catalog.items.get(sku)
        if item is None or item.variable_weight or not (math.isfinite(grams) and grams > 0):
            return False
        sample = WeightSample(grams, 1, 0.0, SampleSource.INSERTION)
        self._add(Subject.SKU, sku, sample, confirmed_by, ref)
        return True

    def offer_insertion_samples(
        self, request: CollectEvidence, samples: tuple[InsertionSample, ...]
    ) -> None:
        """The per-insertion channel's clean steps for the attempt being closed (on the loop).
        Kept until its verdict: recorded at a PASS or when a reviewer releases the carton whole,
        dropped otherwise (a blocked carton's steps may be the wrong units)."""
        if self.config.mode != "off":
            _remember(self._insertions, request.manifest.key, (request.attempt, samples))

    def record_capture(self, effect: RecordWeightSample) -> None:
        """The weigh-one-unit flow's capture (the daemon's handling of the effect)."""
        subject, grams = effect.subject, effect.grams
        confirmed_by = f"packer {effect.packer_badge}" if effect.packer_badge else "packer"
        scale_sd = effect.scale_error_g / math.sqrt(3)
        if subject.kind == "unknown":
            self.store.add_unknown(subject.key, grams, effect.packer_badge, effect.at)
        elif subject.kind == "box":
            sample = WeightSample(grams, 1, scale_sd, SampleSource.BOX_WEIGHED)
            self._add(Subject.BOX, subject.key, sample, confirmed_by)
        else:
            units = max(subject.units, 1)
            sample = WeightSample(grams / units, units, scale_sd / units, SampleSource.UNIT_WEIGHED)
            self._add(Subject.SKU, subject.key, sample, confirmed_by)

    def on_effect(self, effect: Effect) -> None:
        """Observer of the daemon's effects: confirmed single-SKU cartons become samples."""
        if self.config.mode == "off":
            return
        match effect:
            case CollectEvidence(_, _, manifest):
                _remember(self._collected, manifest.key, effect)
            case RecordAttempt(record):
                self._on_attempt(record)
            case RecordAudit("carton.released", data, _):
                self._on_release(data)
            case RecordAudit("carton.aborted", data, _):
                self._on_abort(data)

    def close(self) -> None:
        self.store.close()

    # -- internals -------------------------------------------------------------------------------

    def _add(
        self,
        subject: Subject,
        key: str,
        sample: WeightSample,
        confirmed_by: str,
        ref: str | None = None,
    ) -> None:
        self.store.add(subject, key, sample, confirmed_by, self._clock.now_utc(), ref)
        if subject is Subject.BOX:  # every carton sample packed in it is reduced again
            self._estimates.clear()
        else:
            self._estimates.pop((subject, key), None)

    def _on_attempt(self, record: AttemptRecord) -> None:
        key = (record.order_id, record.carton_id)
        if record.verdict.passed:
            self._held.pop(key, None)  # no longer held: an abort later says nothing of this count
        else:
            _remember(self._held, key, record)
        self._learn(record, confirmed_by=None)
        if record.verdict.passed:
            self._learn_insertions(record, "unit_scan")

    def _on_release(self, data: Mapping[str, object]) -> None:
        key = (str(data.get("order_id")), str(data.get("carton_id")))
        record = self._held.pop(key, None)
        if data.get("missing"):
            self._unlearn(key)  # shipped short: whatever vouched for its count was wrong
        elif record is not None and not record.verdict.extra:
            self._learn(record, confirmed_by="reviewer")
            self._learn_insertions(record, "unit_scan, released by reviewer")
        self._insertions.pop(key, None)

    def _on_abort(self, data: Mapping[str, object]) -> None:
        """A held carton taken off the station: its count was never settled, so a sample its
        block left (vouched for by another channel) is not kept either."""
        key = (str(data.get("order_id")), str(data.get("carton_id")))
        if self._held.pop(key, None) is not None:
            self._unlearn(key)
        self._insertions.pop(key, None)

    def _unlearn(self, key: tuple[str, str]) -> None:
        if self.store.forget(f"{key[0]}/{key[1]}"):
            self._estimates.clear()
            log.info("sample withdrawn", extra={"order_id": key[0], "carton_id": key[1]})

    def _learn_insertions(self, record: AttemptRecord, confirmed_by: str) -> None:
        key = (record.order_id, record.carton_id)
        attempt, samples = self._insertions.pop(key, (None, ()))
        if attempt != record.attempt:
            return  # the steps of another attempt: the carton may have changed since
        # One sample per step (the store keeps one per SKU and ref): a later attempt of the same
        # carton replaces these rather than adding to them.
        for k, sample in enumerate(samples, 1):
            ref = f"{record.order_id}/{record.carton_id}/step {k}"
            self.record_insertion_sample(sample.sku, sample.grams, confirmed_by, ref)

    def _learn(self, record: AttemptRecord, confirmed_by: str | None) -> None:
        collect = self._collected.get((record.order_id, record.carton_id))
        if collect is None or collect.attempt != record.attempt:
            return
        units = expected_units(collect.manifest, self._catalog)
        one = single_sku(units, self._catalog)
        gross = settled_gross_g(record.verdict)
        if one is None or gross is None:
            return
        sku, count = one
        confirmed_by = confirmed_by or count_confirmation(
            sku,
            count,
            record.verdict,
            record.scanned_units,
            self.config.learn_from_unit_scans,
            record.coverage,
        )
        if confirmed_by is None:
            return
        # The box and inserts as well as they are known, whatever the mode: learned when
        # confident (the mode decides what the weight check uses, not what learning subtracts).
        weights = self._overlay([s for s in units if s != sku], collect.box, use=True)
        sample = carton_unit_sample(
            sku,
            count,
            units,
            weights.catalog,
            weights.box or collect.box,
            gross[0],
            gross[1],
            self._weight_config.packing_materials(),
        )
        if sample is None:
            return
        ref = f"{record.order_id}/{record.carton_id}"
        self._add(Subject.SKU, sku, sample, confirmed_by, ref)
        log.debug("learned", extra={"sku": sku, "g": sample.grams_per_unit, "by": confirmed_by})


def _remember(store: OrderedDict[tuple[str, str], Any], key: tuple[str, str], value: Any) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > _HELD_CARTONS:
        store.popitem(last=False)
