"""The changelog as a global table: every replica reads all of ``cmdb.state`` into its engine.

One group-less, ``read_committed`` consumer on every partition of the state topic, from the
beginning: the start-up rebuild reads it to the end, a standby keeps applying each record as it
arrives (a later value of a key replaces the earlier one, as in the rebuild, and its deadlines
are kept armed: ``changelog.Restoring``), and a replica that takes over reads it to the end once
more, then derives the indexes (``rearm``), so its engine is exactly what a rebuild of the whole
changelog makes, without re-arming every CI.
"""

import threading
from collections.abc import Callable

from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.kafka_port import StateReader

CATCH_UP_POLL_MS = 100
"""Short: a partition that ends in a transaction marker (the aborted batch of an active killed
mid-transaction) brings no record to a poll, which then waits its whole timeout."""


class StateTail:
    """Applies the state topic's records to ``engine`` (under ``lock``, a poll batch at a time)."""

    def __init__(self, reader: StateReader, engine: Engine, lock: threading.RLock) -> None:
        self.reader = reader
        self.lock = lock
        self.restoring = changelog.Restoring(engine)

    def catch_up(self, alive: Callable[[], None]) -> int:
        """Apply every record up to the end offsets as of now; ``alive()`` after every poll.
        Returns how many records were applied."""
        end = self.reader.end_offsets()
        applied = 0
        while any(self.reader.position(p) < offset for p, offset in end.items()):
            applied += self.poll(CATCH_UP_POLL_MS)
            alive()
        return applied

    def poll(self, timeout_ms: int) -> int:
        """Apply what one poll brings (a standby's step); returns how many records."""
        batch = self.reader.poll(timeout_ms)
        if batch:
            with self.lock:
                for records in batch.values():
                    for record in records:
                        self.restoring.put((record.key or b"").decode(), record.value)
        return sum(len(records) for records in batch.values())

    def lag(self) -> int:
        """Records committed to the state topic and not applied yet (one request to the broker)."""
        end = self.reader.end_offsets()
        return sum(max(offset - self.reader.position(p), 0) for p, offset in end.items())

    def rearm(self) -> None:
        """Derive the indexes and arm the deadlines from what is applied (every CI's the first
        time; after that, only the model stores': the CIs' are kept armed)."""
        with self.lock:
            self.restoring.finish()

    def live_keys(self) -> int:
        with self.lock:
            return self.restoring.live_keys()

    def close(self) -> None:
        self.reader.close()
