"""HTML building blocks for ``/ui/``: every text escaped, every link percent-encoded.

Nothing here runs in the browser: pages are whole documents built on the server, with no
JavaScript and no resource fetched from elsewhere.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

NAV = (
    ("Search CIs", "/ui/"),
    ("Stale by team", "/ui/teams"),
    ("Changes", "/ui/changes"),
    ("Lessons", "/ui/lessons"),
)
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 24px 24px; color: #1d2330; }
nav { background: #1d2330; margin: 0 -24px 16px; padding: 10px 24px; }
nav a { color: #fff; margin-right: 20px; text-decoration: none; font-weight: 600; }
h1 { font-size: 20px; margin: 8px 0 12px; } h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; margin-bottom: 12px; }
th, td { border-bottom: 1px solid #dde1ea; padding: 4px 10px 4px 0; text-align: left;
         vertical-align: top; }
th { color: #5b6474; font-weight: 600; }
ul.reasons { margin: 0; padding-left: 16px; }
.badge { border-radius: 8px; padding: 0 6px; font-size: 12px; font-weight: 600; }
.stale, .overdue, .cab { background: #fde2e1; color: #9b1c1c; }
.unverified { background: #fdf1d6; color: #8a5a00; }
.ok, .fast_track { background: #e2f5e9; color: #1b6b3a; }
tr.overdue td { background: #fff4f3; }
form { margin-bottom: 16px; } form * { margin-right: 8px; }
.summary { color: #5b6474; } .side-by-side { display: flex; gap: 24px; align-items: start; }
svg { border: 1px solid #dde1ea; border-radius: 4px; }
"""


@dataclass(frozen=True)
class Row:
    """A table row: cells already rendered as HTML, and an optional CSS class for the row."""

    cells: Sequence[str]
    css: str = ""


def text(value: object) -> str:
    """A value as escaped text; a missing one as a dash."""
    return "\u2014" if value is None else escape(str(value))


def link(href: str, label: object) -> str:
    return f'<a href="{escape(href)}">{text(label)}</a>'


def ci_href(ci_id: str) -> str:
    """The CI page's address; the id is fully percent-encoded, its ``/`` included."""
    return "/ui/ci/" + quote(ci_id, safe="")


def ci_link(ci_id: str) -> str:
    return link(ci_href(ci_id), ci_id)


def badge(label: str, css: str) -> str:
    return f'<span class="badge {escape(css)}">{text(label)}</span>'


def table(headers: Sequence[str], rows: Iterable[Row], css: str = "") -> str:
    head = "".join(f"<th>{text(header)}</th>" for header in headers)
    body = "".join(_row(row) for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>"
    return f'<table class="{escape(css)}">{thead}<tbody>{body}</tbody></table>'


def _row(row: Row) -> str:
    cells = "".join(f"<td>{cell}</td>" for cell in row.cells)
    return f'<tr class="{escape(row.css)}">{cells}</tr>'


def bullet_list(items: Iterable[str], css: str) -> str:
    """A list of items already rendered as HTML."""
    return f'<ul class="{escape(css)}">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def page(title: str, body: str) -> bytes:
    """A whole document: navigation, a heading, and ``body`` (already HTML)."""
    nav = "".join(link(href, label) for label, href in NAV)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{text(title)} \u00b7 cmdb-worker</title><style>{STYLE}</style></head>"
        f"<body><nav>{nav}</nav><main><h1>{text(title)}</h1>{body}</main></body></html>"
    ).encode()
