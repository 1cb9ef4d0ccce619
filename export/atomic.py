"""Atomic file writes: a reader sees the old file or the complete new one, never a part."""

import os
import pathlib


def write_atomic(path, data):
    """Writes `data` (bytes) to a temporary file beside `path`, then renames it over `path`."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
