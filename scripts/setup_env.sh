#!/usr/bin/env bash
# Create (once) a virtual environment with everything in requirements.txt, cached
# under $MSREID_CACHE_DIR keyed by requirements.txt + setup.py, then install this
# checkout into it in editable mode. Prints the environment's path on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MSREID_CACHE_DIR:-$HOME/.cache/keras_msreid}"
key="$(cat "$root/requirements.txt" "$root/setup.py" | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"
if [ ! -x "$venv/bin/python" ]; then
    echo "setting up $venv (first run: downloads TensorFlow, a few minutes)" >&2
    mkdir -p "$cache"
    rm -rf "$venv.partial"
    python3 -m venv "$venv.partial"
    "$venv.partial/bin/pip" install -q --upgrade pip >&2
    "$venv.partial/bin/pip" install -q -r "$root/requirements.txt" >&2
    # Only a complete environment takes the cache key: a killed install starts over.
    mv "$venv.partial" "$venv"
fi
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root" >&2
echo "$venv"
