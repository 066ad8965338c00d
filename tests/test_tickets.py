"""Lessons as CDEvents ticket events: the shape the CDEvents spec's own ticket examples have,
created / updated / closed as lessons are filed, recur and close, and `replay --tickets`."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cmdb_worker.schemas.tickets import TicketEvent
from cmdb_worker.worker.cli import main
from cmdb_worker.worker.replay_command import OUTPUT_FILES
from cmdb_worker.worker.tickets import event_json, ticket_events, ticket_message
from tests.events import at
from tests.governance_helpers import change_requested, change_updated, lesson_updated
from tests.restarts import Run

# The spec's examples of ticket.created/updated/closed carry every context field (schemaUri and
# links too) and every content field of their schema; these are the same shapes, in our words.
SPEC_SHAPED_CONTEXT: dict[str, Any] = {
    "specversion": "0.5.0", "id": "7d0c2b9e-5f1a-4e57-9d1c-3c2f8a1e6b40",
    "source": "/trackers/jira", "timestamp": "2026-11-20T09:30:12.500Z",
    "schemaUri": "https://tracker.example/schemas/ticket", "chainId": "a1b2c3",
    "links": [{"linkType": "RELATION", "linkKind": "TRIGGER",
               "target": {"contextId": "0b6f7e41-cc3a-4a39-8f55-0c5f0a7a1d22"}}],
}  # fmt: skip
SPEC_SHAPED_CONTENT: dict[str, Any] = {
    "summary": "Disk nearly full on the build farm", "ticketType": "bug", "group": "platform",
    "creator": "dana", "assignees": ["erik"], "priority": "medium", "labels": ["infra"],
    "milestone": "2026-Q4", "uri": "https://tracker.example/browse/OPS-12",
}  # fmt: skip
EXTRA_CONTENT = {"created": {}, "updated": {"updatedBy": "erik"},
                 "closed": {"updatedBy": "erik", "resolution": "completed"}}  # fmt: skip
PREDICATES = ("created", "updated", "closed")


def spec_shaped(predicate: str) -> dict[str, Any]:
    """A ticket event shaped like the spec's example of ``predicate``."""
    context = SPEC_SHAPED_CONTEXT | {"type": f"dev.cdevents.ticket.{predicate}.0.2.0"}
    content = SPEC_SHAPED_CONTENT | EXTRA_CONTENT[predicate]
    subject = {"id": "OPS-12", "source": "/trackers/jira", "content": content}
    return {"context": context, "subject": subject}


@pytest.mark.parametrize("predicate", PREDICATES)
def test_the_model_accepts_the_spec_examples_shape(predicate: str) -> None:
    """Each spec-shaped example validates, every field kept."""
    example = spec_shaped(predicate)
    event = TicketEvent.model_validate(example)
    assert json.loads(event_json(event)) == example | {
        "context": example["context"] | {"timestamp": "2026-11-20T09:30:12.500000Z"}
    }


@pytest.mark.parametrize(("predicate", "field"), [
    ("created", "summary"), ("created", "creator"), ("updated", "uri"),
    ("closed", "resolution"), ("closed", "uri"),
])  # fmt: skip
def test_the_model_refuses_what_the_spec_requires_missing(predicate: str, field: str) -> None:
    """Without a content field the spec's schema requires for that event, validation fails."""
    example = spec_shaped(predicate)
    del example["subject"]["content"][field]
    with pytest.raises(ValidationError, match=field):
        TicketEvent.model_validate(example)


def test_the_model_refuses_keys_the_spec_does_not_have() -> None:
    """Like the spec's schema (additionalProperties false): an unknown content key is refused."""
    example = copy.deepcopy(spec_shaped("created"))
    example["subject"]["content"]["severity"] = "high"
    with pytest.raises(ValidationError, match="severity"):
        TicketEvent.model_validate(example)


