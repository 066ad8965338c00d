"""Everything the worker knows, in one place the event handlers share."""

from dataclasses import dataclass, field

from cmdb_worker.rules.policy import Policy
from cmdb_worker.schemas.changes import (
    ChangeOutcomes,
    ChangeRecord,
    CIHistory,
    IncidentRecord,
    TeamHistory,
)
from cmdb_worker.schemas.dora import DoraTeam, MergedChange
from cmdb_worker.schemas.history import ChangedEdges, SubjectHistory
from cmdb_worker.schemas.lessons import Lesson, OverdueReported
from cmdb_worker.schemas.records import CIRecord, SourceHealth, SourceReport, Suppression
from cmdb_worker.worker.engine.cmdb import Cmdb
from cmdb_worker.worker.engine.deadlines import DeadlineIndex
from cmdb_worker.worker.engine.open_changes import OpenChanges
from cmdb_worker.worker.engine.operations import Operation
from cmdb_worker.worker.engine.ownership import ONE_OWNER, LessonNumbers, Ownership

CHANGE, INCIDENT, LESSON, HISTORY = "change", "incident", "lesson", "ci_history"
LESSON_OVERDUE = "lesson_overdue"
SOURCE, SOURCE_REPORT, SUPPRESSION = "source", "source_report", "suppression"
TEAM_OUTCOMES = "team_outcomes"
TEAM_HISTORY = "team_history"
DORA_TEAM, MERGED_CHANGE = "dora_team", "merged_change"
TIMELINE, EDGE_HISTORY = "timeline", "edge_history"
APPLIED_EVENTS = "events"
"""Kind of the changelog's batches of applied event (and operation) identities."""


