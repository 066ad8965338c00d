"""``/ui/`` in a real browser: headless Chromium loads the pages of a worker's HTTP server that
replayed the sample week (or a small crafted estate), and the tests read the rendered DOM."""

from __future__ import annotations

import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from cmdb_worker.worker import ui
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.ui_svg import MAX_DRAWN
from tests.browser import (
    SCREENSHOTS,
    WINDOW,
    Element,
    chromium,
    rendered_dom,
    sample_week,
    screenshot,
    serving,
)
from tests.conftest import Feed
from tests.events import at, observed

PAYMENTS_PG = "database/payments-pg@prod"


class Site:
    """The sample week served over HTTP, with the API over the same engine for expectations."""

    def __init__(self, base: str, api: Api) -> None:
        self.base, self.api = base, api

    def dom(self, path: str) -> Element:
        return rendered_dom(self.base + path)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    engine, moment = sample_week()
    with serving(engine, lambda: moment) as base:
        yield Site(base, Api(engine, threading.RLock(), lambda: moment))


def _rows(page: Element, table_class: str) -> list[Element]:
    return page.find("table", table_class).find("tbody").find_all("tr")


def _first_cells(page: Element, table_class: str) -> list[str]:
    return [row.find("td").text() for row in _rows(page, table_class)]


def _drawn(svg: Element, css: str) -> list[str]:
    return [node.attrs["data-ci"] for node in svg.find_all("a", css)]


def _blast_radius(page: Element) -> Element:
    return next(svg for svg in page.find_all("svg") if svg.attrs["id"] == "blast-radius")


def ci_page(ci_id: str) -> str:
    return "/ui/ci/" + quote(ci_id, safe="")


def test_search_finds_cis_by_alias_and_filters_by_type_owner_and_stale(site: Site) -> None:
    """Searching an alias finds the CI that holds it, and type, owner and stale filters narrow
    the list to what matches all of them."""
    by_alias = site.dom("/ui/?q=ip-10-0-3-17")
    filtered = site.dom("/ui/?type=service&owner=team-us&stale=1")
    assert _first_cells(by_alias, "results") == ["host/db01.example.net"]
    assert by_alias.find("p", "summary").text() == "1 of 23 CIs match"
    assert _first_cells(filtered, "results") == ["service/reports-us@prod"]
    assert "stale" in _rows(filtered, "results")[0].text()
    chosen = [o.text() for o in filtered.find_all("option") if "selected" in o.attrs]
    assert chosen == ["service", "team-us"]


def test_search_without_filters_lists_every_ci(site: Site) -> None:
    """The search page with no query lists every CI in the graph, in id order."""
    everything = site.dom("/ui/")
    expected = [ci["id"] for ci in site.api.cis()]
    assert _first_cells(everything, "results") == expected and len(expected) == 23


def test_ci_page_draws_its_neighbours_and_its_blast_radius_nearest_first(site: Site) -> None:
    """A CI's page draws its direct dependents and relation targets around it, and its blast
    radius with every dependent as a node, in the API's order (nearest, most critical first)."""
    page = site.dom(ci_page(PAYMENTS_PG))
    ci, impact = site.api.ci(PAYMENTS_PG), site.api.impact(site.api.record(PAYMENTS_PG))
    neighbours = {r["target"] for r in ci["relations"]} | {d["source"] for d in ci["dependents"]}
    assert page.find("h1").text() == PAYMENTS_PG
    assert set(_drawn(page.find("svg"), "neighbour")) == neighbours == {
        "service/payments-api@prod", "host/db01.example.net"
    }  # fmt: skip
    blast = _blast_radius(page)
    assert _drawn(blast, "dependent") == [d["id"] for d in impact["dependents"]]
    assert _drawn(blast, "dependent")[0] == "service/payments-api@prod"
    assert "6 CIs depend on it: 1 at hop 1, 5 at hop 2" in page.text()


def test_stale_cis_are_listed_under_their_owner_team(site: Site) -> None:
    """The team page lists each stale CI under its owner team, with each team's count."""
    page = site.dom("/ui/teams")
    sections = {h2.text(): h2 for h2 in page.find_all("h2")}
    assert set(sections) == {"team-finance-it", "team-us"}
    team_tables = page.find_all("table", "team")
    listed = [[row.find("td").text() for row in table.find_all("tr")[1:]] for table in team_tables]
    assert listed == [["service/legacy-reports@prod"], ["service/reports-us@prod"]]
    summary = [row.text() for row in _rows(page, "teams")]
    assert summary == ["team-finance-it 1 0", "team-us 1 0"]


def test_cis_whose_sources_fell_silent_are_listed_as_unverified_under_their_team(
    engine: Engine, feed: Feed
) -> None:
    """A CI whose only discovery source fell silent appears under its team as unverified, not
    stale, and a CI of a source still reporting is not listed."""
    feed(observed("lonely", owner="team-x", source="/discovery/a", time=at(0)),
         observed("heard", owner="team-y", source="/discovery/b", time=at(hours=8)))  # fmt: skip
    with serving(engine, lambda: at(hours=8)) as base:
        page = rendered_dom(base + "/ui/teams")
    assert [row.text() for row in _rows(page, "teams")] == ["team-x 0 1"]
    (row,) = _rows(page, "team")
    assert row.find("td").text() == "service/lonely@prod"
    assert row.find("span", "badge").text() == "unverified"


