"""Identifier types of the contract: CI ids, change ids, lesson ids, incident ids."""

from typing import NewType

CIId = NewType("CIId", str)
ChangeId = NewType("ChangeId", str)
LessonId = NewType("LessonId", str)
IncidentId = NewType("IncidentId", str)
EventIdentity = tuple[str, str, str]
"""(source, id, type): the contract's (source, id), qualified by type (see README)."""
