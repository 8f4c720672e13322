#!/usr/bin/env bash
# The test suite under load: run it RUNS times (default 3) while a CPU hog keeps one core busy, and report every
# failure of every run with its duration. A test that fails here waits on the clock instead of a condition.
#
#     benchmarks/test_stability.sh [RUNS] [extra pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift || true
py=".venv/bin/python"
[ -x "$py" ] || { echo "no .venv: run 'make setup' first" >&2; exit 2; }
logs="$(mktemp -d)"
# The hog: one busy process for the whole run (one core of the machine's cores).
"$py" -c "while True: pass" &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT
echo "CPU hog pid $hog on one core of $(nproc); logs in $logs"
failed_runs=0
for run in $(seq 1 "$runs"); do
    start=$(date +%s)
    "$py" -m pytest -n "${TEST_WORKERS:-3}" --dist loadgroup -q -p no:cacheprovider "$@" > "$logs/run-$run.log" 2>&1
    rc=$?
    seconds=$(( $(date +%s) - start ))
    summary=$(grep -E "(passed|failed|error).* in [0-9.]+s" "$logs/run-$run.log" | tail -1 | tr -d "=")
    echo "run $run: exit $rc in ${seconds}s: ${summary}"
    if [ "$rc" -ne 0 ]; then
        failed_runs=$((failed_runs + 1))
        grep -E "^(FAILED|ERROR) " "$logs/run-$run.log" | sed 's/^/    /'
    fi
done
echo "$failed_runs of $runs runs failed under the CPU hog"
[ "$failed_runs" -eq 0 ]
