"""A process that writes to (or reads from) the store as fast as it can, for the concurrency test.

    python -m tests.hammer write STORE RUN SECONDS OUT
    python -m tests.hammer read STORE - SECONDS OUT
"""

from __future__ import annotations

import json
import sys
import time

from kdtui.store import Store
from kdtui.store.reads import leaderboard


def main() -> None:
    role, root, run, seconds, out = sys.argv[1:6]
    store = Store(root, busy_timeout=30)
    stop = time.monotonic() + float(seconds)
    errors: list[str] = []
    done = 0
    if role == "write":
        run_id = store.runs.start(run, "eval", {"model": "hammer"})
        while time.monotonic() < stop:
            rows = [dict(item_id=f"{done + i}", question="q", gold=1.0, prompt="p", response="1",
                         n_new_tokens=1, finish_reason="eos", value=1.0, rule="first_line",
                         needs_review=False, correct=True, candidates=[1.0]) for i in range(50)]
            try:
                done += store.predictions.add(run_id, rows)
            except Exception as exc:  # counted, and the test requires none
                errors.append(repr(exc))
    else:
        while time.monotonic() < stop:
            try:
                leaderboard(store)
                done += 1
            except Exception as exc:
                errors.append(repr(exc))
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"done": done, "errors": errors}, fh)


if __name__ == "__main__":
    main()
