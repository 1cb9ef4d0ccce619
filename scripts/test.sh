#!/usr/bin/env bash
# The README's test command: set up the environment, then run the whole suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$root/scripts/setup_env.sh")"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=2
# Two workers: the suite's long tests are subprocess trainings and exports that leave a
# core idle, so in parallel it takes about three quarters of the serial time
# (docs/RESULTS.md, "Test suite", holds the figures). Give -n 0 to run serially.
"$venv/bin/python" -m pytest -n 2 "$@"
