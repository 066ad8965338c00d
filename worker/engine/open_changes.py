"""The index of open changes by CI, so conflict candidates are found without scanning changes.

A change is indexed under each of its CIs (resolved through aliases when indexed) while it is
open and plans a window. Candidates for a change are the indexed changes on its CIs (looked up
under their current ids and their aliases, in case a change was indexed before a merge) and on
the CIs one dependency edge away (by id: a hub's neighbours can number in the thousands).
"""

from collections.abc import Iterable

from cmdb_worker.rules import windows
from cmdb_worker.rules.conflicts import is_open
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine.cmdb import Cmdb


class OpenChanges:
    def __init__(self) -> None:
        self._by_ci: dict[CIId, set[str]] = {}
        self._cis_of: dict[str, list[CIId]] = {}

    def __len__(self) -> int:
        return len(self._cis_of)

    def update(self, change: ChangeRecord, cis: list[CIId]) -> None:
        """Index ``change`` under ``cis`` if it is open with a window, else drop it."""
        self._drop(change.id)
        if is_open(change) and windows.planned_window(change.request) is not None:
            self._cis_of[change.id] = cis
            for ci in cis:
                self._by_ci.setdefault(ci, set()).add(change.id)

    def _drop(self, change_id: str) -> None:
        for ci in self._cis_of.pop(change_id, []):
            holders = self._by_ci[ci]
            holders.discard(change_id)
            if not holders:
                del self._by_ci[ci]

    def near(self, cmdb: Cmdb, cis: Iterable[CIId]) -> set[str]:
        """Ids of open changes on ``cis`` or on a CI one dependency edge away from them."""
        own = {name for ci in cis for name in _names(cmdb, ci)}
        found: set[str] = set()
        for ci in own | _neighbours(cmdb, own):
            found |= self._by_ci.get(ci, set())
        return found


def _neighbours(cmdb: Cmdb, cis: set[CIId]) -> set[CIId]:
    graph = cmdb.graph
    near: set[CIId] = set()
    for ci in cis:
        if ci in graph:
            near.update(graph.pred[ci])
            near.update(graph.succ[ci])
    return near


def _names(cmdb: Cmdb, ci: CIId) -> set[CIId]:
    record = cmdb.get(ci)
    return {ci, *record.aliases} if record is not None else {ci}
