"""A process that writes to (or reads from) the store as fast as it can, for the concurrency test.

    python -m tests.hammer write STORE RUN LIMIT OUT    LIMIT: "30s" (a rate benchmark) or "40" batches of 50 rows
    python -m tests.hammer read STORE - SECONDS OUT     reads for SECONDS (the benchmark)
    python -m tests.hammer read STORE STOPFILE until OUT reads until STOPFILE exists (the test: no clock in it)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from kdtui.store import Store
from kdtui.store.reads import leaderboard


def main() -> None:
    role, root, run, limit, out = sys.argv[1:6]
    store = Store(root, busy_timeout=30)
    timed = limit.endswith("s") and limit != "until"
    stop = time.monotonic() + float(limit.rstrip("s")) if timed else 0.0
    errors: list[str] = []
    done = 0
    if role == "write":
        run_id = store.runs.start(run, "eval", {"model": "hammer"})
        batches = 0
        while time.monotonic() < stop if timed else batches < int(limit):
            batches += 1
            rows = [dict(item_id=f"{done + i}", question="q", gold=1.0, prompt="p", response="1",
                         n_new_tokens=1, finish_reason="eos", value=1.0, rule="first_line",
                         needs_review=False, correct=True, candidates=[1.0]) for i in range(50)]
            try:
                done += store.predictions.add(run_id, rows)
            except Exception as exc:  # counted, and the test requires none
                errors.append(repr(exc))
    else:
        stop_file = Path(run)
        while time.monotonic() < stop if timed else done == 0 or not stop_file.exists():
            try:
                leaderboard(store)
                done += 1
            except Exception as exc:
                errors.append(repr(exc))
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"done": done, "errors": errors}, fh)


if __name__ == "__main__":
    main()
