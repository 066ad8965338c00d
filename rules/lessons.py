"""The Lessons Register's rules: when a lesson is due, what it says, how a recurrence counts.

Each rule below returns a ``Filing``: the (rule, subject) a lesson is about, its owner, evidence
and the fact sentence that fills ``{detail}`` in the policy's text. Subjects are CIs, so the same
mistake on the same CI recurs into one lesson: ``rollback_missing`` and ``change_caused_incident``
name the CI the change landed on and carry the change ids as evidence.

A recurrence adds evidence and counts an occurrence. After ``Done`` it reopens the lesson with a
fresh due date; after ``Won't Do`` it only counts (a person decided; the count shows if that holds).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from cmdb_worker.rules.findings import finding_id, make_finding
from cmdb_worker.rules.policy import LessonText, Policy
from cmdb_worker.rules.staleness import stale_at
from cmdb_worker.schemas.changes import (
    ChangeRecord,
    DeployEntry,
    IncidentEntry,
    IncidentRecord,
    Suspect,
)
from cmdb_worker.schemas.findings import Finding, Reason
from cmdb_worker.schemas.lessons import Impact, Lesson
from cmdb_worker.schemas.records import CIRecord

LessonRule = Literal[
    "rollback_missing", "change_caused_incident", "cmdb_stale",
    "unauthorized_deploys", "repeat_incidents",
    "source_silent",
]  # fmt: skip


@dataclass(frozen=True)
class Filing:
    """A rule's finding that a lesson applies: filed new, or counted as a recurrence."""

    rule: LessonRule
    subject: str
    owner: str | None
    evidence: list[str]
    detail: str


def rollback_missing(change: ChangeRecord, subject: str, event_id: str, how: str) -> Filing:
    detail = (
        f"Change {change.id} ({change.request.title or 'untitled'}) was implemented "
        f"({how}) without a rollback plan"
    )
    return Filing("rollback_missing", subject, change.request.owner, [event_id, change.id], detail)


def change_caused_incident(
    incident: IncidentRecord, change: ChangeRecord, suspect: Suspect
) -> Filing:
    flaw = "failed" if suspect.failed else "had no rollback plan"
    detail = (
        f"Incident {incident.incident_id} on {incident.ci}: the top suspect, {suspect.kind} "
        f"{suspect.id} on {suspect.ci}, belongs to change {change.id}, which {flaw}"
    )
    evidence = list(dict.fromkeys([incident.event_id, incident.incident_id, suspect.id, change.id]))
    return Filing("change_caused_incident", suspect.ci, change.request.owner, evidence, detail)


def stale_grace_ends(policy: Policy, record: CIRecord) -> datetime:
    """A stale CI is stale too long once stale for ``lesson_grace_factor`` times its max age."""
    stale_from = stale_at(policy, record)
    assert stale_from is not None
    return stale_from + policy.staleness.max_age(record.type) * policy.staleness.lesson_grace_factor


def cmdb_stale(policy: Policy, record: CIRecord) -> Filing:
    assert record.last_seen is not None
    stale_finding = finding_id("ci_stale", record.id, record.last_seen.isoformat())
    sources = ", ".join(sorted(record.seen_by))
    detail = (
        f"{record.id} was last seen {record.last_seen.isoformat()} (by {sources}) "
        f"and stayed stale past {stale_grace_ends(policy, record).isoformat()}"
    )
    return Filing("cmdb_stale", record.id, record.owner, [stale_finding], detail)


def unauthorized_deploys(deploy: DeployEntry, owner: str | None, reasons: list[Reason]) -> Filing:
    detail = (
        f"{deploy.service} got {deploy.artifact_id or 'a deploy'} at {deploy.at.isoformat()}: "
        + "; ".join(reason.detail for reason in reasons)
    )
    evidence = [deploy.event_id] + ([deploy.change_id] if deploy.change_id else [])
    return Filing("unauthorized_deploys", deploy.service, owner, evidence, detail)


def repeated_incidents(
    policy: Policy, ci_id: str, owner: str | None, incidents: Iterable[IncidentEntry], now: datetime
) -> Filing | None:
    """A filing once the CI has its Nth incident within the window, else None."""
    window = policy.lessons.repeat_incidents
    recent = [entry.incident_id for entry in incidents if now - window.window < entry.at <= now]
    if len(recent) < window.count:
        return None
    detail = f"{len(recent)} incidents on {ci_id} within {window.window.days}d: {', '.join(recent)}"
    return Filing("repeat_incidents", ci_id, owner, recent, detail)


def text(policy: Policy, rule: str) -> LessonText:
    words: LessonText = getattr(policy.lessons.rules, rule)
    return words


def due_date(policy: Policy, impact: Impact, filed: datetime) -> date:
    days: int = getattr(policy.lessons.due_days, impact)
    return filed.date() + timedelta(days=days)


def overdue_at(lesson: Lesson) -> datetime:
    """A lesson is overdue once its due date has passed: from midnight UTC after it."""
    return datetime.combine(lesson.due + timedelta(days=1), time(), tzinfo=UTC)


def new_lesson(policy: Policy, lesson_id: str, filing: Filing, now: datetime) -> Lesson:
    words = text(policy, filing.rule)
    fill = {"subject": filing.subject, "detail": filing.detail}
    return Lesson(
        id=lesson_id, title=words.title.format(**fill),
        description=words.description.format(**fill), impact=words.impact,
        owner=filing.owner or words.fallback_owner, action=words.action.format(**fill),
        due=due_date(policy, words.impact, now), rule=filing.rule, subject=filing.subject,
        evidence=_merged(policy, [], filing.evidence), created_at=now, updated_at=now,
    )  # fmt: skip


def recurrence(policy: Policy, lesson: Lesson, filing: Filing, now: datetime) -> Lesson:
    """The lesson after the same (rule, subject) happened again."""
    update = {
        "occurrences": lesson.occurrences + 1,
        "evidence": _merged(policy, lesson.evidence, filing.evidence),
        "updated_at": now,
    }
    if lesson.status == "Done":
        update |= {"status": "Open", "due": due_date(policy, lesson.impact, now)}
    return lesson.model_copy(update=update)


def _merged(policy: Policy, evidence: list[str], new: list[str]) -> list[str]:
    """Old and new evidence without repeats, keeping the most recent ``max_evidence``."""
    return list(dict.fromkeys([*evidence, *new]))[-policy.lessons.max_evidence :]


def lesson_filed(lesson: Lesson, now: datetime, reopened: bool) -> Finding:
    verb = "reopened" if reopened else "filed"
    reason = Reason(
        code=verb,
        detail=f"{lesson.rule} on {lesson.subject} ({verb}, occurrence {lesson.occurrences}): "
        f"{lesson.description}; owner {lesson.owner}, due {lesson.due.isoformat()}",
    )
    return make_finding(
        "lesson_filed", lesson.id, "warning" if lesson.impact == "High" else "info", now,
        str(lesson.occurrences), [reason], reopened=reopened, lesson=lesson.model_dump(mode="json"),
    )  # fmt: skip


def lesson_overdue(lesson: Lesson, now: datetime) -> Finding:
    reason = Reason(
        code="past_due",
        detail=f"due {lesson.due.isoformat()} and still {lesson.status}; owner {lesson.owner}",
    )
    return make_finding(
        "lesson_overdue", lesson.id, "warning", now, lesson.due.isoformat(), [reason],
        owner=lesson.owner, due=lesson.due, impact=lesson.impact, status=lesson.status,
        title=lesson.title, rule=lesson.rule, lesson_subject=lesson.subject,
    )  # fmt: skip
