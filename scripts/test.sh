#!/usr/bin/env bash
# The README's test command: set up the environment, then run the whole suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$root/scripts/setup_env.sh")"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=2
"$venv/bin/python" -m pytest "$@"
