#!/usr/bin/env bash
# Create (once) a virtual environment with everything in requirements.txt, cached
# under $MSREID_CACHE_DIR keyed by requirements.txt + setup.py, then install this
# checkout into it in editable mode. Prints the environment's path on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MSREID_CACHE_DIR:-$HOME/.cache/keras_msreid}"
key="$(cat "$root/requirements.txt" "$root/setup.py" | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"
# A venv cannot be moved (its scripts name their own path), so completeness is
# marked by a file written last: a killed install is started over.
if [ ! -f "$venv/.complete" ]; then
    echo "setting up $venv (first run: downloads TensorFlow, a few minutes)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -r "$root/requirements.txt" >&2
    touch "$venv/.complete"
fi
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" >&2
echo "$venv"
