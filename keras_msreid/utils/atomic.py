"""Atomic file writes: readers see the old file or the new one, never half of one."""

import contextlib
import os
import pathlib


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it replaces `path` atomically.

    On an exception the temporary file is removed and `path` is untouched.

    Example:

    >>> with atomic_path("model.keras") as temporary:
    ...     model.save(temporary)
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: some writers (Keras, TFLite) choose the format by it.
    temporary = path.with_name(f".{path.stem}.partial{''.join(path.suffixes) or '.tmp'}")
    try:
        yield temporary
        # Flush the new bytes to disk before the rename makes them the file.
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_text(path, text):
    with atomic_path(path) as temporary:
        pathlib.Path(temporary).write_text(text)


def atomic_write_bytes(path, data):
    with atomic_path(path) as temporary:
        pathlib.Path(temporary).write_bytes(data)
