"""``/ui/``: read-only pages over the same data as ``/api/`` (``Api``'s functions, under its lock).

``/ui/`` searches CIs, ``/ui/ci/{id}`` shows one with its neighbourhood and blast radius drawn,
``/ui/teams`` lists stale and unverified CIs by owner team, ``/ui/changes`` the assessed changes
with score, route and reasons, ``/ui/lessons`` the Lessons Register with overdue lessons marked.
"""

import heapq
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from itertools import groupby
from typing import Any
from urllib.parse import unquote

from cmdb_worker.rules.lessons import overdue_at
from cmdb_worker.schemas.changes import ChangeRecord
from cmdb_worker.schemas.ids import CIId
from cmdb_worker.schemas.lessons import Lesson
from cmdb_worker.schemas.records import CIRecord
from cmdb_worker.worker.api import Api, NotFound, Query
from cmdb_worker.worker.engine.discovery import UNVERIFIED
from cmdb_worker.worker.export import register_order
from cmdb_worker.worker.ui_html import (
    Row,
    badge,
    bullet_list,
    ci_link,
    link,
    page,
    table,
    text,
)
from cmdb_worker.worker.ui_svg import blast_radius, neighbourhood

HTML = "text/html; charset=utf-8"
Doc = dict[str, Any]
CI_HEADERS = ("CI", "type", "environment", "owner", "criticality", "last seen", "status")
MAX_FOUND = 200
"""Search results shown; the rest are counted."""
MAX_LISTED = 50
"""Dependents listed under a blast radius picture; the rest are counted by hop."""
NO_OWNER = "(no owner)"


class Ui:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.pages: dict[str, Callable[[Query], bytes]] = {
            "": self.search, "teams": self.teams, "changes": self.changes, "lessons": self.lessons,
        }  # fmt: skip

    def get(self, path: str, query: Query) -> tuple[int, str, bytes]:
        """Answer ``path`` (still percent-encoded, without ``/ui/``): a status, type and page."""
        try:
            with self.api.lock:
                return HTTPStatus.OK, HTML, self._route(path, query)
        except NotFound as missing:
            return HTTPStatus.NOT_FOUND, HTML, page("Not found", f"<p>{text(missing)}</p>")

    def _route(self, path: str, query: Query) -> bytes:
        if path.startswith("ci/") and len(path) > len("ci/"):
            return self.ci(CIId(unquote(path.removeprefix("ci/"))))
        if path in self.pages:
            return self.pages[path](query)
        raise NotFound(f"no such page: /ui/{path}")

    def search(self, query: Query) -> bytes:
        """CIs whose id, name or an alias contains ``q``, of a ``type``, an ``owner``, ``stale``;
        the first ``MAX_FOUND`` by id."""
        wanted = {key: values[-1].strip() for key, values in query.items() if values[-1].strip()}
        records = list(self.api.engine.state.cmdb.records())
        matching = sum(1 for record in records if _matches(record, wanted))
        found = self.api.cis(lambda record: _matches(record, wanted), MAX_FOUND)
        shown = f" (the first {len(found)} shown)" if len(found) < matching else ""
        summary = f'<p class="summary">{matching} of {len(records)} CIs match{shown}</p>'
        body = _search_form(records, wanted) + summary
        return page("Search CIs", body + table(CI_HEADERS, map(_ci_row, found), "results"))

    def ci(self, ci_id: CIId) -> bytes:
        """A CI's fields, its neighbourhood and its blast radius, drawn and listed."""
        ci = self.api.ci(ci_id)
        impact = self.api.impact(self.api.record(ci_id))
        body = (
            _headline(ci) + "<h2>Neighbourhood</h2>" + neighbourhood(self._with_neighbours(ci))
            + "<h2>Blast radius</h2>" + _impact_summary(impact)
            + f'<div class="side-by-side">{blast_radius(impact)}{_dependents_table(impact)}</div>'
            + "<h2>Details</h2>" + _fields(ci)
        )  # fmt: skip
        return page(ci["id"], body)

    def _with_neighbours(self, ci: Doc) -> Doc:
        """``ci`` with each relation's target and dependent's source as a CI document."""
        graph = self.api.engine.state.cmdb.graph

        def neighbour(ci_id: str) -> Doc:
            record = graph.nodes[ci_id].get("ci")  # None: its record not read yet (a standby)
            if record is None:
                return {"id": ci_id, "criticality": None, "stale": False}
            return {"id": ci_id, "criticality": record.criticality, "stale": record.stale}

        relations = [{"type": r["type"], "target": neighbour(r["target"])} for r in ci["relations"]]
        dependents = [
            {"type": d["type"], "source": neighbour(d["source"])} for d in ci["dependents"]
        ]
        return ci | {"relations": relations, "dependents": dependents}

    def teams(self, query: Query) -> bytes:
        """Stale and unverified CIs grouped by owner team, the teams with most first."""
        flagged = self.api.cis(lambda record: record.stale or UNVERIFIED in record.flags)
        by_team = {team: list(cis) for team, cis in groupby(sorted(flagged, key=_team), key=_team)}
        ranked = sorted(by_team.items(), key=lambda item: (-len(item[1]), item[0]))
        summary = table(("team", "stale", "unverified"), map(_team_row, ranked), "teams")
        sections = "".join(_team_section(team, cis) for team, cis in ranked)
        return page("Stale and unverified CIs by team", summary + (sections or "<p>None.</p>"))

    def changes(self, query: Query) -> bytes:
        """Changes with their latest score, level, route and reasons: the ``MAX_FOUND`` riskiest."""
        records = self.api.engine.state.changes.values()
        riskiest = heapq.nsmallest(MAX_FOUND, records, key=lambda c: (-_score(c), c.id))
        changes = [self.api.change(record.id) for record in riskiest]
        shown = f" (the {len(changes)} riskiest shown)" if len(changes) < len(records) else ""
        summary = f'<p class="summary">{len(records)} changes{shown}</p>'
        headers = ("change", "title", "state", "score", "level", "route", "blast radius", "reasons")
        return page("Changes", summary + table(headers, map(_change_row, changes), "changes"))

    def lessons(self, query: Query) -> bytes:
        """The Lessons Register in its order, overdue lessons marked."""
        now = self.api.now()
        register = register_order(self.api.engine.state.lessons.values())
        rows = [_lesson_row(lesson, _overdue(lesson, now)) for lesson in register]
        headers = ("id", "title", "impact", "owner", "action", "due", "status", "subject", "seen")
        yaml_link = link("/api/lessons?format=yaml", "the register as YAML")
        return page("Lessons Register", f"<p>{yaml_link}</p>" + table(headers, rows, "lessons"))


