"""Lessons to trackers: each lesson change as a CDEvents ticket event (``schemas.tickets``).

A lesson the batch filed is ``ticket.created``; one it moved to Done or Won't Do is
``ticket.closed`` (resolution ``completed`` / ``withdrawn``); any other change (a recurrence, a
reopening, a person's edit) is ``ticket.updated``. A lesson filed and closed within one batch
gives both. The ticket id is the lesson id; its context id is a digest of what it says, so a
retried batch sends the same ids and a bridge can drop repeats. Sent on ``topic_tickets`` in the
batch's transaction (``run`` with the ``tickets`` setting), or written by ``replay --tickets``.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cmdb_worker.schemas.findings import FINDING_SOURCE
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.schemas.tickets import (
    TICKET_EVENT_VERSION,
    TICKET_SPEC_VERSION,
    TicketContent,
    TicketContext,
    TicketEvent,
    TicketPredicate,
    TicketSubject,
)
from cmdb_worker.worker.kafka_port import Sender
from cmdb_worker.worker.settings import Settings

LessonChange = tuple[Lesson | None, Lesson]
"""A lesson as it was before a batch (None: new) and as it is after."""
CREATOR = "cmdb-worker"
RESOLUTIONS = {"Done": "completed", "Won't Do": "withdrawn"}


@dataclass(frozen=True)
class TicketMessage:
    """One ticket event as a Kafka record: keyed by lesson id, CloudEvents binary-mode headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def predicates(previous: Lesson | None, current: Lesson) -> list[TicketPredicate]:
    """The ticket events one lesson change makes, in order."""
    closing = not current.is_open and (previous is None or previous.is_open)
    opened: list[TicketPredicate] = ["created"] if previous is None else []
    if closing:
        return [*opened, "closed"]
    return opened or ["updated"]


def ticket_events(changes: Iterable[LessonChange]) -> list[TicketEvent]:
    return [
        ticket_event(current, predicate)
        for previous, current in changes
        for predicate in predicates(previous, current)
    ]


def ticket_event(lesson: Lesson, predicate: TicketPredicate) -> TicketEvent:
    lesson_json = lesson.model_dump(mode="json")
    context = TicketContext(
        specversion=TICKET_SPEC_VERSION, id=_digest(predicate, lesson), source=FINDING_SOURCE,
        type=f"dev.cdevents.ticket.{predicate}.{TICKET_EVENT_VERSION}",
        timestamp=lesson.created_at if predicate == "created" else lesson.updated_at,
    )  # fmt: skip
    content = _content(lesson, predicate)
    subject = TicketSubject(id=lesson.id, source=FINDING_SOURCE, content=content)
    return TicketEvent(context=context, subject=subject, customData={"lesson": lesson_json},
                       customDataContentType="application/json")  # fmt: skip


def _content(lesson: Lesson, predicate: TicketPredicate) -> TicketContent:
    return TicketContent(
        summary=lesson.title, ticketType="task", group=lesson.owner, creator=CREATOR,
        assignees=[lesson.owner], priority=lesson.impact.lower(),
        labels=["lesson", lesson.rule], milestone=lesson.due.isoformat(),
        uri=f"/api/lessons#{lesson.id}",
        resolution=RESOLUTIONS.get(lesson.status) if predicate == "closed" else None,
        updatedBy=CREATOR if predicate != "created" else None,
    )  # fmt: skip


def _digest(predicate: str, lesson: Lesson) -> str:
    said = f"{predicate}\x1f{lesson.model_dump_json()}".encode()
    return hashlib.blake2b(said, digest_size=16).hexdigest()


def event_json(event: TicketEvent) -> str:
    return event.model_dump_json(exclude_none=True)


def ticket_message(event: TicketEvent) -> TicketMessage:
    context = event.context
    headers = {
        "ce_specversion": "1.0", "ce_id": context.id, "ce_source": context.source,
        "ce_type": context.type, "ce_time": context.timestamp.isoformat(),
        "content-type": "application/json",
    }  # fmt: skip
    return TicketMessage(
        event.subject.id.encode(), event_json(event).encode(),
        [(name, value.encode()) for name, value in headers.items()],
    )  # fmt: skip


def send(producer: Sender, settings: Settings, changes: list[LessonChange]) -> None:
    """A batch's lesson changes to ``topic_tickets`` (in its transaction), if ``tickets`` is on."""
    for event in ticket_events(changes) if settings.tickets else []:
        message = ticket_message(event)
        producer.send(settings.topic_tickets, key=message.key, value=message.value,
                      headers=message.headers)  # fmt: skip
