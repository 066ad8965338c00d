"""Durations as policies write them: ``30m``, ``12h``, ``7d``, ``2w`` or ISO 8601 (``P1DT12H``)."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

SHORTHAND = re.compile(r"^\s*(?P<amount>\d+(\.\d+)?)\s*(?P<unit>[smhdw])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_shorthand(value: Any) -> Any:
    """Turn ``7d`` into a timedelta; leave anything else for pydantic's ISO 8601 parser."""
    if isinstance(value, str) and (match := SHORTHAND.match(value)):
        return timedelta(seconds=float(match["amount"]) * UNIT_SECONDS[match["unit"]])
    if isinstance(value, int | float):
        raise ValueError("a duration needs a unit, such as 30m, 12h, 7d or P7D")
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        raise ValueError(f"{value!r} is not a duration: use 30m, 12h, 7d, 2w or ISO 8601 (P7D)")
    return value


def require_positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_shorthand), AfterValidator(require_positive)]
