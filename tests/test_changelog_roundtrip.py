"""Property: whatever a CI record or a stored model holds, the changelog gives it back exactly."""

import dataclasses
import json
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bench import synthetic
from cmdb_worker.rules.policy import load_policy
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker import changelog
from cmdb_worker.worker.engine.apply import Engine
from tests.recovery_stream import discovery_stream as recovery_stream
from tests.test_changelog import SAMPLE, replay_with_changelog

TEXT = st.text(max_size=12)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
FIELD_STRATEGIES: dict[Any, st.SearchStrategy[Any]] = {
    CIId: TEXT.map(CIId),
    str: TEXT,
    str | None: st.none() | TEXT,
    int | None: st.none() | st.integers(),
    bool: st.booleans(),
    datetime | None: st.none() | MOMENTS,
    dict[str, str]: st.dictionaries(TEXT, TEXT, max_size=3),
    dict[str, Any]: st.dictionaries(TEXT, JSON_VALUES, max_size=3),
    dict[str, dict[str, Any]]: st.dictionaries(
        TEXT, st.dictionaries(TEXT, JSON_VALUES, max_size=3), max_size=3
    ),
    dict[str, datetime]: st.dictionaries(TEXT, MOMENTS, max_size=3),
    frozenset[CIId]: st.frozensets(TEXT.map(CIId), max_size=3),
    frozenset[str]: st.frozensets(TEXT, max_size=3),
}
"""A strategy per ``CIRecord`` field type: a new field of a new type fails until one is added."""


def records() -> st.SearchStrategy[CIRecord]:
    """Records with every field drawn (none left at its default)."""
    drawn = {field.name: FIELD_STRATEGIES[field.type] for field in dataclasses.fields(CIRecord)}
    return st.builds(CIRecord, **drawn)


def models(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Valid instances of ``model`` with every field given, nested models drawn the same way."""
    fields = {name: _of_type(info.annotation) for name, info in model.model_fields.items()}
    return st.fixed_dictionaries(fields).map(lambda raw: _valid(model, raw)).filter(bool)


def _of_type(annotation: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return st.deferred(lambda: models(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_of_type(arg) for arg in args))
    if origin is list:
        return st.lists(_of_type(args[0]), max_size=2)
    if origin is dict:
        return st.dictionaries(_of_type(args[0]), _of_type(args[1]), max_size=2)
    if origin is tuple and Ellipsis not in args:
        return st.tuples(*(_of_type(arg) for arg in args))
    if origin is typing.Annotated:
        return _of_type(args[0])
    return _SCALARS[annotation] if annotation in _SCALARS else st.from_type(annotation)


_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: TEXT.filter(str.strip), datetime: MOMENTS, date: st.dates(), type(None): st.none(),
    timedelta: st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
}  # fmt: skip


def _valid(model: type[BaseModel], raw: dict[str, Any]) -> BaseModel | None:
    try:
        return model(**raw)
    except ValidationError:
        return None


def _rebuilt_from_changelog_of(engine: Engine) -> Engine:
    rebuilt = Engine(engine.policy)
    changelog.rebuild(rebuilt, changelog.changed_entries(engine))
    return rebuilt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records())
def test_every_field_of_a_ci_record_survives_the_changelog(record: CIRecord) -> None:
    """A CI record with arbitrary values in every field is rebuilt equal, field by field."""
    engine = Engine(load_policy())
    engine.state.cmdb.restore_record(record)
    engine.state.cmdb.dirty.add(record.id)
    restored = _rebuilt_from_changelog_of(engine).state.cmdb.get_unmerged(record.id)
    assert restored is not None
    assert {f.name: getattr(restored, f.name) for f in dataclasses.fields(CIRecord)} == {
        f.name: getattr(record, f.name) for f in dataclasses.fields(CIRecord)
    }


@pytest.mark.parametrize("kind", sorted(changelog.MODEL_STORES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_field_of_a_stored_model_survives_the_changelog(kind: str, data: st.DataObject):
    """Each pydantic store (changes, lessons, source health, suppressions...) is rebuilt equal."""
    attribute, model = changelog.MODEL_STORES[kind]
    stored = data.draw(models(model))
    engine = Engine(load_policy())
    getattr(engine.state, attribute)["entity-1"] = stored
    engine.state.touch(kind, "entity-1")
    restored = getattr(_rebuilt_from_changelog_of(engine).state, attribute)["entity-1"]
    assert restored.model_dump() == stored.model_dump()
    assert restored == stored


def _state_of(engine: Engine) -> dict[str, Any]:
    """Everything a rebuild restores from the changelog: records, edges, indexes, stores and
    identities, and the index of changed edges by target derived from the edge history.
    Deadlines are not in the changelog: they are re-armed from the records (a stale CI's grace
    on the first tick), and ``test_changelog`` proves the same findings follow."""
    cmdb, state = engine.state.cmdb, engine.state
    stores = {kind: _store_json(state, kind) for kind in changelog.MODEL_STORES}
    return {
        "records": {record.id: record for record in cmdb.records()},
        "edges": {(u, v): data for u, v, data in cmdb.graph.edges(data=True)},
        "indexes": (cmdb.aliases, cmdb.retired, cmdb.retired_aliases, cmdb.strong_ids,
                    cmdb.by_source),
        "changed_edges_into": cmdb.edge_history.into,
        "stores": stores,
        "identities": engine.applied._known,
    }  # fmt: skip


def _store_json(state: Any, kind: str) -> dict[str, str]:
    """A store as JSON: a held finding's extra fields come back as their JSON text."""
    attribute = changelog.MODEL_STORES[kind][0]
    return {key: model.model_dump_json() for key, model in getattr(state, attribute).items()}


def _lines(stream: str, tmp_path: Path) -> list[str]:
    if stream == "sample":
        return SAMPLE.read_text().splitlines()
    if stream == "synthetic":
        return synthetic.write(tmp_path / "s.jsonl", 3000).read_text().splitlines()
    return [json.dumps(event) for event in recovery_stream(3000)]


@pytest.mark.parametrize("stream", ["sample", "synthetic", "retirements and merges"])
def test_a_rebuilt_state_equals_the_live_one_exactly(stream: str, tmp_path: Path) -> None:
    """After the sample week, 3,000 synthetic events or 3,000 discovery events that retire and
    merge CIs, written to the changelog every 7 events (so keys are rewritten and withdrawn),
    the rebuild holds exactly the live state."""
    lines = _lines(stream, tmp_path)
    live, entries = replay_with_changelog(lines)
    rebuilt = Engine(live.policy)
    changelog.rebuild(rebuilt, entries)
    assert _state_of(rebuilt) == _state_of(live)
    assert len(live.state.cmdb.graph) > 10
    assert live.state.timelines and live.state.edge_changes