def _matches(record: CIRecord, wanted: dict[str, str]) -> bool:
    words = " ".join([record.id, record.name, *record.aliases]).lower()
    owner = record.owner or NO_OWNER
    return (
        wanted.get("q", "").lower() in words
        and wanted.get("type", record.type) == record.type
        and wanted.get("owner", owner) == owner
        and (record.stale or "stale" not in wanted)
    )


def _search_form(records: list[CIRecord], wanted: dict[str, str]) -> str:
    stale = " checked" if "stale" in wanted else ""
    return (
        '<form method="get" action="/ui/">'
        f'<input type="search" name="q" value="{text(wanted.get("q", ""))}" '
        'placeholder="id, name or alias" size="40">'
        + _select("type", sorted({record.type for record in records}), wanted.get("type", ""))
        + _select("owner", sorted({r.owner or NO_OWNER for r in records}), wanted.get("owner", ""))
        + f'<label><input type="checkbox" name="stale" value="1"{stale}> stale only</label>'
        '<button type="submit">Search</button></form>'
    )


def _select(name: str, options: list[str], chosen: str) -> str:
    choices = [f'<option value="">any {text(name)}</option>'] + [
        f'<option value="{text(option)}"{" selected" if option == chosen else ""}>'
        f"{text(option)}</option>"
        for option in options
    ]
    return f'<select name="{text(name)}">{"".join(choices)}</select>'


def _ci_row(ci: Doc) -> Row:
    return Row([
        ci_link(ci["id"]), text(ci["type"]), text(ci["environment"]), text(ci["owner"]),
        text(ci["criticality"]), text(ci["last_seen"]), _status(ci),
    ])  # fmt: skip


def _status(ci: Doc) -> str:
    if ci["unverified"]:
        return badge("unverified", "unverified")
    return badge("stale", "stale") if ci["stale"] else badge("ok", "ok")


