"""Run one scenario against the real daemon: a private mosquitto, the simulated table (pty scale
and scanner, LLRP reader), the reissue-backend sink, and `packstation run` as a child process.

The daemon is a child process, as on a station PC: a crash or hang in it fails that scenario
only (it is killed at the end, whatever happened), and nothing one scenario leaves behind (data
directory, broker session, process state) can reach the next. It runs on the fast clock
(`--clock-speed`); the rig writes every device timing in station seconds so the simulated devices,
which move in real time, look the same to it at any speed, and only waits and timeouts shrink.

The packer's steps are driven through the rig; where a step changes the station's state the
driver waits for that state on the Station API (`GET /api/status`), and each close waits for its
`verification.result` at the sink, so no step races the daemon and no fixed sleep decides.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.broker import MosquittoBroker, free_port
from simulators.daemon_process import FRAME_LOGGED, DaemonProcess, query, wait_until
from simulators.rig import PAPERWORK_G, STEP_BAND_G, SimulatedStation
from simulators.scenario.compare import (
    ActualVerdict,
    EventComparison,
    close_problems,
    compare_events,
    event_matches,
    event_report,
    render_close,
    render_expected,
    verdict_of,
)
from simulators.scenario.model import (
    AddStrayTags,
    AddUnit,
    AwaitEvent,
    Channel,
    Close,
    EventName,
    ExpectState,
    HandOver,
    LeaveBeside,
    LoadedScenario,
    Login,
    Logout,
    Override,
    Pack,
    PlugCamera,
    PlugScale,
    PutBack,
    RemoveUnit,
    RfidDown,
    ScaleDrift,
    ScaleNoise,
    Scan,
    ScanBox,
    ScanOrder,
    Ship,
    Step,
    UnplugCamera,
    UnplugScale,
    Wait,
)
from station.domain import Manifest

MAX_SPEED = 20.0  # station timeouts scaled by the speed must stay within the config's bounds
STEP_TIMEOUT_S = 15.0  # real seconds a step may take to show its effect
VERDICT_TIMEOUT_S = 25.0  # real seconds from CLOSE to the verification.result at the sink
API_TOKEN = "scenario-runner-token-0123456789"
REVIEWER_PIN = "2468"
UNIT_PAUSE_S = 0.05  # between units, as a packer's hands
BEFORE_CLOSE_S = 0.35  # the scale must report the last placement's motion before CLOSE
TAG_OUT_OF_REACH_S = 1.0  # a unit carried off: its last reads have long arrived
TAG_SET_ASIDE_S = 0.3  # a unit set down beside the box, then CLOSE
ALL_UP = '"msg": "all devices up"'  # the daemon's log line once every device has been up
# States with a carton open on the platter: each settled weight step up in them gets a frame.
CARTON_OPEN = frozenset({"awaiting_box", "packing", "blocked"})
VERDICT = EventName.VERIFICATION_RESULT.cloudevents_type


def is_insertion_frame(entry: dict[str, Any]) -> bool:
    """The camera's frame of a weight step (not the close's, which the runner does not predict)."""
    return entry.get("msg") == FRAME_LOGGED and entry.get("kind") != "close"


class StepFailed(Exception):
    """A step could not be carried out or did not take effect; the scenario stops there."""


@dataclass
class CloseOutcome:
    step_index: int
    expected: Close
    actual: ActualVerdict | None
    problems: list[str]


@dataclass
class ScenarioResult:
    name: str
    source: Path
    duration_s: float = 0.0
    closes: list[CloseOutcome] = field(default_factory=list)
    events: EventComparison | None = None
    event_lines: list[str] = field(default_factory=list)
    error: str | None = None  # the run itself failed (a step, the daemon, the broker)
    daemon_log_tail: str = ""

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and all(not c.problems for c in self.closes)
            and (self.events is None or self.events.ok)
        )

    def report(self) -> str:
        """The expected-vs-actual diff: closes, then events, then the error if any."""
        lines = []
        for number, close in enumerate(self.closes, 1):
            mark = "FAIL" if close.problems else "ok  "
            lines.append(f"{mark} close {number} (step {close.step_index}):")
            lines.append(f"       expected {render_close(close.expected)}")
            got = close.actual.render() if close.actual else "no verdict"
            lines.append(f"       got      {got}")
            lines += [f"       -> {problem}" for problem in close.problems]
        if self.events is not None:
            lines.append("events:")
            lines += [f"  {line}" for line in self.event_lines]
        if self.error is not None:
            lines.append(f"ERROR {self.error}")
            if self.daemon_log_tail:
                lines.append("daemon log (tail):")
                lines += [f"  {line}" for line in self.daemon_log_tail.splitlines()]
        return "\n".join(lines)


class StationClient:
    """The few Station API calls a scenario needs."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {API_TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def status(self) -> dict[str, Any]:
        code, body = self.call("GET", "/api/status")
        if code != 200:
            raise StepFailed(f"GET /api/status answered {code}: {body}")
        return dict(body)


