"""``kdtui report``: one self-contained HTML page of an experiment's results, to send or paste into a draft.

It reads the store through its API (the leaderboard, McNemar pairs, training metrics, triage, captures), draws
the plots with matplotlib as inline SVG, and makes no request of any kind when opened: no scripts, no fonts, no
images from elsewhere. Every figure says what it is: a provisional accuracy counts pending reviews at their
automatic value, a p-value is an exact McNemar over the items both runs settled.
"""

from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtui import __version__
from kdtui.config.names import capture_run_name
from kdtui.errors import KdtuiError
from kdtui.jobs.experiment import CONTROLS
from kdtui.report import plots
from kdtui.store.captures import entropy_bin_starts
from kdtui.store.exports import export_file
from kdtui.store.reads import LeaderRow, captures, leaderboard

if TYPE_CHECKING:
    from kdtui.store import Store

@dataclass
class ReportData:
    """What the page shows, read from the store for the chosen runs."""

    title: str
    rows: list[LeaderRow]
    pairs: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    alpha: dict[str, float] = field(default_factory=dict)
    temperature: dict[str, float] = field(default_factory=dict)
    extraction: list[dict[str, Any]] = field(default_factory=list)
    captures: list[dict[str, Any]] = field(default_factory=list)
    configs: dict[str, Any] = field(default_factory=dict)


def _chosen(name: str, targets: list[str]) -> bool:
    """A run is in the report when no target is given, or it is a target or inside one (``demo`` takes
    ``demo/eval/...`` and the captures ``demo-base``)."""
    return not targets or any(name == t or name.startswith((f"{t}/", f"{t}-", capture_run_name(f"{t}-")))
                              for t in targets)


def gather(store: Store, targets: list[str]) -> ReportData:
    """Read everything the page shows for ``targets`` (experiment names or run names; none: the whole store)."""
    rows = [r for r in leaderboard(store) if _chosen(r.name, targets)]
    runs = [r for r in store.query("SELECT id, name, kind, config FROM runs ORDER BY name").records()
            if _chosen(r["name"], targets)]
    if not rows and not runs:
        known = sorted({r["name"].split("/")[0] for r in store.query("SELECT name FROM runs").records()})
        raise KdtuiError(f"no run matches {' '.join(targets)!r}; experiments and runs here: "
                         f"{', '.join(known[:12]) or 'none (the store is empty)'}")
    data = ReportData(title=", ".join(targets) or "every run in the store", rows=rows)
    controls = [r for r in rows if r.strategy in CONTROLS]
    for control in controls:
        for row in leaderboard(store, baseline=control.run_id):
            if row.run_id != control.run_id and _chosen(row.name, targets) and row.p_value is not None:
                data.pairs.append({"run": row.name, "control": control.name, "delta": row.delta,
                                   "p": row.p_value, "paired": row.paired})
    distill = [r for r in runs if r["kind"] == "distill"]
    for run in distill:
        config = json.loads(run["config"] or "{}")
        data.alpha[run["name"]] = float(config.get("alpha", 1.0) if config.get("preset") != "fine-tune" else 1.0)
        data.temperature[run["name"]] = float(config.get("temperature", 1.0))
    if distill:
        metrics = store.query(
            "SELECT r.name, m.split, m.step, m.loss, m.ce, m.divergence FROM train_metrics m "
            "JOIN runs r ON r.id = m.run_id WHERE r.kind = 'distill' ORDER BY r.name, m.step").records()
        for m in metrics:
            if m["name"] not in data.alpha:
                continue
            series = data.curves.setdefault(m["name"], {})
            if m["split"] == "train":
                for key in ("ce", "divergence"):
                    if (value := plots.finite(m[key])) is not None:
                        series.setdefault(key, []).append((m["step"], value))
            elif (value := plots.finite(m["loss"])) is not None:
                series.setdefault("eval_loss", []).append((m["step"], value))
    decisions = {r["run_id"]: r["n"] for r in store.query(
        "SELECT run_id, count(*) AS n FROM triage WHERE NOT undone GROUP BY run_id").records()}
    for row in rows:
        data.extraction.append({"run": row.name, "n": row.n, "no_answer": row.no_answer_share,
                                "pending": row.pending, "decided": decisions.get(row.run_id, 0)})
    data.captures = [dataclasses.asdict(c) for c in captures(store)
                     if _chosen(capture_run_name(c.name), targets) or _chosen(c.name, targets)]
    data.configs = {r["name"]: json.loads(r["config"] or "{}") for r in runs}
    return data