def _headline(ci: Doc) -> str:
    facts = f"{ci['type']} \u00b7 owner {ci['owner'] or NO_OWNER} \u00b7 criticality "
    facts += str(ci["criticality"] or "unset")
    return f'<p class="summary">{text(facts)} {_status(ci)}</p>'


def _fields(ci: Doc) -> str:
    shown = ("type", "name", "environment", "owner", "criticality", "business_service",
             "version", "first_seen", "last_seen")  # fmt: skip
    rows = [Row([text(key.replace("_", " ")), text(ci[key])]) for key in shown]
    rows.append(Row(["status", _status(ci)]))
    rows.append(Row(["aliases", text(", ".join(ci["aliases"]) or None)]))
    rows += [Row([f"seen by {text(source)}", text(at)]) for source, at in ci["seen_by"].items()]
    return table(("field", "value"), rows, "fields")


def _impact_summary(impact: Doc) -> str:
    hops: dict[int, int] = {}
    for dependent in impact["dependents"]:
        hops[dependent["hops"]] = hops.get(dependent["hops"], 0) + 1
    rings = ", ".join(f"{count} at hop {hop}" for hop, count in sorted(hops.items()))
    bounded = " (counting stopped at the policy's blast_radius_limit)" if impact["bounded"] else ""
    total = f"{impact['count']} CIs depend on it{bounded}"
    return f'<p class="summary">{text(total)}{": " + text(rings) if rings else ""}.</p>'


def _dependents_table(impact: Doc) -> str:
    listed = impact["dependents"][:MAX_LISTED]
    rows = [
        Row([ci_link(d["id"]), text(d["hops"]), text(d["criticality"]), text(d["owner"]),
             badge("stale", "stale") if d["stale"] else ""])
        for d in listed
    ]  # fmt: skip
    rest = impact["count"] - len(listed)
    more = f'<p class="summary">and {rest} more, counted above.</p>' if rest > 0 else ""
    listing = table(("dependent", "hops", "criticality", "owner", ""), rows, "dependents")
    return f"<div>{listing}{more}</div>"


def _team(ci: Doc) -> str:
    return str(ci["owner"] or NO_OWNER)


def _team_row(item: tuple[str, list[Doc]]) -> Row:
    team, cis = item
    stale = sum(1 for ci in cis if ci["stale"])
    unverified = sum(1 for ci in cis if ci["unverified"])
    return Row([link(f"#team-{team}", team), text(stale), text(unverified)])


def _team_section(team: str, cis: list[Doc]) -> str:
    heading = f'<h2 id="team-{text(team)}">{text(team)}</h2>'
    return heading + table(CI_HEADERS, map(_ci_row, cis), "team")


def _score(change: ChangeRecord) -> int:
    return change.assessment.score if change.assessment else -1


def _change_row(change: Doc) -> Row:
    assessment = change["assessment"] or {}
    route = assessment.get("route")
    radius = assessment.get("blast_radius")
    bounded = "+" if assessment.get("blast_radius_bounded") else ""
    return Row([
        f'<span id="change-{text(change["change_id"])}">{text(change["change_id"])}</span>',
        text(change["title"]), text(change["state"]), text(assessment.get("score")),
        text(assessment.get("level")), badge(route, route) if route else text(None),
        text(None if radius is None else f"{radius}{bounded}"),
        bullet_list(map(_reason, assessment.get("reasons", [])), "reasons"),
    ])  # fmt: skip


def _reason(reason: Doc) -> str:
    points = "" if reason["points"] is None else f" +{reason['points']}"
    return f"<b>{text(reason['code'])}</b>{text(points)}: {text(reason['detail'])}"


def _overdue(lesson: Lesson, now: datetime) -> bool:
    return lesson.is_open and now >= overdue_at(lesson)


def _lesson_row(lesson: Lesson, overdue: bool) -> Row:
    due = text(lesson.due) + (" " + badge("overdue", "overdue") if overdue else "")
    return Row([
        text(lesson.id), text(lesson.title), text(lesson.impact), text(lesson.owner),
        text(lesson.action), due, text(lesson.status), text(lesson.subject),
        text(lesson.occurrences),
    ], "overdue" if overdue else "")  # fmt: skip