class ScenarioRun:
    """One scenario's station, broker, sink and daemon, and the packer's hands."""

    def __init__(self, loaded: LoadedScenario, workdir: Path, speed: float) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.workdir = workdir
        self.speed = speed
        self.result = ScenarioResult(loaded.name, loaded.source)
        self.manifests = {"/".join(m.key): m for m in loaded.manifests}
        self.open_carton: Manifest | None = None
        self.in_carton: dict[str, list[float]] = {}  # SKU -> grams of each unit in the carton
        self.beside: set[str] = set()
        self.close_not_before = 0.0  # real monotonic time before which CLOSE would race a device
        self.verdicts_seen = 0
        # The camera's frames: one per settled weight step up with a carton open. The runner
        # predicts each and waits for it, counting the daemon's frame log lines as they come.
        self.scale_plugged = True
        self.level_g = 0.0  # the weight the daemon's scale last stepped to
        self.frames_due = 0
        self.frames_logged = (0, 0)  # (count, log position) of insertion frames, for count_logged

    # -- set-up and tear-down ------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        started = time.monotonic()
        with ExitStack() as cleanup:
            try:
                self._start(cleanup)
                for index, step in enumerate(self.scenario.steps):
                    self._do(index, step)
                self._compare_events()
            except Exception as exc:  # whatever went wrong, it is this scenario's error only
                self.result.error = f"{type(exc).__name__}: {exc}"
                self.result.daemon_log_tail = self._daemon_log_tail()
        self.result.duration_s = time.monotonic() - started
        return self.result

    def _start(self, cleanup: ExitStack) -> None:
        from simulators.sink import Sink  # paho: imported when a scenario runs, not at parse

        options = self.scenario.station
        self.broker = MosquittoBroker(self.workdir / "broker")
        self.broker.start()
        cleanup.callback(self.broker.stop)
        self.rig = SimulatedStation(
            self.workdir / "station",
            self.broker.host,
            self.broker.port,
            station_id="scenario",
            site_id="dc-qa",
            mode=options.mode,
            seed=options.seed,
            rfid=Channel.RFID in options.channels,
            camera=Channel.VISION in options.channels,
            rfid_options=("require_second_channel = true" if options.rfid_second_channel else ""),
            extra_config=self._extra_config(),
            workflow_options=(
                ""
                if options.inactivity_timeout_s is None
                else f"inactivity_timeout_s = {options.inactivity_timeout_s}"
            ),
            catalog_path=self.loaded.catalog_path,
            clock_speed=self.speed,
        )
        self.rig.start()
        cleanup.callback(self.rig.stop)
        for manifest in self.loaded.manifests:
            self.rig.write_manifest(manifest)
        self.rig.scale.set_noise(self.scenario.sensors.scale_noise_g)
        for strays in self.scenario.sensors.stray_tags:
            self.rig.add_strays(strays.sku, strays.count)
        for dead in self.scenario.sensors.dead_tags:
            self.rig.dead_tags[dead.sku] += dead.count
        self.sink = Sink(self.broker.host, self.broker.port, client_id="scenario-sink")
        self.sink.start()
        cleanup.callback(self.sink.close)
        cleanup.callback(self.sink.stop)
        self.daemon = DaemonProcess(
            self.rig.config_path, self.workdir / "daemon.log", clock_speed=self.speed
        )
        cleanup.callback(self.daemon.kill)
        self.daemon.start(timeout=STEP_TIMEOUT_S)
        self._wait("every device up", lambda: ALL_UP in self.daemon.log_since_start())

    def _extra_config(self) -> str:
        from station.api.pins import hash_pin  # scrypt: only when a scenario runs

        options = self.scenario.station
        reviewers = "".join(
            f'\n[[reviewers]]\nbadge = "{badge}"\npin_hash = "{hash_pin(REVIEWER_PIN)}"\n'
            for badge in options.reviewers
        )
        required = [c.value for c in options.required_channels or [Channel.WEIGHT]]
        self.api_port = free_port()
        self.api = StationClient(f"http://127.0.0.1:{self.api_port}")
        return (
            f'[api]\nport = {self.api_port}\ntoken = "{API_TOKEN}"\n'
            f"\n[policy]\nrequired_channels = {json.dumps(required)}\n"
            f"backup_channels = {json.dumps(options.backup_channels)}\n"
            f'lookalike_action = "{options.lookalike_action}"\n{reviewers}'
        )

    def _daemon_log_tail(self) -> str:
        daemon = getattr(self, "daemon", None)
        return daemon.log_tail(40) if daemon is not None else ""

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, what: str, predicate: Callable[[], bool]) -> None:
        if not wait_until(predicate, STEP_TIMEOUT_S, poll=0.05):
            raise StepFailed(f"{what}: not within {STEP_TIMEOUT_S:g} s")

    def _wait_for_state(self, what: str, *states: str) -> None:
        seen: dict[str, Any] = {}

        def arrived() -> bool:
            seen.update(self.api.status())
            return seen.get("state") in states

        if not wait_until(arrived, STEP_TIMEOUT_S, poll=0.05):
            raise StepFailed(
                f"{what}: the station stayed {seen.get('state')} (expected {' or '.join(states)})"
            )

    def _hold_close(self, real_s: float) -> None:
        self.close_not_before = max(self.close_not_before, time.monotonic() + real_s)

    # -- the steps -----------------------------------------------------------------------------

    def _do(self, index: int, step: Step) -> None:
        rig = self.rig
        match step:
            case Login(badge=badge):
                rig.scan(f"BADGE-{badge}")
                self._wait(
                    f"steps[{index}] login", lambda: self.api.status().get("packer") == badge
                )
            case Logout():
                rig.scan("LOGOUT")
                self._wait_for_state(f"steps[{index}] logout", "logged_out")
                self.open_carton = None
            case ScanOrder(carton=carton):
                rig.scan(carton)
                self.open_carton = self.manifests[carton]
                self._wait_for_state(f"steps[{index}] scan_order", "awaiting_box", "packing")
            case ScanBox(box=box, paperwork=paperwork):
                rig.scan(box)
                rig.place(rig.box_weight(box) + (PAPERWORK_G if paperwork else 0.0))
                self._hold_close(BEFORE_CLOSE_S)
                self._wait_for_state(f"steps[{index}] scan_box", "packing")
                self._weighed(f"steps[{index}] scan_box")
            case Pack(leave_out=leave_out, scan_units=scan_units):
                if self.open_carton is None:
                    raise StepFailed(f"steps[{index}] pack: no carton was opened (scan_order)")
                left = list(leave_out)
                for sku in rig.units_of(self.open_carton):
                    if sku in left:
                        left.remove(sku)
                        continue
                    self._add(sku, scan_units)
                if left:
                    raise StepFailed(
                        f"steps[{index}] pack: {left} are not in the carton's manifest"
                    )
            case AddUnit(sku=sku, count=count, scan=scan):
                for _ in range(count):
                    self._add(sku, scan)
            case RemoveUnit(sku=sku, count=count):
                for _ in range(count):
                    self._remove(index, sku)
            case LeaveBeside(sku=sku):
                grams = self.in_carton.get(sku, [])
                if grams:
                    rig.place(-grams.pop())
                    self._hold_close(BEFORE_CLOSE_S)
                    self._weighed(f"steps[{index}] leave_beside {sku}")
                rig.leave_beside(sku)
                self.beside.add(sku)
                self._hold_close(TAG_SET_ASIDE_S)
            case PutBack(sku=sku):
                self.beside.discard(sku)
                self.in_carton.setdefault(sku, []).append(rig.put_back(sku))
                self._hold_close(BEFORE_CLOSE_S)
                self._weighed(f"steps[{index}] put_back {sku}")
            case Scan(code=code):
                rig.scan(code)
            case Wait(seconds=seconds):
                time.sleep(seconds / self.speed)
            case Close():
                self._close(index, step)
            case Override():
                self._override(index, step)
            case Ship():
                rig.clear_platter()
                self.in_carton.clear()
                self.beside.clear()
                self._hold_close(BEFORE_CLOSE_S)
                self._weighed(f"steps[{index}] ship")
            case UnplugScale():
                rig.scale.disconnect()
                self.scale_plugged = False
            case PlugScale():
                rig.scale.reconnect()
                self.scale_plugged = True
                self._wait(f"steps[{index}] plug_scale: the scale back up", self._scale_up)
                self._weighed(f"steps[{index}] plug_scale")
            case ScaleDrift(grams=grams):
                rig.place(grams)
                self._hold_close(BEFORE_CLOSE_S)
                self._weighed(f"steps[{index}] scale_drift")
            case ScaleNoise(sigma_g=sigma_g):
                rig.scale.set_noise(sigma_g)
            case RfidDown():
                if rig.rfid_reader is not None:
                    rig.rfid_reader.stop()
            case UnplugCamera():
                rig.plug_camera(False)
                self._wait(f"steps[{index}] unplug_camera: the camera down", self._camera_down)
            case PlugCamera():
                rig.plug_camera(True)
                self._wait(f"steps[{index}] plug_camera: the camera back up", self._camera_up)
            case HandOver(present=present):
                rig.hand_over_carton(present)
            case AddStrayTags(sku=sku, count=count):
                rig.add_strays(sku, count)
            case ExpectState(state=state):
                self._wait_for_state(f"steps[{index}] expect_state", state)
            case AwaitEvent(event=wanted):
                self._wait(
                    f"steps[{index}] await {render_expected(wanted)}",
                    lambda: any(event_matches(wanted, e) for e in self.sink.payloads()),
                )

    def _device_state(self, name: str) -> str | None:
        devices = self.api.status().get("devices", [])
        return next((d.get("state") for d in devices if d.get("name") == name), None)

    def _scale_up(self) -> bool:
        return self._device_state("scale") == "up"

    def _camera_up(self) -> bool:
        return self._device_state("camera") == "up"

    def _camera_down(self) -> bool:
        return self._device_state("camera") == "down"

    def _weighed(self, what: str) -> None:
        """The platter's load changed. With the scale plugged in the daemon sees the change
        settle (else once the scale is back); a step up with a carton open is an insertion the
        camera takes a frame of. The packer waits for that frame before the next unit, so each
        frame shows one step's items and the scenes, rendered from the seed, come out the same
        on every run. Each frame is predicted, so a drift's or a re-plugged scale's frame is
        never taken for the next unit's. A step down is waited out too: a unit put on before it
        settled would merge with it into one step, and its frame would never come."""
        load_g = self.rig.on_platter_g
        if not self.scale_plugged or abs(load_g - self.level_g) <= STEP_BAND_G:
            return  # not seen yet, or inside the motion band: no step
        stepped_up, self.level_g = load_g > self.level_g, load_g
        if not stepped_up:
            self._wait(f"{what}: the scale settled at {load_g:g} g", self._settled_at_load)
            return
        if not self.rig.camera:
            return
        if self.api.status().get("state") not in CARTON_OPEN:
            return
        self.frames_due += 1
        self._wait(f"{what}: the camera's frame", self._frames_arrived)

    def _settled_at_load(self) -> bool:
        weight = self.api.status().get("weight", {})
        grams = weight.get("grams")
        return (
            weight.get("state") == "settled"
            and grams is not None
            and abs(grams - self.rig.on_platter_g) <= STEP_BAND_G
        )

    def _frames_arrived(self) -> bool:
        self.frames_logged = self.daemon.count_logged(is_insertion_frame, self.frames_logged)
        return self.frames_logged[0] >= self.frames_due

    def _add(self, sku: str, scan: bool) -> None:
        item = self.rig.catalog.items[sku]
        if scan and item.barcodes:
            self.rig.scan(item.barcodes[0].code)
        self.in_carton.setdefault(sku, []).append(self.rig.add_unit(sku))
        self._hold_close(BEFORE_CLOSE_S)
        time.sleep(UNIT_PAUSE_S)
        self._weighed(f"the unit of {sku}")

    def _remove(self, index: int, sku: str) -> None:
        grams = self.in_carton.get(sku, [])
        if not grams:
            raise StepFailed(f"steps[{index}] remove: no {sku} in the carton")
        self.rig.place(-grams.pop())
        if self.rig.take_away(sku) is not None:
            self._hold_close(TAG_OUT_OF_REACH_S)
        self._hold_close(BEFORE_CLOSE_S)
        self._weighed(f"steps[{index}] remove {sku}")

    def _close(self, index: int, step: Close) -> None:
        time.sleep(max(0.0, self.close_not_before - time.monotonic()))
        before = self.verdicts_seen
        self.rig.close()
        verdicts: list[dict[str, Any]] = []

        def arrived(_sink: object) -> bool:
            verdicts[:] = [e for e in self.sink.payloads() if e.get("type") == VERDICT]
            return len(verdicts) > before

        actual = None
        if self.sink.wait_for(arrived, VERDICT_TIMEOUT_S):
            self.verdicts_seen = before + 1
            actual = verdict_of(sorted(verdicts, key=lambda e: e["stationseq"])[before])
        self.result.closes.append(CloseOutcome(index, step, actual, close_problems(step, actual)))
        if actual is None:
            raise StepFailed(
                f"steps[{index}] close: no verification.result within {VERDICT_TIMEOUT_S:g} s"
            )

    def _override(self, index: int, step: Override) -> None:
        body = {"reviewer_badge": step.reviewer, "pin": REVIEWER_PIN, "reason_code": step.reason}
        code, answer = self.api.call("POST", "/api/screen/override", body)
        released = code == 200
        if released != (step.expect == "released"):
            raise StepFailed(
                f"steps[{index}] override by {step.reviewer}: expected {step.expect}, the API "
                f"answered {code} {answer.get('message', '')}".rstrip()
            )
        if released:
            self._wait_for_state(f"steps[{index}] override", "idle")

    # -- the events ----------------------------------------------------------------------------

    def _compare_events(self) -> None:
        self._wait_until_delivered()
        expected = self.scenario.expect.events
        if expected is None:
            return
        actual = sorted(self.sink.payloads(), key=lambda e: e["stationseq"])
        comparison = compare_events(expected, actual, self.scenario.expect.exhaustive)
        self.result.events = comparison
        self.result.event_lines = event_report(comparison, actual)

    def _station_seq(self) -> int:
        rows = query(
            self.rig.workdir / "data" / "outbox.sqlite3",
            "SELECT value FROM counters WHERE key = 'station_seq'",
        )
        return int(rows[0][0]) if rows else 0

    def _wait_until_delivered(self) -> None:
        """Every event the station committed is at the sink, and the station has been quiet for a
        moment (a verdict's follow-up events are committed just after it)."""
        quiet_since = [time.monotonic(), -1]

        def settled() -> bool:
            committed = self._station_seq()
            received = len(self.sink.payloads())
            if committed != quiet_since[1] or received < committed:
                quiet_since[:] = [time.monotonic(), committed]
                return False
            return time.monotonic() - quiet_since[0] >= 0.5

        self._wait("all events at the sink", settled)


def run_scenario(loaded: LoadedScenario, workdir: Path, speed: float = 10.0) -> ScenarioResult:
    if not 1.0 <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be between 1 and {MAX_SPEED:g}, not {speed:g}")
    workdir.mkdir(parents=True, exist_ok=True)
    return ScenarioRun(loaded, workdir, speed).run()


def run_scenarios(
    runs: Sequence[tuple[LoadedScenario, Path]], speed: float = 10.0, jobs: int = 1
) -> Iterator[ScenarioResult]:
    """Run (scenario, workdir) pairs, `jobs` at a time, yielding results in the given order.
    Scenarios share nothing (each has its broker, devices, ports and daemon process) and spend
    most of their time waiting on devices, so a few at once shorten a run well."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scenario") as pool:
        yield from pool.map(lambda run: run_scenario(run[0], run[1], speed), runs)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "scenario"