def _table(headers: list[str], body: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td { font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: .9em; } svg { max-width: 100%; height: auto; } pre { font-size: 12px; }
"""


def render(data: ReportData, generated: datetime | None = None) -> str:
    """The page for ``data``, as one HTML string with its plots inline."""
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>kdtui report: {html.escape(data.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>kdtui report: {html.escape(data.title)}</h1>",
             f"<p class='note'>kdtui {html.escape(__version__)} · generated {when}</p>"]
    if data.rows:
        parts += ["<h2>Leaderboard</h2>", plots.leaderboard_figure(data.rows), _table(
            ["run", "strategy", "n", "accuracy", "95% CI (Wilson)", "pending reviews", "if pending wrong–right"],
            [[r.name, r.strategy, r.n, _pct(r.accuracy) + ("*" if r.pending else ""),
              f"{_pct(r.ci_low)}–{_pct(r.ci_high)}", r.pending,
              f"{_pct(r.acc_if_pending_wrong)}–{_pct(r.acc_if_pending_right)}" if r.pending else ""]
             for r in data.rows]),
            "<p class='note'>* provisional: pending reviews count at their automatic value.</p>"]
    if data.pairs:
        parts += ["<h2>Against the controls (paired by question, exact McNemar)</h2>", _table(
            ["run", "control", "Δ accuracy", "McNemar p", "items paired"],
            [[p["run"], p["control"], f"{100 * p['delta']:+.1f} pp", f"{p['p']:.3g}", p["paired"]]
             for p in data.pairs]),
            "<p class='note'>Over the items both runs settled; a p-value is not corrected for the number of "
            "comparisons shown.</p>"]
    if data.curves:
        parts += ["<h2>Training</h2>", plots.training_figure(data.curves, data.alpha, data.temperature),
                  "<p class='note'>Each term as the loss adds them (α·CE and (1-α)·D·T²), so their sizes "
                  "compare.</p>"]
    if data.extraction:
        parts += ["<h2>Extraction</h2>", _table(
            ["run", "n", "no answer", "pending reviews", "triage decisions"],
            [[e["run"], e["n"], _pct(e["no_answer"]), e["pending"], e["decided"]] for e in data.extraction]),
            "<p class='note'>No answer: settled items where the model never committed to one; how often a model "
            "fails to commit is a result in itself.</p>"]
    if data.captures:
        hist = {c["name"]: list(c["entropy_hist"] or []) for c in data.captures if c["entropy_hist"]}
        parts += ["<h2>Teacher statistics</h2>", _table(
            ["capture", "state", "strategy", "mode", "format", "examples", "tokens", "mean entropy (nats)",
             "teacher mass kept at each T"],
            [[c["name"], c["state"], c["strategy"], c["mode"],
              c["format"] + (f" k={c['k']}" if c["format"] == "topk" else ""),
              c["n_examples"], c["n_tokens"], "" if c["mean_entropy"] is None else f"{c['mean_entropy']:.3f}",
              ", ".join(f"T={t:g}: {_pct(m)}" for t, m in zip(c["temperatures"] or [], c["kept_mass"] or [],
                                                                strict=False)) or "all (exact)"]
             for c in data.captures])]
        if hist:
            parts.append(plots.entropy_figure(hist, entropy_bin_starts()))
    parts += ["<h2>Configuration</h2>"] + [
        f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(json.dumps(cfg, indent=2))}</pre>"
        "</details>" for name, cfg in data.configs.items()]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(store: Store, targets: list[str], out: Path) -> str:
    """The page for ``targets`` written to ``out``, whole or not at all (a pipe is written in place); the page.
    ``kdtui report`` and the TUI's palette both write through here."""
    page = render(gather(store, targets))
    with export_file(out) as path:
        path.write_text(page, encoding="utf-8")
    return page
