"""The per-insertion weight channel: the weight channel's settled steps while a carton is packed,
explained at close by what the manifest says went in and paired with the unit scans the close
carries (station.insertion_check). Steps that were one scanned unit go to learned weights, which
keep them until the verdict."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from scale.weighing import scale_error_g
from station.channels.base import Carton, ChannelContext, EvidenceChannel, carton_after
from station.channels.weight import WeightChannel
from station.domain import BoxType, Manifest, expected_units
from station.insertion_check import (
    CHANNEL,
    InsertionCheck,
    InsertionMemo,
    WeightStep,
    evaluate_insertions,
)
from station.scan_check import UnitScan
from station.session import CartonView, CollectEvidence, Effect
from station.verification import ChannelReport
from station.weight_check import WeightCheckConfig

if TYPE_CHECKING:
    from station.learning.service import LearnedWeights


log = logging.getLogger(__name__)


class _Run(NamedTuple):
    """What one explanation of a carton's steps reads."""

    steps: tuple[WeightStep, ...]
    manifest: Manifest
    box: BoxType
    scans: tuple[UnitScan, ...]


class InsertionChannel(EvidenceChannel):
    name = CHANNEL

    def __init__(
        self,
        weight: WeightChannel,
        check: WeightCheckConfig,
        min_confidence: float,
        context: ChannelContext,
    ) -> None:
        self._weight = weight
        self._check = check
        self._min_confidence = min_confidence
        self._context = context
        self._carton: Carton | None = None
        self._started_from_g: float | None = None
        self._steps: list[WeightStep] = []
        self._observed: Mapping[str, object] = {}
        # The steps so far are explained again in a thread after each step and each scan the
        # screen shows (one run at a time; the latest win), keeping the beam after each step, so
        # the close only adds the last ones; the checklist's live ticks come from the same runs.
        self._memo = InsertionMemo()
        self._live: Mapping[str, int] = {}
        self._live_key: tuple[object, ...] | None = None
        self._live_task: asyncio.Task[None] | None = None
        self.learned: LearnedWeights | None = None  # set by the daemon: where clean steps go
        weight.on_settled_step(self._on_step)

    @property
    def devices(self) -> tuple[str, ...]:
        return ()  # the scale's health is the weight channel's to report

    def start(self) -> None:
        pass  # the weight channel runs the scale

    def stop(self) -> None:
        pass

    def on_effect(self, effect: Effect) -> None:
        carton = carton_after(effect, self._carton)
        if carton != self._carton:
            self._carton = carton
            self._started_from_g = self._weight.level_g if carton else None
            self._steps = []
            self._memo = InsertionMemo()
            self._live, self._live_key = {}, None

    def _on_step(self, step: WeightStep) -> None:
        if self._carton is not None:
            self._steps.append(step)
            self._explain_ahead(self._context.open_carton())

    def live_units(self, carton: CartonView) -> Mapping[str, int]:
        """Units per SKU the settled steps so far are best explained by, scans paired."""
        self._explain_ahead(carton)
        return self._live

    def _explain_ahead(self, carton: CartonView | None) -> None:
        """Explain the steps and scans so far in a thread, unless that is done or running."""
        if self._carton is None or carton is None or carton.manifest is None or not carton.box:
            return
        key = (
            self._carton,
            len(self._steps),
            len(carton.unit_scans),
            carton.manifest.version,
            carton.box.code,
        )
        if key != self._live_key and self._live_task is None:
            # Everything the run reads is taken now: the carton may change before it starts.
            run = _Run(tuple(self._steps), carton.manifest, carton.box, carton.unit_scans)
            self._live_task = asyncio.get_running_loop().create_task(
                self._explain_live(key, run, self._started_from_g, self._memo)
            )

    async def _explain_live(
        self,
        key: tuple[object, ...],
        run: _Run,
        started_from_g: float | None,
        memo: InsertionMemo,
    ) -> None:
        try:
            checked = await self._explain(run, started_from_g, memo)
        except Exception:  # a courtesy (ticks, a faster close): the close explains again
            log.exception("live insertion explanation failed")
            if key[0] == self._carton:
                self._live_key = key  # not again on the same steps and scans
            return
        finally:
            self._live_task = None
        if key[0] == self._carton:
            self._live = {f.sku: f.observed for f in checked.report.findings if f.observed}
            self._live_key = key
        # Steps or scans that came in meanwhile (or another carton's) are explained now, not
        # at the next step.
        self._explain_ahead(self._context.open_carton())

    async def _explain(
        self, run: _Run, started_from_g: float | None, memo: InsertionMemo
    ) -> InsertionCheck:
        """The steps explained by what the manifest says went in, from the carton's memo of
        earlier runs; CPU-bound, so off the loop, on a copy of the steps."""
        steps, manifest, box, scans = run
        units = expected_units(manifest, self._context.catalog)  # inserts: steps as well
        catalog = self._context.catalog
        if self.learned is not None:  # the unit weights and tare the weight check uses too
            weights = self.learned.effective(units, box)
            catalog, box = weights.catalog, weights.box or box
        division_g = self._weight.scale_config.division_g
        return await asyncio.to_thread(
            evaluate_insertions,
            steps,
            started_from_g,
            units,
            catalog,
            box,
            self._check.packing_materials(),
            lambda grams: scale_error_g(grams, division_g),
            self._min_confidence,
            self._weight.scale_config.zero_band_g,
            self._check.missing_unit_prior,
            scans,
            memo,
        )

    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        await self._weight.wait_settled(deadline, requested_at)  # the last step has come in
        steps = tuple(self._steps)
        run = _Run(steps, request.manifest, request.box, request.unit_scans)
        checked = await self._explain(run, self._started_from_g, self._memo)
        if self.learned is not None:
            self.learned.offer_insertion_samples(request, checked.samples)
        # For the evidence record: what the steps were paired with, on the station's clock.
        self._observed = {
            "steps": [[s.from_g, s.to_g, s.at] for s in steps],
            "unit_scans": [[s.sku, s.units, s.at] for s in request.unit_scans],
            "clean_samples": [[s.sku, s.grams, s.at] for s in checked.samples],
        }
        return checked.report

    def observations(self) -> Mapping[str, object]:
        return self._observed