def test_changes_show_score_route_and_every_reason(site: Site) -> None:
    """Every change appears, riskiest first, with its assessment's score, route and reasons."""
    page = site.dom("/ui/changes")
    rows = {row.find("td").text(): row for row in _rows(page, "changes")}
    assert len(rows) == len(site.api.engine.state.changes) == 13
    change = site.api.change("CHG0030412")["assessment"]
    row = rows["CHG0030412"]
    reasons = [item.find("b").text() for item in row.find("ul", "reasons").find_all("li")]
    assert reasons == [reason["code"] for reason in change["reasons"]]
    assert "no_rollback_plan" in reasons and row.find("span", "cab").text() == "cab"
    assert [cell.text() for cell in row.find_all("td")[3:5]] == [str(change["score"]), "critical"]
    scores = [int(r.find_all("td")[3].text()) for r in rows.values()]
    assert scores == sorted(scores, reverse=True)
    assert page.find("p", "summary").text() == "13 changes"


def test_many_changes_show_the_riskiest_and_count_them_all(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more changes than a page shows, the riskiest are listed and every change counted."""
    monkeypatch.setattr(ui, "MAX_FOUND", 3)
    page = site.dom("/ui/changes")
    assert _first_cells(page, "changes") == ["CHG0030460", "CHG0030412", "CHG0030455"]
    assert page.find("p", "summary").text() == "13 changes (the 3 riskiest shown)"


def test_the_lessons_register_marks_overdue_lessons_only(site: Site) -> None:
    """Lessons appear in register order and only the open lesson past its due date is marked
    overdue (LL-0001, due 2026-11-21, as of 2026-11-22)."""
    page = site.dom("/ui/lessons")
    rows = _rows(page, "lessons")
    assert [row.find("td").text() for row in rows] == [f"LL-{n:04d}" for n in range(1, 10)]
    overdue = [row.find("td").text() for row in rows if "overdue" in row.classes]
    assert overdue == ["LL-0001"]
    assert rows[0].find("span", "overdue").text() == "overdue"


def test_every_page_screenshots_at_the_window_size(site: Site, tmp_path: Path) -> None:
    """Chromium takes a screenshot of every page the README shows: a PNG of the window's size."""
    for name, path in SCREENSHOTS.items():
        png = tmp_path / f"ui-{name}.png"
        screenshot(site.base + path, png)
        header = png.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", header[16:24]) == WINDOW


def test_an_unknown_page_or_ci_is_a_404_page(site: Site) -> None:
    """A CI the graph does not hold and a path with no page answer 404 with an HTML page."""
    for path in (ci_page("service/nobody@prod"), "/ui/nothing"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(site.base + path, timeout=5)
        assert error.value.code == 404
        assert error.value.headers["Content-Type"] == "text/html; charset=utf-8"


NASTY = '<script>alert("x&y")</script>\'q'
NASTY_ID = f"service/{NASTY}@prod"
TARGET = "database/<b>bold</b>&amp;@prod"


def test_ci_ids_with_markup_are_shown_as_text_and_links_still_reach_them(
    engine: Engine, feed: Feed
) -> None:
    """CI ids holding ``<``, ``&`` and quotes appear as literal text in the search results, the
    heading and the picture, never as markup, and the search result's link opens their page."""
    feed(observed(NASTY, relations=[("depends_on", TARGET)]), observed("<b>bold</b>&amp;",
         ci_type="database"))  # fmt: skip
    with serving(engine, lambda: at(hours=1)) as base:
        results = rendered_dom(base + "/ui/?q=" + quote("<script>"))
        link = results.find("table", "results").find("a")
        page = rendered_dom(base + link.attrs["href"])
    assert link.text() == NASTY_ID and page.find("h1").text() == NASTY_ID
    for dom in (results, page):
        assert dom.find_all("script") == [] and dom.find_all("b") == []
    assert _drawn(page.find("svg"), "neighbour") == [TARGET]
    assert page.find("svg").find("a", "centre").attrs["data-ci"] == NASTY_ID


def test_a_large_blast_radius_is_summarised_nearest_and_most_critical_drawn(
    engine: Engine, feed: Feed
) -> None:
    """A CI with 120 dependents draws at most ``MAX_DRAWN`` of them, every critical one at hop 1
    among them, and counts the rest instead of drawing them."""
    hop1 = [observed(f"api-{n:03d}", relations=[("depends_on", "database/core@prod")],
                     criticality=1 if n < 5 else 3) for n in range(60)]  # fmt: skip
    hop2 = [observed(f"web-{n:03d}", relations=[("depends_on", f"service/api-{n:03d}@prod")])
            for n in range(60)]  # fmt: skip
    feed(observed("core", ci_type="database"), *hop1, *hop2)
    with serving(engine, lambda: at(hours=1)) as base:
        page = rendered_dom(base + ci_page("database/core@prod"))
    blast = _blast_radius(page)
    drawn = _drawn(blast, "dependent")
    assert 0 < len(drawn) <= MAX_DRAWN
    assert drawn[:5] == [f"service/api-{n:03d}@prod" for n in range(5)]
    caption = blast.find("text", "caption").text()
    assert caption == f"120 dependents; {len(drawn)} drawn, {120 - len(drawn)} more not drawn"
    assert "and 70 more, counted above." in page.text()


def test_search_shows_the_first_matches_and_counts_them_all(
    engine: Engine, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than the page shows: the first ones by id are listed, all are counted."""
    monkeypatch.setattr(ui, "MAX_FOUND", 10)
    feed(*[observed(f"svc-{n:02d}") for n in range(15)])
    with serving(engine, lambda: at(hours=1)) as base:
        page = rendered_dom(base + "/ui/?q=svc")
    assert _first_cells(page, "results") == [f"service/svc-{n:02d}@prod" for n in range(10)]
    assert page.find("p", "summary").text() == "15 of 15 CIs match (the first 10 shown)"


def test_missing_chromium_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Chromium on the PATH the browser helper raises, so the UI tests fail loudly."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="chromium is not installed"):
        chromium()
