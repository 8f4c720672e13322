"""Every command of the ``kdtui`` CLI: the module that registers its flags, and the line ``kdtui --help`` shows.

One table, so that ``kdtui --help`` lists every command without importing any command module (their pydantic
configs and rich cost ~0.25 s), and a command imports only its own module to parse its flags.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "cancel": ("kdtui.cli.jobs", "cancel a job (a running one stops at its next step)"),
    "capture": ("kdtui.cli.capture", "capture teacher distributions (or: capture inspect NAME)"),
    "demo": ("kdtui.cli.demo", "the study in miniature on SmolLM2-135M-Instruct (capture, distil, evaluate) through "
                               "the job queue, then the TUI"),
    "distill": ("kdtui.cli.distill", "train a student from a teacher capture (--preset study, study-literal) or on "
                                     "reference solutions (--preset fine-tune)"),
    "eval": ("kdtui.cli.eval", "evaluate a model on GSM8K into the store (rerun the same --run to resume)"),
    "extract": ("kdtui.cli.extract", "extract numeric answers from a JSON-lines file"),
    "import": ("kdtui.cli.runs", "load outside predictions (JSONL/CSV, lm-eval samples, the study's CSV) as a run"),
    "job": ("kdtui.cli.jobs", "internal: run one job (the worker starts this)"),
    "jobs": ("kdtui.cli.jobs", "the job queue"),
    "leaderboard": ("kdtui.cli.results", "print accuracy per run with Wilson 95% intervals and pending reviews"),
    "logs": ("kdtui.cli.jobs", "a job's log"),
    "pause": ("kdtui.cli.jobs", "pause an experiment's jobs (running ones are not stopped)"),
    "reextract": ("kdtui.cli.runs", "extract a stored run's answers again with another protocol (nothing is "
                                    "regenerated; triage decisions stay)"),
    "report": ("kdtui.cli.results", "write one self-contained HTML page of an experiment: leaderboard, McNemar "
                                     "against the controls, training curves, extraction and teacher statistics"),
    "resume": ("kdtui.cli.jobs", "resume an experiment's jobs (running ones are not stopped)"),
    "retry": ("kdtui.cli.jobs", "queue a failed or cancelled job again"),
    "run": ("kdtui.cli.jobs", "enqueue an experiment's jobs and start the worker (rerun: only what is new)"),
    "serve": ("kdtui.cli.serve", "serve the TUI in a browser tab (textual-serve) behind a printed token link, on "
                                 "this machine only unless --expose"),
    "sql": ("kdtui.cli.results", "run read-only SQL on the store (writes and DDL are refused)"),
    "store": ("kdtui.cli.store", "show the store's runs (info) or ingest spilled results (recover)"),
    "tui": ("kdtui.cli.app", "open the TUI on the store (also: bare `kdtui`)"),
    "worker": ("kdtui.cli.jobs", "the detached worker daemon: start | stop | status | run (foreground)"),
}
