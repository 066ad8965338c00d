"""Operations: what an event does to an entity that another owner partition writes.

An event is judged on its home partition (``ownership.home_key``), but some of what it decides
lands on other entities: a relation names a CI some other partition owns. Handlers do not write
such an entity; they emit an operation on it (``State.emit``), which the engine applies at once
when it owns the entity (always, with one owner: ``replay``, the active/standby ``run``) and
otherwise hands over for the entity's owner (``Engine.take_outgoing``), which applies it to what
it holds (``Engine.receive``). The owner decides there, against its own record, so an operation
says what happened, not what to write, and applying it twice changes nothing.

Step 3 of docs/architecture.md ("Partitioned judgement") lists the cross-partition writes still
to become operations; this module is where each one's model goes.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cmdb_worker.schemas.ci import CIRef
from cmdb_worker.schemas.ids import CIId

OperationKind = Literal["referenced"]


class Referenced(BaseModel):
    """A relation named ``ci_id`` (as ``ref``) at ``at``: if the CI was never observed, it is a
    placeholder referenced since the earliest such naming (its phantom grace counts from then)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["referenced"] = "referenced"
    ci_id: CIId
    ref: CIRef
    at: datetime

    @property
    def entity(self) -> str:
        """The entity the operation applies to: its owner applies it."""
        return self.ci_id


Operation = Referenced
