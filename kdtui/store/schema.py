"""The store's schema as an ordered list of migrations.

Migration N is applied once, in one transaction, and recorded in
``schema_version``.  Never edit a released migration: append a new one.
"""

from __future__ import annotations

from kdtui.config.names import CAPTURE_RUN_PREFIX
from kdtui.extract import sql_answers_match
from kdtui.store.liveness import LOST_AFTER_S

# z for a two-sided 95% interval.
Z95 = 1.959963984540054



def leaderboard_view(status: str, runs: str, replace: bool) -> str:
    """The leaderboard view over ``runs`` with ``status`` as its status column.

    A function so that a later migration can replace the view with the same maths.
    """
    return f"""CREATE {'OR REPLACE ' if replace else ''}VIEW leaderboard AS
    WITH counts AS (
        SELECT run_id,
            count(*) AS n,
            count(*) FILTER (WHERE NOT needs_review) AS auto_resolved,
            count(*) FILTER (WHERE pending_review) AS pending_review,
            count(*) FILTER (WHERE triaged) AS triaged,
            count(*) FILTER (WHERE final_correct) AS correct
        FROM predictions_final GROUP BY run_id
    ), rates AS (
        SELECT *, correct / n AS p, {Z95} * {Z95} AS z2 FROM counts
    )
    SELECT r.id AS run_id, r.name, r.kind, {status} AS status,
        json_extract_string(r.config, '$.model') AS model,
        json_extract_string(r.config, '$.strategy') AS strategy,
        json_extract_string(r.config, '$.prompt') AS prompt,
        c.n, c.auto_resolved, c.pending_review, c.triaged, c.correct,
        c.p AS accuracy,
        (c.p + c.z2 / (2 * c.n) - {Z95} * sqrt(c.p * (1 - c.p) / c.n + c.z2 / (4 * c.n * c.n)))
            / (1 + c.z2 / c.n) AS ci_low,
        (c.p + c.z2 / (2 * c.n) + {Z95} * sqrt(c.p * (1 - c.p) / c.n + c.z2 / (4 * c.n * c.n)))
            / (1 + c.z2 / c.n) AS ci_high,
        r.updated_at
    FROM {runs} r JOIN rates c ON c.run_id = r.id"""


_V1_TABLES = [
    "CREATE SEQUENCE runs_id START 1",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY DEFAULT nextval('runs_id'),
        kind VARCHAR NOT NULL,              -- eval, capture, distill, ...
        name VARCHAR NOT NULL UNIQUE,
        config JSON NOT NULL,
        status VARCHAR NOT NULL,            -- running, done, failed, interrupted
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """CREATE TABLE predictions (
        run_id INTEGER NOT NULL,
        item_id VARCHAR NOT NULL,
        question VARCHAR,
        gold DOUBLE,
        prompt VARCHAR,
        response VARCHAR,
        n_new_tokens INTEGER,
        finish_reason VARCHAR,              -- eos, length
        value DOUBLE,                       -- extracted answer; NULL = no answer
        rule VARCHAR,
        needs_review BOOLEAN NOT NULL DEFAULT FALSE,
        correct BOOLEAN NOT NULL DEFAULT FALSE,
        candidates DOUBLE[],
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (run_id, item_id)
    )""",
    "CREATE SEQUENCE triage_id START 1",
    # Append-only: a decision is never changed; an undo is a new row naming it.
    """CREATE TABLE triage (
        id INTEGER PRIMARY KEY DEFAULT nextval('triage_id'),
        run_id INTEGER NOT NULL,
        item_id VARCHAR NOT NULL,
        value DOUBLE,                       -- the human's answer; NULL = no answer
        decided_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        previous_value DOUBLE,              -- the value in force before this row
        undone BOOLEAN NOT NULL DEFAULT FALSE,   -- TRUE: this row undoes decision `undoes`
        undoes INTEGER
    )""",
]

