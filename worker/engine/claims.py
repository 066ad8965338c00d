"""An index from a key (a merged-away id, a strong identifier) to the one CI that claims it.

Live, a key has one claimant at a time: merging moves it. Read back from ``cmdb.state``, whose
partitions a replica reads interleaved, a CI's older value can arrive after the newer value of
another CI: the record of a CI since merged away still lists an id (or an identifier) that the
survivor's newer record lists too. Both claims are kept until one is given up (the merged-away
CI's tombstone arrives), and the key then answers for the claimant left. Once every partition
is read to its end, each key has one claimant again, whatever the interleaving.

While contested, a key answers for its smallest claimant, whatever order the claims came in:
owners of different partitions whose views lagged may each have made a CI with one strong
identifier, and each must then see the same holder, so that the next sighting of the other
merges them (``Cmdb.landing``) rather than each keeping its own.
"""

from typing import TypeVar

from cmdb_worker.schemas.ids import CIId

K = TypeVar("K")


class ClaimedIndex(dict[K, CIId]):
    def __init__(self) -> None:
        super().__init__()
        self.contested: dict[K, set[CIId]] = {}
        """Keys two or more CIs claim (only while a changelog is read out of order)."""

    def claim(self, key: K, ci_id: CIId) -> None:
        holder = self.setdefault(key, ci_id)
        if holder != ci_id:
            claimants = self.contested.setdefault(key, {holder})
            claimants.add(ci_id)
            self[key] = min(claimants)  # whatever order the claims came in

    def assign(self, key: K, ci_id: CIId) -> None:
        """A live decision (a merge): the key answers for ``ci_id``, and claims read from the
        changelog before it no longer contest it."""
        self[key] = ci_id
        self.contested.pop(key, None)

    def release(self, key: K, ci_id: CIId) -> None:
        """``ci_id`` gives the key up: it answers for another claimant, or no longer."""
        claimants = self.contested.get(key)
        if claimants is None:
            if self.get(key) == ci_id:
                del self[key]
            return
        claimants.discard(ci_id)
        if self.get(key) == ci_id:
            self[key] = min(claimants)
        if len(claimants) == 1:
            del self.contested[key]