@dataclass
class State:
    policy: Policy
    ownership: Ownership = ONE_OWNER
    cmdb: Cmdb = field(init=False)
    deadlines: DeadlineIndex = field(default_factory=DeadlineIndex)

    dirty: set[tuple[str, str]] = field(default_factory=set)
    """(entity kind, id) of non-CI entities changed since the last ``take_dirty``."""
    outbox: list[Operation] = field(default_factory=list)
    """Operations emitted and not yet applied or handed over (``engine.operations``)."""
    home: str = ""
    """The entity the event being judged belongs to (``owners.judged_at``): the owner partition
    its per-owner partials count in."""
    follow_identifiers: bool = True
    """Whether the event being judged merges by strong identifier (not once an owner found its
    identifiers led to a CI that does not hold them: ``Rehomed.hops``)."""

    changes: dict[str, ChangeRecord] = field(default_factory=dict)
    """Kind ``change``, keyed by change id."""
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    """Kind ``incident``, keyed by incident id (the CDEvent ``subject.id``)."""
    lessons: dict[str, Lesson] = field(default_factory=dict)
    """Kind ``lesson``, keyed by lesson id."""
    overdue_reported: dict[str, OverdueReported] = field(default_factory=dict)
    """Kind ``lesson_overdue``, keyed by lesson id: the due date whose passing was reported."""
    histories: dict[str, CIHistory] = field(default_factory=dict)
    """Kind ``ci_history``, keyed by CI id: recent changes, deploys and incidents on the CI."""
    team_outcomes: dict[str, ChangeOutcomes] = field(default_factory=dict)
    """Kind ``team_outcomes``, keyed ``<owner partition>/<owner team>`` (``engine.teams``)."""
    team_histories: dict[str, TeamHistory] = field(default_factory=dict)
    """Kind ``team_history``, keyed ``<owner partition>/<owner team>``: its recently finished
    changes (``engine.teams``)."""
    open_changes: OpenChanges = field(default_factory=OpenChanges)
    """Open changes by CI; derived from ``changes`` (rebuilt after a restore)."""
    sources: dict[str, SourceHealth] = field(default_factory=dict)
    """Kind ``source``, keyed by discovery source: every source that sent an observation or scan,
    its last report the latest of its ``source_reports``."""
    source_reports: dict[str, SourceReport] = field(default_factory=dict)
    """Kind ``source_report``, keyed ``<owner partition>/<source>``: a source's latest report
    among each owner partition's events (``engine.sources``)."""
    suppressions: dict[str, Suppression] = field(default_factory=dict)
    """Kind ``suppression``, keyed by subject: findings held back until a time."""
    dora: dict[str, DoraTeam] = field(default_factory=dict)
    """Kind ``dora_team``, keyed ``<owner partition>/<owner team>`` (``none``: no owner known):
    the DORA four keys' totals (``engine.teams``)."""
    merged_changes: dict[str, MergedChange] = field(default_factory=dict)
    """Kind ``merged_change``, keyed by change id: merged, lead time not yet observed."""
    timelines: dict[str, SubjectHistory] = field(default_factory=dict)
    """Kind ``timeline``, keyed by subject: the findings about it (``engine.history``)."""
    lesson_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    """(rule, subject) -> lesson id; derived from ``lessons`` (see ``index_lessons``)."""
    lesson_changes: dict[str, Lesson | None] = field(default_factory=dict)
    """Lesson id -> the lesson before it changed (None: new), until ``take_lesson_changes``."""
    lesson_numbers: LessonNumbers = field(init=False)
    """The lesson ids given per owner partition; derived from ``lessons``."""

    def __post_init__(self) -> None:
        self.cmdb = Cmdb(self.policy, self.deadlines)
        self.lesson_numbers = LessonNumbers(self.ownership)

    @property
    def edge_changes(self) -> dict[str, ChangedEdges]:
        """Kind ``edge_history``, keyed by origin CI id: its edges that came or went."""
        return self.cmdb.edge_history.origins

    def emit(self, operation: Operation) -> None:
        """Apply ``operation`` to its entity, as the entity's owner (see ``engine.operations``)."""
        self.outbox.append(operation)

    def touch(self, kind: str, entity_id: str) -> None:
        """Mark an entity (a change, lesson, incident...) as changed, for the changelog."""
        self.dirty.add((kind, entity_id))

    def unverified(self, record: CIRecord) -> bool:
        """All of the CI's discovery sources are silent (deploys are sightings, not sources)."""
        vouching = [self.sources[source] for source in record.seen_by if source in self.sources]
        return bool(vouching) and all(health.silent for health in vouching)

    def put_lesson(self, lesson: Lesson) -> None:
        self.lesson_changes.setdefault(lesson.id, self.lessons.get(lesson.id))
        self.lessons[lesson.id] = lesson
        self.lesson_keys[(lesson.rule, lesson.subject)] = lesson.id
        self.touch(LESSON, lesson.id)

    def take_lesson_changes(self) -> list[tuple[Lesson | None, Lesson]]:
        """Each lesson changed since the last call: as it was before (None: new), and now."""
        changes = [(before, self.lessons[key]) for key, before in self.lesson_changes.items()]
        self.lesson_changes = {}
        return changes

    def index_lessons(self) -> None:
        """Rebuild the (rule, subject) index and the ids given from ``lessons``, after
        restoring them."""
        self.lesson_keys = {
            (lesson.rule, lesson.subject): id for id, lesson in self.lessons.items()
        }
        self.lesson_numbers = LessonNumbers(self.ownership)
        self.lesson_numbers.note(self.lessons)

    def history(self, ci_id: str) -> CIHistory:
        """The CI's history to add to: created empty on first use, marked as changed."""
        self.touch(HISTORY, ci_id)
        return self.histories.setdefault(ci_id, CIHistory(ci_id=ci_id))

    def take_dirty(self) -> set[tuple[str, str]]:
        changed = {("ci", ci_id) for ci_id in self.cmdb.take_dirty()} | self.dirty
        changed |= {(EDGE_HISTORY, origin) for origin in self.cmdb.edge_history.take_dirty()}
        self.dirty = set()
        return changed