_V1_VIEWS = [
    """CREATE VIEW triage_effective AS
    SELECT run_id, item_id, value, decided_at, id AS decision_id
    FROM triage t
    WHERE NOT undone AND id NOT IN (SELECT undoes FROM triage WHERE undone AND undoes IS NOT NULL)
    QUALIFY row_number() OVER (PARTITION BY run_id, item_id ORDER BY id DESC) = 1""",
    """CREATE VIEW predictions_final AS
    SELECT p.*,
        e.decision_id IS NOT NULL AS triaged,
        CASE WHEN e.decision_id IS NOT NULL THEN e.value ELSE p.value END AS final_value,
        p.needs_review AND e.decision_id IS NULL AS pending_review,
        CASE WHEN e.decision_id IS NOT NULL
             THEN coalesce(abs(e.value - p.gold) <= 1e-4, FALSE)
             ELSE p.correct END AS final_correct
    FROM predictions p
    LEFT JOIN triage_effective e USING (run_id, item_id)""",
    leaderboard_view("r.status", "runs", replace=False),
]

_V2_CAPTURES = [
    """CREATE TABLE captures (
        name VARCHAR PRIMARY KEY,
        teacher VARCHAR, backend VARCHAR, strategy VARCHAR, mode VARCHAR, format VARCHAR,
        k INTEGER, temperatures DOUBLE[],
        n_examples BIGINT, n_tokens BIGINT, bytes BIGINT, bytes_per_token DOUBLE,
        mean_topk_mass DOUBLE, mean_entropy DOUBLE, entropy_hist BIGINT[],
        status VARCHAR, path VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp, updated_at TIMESTAMP DEFAULT current_timestamp
    )""",
]


# v3: the run lifecycle.  Every recipe records who runs it and beats a heartbeat;
# a run whose process died without saying so shows as "lost" in runs_live.
_V3_LIFECYCLE = [
    "ALTER TABLE runs ADD COLUMN error VARCHAR",  # the one-line error of a failed run
    "ALTER TABLE runs ADD COLUMN pid INTEGER",
    "ALTER TABLE runs ADD COLUMN host VARCHAR",
    "ALTER TABLE runs ADD COLUMN heartbeat DOUBLE",  # epoch seconds of the last sign of life
    "ALTER TABLE runs ADD COLUMN identity JSON",  # what the run measures (RecipeConfig.identity)
    f"""CREATE VIEW runs_live AS
    SELECT *, CASE WHEN status = 'running' AND (heartbeat IS NULL OR epoch(now()) - heartbeat > {LOST_AFTER_S})
                   THEN 'lost' ELSE status END AS state
    FROM runs""",
    leaderboard_view("r.state", "runs_live", replace=True),
]

# v4: what a run wants its reader to know (e.g. {"inputs_truncated": 3}).
_V4_WARNINGS = [
    "ALTER TABLE runs ADD COLUMN warnings JSON",
]

# v5: honest numbers.  One tolerance rule (kdtui.extract.sql_answers_match) decides
# correctness for extracted and triaged values alike; items pair by a hash of the
# question text (item_key), so the same question pairs across sources and different
# ones never do; the leaderboard says how much is still pending and what accuracy
# would be if every pending item were wrong or right, and has a settled-only view.
_FINAL_V5 = f"""CREATE OR REPLACE VIEW predictions_final AS
    SELECT p.*,
        left(sha256(coalesce(p.question, '')), 16) AS item_key,
        e.decision_id IS NOT NULL AS triaged,
        CASE WHEN e.decision_id IS NOT NULL THEN e.value ELSE p.value END AS final_value,
        p.needs_review AND e.decision_id IS NULL AS pending_review,
        coalesce({sql_answers_match("CASE WHEN e.decision_id IS NOT NULL THEN e.value ELSE p.value END",
                                    "p.gold")}, FALSE) AS final_correct
    FROM predictions p
    LEFT JOIN triage_effective e USING (run_id, item_id)"""


def _wilson(k: str, n: str, side: str) -> str:
    """Wilson 95% bound (side '-' or '+') of k successes in n, clamped to [0, 1] so 0/n is 0, never -0."""
    p = f"({k})::DOUBLE / ({n})"
    bound = (f"(({p}) + {Z95 * Z95} / (2 * ({n})) {side} {Z95} * sqrt(({p}) * (1 - ({p})) / ({n}) "
             f"+ {Z95 * Z95} / (4 * ({n}) * ({n})))) / (1 + {Z95 * Z95} / ({n}))")
    return f"CASE WHEN ({n}) = 0 THEN NULL ELSE least(1.0, greatest(0.0, {bound})) END"


