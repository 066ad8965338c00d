"""The Lessons Register: the register's own fields first, in its order, then the worker's."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cmdb_worker.schemas.events import LessonStatus

Impact = Literal["High", "Medium", "Low"]
LESSON_ID_PREFIX = "LL-"
REGISTER_FIELDS = ("id", "title", "description", "impact", "owner", "action", "due", "status")


def lesson_id(number: int) -> str:
    """``LL-0001``: the prefix and at least four digits."""
    return f"{LESSON_ID_PREFIX}{number:04d}"


def lesson_number(id: str) -> int | None:
    """The number in a lesson id the worker gave (``LL-0042``: 42); None for any other id."""
    digits = id.removeprefix(LESSON_ID_PREFIX)
    return int(digits) if digits != id and digits.isascii() and digits.isdigit() else None


class Lesson(BaseModel):
    """One lesson; field order is the register's column order and must not change."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    title: str
    description: str
    impact: Impact
    owner: str
    action: str
    due: date
    status: LessonStatus = "Open"
    rule: str
    subject: str
    evidence: list[str] = Field(default_factory=list)
    occurrences: int = 1
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in ("Open", "In Progress")


class OverdueReported(BaseModel):
    """That a lesson's due date passed and ``lesson_overdue`` said so: once per due date, even
    across a restart (a new due date is reported again when it passes)."""

    lesson_id: str
    due: date
