"""`kdtui report`: one self-contained HTML page of an experiment, from a real store, that requests nothing when
opened, and draws its plots (leaderboard, training terms, teacher entropy) as inline SVG."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from kdtui.store import Store
from tests.helpers import kdtui, kdtui_process, one_line_error, prediction_rows

# Attributes through which a page makes a browser fetch something.
FETCHING = {"src", "href", "srcset", "action", "data", "poster", "formaction", "background"}


class Fetches(HTMLParser):
    """Every URL the page would load: attributes that fetch, and CSS url(...) in style attributes or blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: dict[str, int] = {}
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.in_style = tag == "style"
        for name, value in attrs:
            if value and (name in FETCHING or name.endswith(":href")):
                self.urls.append(value)
            if value and name == "style":
                self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)
        if tag in ("script", "iframe", "object", "embed", "link"):
            self.urls.append(f"<{tag}>")

    def handle_data(self, data: str) -> None:
        if self.in_style:
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data) + re.findall(r"@import", data)

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False


def _experiment_store(root: Path) -> Store:
    """A small experiment as the queue leaves it: a capture, a distill run with curves, its eval, the
    no-distil control's eval, a triage decision, and a run of another experiment that must stay out."""
    store = Store(root)
    store.captures.register("exp-base", {
        "teacher": "tiny", "backend": "hf", "strategy": {"name": "base"}, "mode": "answer", "format": "hidden",
        "k": 0, "temperatures": [1.0, 5.94], "n_examples": 8, "n_tokens": 100, "status": "done",
        "shards": [{"bytes": 1000, "entropy_hist": [0, 5, 20, 40, 20, 10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    "entropy_sum": 250.0}]}, root / "captures" / "exp-base")
    distill = store.runs.start("exp/tiny/base", "distill", {"alpha": 0.6, "temperature": 5.94, "preset": "study",
                                                           "capture": "exp-base"})
    store.train_metrics.upsert(distill, [{"split": "train", "step": s, "total_steps": 8, "loss": 2.0 / s, "ce": 1.5 / s,
                                    "divergence": 0.01 / s} for s in range(1, 9)]
                         + [{"split": "eval", "step": 8, "total_steps": 8, "loss": 0.4}])
    store.runs.finish(distill, "done")
    for name, strategy, every in (("exp/eval/tiny/base", "base", 2), ("exp/eval/tiny/no-distil", "no-distil", 3),
                                  ("other/eval/x/base", "base", 2)):
        run = store.runs.start(name, "eval", {"model": "tiny", "prompt": "plain", "strategy": strategy})
        store.predictions.add(run, prediction_rows(12, correct_every=every, review_every=5))
        store.runs.finish(run, "done")
        if name == "exp/eval/tiny/base":
            store.triage.decide(run, "q0", 10.0)
    return store


def test_report_is_one_page_that_loads_nothing(tmp_path: Path) -> None:
    store = _experiment_store(tmp_path / "store")
    out = tmp_path / "report.html"
    proc = kdtui("report", "exp", "--out", str(out), "--store", str(store.root))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "3 plots" in proc.stdout, proc.stdout
    page = out.read_text(encoding="utf-8")
    parsed = Fetches()
    parsed.feed(page)
    assert [u for u in parsed.urls if not u.startswith("#")] == []  # in-page references only
    assert parsed.tags.get("svg") == 3  # leaderboard, training terms, teacher entropy
    assert "exp/eval/tiny/base" in page and "exp/eval/tiny/no-distil" in page
    assert "other/eval/x/base" not in page  # another experiment's run stays out
    # McNemar against the control, the training terms, extraction and teacher figures, config and version
    assert "Against the controls" in page and "McNemar p" in page
    assert "(1-α)·D·T²" in page and "exp/tiny/base" in page
    assert "triage decisions" in page and "no answer" in page
    assert "exp-base" in page and "mean entropy" in page
    from kdtui import __version__

    assert f"kdtui {__version__}" in page and "&quot;temperature&quot;: 5.94" in page


def test_report_refuses_overwrites_and_unknown_targets(tmp_path: Path) -> None:
    store = _experiment_store(tmp_path / "store")
    out = tmp_path / "report.html"
    out.write_text("mine")
    one_line_error(kdtui("report", "--out", str(out), "--store", str(store.root)), "exists; add --force")
    assert out.read_text() == "mine"
    one_line_error(kdtui("report", "nope", "--out", str(tmp_path / "r.html"), "--store", str(store.root)),
                   r"no run matches 'nope'; experiments and runs here: exp, other")
    assert kdtui("report", "--out", str(out), "--force", "--store", str(store.root)).returncode == 0
    assert "other/eval/x/base" in out.read_text()  # no target: every run
    piped = kdtui_process("report", "exp", "--out", "/dev/stdout", "--store", str(store.root))
    assert piped.returncode == 0 and piped.stdout.startswith("<!DOCTYPE html>"), piped.stderr  # a pipe: in place
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left beside any output


def _chromium() -> str | None:
    import shutil

    return next((p for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell")
                 if (p := shutil.which(name))), None)


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium on this machine")
def test_a_browser_draws_the_report(tmp_path: Path) -> None:
    """Headless Chromium, with the network off, renders the page's DOM and finds every plot drawn."""
    import subprocess

    store = _experiment_store(tmp_path / "store")
    out = tmp_path / "report.html"
    assert kdtui("report", "exp", "--out", str(out), "--store", str(store.root)).returncode == 0
    browser: Any = _chromium()
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                          "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") == 3 and "Leaderboard" in dom


async def test_the_palette_writes_the_report_into_exports(tmp_path: Path) -> None:
    from kdtui.tui.app import KdtuiApp
    from tests.pilot_helpers import until

    store = _experiment_store(tmp_path / "store")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Report" in commands
        app.action_report()
        exports = store.root / "exports"
        await until(pilot, lambda: any(exports.glob("report-*.html")), "the report in exports/", timeout=120)
        await until(pilot, lambda: any("report written" in str(n.message) for n in app._notifications),
                    "the notification naming it", timeout=30)
    page = next(exports.glob("report-*.html")).read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and "other/eval/x/base" in page