_LEADERBOARD_V5 = f"""CREATE OR REPLACE VIEW leaderboard AS
    WITH counts AS (
        SELECT run_id,
            count(*) AS n,
            count(*) FILTER (WHERE NOT needs_review) AS auto_resolved,
            count(*) FILTER (WHERE pending_review) AS pending_review,
            count(*) FILTER (WHERE triaged) AS triaged,
            count(*) FILTER (WHERE final_correct) AS correct,
            count(*) FILTER (WHERE NOT pending_review) AS n_settled,
            count(*) FILTER (WHERE final_correct AND NOT pending_review) AS correct_settled
        FROM predictions_final GROUP BY run_id
    )
    SELECT r.id AS run_id, r.name, r.kind, r.state AS status,
        json_extract_string(r.config, '$.model') AS model,
        json_extract_string(r.config, '$.strategy') AS strategy,
        json_extract_string(r.config, '$.prompt') AS prompt,
        c.n, c.auto_resolved, c.pending_review, c.triaged, c.correct,
        c.correct::DOUBLE / c.n AS accuracy,
        {_wilson("c.correct", "c.n", "-")} AS ci_low,
        {_wilson("c.correct", "c.n", "+")} AS ci_high,
        c.pending_review > 0 AS provisional,
        c.correct_settled::DOUBLE / c.n AS acc_if_pending_wrong,
        (c.correct_settled + c.pending_review)::DOUBLE / c.n AS acc_if_pending_right,
        c.n_settled, c.correct_settled,
        CASE WHEN c.n_settled > 0 THEN c.correct_settled::DOUBLE / c.n_settled END AS settled_accuracy,
        {_wilson("c.correct_settled", "c.n_settled", "-")} AS settled_ci_low,
        {_wilson("c.correct_settled", "c.n_settled", "+")} AS settled_ci_high,
        r.updated_at
    FROM runs_live r JOIN counts c ON c.run_id = r.id"""

# v5 also records how each prediction was extracted, and by which kdtui.
_V5_HONEST_NUMBERS = [
    "ALTER TABLE predictions ADD COLUMN protocol VARCHAR",
    "ALTER TABLE predictions ADD COLUMN kdtui_version VARCHAR",
    _FINAL_V5,
    _LEADERBOARD_V5,
]

# v6: training curves.  One row per optimiser step (split 'train') or eval pass (split 'eval') of a
# distill run, ingested from the run's metrics file; a re-ingested step replaces itself, so a resumed
# run that recomputes steps after its last checkpoint keeps one row per step.
_V6_TRAIN_METRICS = [
    """CREATE TABLE train_metrics (
        run_id INTEGER NOT NULL,
        split VARCHAR NOT NULL,             -- train, eval
        step INTEGER NOT NULL,              -- optimiser steps done
        total_steps INTEGER,                -- the run's planned steps
        epoch DOUBLE,                       -- fractional epoch
        loss DOUBLE,                        -- alpha*CE + (1-alpha)*D*T^2
        ce DOUBLE,                          -- cross-entropy per target token
        divergence DOUBLE,                  -- D per target token (before T^2)
        kl_bucketed DOUBLE,                 -- KL(teacher||student) over top-k + tail: a lower bound
        kl_full DOUBLE,                     -- KL(teacher||student) over the vocabulary; NULL when unknown
        lr DOUBLE,
        grad_norm DOUBLE,
        tokens BIGINT,                      -- target tokens seen so far
        tokens_per_s DOUBLE,
        elapsed_s DOUBLE,
        logged_at DOUBLE,                   -- epoch seconds
        PRIMARY KEY (run_id, split, step)
    )""",
]

