"""Retention on real files: age and disk budget, unsent events' evidence kept, the chain still
verifiable after every pass, images deleted with their records."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from station.events import EventType, EvidenceRef, Mode, VerificationResult
from station.evidence import EvidenceStore, checkpoint, open_readonly, verify_chain
from station.evidence_retention import (
    BATCH_RECORDS,
    EvidencePruner,
    EvidenceRetentionConfig,
    ImageIndex,
    pending_events,
)
from station.outbox import Outbox
from tests.evidence.factories import T0, attempt, fill

DAY = timedelta(days=1)


def verified(path: Path):
    db = open_readonly(path)
    try:
        return verify_chain(db), checkpoint(db)
    finally:
        db.close()


def pruner(tmp_path: Path, outbox: Outbox, **limits: float) -> EvidencePruner:
    return EvidencePruner(
        tmp_path / "evidence.sqlite3",
        [tmp_path / "evidence" / "images"],
        EvidenceRetentionConfig(**limits),
        lambda: pending_events(outbox.pending),
    )


def daily(path: Path, days: int) -> None:
    """One attempt per day for `days` days, ORD-1 first."""
    store = EvidenceStore(path, "pack-01", "dc-north")
    for n in range(1, days + 1):
        store.record_attempt(attempt(n, at=T0 + n * DAY))
    store.close()


def unsent_verdict(outbox: Outbox, order_id: str, record_id: int | None = None) -> None:
    anchor = (
        EvidenceRef(record_id=record_id, sha256="a" * 64, chain="b" * 64) if record_id else None
    )
    data = VerificationResult(
        station_id="pack-01",
        site_id="dc-north",
        order_id=order_id,
        carton_id="C1",
        manifest_version=1,
        attempt=1,
        mode=Mode.ENFORCE,
        outcome="PASS",
        evidence=anchor,
    )
    outbox.commit(EventType.VERIFICATION_RESULT, "t", data, source="pack-01")


def test_records_past_the_age_go_and_the_chain_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    daily(path, 20)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = pruner(tmp_path, outbox, max_age_days=10).run(T0 + 20 * DAY + timedelta(hours=1))
    assert result.records == 10 and result.through_seq == 10 and result.reasons == {"age"}
    check, mark = verified(path)
    assert check.ok and check.first_seq == 11 and check.records == 10
    assert mark is not None and mark.through_seq == 10 and mark.records_pruned == 10
    # The station carries on writing the same chain after the checkpoint.
    store = EvidenceStore(path, "pack-01", "dc-north")
    assert store.record_attempt(attempt(21, at=T0 + 21 * DAY)).seq == 21
    store.close()
    assert verified(path)[0].ok
    outbox.close()


def test_an_emptied_chain_continues_from_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    daily(path, 3)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert pruner(tmp_path, outbox, max_age_days=0.5).run(T0 + 100 * DAY).records == 3
    store = EvidenceStore(path, "pack-01", "dc-north")
    assert store.record_attempt(attempt(4, at=T0 + 100 * DAY)).seq == 4
    store.close()
    check, _ = verified(path)
    assert check.ok and check.first_seq == 4
    outbox.close()


def test_unsent_events_keep_their_records_and_everything_after(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    daily(path, 12)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    unsent_verdict(outbox, "ORD-9", record_id=9)  # anchored: records 9.. stay
    unsent_verdict(outbox, "ORD-6")  # no anchor (older station version): its carton stays
    prune = pruner(tmp_path, outbox, max_age_days=0.5)
    result = prune.run(T0 + 100 * DAY)
    assert result.records == 5 and result.stopped_for_outbox  # 1..5; ORD-6 holds the rest
    assert verified(path)[0].ok
    # Once the broker acknowledged them, the rest may go.
    outbox.ack(*(e.station_seq for e in outbox.pending(10)))
    assert prune.run(T0 + 100 * DAY).records == 7
    outbox.close()


def test_over_the_disk_budget_the_oldest_go_with_their_images(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    folder = tmp_path / "evidence" / "images"
    folder.mkdir(parents=True)
    store = EvidenceStore(path, "pack-01", "dc-north")
    files = []
    for n in range(1, 31):
        frame = n.to_bytes(2, "big") * 25_000  # 50 kB each, 1.5 MB in all
        digest = hashlib.sha256(frame).hexdigest()
        image = folder / f"insertion-1-{digest[:12]}.jpg"
        image.write_bytes(frame)
        files.append(image)
        vision = {"images": [{"path": str(image), "sha256": digest}]}
        store.record_attempt(attempt(n, at=T0 + n * DAY), {"observations": {"vision": vision}})
    store.close()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = pruner(tmp_path, outbox, max_bytes=1_000_000).run(T0 + 31 * DAY)
    assert result.reasons == {"bytes"} and result.bytes_used <= 1_000_000 + 100_000
    assert result.images == result.records and 8 <= result.records <= 20
    assert [f.exists() for f in files] == [False] * result.records + [True] * (30 - result.records)
    assert verified(path)[0].ok
    outbox.close()


def test_files_no_record_refers_to_neither_count_nor_go(tmp_path: Path) -> None:
    """A timed-out attempt's frames (written, then no record) once made every pass drop the
    whole chain, the budget never met: now they are set aside, reported, and kept."""
    path = tmp_path / "evidence.sqlite3"
    daily(path, 50)
    stray = tmp_path / "evidence" / "images" / "ORD-9" / "C1" / "attempt-1"
    stray.mkdir(parents=True)
    frame = stray / f"insertion-1-{'c' * 12}.jpg"
    frame.write_bytes(b"x" * 1_200_000)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = pruner(tmp_path, outbox, max_bytes=1_000_000).run(T0 + 51 * DAY)
    assert result.records == 0 and frame.exists()
    assert (result.unreferenced_files, result.unreferenced_bytes) == (1, 1_200_000)
    assert verified(path)[0].records == 50  # every record still there
    outbox.close()


def test_a_file_from_before_images_were_indexed_is_indexed_by_retention_not_at_start(
    tmp_path: Path,
) -> None:
    """Opening does not read every record (months of them would delay the start past
    systemd's timeout): retention indexes them in batches, then counts their images."""
    path = tmp_path / "evidence.sqlite3"
    folder = tmp_path / "evidence" / "images"
    folder.mkdir(parents=True)
    store = EvidenceStore(path, "pack-01", "dc-north")
    for n in range(1, 4):
        frame = n.to_bytes(2, "big") * 200_000
        digest = hashlib.sha256(frame).hexdigest()
        image = folder / f"insertion-1-{digest[:12]}.jpg"
        image.write_bytes(frame)
        vision = {"images": [{"path": str(image), "sha256": digest}]}
        store.record_attempt(attempt(n, at=T0 + n * DAY), {"observations": {"vision": vision}})
    store.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE record_images; DROP TABLE image_backlog;")
    db.close()
    EvidenceStore(path, "pack-01", "dc-north").close()  # the new version opens it
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM record_images").fetchone() == (0,)
    db.close()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = pruner(tmp_path, outbox, max_bytes=1_000_000).run(T0 + 4 * DAY)
    assert result.unreferenced_files == 0 and result.records == 1  # 1.2 MB of frames: one goes
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM image_backlog").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM record_images").fetchone() == (2,)
    db.close()
    outbox.close()


