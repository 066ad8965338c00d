"""Remembered event identities: batches, the window, and what the changelog gets."""

from datetime import timedelta

from cmdb_worker.worker.engine import identities
from cmdb_worker.worker.engine.identities import AppliedEvents, IdentityBatch
from tests.events import at


def test_remembered_identities_are_known_until_their_batch_leaves_the_window():
    """A batch is forgotten whole once its newest event is older than the window."""
    applied = AppliedEvents(timedelta(days=1))
    applied.remember("a", at())
    applied.remember("b", at(hours=2))
    applied.take_changes()
    applied.remember("c", at(days=1, hours=1))
    assert "a" in applied and "b" in applied
    applied.remember("d", at(days=1, hours=3))
    assert "a" not in applied and "b" not in applied and "c" in applied


def test_changes_are_one_record_per_batch_and_forgotten_batch_ids():
    """take_changes closes the open batch and reports it once, then reports forgotten ids."""
    applied = AppliedEvents(timedelta(hours=1))
    applied.remember("a", at())
    applied.remember("b", at(hours=0.5))
    batches, forgotten = applied.take_changes()
    assert batches == [IdentityBatch("a", ("a", "b"), at(hours=0.5))] and forgotten == []
    applied.remember("c", at(hours=2))
    batches, forgotten = applied.take_changes()
    assert [batch.keys for batch in batches] == [("c",)] and forgotten == ["a"]


def test_a_full_batch_closes_by_itself(monkeypatch):
    """Batches close every BATCH_SIZE identities even when nobody takes them (replay)."""
    monkeypatch.setattr(identities, "BATCH_SIZE", 2)
    applied = AppliedEvents(timedelta(hours=1))
    for number, key in enumerate("abcde"):
        applied.remember(key, at(hours=number))
    assert "a" not in applied and "b" not in applied
    assert "c" in applied and "e" in applied


def test_restored_batches_are_known_and_resume_the_clock():
    """Restored batches answer membership and give the latest applied time."""
    applied = AppliedEvents(timedelta(days=7))
    applied.restore(
        [IdentityBatch("x", ("x", "y"), at(hours=3)), IdentityBatch("p", ("p",), at(hours=1))]
    )
    assert "y" in applied and "p" in applied and "q" not in applied
    assert applied.last_applied_at == at(hours=3)
