"""Evidence records that verdict events anchor and that are not written yet.

A verdict's record is hashed before its event is committed (the event carries the hash) and
written after. The outbox keeps the record with the event, in the same transaction, until the
evidence store has written it (`EvidenceStore.owe`, `pay_owed`): a stop or a failed write in
between then loses nothing, and no other record takes its chain position.

This module is the ledger between the two: it gives the store back what a stop left owed,
forgets a record in the outbox once it is written, keeps a record that can no longer go into the
chain in a file beside it, and remembers the cartons a stop left owed until the daemon has seen
to them (one the recovered session does not hold left the station unverified).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from station.evidence import ChainRecord, EvidenceStore
from station.outbox import Outbox
from station.storage import write_synced

log = logging.getLogger("packstation.evidence")
# Under the data_dir: evidence records a verdict event anchored that could not go into the chain.
UNWRITTEN_DIR = "evidence-unwritten"

Carton = tuple[str, str]


class OwedRecords:
    def __init__(self, outbox: Outbox, data_dir: Path) -> None:
        self._outbox = outbox
        self._aside = data_dir / UNWRITTEN_DIR
        # Cartons whose verdict record a stop left owed -> that record's chain position, until
        # `seen_to`; their outbox rows are kept until then, so another stop cannot forget them.
        self._at_start: dict[Carton, int] = {}
        self._settle_later: list[int] = []

    def take_back(self, evidence: EvidenceStore) -> None:
        """Owe `evidence` again what a stop left owed, and note the cartons concerned."""
        for seq, text in self._outbox.owed_records():
            try:
                record = ChainRecord.from_text(text)
            except Exception as exc:  # never a reason not to start: kept aside, said loudly
                if self._keep_aside(seq, text, f"unreadable: {exc}"):
                    self._forget(seq)
                continue
            evidence.owe(record)
            if record.order_id is not None and record.carton_id is not None:
                key = (record.order_id, record.carton_id)
                self._at_start[key] = max(seq, self._at_start.get(key, 0))

    def settled(self, record: ChainRecord) -> None:
        """The store wrote (or handed back) an owed record: the outbox may forget it, unless its
        carton is one a stop left owed and not seen to yet."""
        if (record.order_id, record.carton_id) in self._at_start:
            self._settle_later.append(record.seq)
        else:
            self._forget(record.seq)

    def unwritable(self, record: ChainRecord, why: str) -> bool:
        """A record that can no longer go into the chain: kept aside (True), or stays owed."""
        return self._keep_aside(record.seq, record.stored_text(), why)

    def left_unverified(self, held: Iterable[Carton | None]) -> list[Carton]:
        """After the session's recovery: the cartons a stop left owed that it does not hold."""
        for key in held:
            if key is not None:
                self._at_start.pop(key, None)
        return sorted(self._at_start)

    @property
    def pending_at_start(self) -> bool:
        """Cartons a stop left owed, or their rows, not seen to yet."""
        return bool(self._at_start or self._settle_later)

    def left_at(self, key: Carton) -> float | None:
        """Where in the chain such a carton left the station (just after its record), until it
        is seen to; None for any other carton."""
        seq = self._at_start.get(key)
        return None if seq is None else seq + 0.5

    def seen_to(self) -> None:
        """The cartons a stop left owed are on the record: their rows may go."""
        self._at_start.clear()
        for seq in self._settle_later:
            self._forget(seq)
        self._settle_later.clear()

    def _forget(self, seq: int) -> None:
        try:
            self._outbox.settle_owed(seq)
        except Exception:  # found written at the next start, and forgotten then
            log.warning("owed record not settled", extra={"record_id": seq}, exc_info=True)

    def _keep_aside(self, seq: int, text: str, why: str) -> bool:
        path = self._aside / f"record-{seq}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
        try:
            self._aside.mkdir(parents=True, exist_ok=True)
            write_synced(path, text.encode())
        except OSError as exc:
            log.critical(
                "an evidence record a verdict event anchored can neither go into the chain nor "
                "be kept aside: it stays owed in the outbox",
                extra={"record_id": seq, "why": why, "kept_in": str(path), "error": str(exc)},
            )
            return False
        log.critical(
            "an evidence record a verdict event anchored cannot go into the chain: kept aside; "
            "the backend will find that anchor unmatched",
            extra={"record_id": seq, "why": why, "kept_in": str(path)},
        )
        return True
