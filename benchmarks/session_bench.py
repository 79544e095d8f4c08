"""Session persistence benchmark: what the daemon pays per session step for crash recovery.

    python -m benchmarks.session_bench [--smoke]
    (or as part of python -m benchmarks.run, through `run(smoke)`)

Figures (on the disk under the system temp dir, like the outbox benchmark):
- snapshot: `Session.snapshot()` + the same-state comparison the daemon makes after every step
  (most steps that change nothing are not written).
- save: `SessionStore.save` of a BLOCKED carton (manifest, verdict with its channel report,
  published shortage): JSON encoding plus one WAL commit with synchronous=FULL (an fsync).
Target: save p99 <= 20 ms (a packer scans at most a few times a second; the loop must not lag).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure, summary
from station.session import SessionState
from station.session_store import SessionStore
from tests.session.drive import drive_to, new_session

TARGET_MS = 20.0


def run(smoke: bool) -> list[Figure]:
    rounds = 50 if smoke else 1_000
    session, clock = new_session()
    drive_to(session, SessionState.BLOCKED)
    snapshot_ms: list[float] = []
    save_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="session-bench-") as tmp:
        store = SessionStore(Path(tmp) / "session.sqlite3")
        last = None
        for _ in range(rounds):
            clock.advance(0.5)
            started = time.perf_counter()
            snapshot = session.snapshot()
            snapshot.same_state(last)
            snapshot_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            store.save(snapshot)
            save_ms.append((time.perf_counter() - started) * 1000)
            last = snapshot
        store.close()
    snap_median, snap_p99 = summary(snapshot_ms)
    save_median, save_p99 = summary(save_ms)
    return [
        Figure("session snapshot + compare", "ms", snap_median, snap_p99),
        Figure(
            "session save (BLOCKED carton, FULL sync)",
            "ms",
            save_median,
            save_p99,
            target=f"p99 <= {TARGET_MS:g} ms",
            met=save_p99 <= TARGET_MS,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    for figure in run(args.smoke):
        print(figure, file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