def test_a_record_written_during_a_pass_is_not_pruned_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass reads the outbox, then walks the images; meanwhile the loop commits a verdict
    and writes its record: that record stays, whatever the budget says."""
    path = tmp_path / "evidence.sqlite3"
    daily(path, 5)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    prune = pruner(tmp_path, outbox, max_age_days=0.5)
    walk = ImageIndex.of

    def walk_while_the_loop_writes(folders: list[Path]) -> ImageIndex:
        store = EvidenceStore(path, "pack-01", "dc-north")
        store.record_attempt(attempt(6, at=T0 + 2 * DAY))  # as old as those pruned
        store.close()
        return walk(folders)

    monkeypatch.setattr(ImageIndex, "of", staticmethod(walk_while_the_loop_writes))
    result = prune.run(T0 + 30 * DAY)
    assert result.through_seq == 5
    db = sqlite3.connect(path)
    assert db.execute("SELECT seq FROM records").fetchall() == [(6,)]
    db.close()
    outbox.close()


def test_a_dropped_attempt_takes_only_its_own_frames_wherever_they_were_written(
    tmp_path: Path,
) -> None:
    """Attempt 2 re-encoded the same frame (the same digest, its own folder): dropping attempt
    1 leaves attempt 2's file. Frames under the camera's own evidence_dir go too, and a path
    outside every image folder is never touched."""
    path = tmp_path / "evidence.sqlite3"
    ours, cameras = tmp_path / "evidence" / "images", tmp_path / "frames"
    frame = b"\xff\xd8" + b"x" * 1000
    digest = hashlib.sha256(frame).hexdigest()
    outside = tmp_path / f"keep-{digest[:12]}.jpg"
    outside.write_bytes(frame)
    store = EvidenceStore(path, "pack-01", "dc-north")
    written = []
    for n, folder in ((1, ours), (2, ours), (3, cameras)):
        image = folder / f"attempt-{n}" / f"close-{digest[:12]}.jpg"
        image.parent.mkdir(parents=True)
        image.write_bytes(frame)
        written.append(image)
        images = [{"path": str(image), "sha256": digest}]
        if n == 3:
            images.append({"path": str(outside), "sha256": digest})
        vision = {"images": images}
        store.record_attempt(attempt(n, at=T0 + n * DAY), {"observations": {"vision": vision}})
    store.close()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    prune = EvidencePruner(
        path, [ours, cameras], EvidenceRetentionConfig(max_age_days=0.5), lambda: []
    )
    result = prune.run(T0 + 3 * DAY)  # attempts 1 and 2 are older than half a day
    assert result.records == 2 and result.images == 2
    assert [f.exists() for f in written] == [False, False, True] and outside.exists()
    result = prune.run(T0 + 5 * DAY)
    assert result.images == 1 and not written[2].exists() and outside.exists()
    outbox.close()


def test_a_changed_checkpoint_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    daily(path, 10)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pruner(tmp_path, outbox, max_age_days=5).run(T0 + 10 * DAY + timedelta(hours=1))
    outbox.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE checkpoint SET through_seq = 3")  # pretend fewer records were pruned
    db.commit()
    db.close()
    check, _ = verified(path)
    assert check.broken_seq == 6 and "4 to 5 are missing" in str(check.problem)


def test_a_long_backlog_goes_in_several_short_batches(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    fill(path, 2 * BATCH_RECORDS + 50)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = pruner(tmp_path, outbox, max_age_days=0.5).run(T0 + 30 * DAY)
    assert result.records == 2 * BATCH_RECORDS + 50
    _, mark = verified(path)
    assert mark is not None and mark.records_pruned == 2 * BATCH_RECORDS + 50
    outbox.close()


def test_a_wall_clock_stepped_ahead_does_not_make_every_record_too_old(tmp_path: Path) -> None:
    """A clock stepped a year ahead would make every record "too old" at once. Ages count no
    further than a day past the newest record (a restart with a bad clock, before any offset is
    measured), and while the clock monitor says it is off the daemon prunes by the budget
    alone. A station that goes on packing then does move the ages on."""
    path = tmp_path / "evidence.sqlite3"
    daily(path, 10)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    prune = pruner(tmp_path, outbox, max_age_days=30)
    a_year_on = T0 + 400 * DAY
    assert prune.run(a_year_on, by_age=False).records == 0
    assert prune.run(a_year_on).records == 0
    store = EvidenceStore(path, "pack-01", "dc-north")
    store.record_attempt(attempt(11, at=a_year_on))
    store.close()
    assert prune.run(a_year_on, by_age=False).records == 0
    assert prune.run(a_year_on).records == 10
    outbox.close()


def test_frames_of_a_moved_data_folder_go_and_a_symlink_never_takes_its_target(
    tmp_path: Path,
) -> None:
    """The records name the frames where they were first written; the data folder has moved
    since. A symlink in the image folder (to a file elsewhere) is no evidence image."""
    path = tmp_path / "evidence.sqlite3"
    moved = tmp_path / "new-disk" / "images"
    elsewhere = tmp_path / "precious.jpg"
    elsewhere.write_bytes(b"not evidence")
    store = EvidenceStore(path, "pack-01", "dc-north")
    written = []
    for n in (1, 2):
        frame = bytes([n]) * 1000
        digest = hashlib.sha256(frame).hexdigest()
        name = f"attempt-{n}/close-{digest[:12]}.jpg"
        (moved / name).parent.mkdir(parents=True)
        (moved / name).write_bytes(frame)
        written.append(moved / name)
        link = moved / f"attempt-{n}" / f"link-{digest[:12]}.jpg"
        link.symlink_to(elsewhere)
        old = tmp_path / "old-disk" / "images" / name  # where the record says it was written
        images = [{"path": str(old), "sha256": digest}, {"path": str(link), "sha256": digest}]
        vision = {"images": images}
        store.record_attempt(attempt(n, at=T0 + n * DAY), {"observations": {"vision": vision}})
    store.close()
    prune = EvidencePruner(path, [moved], EvidenceRetentionConfig(max_age_days=0.5), lambda: [])
    result = prune.run(T0 + 2 * DAY)
    assert (result.records, result.images) == (1, 1)
    assert [f.exists() for f in written] == [False, True]
    assert elsewhere.read_bytes() == b"not evidence"