# v7: the job queue. One row per job (keyed by a hash of its resolved config), every attempt kept,
# the workers that ran them, and groups that can be paused. Claims are conditional updates inside
# the store's exclusive write session, so two workers can never take the same job.
_V7_JOBS = [
    """CREATE TABLE jobs (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,              -- the run or capture it produces
        kind VARCHAR NOT NULL,              -- capture, distill, eval
        grp VARCHAR NOT NULL,               -- the experiment
        config JSON NOT NULL,
        depends JSON NOT NULL,              -- ids of jobs that must be done first
        gpus INTEGER NOT NULL DEFAULT 0,
        state VARCHAR NOT NULL,             -- queued, running, done, failed, cancelled, dependency_failed
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        worker VARCHAR, pid INTEGER, pid_start DOUBLE, gpu_ids JSON, log_path VARCHAR,
        submission VARCHAR,                 -- the executor's id of the current attempt (Ray: its submission id)
        error VARCHAR, exit_code INTEGER, progress DOUBLE,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        started_at TIMESTAMP, finished_at TIMESTAMP, updated_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """CREATE TABLE job_attempts (
        job_id VARCHAR NOT NULL, attempt INTEGER NOT NULL, worker VARCHAR, host VARCHAR, pid INTEGER,
        gpu_ids JSON, log_path VARCHAR, started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        finished_at TIMESTAMP, exit_code INTEGER, outcome VARCHAR,
        PRIMARY KEY (job_id, attempt)
    )""",
    """CREATE TABLE workers (
        id VARCHAR PRIMARY KEY, host VARCHAR, pid INTEGER, pid_start DOUBLE, gpus JSON, slots INTEGER,
        started_at TIMESTAMP NOT NULL DEFAULT current_timestamp, heartbeat DOUBLE, state VARCHAR
    )""",
    "CREATE TABLE job_groups (name VARCHAR PRIMARY KEY, paused BOOLEAN NOT NULL DEFAULT FALSE)",
]

# v8: committed answers. Each prediction records what kind of commitment extraction read (answer, no_answer,
# conflicting, unclear) and why; the leaderboard counts how often a run never committed to an answer (its
# no-answer share: settled items whose final value is none), a result in itself.
_LEADERBOARD_V8 = _LEADERBOARD_V5.replace(
    "count(*) FILTER (WHERE final_correct AND NOT pending_review) AS correct_settled",
    "count(*) FILTER (WHERE final_correct AND NOT pending_review) AS correct_settled,\n"
    "            count(*) FILTER (WHERE final_value IS NULL AND NOT pending_review) AS no_answer",
).replace("        r.updated_at\n",
          "        c.no_answer, c.no_answer::DOUBLE / c.n AS no_answer_share,\n        r.updated_at\n")
_V8_COMMITTED = [
    "ALTER TABLE predictions ADD COLUMN kind VARCHAR",
    "ALTER TABLE predictions ADD COLUMN reason VARCHAR",
    _FINAL_V5,
    _LEADERBOARD_V8,
]

# v9: what a capture keeps of its teacher: the mean tempered mass inside the stored top-k, one value per
# stored temperature (1.0 for dense and hidden captures, which keep everything).
_V9_KEPT_MASS = ["ALTER TABLE captures ADD COLUMN kept_mass DOUBLE[]"]

# v10: a run's process named by pid and start time (liveness.py), so a reused pid is not taken for the run.
_V10_PID_START = ["ALTER TABLE runs ADD COLUMN pid_start DOUBLE"]

# v11: a retry gives a job fresh attempts by counting failures only after the attempt it was retried at, so every
# attempt keeps its real outcome (they were rewritten as "failed (before retry)").
_V11_COUNTED_FROM = [
    "ALTER TABLE jobs ADD COLUMN counted_from INTEGER DEFAULT 0",
    "UPDATE jobs SET counted_from = coalesce((SELECT max(a.attempt) FROM job_attempts a WHERE a.job_id = jobs.id "
    "AND a.outcome LIKE '% (before retry)'), 0)",
    "UPDATE job_attempts SET outcome = replace(outcome, ' (before retry)', '') WHERE outcome LIKE '% (before retry)'",
]

# v12: one state per capture. The manifest says whether every shard is written; the capture's process (running,
# stopped, lost) is its runs row. Screens, the report and SQL read captures_live.state, which joins the two, so a
# killed capture reads "lost" instead of "running" forever.
_V12_CAPTURE_STATE = [
    f"""CREATE VIEW captures_live AS
    SELECT c.*, CASE WHEN c.status = 'done' THEN 'done' ELSE coalesce(r.state, c.status) END AS state
    FROM captures c LEFT JOIN runs_live r ON r.name = '{CAPTURE_RUN_PREFIX}' || c.name""",
]

MIGRATIONS: list[list[str]] = [
    _V1_TABLES + _V1_VIEWS,
    _V2_CAPTURES,
    _V3_LIFECYCLE,
    _V4_WARNINGS,
    _V5_HONEST_NUMBERS,
    _V6_TRAIN_METRICS,
    _V7_JOBS,
    _V8_COMMITTED,
    _V9_KEPT_MASS,
    _V10_PID_START,
    _V11_COUNTED_FROM,
    _V12_CAPTURE_STATE,
]
