"""Inference off the event loop, with a watchdog on its heartbeat.

`InferenceWorker.submit(frame)` returns a `concurrent.futures.Future[FrameObservation]`; the
daemon awaits it with `asyncio.wrap_future`. One worker thread runs the pipeline; it beats a
heartbeat before and after each frame. A watchdog thread notices an inference running longer than
`timeout_s`, fails the stuck future, abandons that thread (Python cannot kill it) and starts a
fresh thread with a freshly loaded pipeline: at most `max_restarts_per_min` times a minute, then
the worker stays down and says so.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from vision.observe import FrameObservation, Pipeline

log = logging.getLogger("packstation.vision")


class InferenceStuck(RuntimeError):
    """The inference ran past the watchdog's timeout; the worker was restarted."""


class InferenceWorker:
    def __init__(
        self,
        make_pipeline: Callable[[], Pipeline],
        *,
        timeout_s: float = 2.0,
        max_restarts_per_min: int = 3,
    ) -> None:
        self._make_pipeline = make_pipeline
        self.timeout_s = timeout_s
        self.max_restarts_per_min = max_restarts_per_min
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[np.ndarray, Future[FrameObservation]] | None] = queue.Queue()
        self._generation = 0
        self._busy_since: float | None = None
        self._current: Future[FrameObservation] | None = None
        self._restarts: list[float] = []
        self._stop = threading.Event()
        self.down_reason = ""
        self.pipeline = make_pipeline()
        self._watchdog = threading.Thread(target=self._watch, name="vision-watchdog", daemon=True)

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn()
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)

    @property
    def healthy(self) -> bool:
        return not self.down_reason

    def submit(self, frame: np.ndarray) -> Future[FrameObservation]:
        future: Future[FrameObservation] = Future()
        if self.down_reason:
            future.set_exception(RuntimeError(self.down_reason))
        else:
            self._queue.put((frame, future))
        return future

    # -- threads --------------------------------------------------------------------------------

    def _spawn(self) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
        thread = threading.Thread(
            target=self._serve, args=(generation,), name=f"vision-infer-{generation}", daemon=True
        )
        thread.start()

    def _serve(self, generation: int) -> None:
        pipeline = self.pipeline
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None or generation != self._generation:
                if item is not None:  # a newer thread owns the queue now: hand the job back
                    self._queue.put(item)
                return
            frame, future = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._busy_since, self._current = time.monotonic(), future
            try:
                result = pipeline.observe(frame)
            except Exception as exc:
                log.exception("vision inference failed")
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                with self._lock:
                    if generation == self._generation:
                        self._busy_since, self._current = None, None

    def _watch(self) -> None:
        while not self._stop.wait(min(0.1, self.timeout_s / 4)):
            with self._lock:
                since, current = self._busy_since, self._current
            if since is None or time.monotonic() - since <= self.timeout_s:
                continue
            log.error("vision inference stuck for more than %.1f s: restarting", self.timeout_s)
            if current is not None and not current.done():
                current.set_exception(InferenceStuck(f"inference ran over {self.timeout_s} s"))
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            with self._lock:
                self._busy_since, self._current = None, None
            if len(self._restarts) > self.max_restarts_per_min:
                self.down_reason = "vision inference keeps hanging; worker stopped"
                log.error(self.down_reason)
                return
            try:
                self.pipeline = self._make_pipeline()
            except Exception as exc:  # model file gone, ...
                self.down_reason = f"cannot reload the vision model: {exc}"
                log.error(self.down_reason)
                return
            self._spawn()
