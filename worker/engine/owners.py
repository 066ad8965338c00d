"""Whose owner partition writes each changelog key and fires each deadline.

``ownership`` places an entity on a partition; this module names the entity a changelog key or
a deadline belongs to (docs/architecture.md, "Partitioned judgement", has the table): a CI's
record, history and edge history its CI, a change its id, an incident its service (the CI it
was merged into, if it was), a lesson (and its overdue report, and a timeline about it) its
subject, a source's record its name. The aggregates kept per owner partition (``engine.teams``,
``engine.sources``) name their owner in their key. Applied-identity batches (``events/``) are
each writer's own.
"""

from collections.abc import Callable

from cmdb_worker.schemas.events import CIObserved, CIRetired, Deploy, Incident, InputEvent
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.worker.engine import discovery, history, lessons, sources, suppressions
from cmdb_worker.worker.engine.deadlines import DeadlineKind
from cmdb_worker.worker.engine.edge_history import EDGES_EXPIRE
from cmdb_worker.worker.engine.ownership import home_key
from cmdb_worker.worker.engine.state import (
    APPLIED_EVENTS,
    DORA_TEAM,
    INCIDENT,
    LESSON,
    LESSON_OVERDUE,
    SOURCE_REPORT,
    TEAM_HISTORY,
    TEAM_OUTCOMES,
    TIMELINE,
    State,
)

OWNER_KEYED = frozenset({SOURCE_REPORT, DORA_TEAM, TEAM_OUTCOMES, TEAM_HISTORY})
"""Kinds kept per owner partition, their keys ``<owner>/<name>``."""
LESSON_KEYED = frozenset({LESSON, LESSON_OVERDUE, TIMELINE})
"""Kinds keyed by a lesson's id for a lesson (a timeline's subject may be one: ``lesson_filed``)."""


def owning_entity(state: State, kind: str, entity_id: str) -> str:
    """The entity whose owner writes the key ``<kind>/<entity_id>`` (not of ``OWNER_KEYED``)."""
    if kind in LESSON_KEYED and (lesson := state.lessons.get(entity_id)) is not None:
        return lesson.subject
    if kind == INCIDENT and (incident := state.incidents.get(entity_id)) is not None:
        return state.cmdb.resolve(CIId(incident.ci)) if incident.ci else entity_id
    return entity_id


def judged_at(state: State, event: InputEvent, follow_identifiers: bool = True) -> str:
    """The entity whose owner judges ``event``: its home key (``ownership.home_key``; its
    source if it names none), but a CI's as it lands in this engine's graph (an alias resolved,
    an observation's strong identifier held by another CI, if followed)."""
    home = home_key(event) or event.source
    payload = event.payload
    if isinstance(payload, CIObserved):
        return state.cmdb.landing(payload.ci, follow_identifiers)
    if isinstance(payload, CIRetired | Deploy | Incident):
        return state.cmdb.resolve(CIId(home))
    return home


def key_owner(state: State, kind: str, entity_id: str) -> int | None:
    """The owner partition that writes ``<kind>/<entity_id>``; None: whoever applied the events
    (an applied-identities batch)."""
    if kind == APPLIED_EVENTS:
        return None
    if kind in OWNER_KEYED:
        return int(entity_id.partition("/")[0])
    return state.ownership.partition_of(owning_entity(state, kind, entity_id))


def _ci(_: State, ci_id: str) -> str:
    return ci_id


def _lesson_subject_or_itself(state: State, key: str) -> str:
    return owning_entity(state, LESSON, key)


DEADLINE_ENTITIES: dict[DeadlineKind, Callable[[State, str], str]] = {
    discovery.STALE: _ci,
    discovery.ORPHAN: _ci,
    discovery.PHANTOM: _ci,
    lessons.STALE_TOO_LONG: _ci,
    lessons.LESSON_DUE: _lesson_subject_or_itself,
    sources.SOURCE_SILENT: lambda _, source: source,
    suppressions.SUPPRESSION_ENDS: lambda _, key: key.partition(suppressions.KEY_SEPARATOR)[0],
    history.TIMELINE_EXPIRES: _lesson_subject_or_itself,
    EDGES_EXPIRE: lambda _, origin: origin,
}
"""The entity whose owner fires a deadline, by kind, from its key: the CI, source, origin or
subject it is keyed by; a lesson's subject for a lesson (or a timeline about one)."""


def fires(state: State, key: str, kind: DeadlineKind) -> bool:
    """Whether this engine fires the deadline: it owns the deadline's entity."""
    return state.ownership.owns(DEADLINE_ENTITIES[kind](state, key))
