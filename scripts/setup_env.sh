#!/usr/bin/env bash
# Set up this checkout's Python environment and print its path on stdout.
#
# Two layers. The dependencies (requirements.txt) live in one virtual environment
# under $MSREID_CACHE_DIR, made once per requirements.txt + setup.py and shared by
# every checkout: TensorFlow is installed once. This checkout gets its
# own small environment, .venv-msreid/ at its root, that sees the shared packages
# (a path in a .pth file) and holds only this checkout in editable mode. Installing
# a checkout into the shared environment instead would point every other checkout's
# `msreid` and `import keras_msreid` at it, and at nothing once it is deleted.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MSREID_CACHE_DIR:-$HOME/.cache/keras_msreid}"
key="$(cat "$root/requirements.txt" "$root/setup.py" | sha256sum | cut -c1-16)"
deps="$cache/deps-$key"
# A venv cannot be moved (its scripts name their own path), so completeness is
# marked by a file written last: a killed install is started over.
if [ ! -f "$deps/.complete" ]; then
    echo "setting up $deps (first run: downloads TensorFlow, a few minutes)" >&2
    rm -rf "$deps"
    mkdir -p "$cache"
    python3 -m venv "$deps"
    "$deps/bin/python" -m pip install -q --upgrade pip >&2
    "$deps/bin/python" -m pip install -q -r "$root/requirements.txt" >&2
    touch "$deps/.complete"
fi
shared_site="$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

env="$root/.venv-msreid"
marker="$env/.made-by-setup-env"
if [ -e "$env" ] && [ ! -f "$marker" ]; then
    echo "error: $env exists and was not made by scripts/setup_env.sh; move it away and run again" >&2
    exit 2
fi
if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$deps" ]; then
    # The marker claims the folder first and names the dependencies last: a killed
    # setup leaves a folder this script knows as its own, and builds again.
    rm -rf "$env"
    mkdir -p "$env"
    echo "incomplete" > "$marker"
    "$deps/bin/python" -m venv --without-pip "$env"
    site="$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$shared_site" > "$site/msreid-dependencies.pth"
    echo "$deps" > "$marker"
fi
"$env/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" >&2
echo "$env"