def key_paths(document: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every key in nested objects (lists' items not followed)."""
    if not isinstance(document, dict):
        return set()
    return {path for key, value in document.items()
            for path in {prefix + key} | key_paths(value, f"{prefix}{key}.")}  # fmt: skip


def lesson_life(run: Run) -> list[list[dict[str, Any]]]:
    """A rollback_missing lesson filed, recurring, closed by a person, then reopened: the
    ticket events after each batch, as JSON."""
    batches = [
        [change_requested("CHG1", "database/pg@prod", time=at(0)),
         change_updated("CHG1", time=at(1), state="implementing")],
        [change_requested("CHG2", "database/pg@prod", time=at(2)),
         change_updated("CHG2", time=at(3), state="implementing")],
        [lesson_updated("LL-0001", id="done", time=at(4), status="Done")],
        [change_requested("CHG3", "database/pg@prod", time=at(5)),
         change_updated("CHG3", time=at(6), state="completed")],
    ]  # fmt: skip
    emitted = []
    for batch in batches:
        run.feed(*batch)
        changes = run.engine.state.take_lesson_changes()
        emitted.append([json.loads(event_json(event)) for event in ticket_events(changes)])
        run.restart()  # rebuilt: the next batch still knows the lesson (updated, not created)
    return emitted


def test_a_lesson_life_is_created_updated_closed_updated(run: Run) -> None:
    """Filed: created; recurrence: updated; Done: closed (completed); reopened: updated."""
    emitted = lesson_life(run)
    assert [[e["context"]["type"] for e in batch] for batch in emitted] == [
        ["dev.cdevents.ticket.created.0.2.0"], ["dev.cdevents.ticket.updated.0.2.0"],
        ["dev.cdevents.ticket.closed.0.2.0"], ["dev.cdevents.ticket.updated.0.2.0"],
    ]  # fmt: skip
    created, updated, closed, reopened = (batch[0] for batch in emitted)
    assert created["subject"]["id"] == "LL-0001"
    assert created["subject"]["content"]["summary"] == "Automated change rollback missing"
    assert created["subject"]["content"]["priority"] == "high"
    assert updated["customData"]["lesson"]["occurrences"] == 2
    assert closed["subject"]["content"]["resolution"] == "completed"
    assert reopened["customData"]["lesson"]["status"] == "Open"


def test_what_the_worker_sends_fits_the_spec_examples(run: Run) -> None:
    """Each event validates, and uses no key the spec-shaped example of its kind lacks (beside
    customData, where the whole lesson travels)."""
    for batch in lesson_life(run):
        for event in batch:
            TicketEvent.model_validate(event)
            predicate = event["context"]["type"].split(".")[3]
            ours = key_paths({k: v for k, v in event.items() if not k.startswith("customData")})
            spec = key_paths(spec_shaped(predicate))
            assert ours <= spec, ours - spec


def test_filed_and_closed_in_one_batch_gives_created_then_closed(run: Run) -> None:
    """A lesson new to a batch and Done by its end: ticket.created, then ticket.closed."""
    run.feed(change_requested("CHG1", "database/pg@prod", time=at(0)),
             change_updated("CHG1", time=at(1), state="implementing"),
             lesson_updated("LL-0001", id="wontdo", time=at(2), status="Won't Do"))  # fmt: skip
    events = ticket_events(run.engine.state.take_lesson_changes())
    assert [event.predicate for event in events] == ["created", "closed"]
    assert events[1].subject.content.resolution == "withdrawn"


def test_the_same_lesson_change_gives_the_same_ticket_ids(run: Run) -> None:
    """Context ids are digests of what the event says: a retried batch sends the same ones."""
    first = [e["context"]["id"] for batch in lesson_life(run) for e in batch]
    again = [e["context"]["id"] for batch in lesson_life(Run(rebuild=False)) for e in batch]
    assert first == again and len(set(first)) == 4


def test_a_kafka_message_is_keyed_by_lesson_with_cloudevents_headers(run: Run) -> None:
    """The record's key is the lesson id; ce_* headers say the CDEvent's id, type and time."""
    run.feed(change_requested("CHG1", "database/pg@prod", time=at(0)),
             change_updated("CHG1", time=at(1), state="implementing"))  # fmt: skip
    [created] = ticket_events(run.engine.state.take_lesson_changes())
    message = ticket_message(created)
    headers = dict(message.headers)
    assert message.key == b"LL-0001"
    assert headers["ce_type"] == b"dev.cdevents.ticket.created.0.2.0"
    assert headers["ce_id"] == created.context.id.encode()
    assert json.loads(message.value)["subject"]["id"] == "LL-0001"


def test_replay_writes_tickets_only_when_asked_and_apart_from_its_outputs(tmp_path: Path) -> None:
    """`replay --tickets FILE` writes one created per lesson; the --out files stay the same."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in [
        change_requested("CHG1", "database/pg@prod", time=at(0)),
        change_updated("CHG1", time=at(1), state="implementing"),
    ]))  # fmt: skip
    assert main(["replay", str(events), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    tickets = tmp_path / "tickets.jsonl"
    with_tickets = ["--out", str(tmp_path / "b"), "--quiet", "--tickets", str(tickets)]
    assert main(["replay", str(events), *with_tickets]) == 0
    for name in OUTPUT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert sorted(path.name for path in (tmp_path / "b").iterdir()) == sorted(OUTPUT_FILES)
    [line] = tickets.read_text().splitlines()
    assert TicketEvent.model_validate_json(line).predicate == "created"
