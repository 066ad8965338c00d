"""A real browser for the ``/ui/`` tests: headless Chromium (Debian's ``chromium``, installed by
``make tools``) loading pages of a worker's HTTP server, and a DOM parsed from what it rendered.

``python -m tests.browser`` replays the sample week and redraws the README's screenshots,
``docs/ui-*.png`` (``make ui-screenshots``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from prometheus_client import CollectorRegistry

from cmdb_worker.rules.policy import load_policy
from cmdb_worker.worker.api import Api
from cmdb_worker.worker.engine.apply import Engine
from cmdb_worker.worker.http import StatusServer
from cmdb_worker.worker.replay_command import replay_files

ROOT = Path(__file__).resolve().parent.parent
WINDOW = (1280, 900)
SCREENSHOTS = {
    "search": "/ui/?type=service",
    "ci": "/ui/ci/database%2Fpayments-pg%40prod",
    "teams": "/ui/teams",
    "changes": "/ui/changes",
    "lessons": "/ui/lessons",
}
"""The README's screenshots: docs/ui-<name>.png shows the page at this path."""


def chromium() -> str:
    """The browser's path; its absence is an error, so the UI tests fail rather than skip."""
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed: `make tools` installs the Debian package")
    return path


def _chromium(url: str, *options: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", f"--user-data-dir={profile}", *options, url,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def rendered_dom(url: str) -> Element:
    """The page at ``url`` as Chromium rendered it (``--dump-dom``), parsed."""
    return parse_html(_chromium(url, "--dump-dom"))


def screenshot(url: str, path: Path) -> None:
    """A PNG of the page at ``url`` in a ``WINDOW``-sized window."""
    _chromium(url, f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}")


@contextmanager
def serving(engine: Engine, now: Callable[[], datetime]) -> Iterator[str]:
    """The worker's HTTP server over ``engine`` on a free loopback port; yields its base URL."""
    api = Api(engine, threading.RLock(), now)
    server = StatusServer(
        "127.0.0.1", 0, CollectorRegistry(), api, lambda: True, lambda: True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def sample_week() -> tuple[Engine, datetime]:
    """An engine that replayed examples/events.jsonl under examples/policy.yaml, and as-of time."""
    policy = load_policy(ROOT / "examples" / "policy.yaml")
    engine, _, moment = replay_files(policy, [ROOT / "examples" / "events.jsonl"], None)
    return engine, moment


@dataclass
class Element:
    """One element of a parsed page: its tag, attributes and children (elements or text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The text a reader sees in it, whitespace collapsed."""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str, css: str | None = None) -> list[Element]:
        """Descendant elements (and itself) with ``tag``, having class ``css`` if given."""
        return [e for e in self.iter() if e.tag == tag and (css is None or css in e.classes)]

    def find(self, tag: str, css: str | None = None) -> Element:
        found = self.find_all(tag, css)
        assert found, f"no <{tag}> of class {css!r} on the page"
        return found[0]


class _TreeBuilder(HTMLParser):
    VOID = frozenset({"area", "br", "col", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.open[-1].children.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while len(self.open) > 1 and self.open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse_html(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def redraw_screenshots(docs: Path) -> list[Path]:
    """Replay the sample week and save one screenshot per page as docs/ui-<name>.png."""
    engine, moment = sample_week()
    written = []
    with serving(engine, lambda: moment) as base:
        for name, path in SCREENSHOTS.items():
            written.append(docs / f"ui-{name}.png")
            screenshot(base + path, written[-1])
    return written


if __name__ == "__main__":
    for png in redraw_screenshots(ROOT / "docs"):
        print(png.relative_to(ROOT), png.stat().st_size, "bytes")
