"""The gallery of known people: an SQLite file of identities and their samples.

Tables: `identities` (id, name, created, last_seen) and `samples` (identity,
embedding, per-level features, JPEG thumbnail, source, created). Arrays are
stored as `.npy` / `.npz` bytes (read back with `allow_pickle=False`), never
pickled. The database runs in WAL mode with `synchronous=FULL`, and the demo
writes each frame's changes in one transaction: a power cut loses at most the
frame being written, and never leaves an identity without its samples.

The embeddings of all samples are kept in memory for the shortlist; the larger
per-level features are read from disk for shortlisted samples only, with a small
cache. Changes made by another process (`enroll`, `rename`, `forget` while the
demo runs) are picked up at the start of the next transaction. A gallery
remembers which model made its features and refuses another.

`Gallery(path, readonly=True)` only reads (`list`): it never writes the file,
and works on a write-protected file or folder. Other SQLite files (a text file,
another program's database, a damaged one) are refused with a `GalleryError`
naming the file, never altered.

Example:

>>> gallery = Gallery("people.sqlite", fingerprint=models.fingerprint)
>>> with gallery.transaction():
...     person = gallery.create_identity(name="Alice")
...     gallery.add_sample(person, features_of_one_crop, thumbnail=jpeg_bytes, source="enroll")
>>> gallery.embeddings.shape
(1, 128)
"""

import collections
import contextlib
import io
import os
import sqlite3
import time
import urllib.parse

import numpy as np

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    features BLOB NOT NULL,
    thumbnail BLOB,
    source TEXT NOT NULL CHECK (source IN ('auto', 'enroll')),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_identity ON samples(identity);
"""
_TABLES = ("identities", "meta", "samples")
_FEATURE_CACHE_SIZE = 512
_SQLITE_HEADER = b"SQLite format 3\x00"


class GalleryError(ValueError):
    """The gallery file cannot be used: missing, not a gallery, damaged, read-only, locked."""


def describe_sqlite_error(path, error):
    """One line saying what an `sqlite3.Error` on gallery `path` means for the user."""
    name = getattr(error, "sqlite_errorname", "") or ""  # Python >= 3.11
    text = str(error)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return (f"gallery {path} is read-only (the file or its folder is not writable), and this command writes to "
                f"it: make it writable or use another --gallery")
    if name == "SQLITE_NOTADB" or "not a database" in text:
        return f"{path} is not a gallery database (not an SQLite file)"
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return f"gallery {path} is damaged ({text}): restore a backup or use another --gallery"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        if not os.path.exists(path):
            return (f"cannot create gallery {path}: its folder {os.path.dirname(os.path.abspath(path))} "
                    f"is not writable")
        return f"cannot open gallery {path}: check that the file and its folder are readable (and writable to write)"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return f"gallery {path} is locked by another process (database is locked): try again when it is done"
    if name == "SQLITE_FULL" or "disk is full" in text:
        return f"cannot write gallery {path}: the disk is full"
    return f"gallery {path}: {text}"


def check_gallery_path(path, create=True):
    """The checks `Gallery` makes before opening `path`, without opening it (for a command's early checks)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"folder {directory} of gallery {path} does not exist")
    _check_file(os.fspath(path), create)


def _check_file(path, create):
    """Refuses, before SQLite touches it, a path that is a folder, unreadable, or not an SQLite file."""
    if os.path.isdir(path):
        raise GalleryError(f"gallery {path} is a folder, not a gallery file")
    if not os.path.exists(path):
        if not create:
            raise GalleryError(f"gallery {path} does not exist")
        return
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise GalleryError(f"cannot read gallery {path}: {error.strerror}") from None
    if not header and not create:
        raise GalleryError(f"gallery {path} is an empty file (0 bytes), not a gallery database")
    if header and header != _SQLITE_HEADER:
        raise GalleryError(f"{path} is not a gallery database (not an SQLite file)")


def array_to_npy(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_to_array(blob):
    return np.load(io.BytesIO(blob), allow_pickle=False)


def features_to_npz(features):
    """Per-level features -> npz bytes, stored as float16 (half the size; far finer than int8 models)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value, np.float16) for name, value in features.items()})
    return buffer.getvalue()


def npz_to_features(blob):
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name].astype(np.float32) for name in archive.files}


Identity = collections.namedtuple("Identity", "id name created last_seen samples")


class Gallery:
    """An SQLite gallery of identities and samples.

    Args:
        path: the database file (created if missing).
        fingerprint: the model's fingerprint (`ReIDModels.fingerprint`); None to
            open without a model (listing, renaming, forgetting).
        max_samples: samples kept per identity; the oldest automatic samples go
            first, enrolled ones only when nothing else is left.
        readonly: only read (no fingerprint, no transactions); works where the
            file or its folder is write-protected.
        create: make the file if it is missing (else a missing or empty file is an error).
    """

    def __init__(self, path, fingerprint=None, max_samples=20, readonly=False, create=True):
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        if readonly and fingerprint is not None:
            raise ValueError("a read-only gallery takes no fingerprint (nothing is written)")
        self.path = os.fspath(path)
        self.max_samples = int(max_samples)
        self.readonly = bool(readonly)
        check_gallery_path(self.path, create=create and not readonly)
        self._depth = 0
        self._pending = []
        self._feature_cache = collections.OrderedDict()
        self.connection = None
        try:
            if self.readonly:
                self._open_readonly()
            else:
                self._open_writable(fingerprint)
            self._load_index()
        except sqlite3.Error as error:
            self.close()
            raise GalleryError(describe_sqlite_error(self.path, error)) from None
        except BaseException:
            self.close()
            raise

    def _uri(self, **query):
        return f"file:{urllib.parse.quote(os.path.abspath(self.path))}?{urllib.parse.urlencode(query)}"

    def _open_writable(self, fingerprint):
        # SQLite itself may open a write-protected file and fail only at the first write (or, with
        # -wal / -shm files left writable, not at all): ask the system first.
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.exists(self.path):
            if not os.access(directory, os.W_OK):
                raise GalleryError(f"cannot create gallery {self.path}: its folder {directory} is not writable")
        elif not (os.access(self.path, os.W_OK) and os.access(directory, os.W_OK)):
            raise GalleryError(describe_sqlite_error(self.path, sqlite3.OperationalError("readonly database")))
        self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._check_schema(writable=True)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self._seen_version = self._data_version()
        with self.transaction():
            if not self._check_schema(writable=True):  # again, under the write lock
                for statement in _SCHEMA.strip().split(";\n"):
                    self.connection.execute(statement)
                self.connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if fingerprint is not None:
                self._check_model(fingerprint)

    def _open_readonly(self):
        """Reads without writing: `mode=ro`, or `immutable=1` where the folder is write-protected.

        Where the file and its folder are writable it opens `mode=rw` with
        `query_only`: no statement can write, and as the last connection it
        tidies away the `-wal` / `-shm` files SQLite makes for any reader.
        """
        directory = os.path.dirname(os.path.abspath(self.path))
        folder_writable = os.access(directory, os.W_OK)
        if os.access(self.path, os.W_OK) and folder_writable:
            attempts = [{"mode": "rw"}, {"mode": "ro"}]
        else:
            attempts = [{"mode": "ro"}]
        if not folder_writable and not os.path.exists(self.path + "-wal"):
            # A WAL reader needs a -shm file it cannot make here; and no writer can be at work
            # (it would need a -wal file in this folder), so the file cannot change while we read.
            attempts.append({"mode": "ro", "immutable": "1"})
        for index, query in enumerate(attempts):
            try:
                self.connection = sqlite3.connect(self._uri(**query), uri=True, isolation_level=None, timeout=30.0)
                self.connection.execute("PRAGMA query_only=ON")
                self._check_schema(writable=False)
                return
            except sqlite3.OperationalError as error:
                self.close()
                name = getattr(error, "sqlite_errorname", "") or ""
                retry = name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or "readonly" in str(error) \
                    or "unable to open" in str(error)
                if index + 1 == len(attempts) or not retry:
                    raise

    def _check_schema(self, writable):
        """Refuses another program's database, or a gallery of a newer demo; True for a current gallery."""
        tables = {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if not tables and not writable:
            raise GalleryError(f"gallery {self.path} is an empty database, not a gallery (no identities table)")
        if tables and not set(_TABLES) <= tables:
            raise GalleryError(f"{self.path} is an SQLite database but not a gallery (its tables: "
                               f"{', '.join(sorted(tables))}): use another --gallery")
        version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GalleryError(f"gallery {self.path} has schema version {version}; this demo reads {SCHEMA_VERSION}")
        return bool(tables) and version == SCHEMA_VERSION  # a current gallery: nothing to create

    def _check_model(self, fingerprint):
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        has_samples = self.connection.execute("SELECT EXISTS (SELECT 1 FROM samples)").fetchone()[0]
        if row is not None and row[0] != fingerprint and has_samples:
            raise ValueError(
                f"gallery {self.path} holds features of another model ({row[0][:12]}...), not of this one "
                f"({fingerprint[:12]}...): use another --gallery, or `forget --all` to empty it"
            )
        if row is None or row[0] != fingerprint:
            self.connection.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (fingerprint,))

    def _data_version(self):
        return self.connection.execute("PRAGMA data_version").fetchone()[0]

    def _load_index(self):
        self._seen_version = self._data_version()
        self._feature_cache.clear()
        rows = self.connection.execute("SELECT id, identity, embedding FROM samples ORDER BY id").fetchall()
        self._sample_ids = [row[0] for row in rows]
        self._sample_identities = [row[1] for row in rows]
        self._embeddings = [npy_to_array(row[2]).astype(np.float32) for row in rows]
        self._arrays = None

    # ----------------------------------------------------------------- transactions
    @contextlib.contextmanager
    def transaction(self):
        """All writes inside commit together or not at all; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self.readonly:
            raise GalleryError(f"gallery {self.path} was opened read-only")
        self.connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            if self._data_version() != self._seen_version:  # another process wrote
                self._load_index()
            yield
            self.connection.execute("COMMIT")
        except BaseException:
            # COMMIT itself can fail (disk full, I/O error): then nothing of it is kept either.
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            self._pending.clear()
            raise
        finally:
            self._depth = 0
        # The in-memory index follows the database only once the changes are durable.
        for change in self._pending:
            change()
        self._pending.clear()

    # ----------------------------------------------------------------------- writes
    def create_identity(self, name=None, now=None):
        """A new identity (no samples yet: add one in the same transaction). Returns its id."""
        now = time.time() if now is None else now
        with self.transaction():
            try:
                cursor = self.connection.execute(
                    "INSERT INTO identities (name, created, last_seen) VALUES (?, ?, ?)", (name, now, now))
            except sqlite3.IntegrityError:
                raise ValueError(f"gallery {self.path} already has an identity named {name!r}") from None
            return cursor.lastrowid

    def add_sample(self, identity, features, thumbnail=None, source="auto", now=None):
        """Stores one crop's features for `identity`; returns the sample id.

        `features`: {"embedding": (D,), per-level name: array} of one crop, without a batch axis.
        """
        now = time.time() if now is None else now
        embedding = np.asarray(features["embedding"], np.float32).reshape(-1)
        levels = {name: value for name, value in features.items() if name != "embedding"}
        with self.transaction():
            self._require(identity)
            cursor = self.connection.execute(
                "INSERT INTO samples (identity, embedding, features, thumbnail, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (identity, array_to_npy(embedding), features_to_npz(levels), thumbnail, source, now),
            )
            sample = cursor.lastrowid
            self.connection.execute("UPDATE identities SET last_seen = ? WHERE id = ?", (now, identity))
            self._pending.append(lambda: self._index_add(sample, identity, embedding))
            self._trim(identity)
        return sample

    def _trim(self, identity):
        count = self.connection.execute("SELECT COUNT(*) FROM samples WHERE identity = ?", (identity,)).fetchone()[0]
        if count <= self.max_samples:
            return
        # Automatic samples before enrolled ones, oldest first.
        stale = [row[0] for row in self.connection.execute(
            "SELECT id FROM samples WHERE identity = ? ORDER BY source = 'enroll', created, id LIMIT ?",
            (identity, count - self.max_samples))]
        self.connection.executemany("DELETE FROM samples WHERE id = ?", [(sample,) for sample in stale])
        self._pending.append(lambda: self._index_remove(set(stale)))

    def touch(self, identity, now=None):
        """Marks `identity` as seen now."""
        now = time.time() if now is None else now
        with self.transaction():
            self.connection.execute("UPDATE identities SET last_seen = ? WHERE id = ?", (now, identity))

    def rename(self, identity, name):
        with self.transaction():
            self._require(identity)
            try:
                self.connection.execute("UPDATE identities SET name = ? WHERE id = ?", (name, identity))
            except sqlite3.IntegrityError:
                raise ValueError(f"gallery {self.path} already has an identity named {name!r}") from None

    def forget(self, identity):
        """Deletes an identity and its samples."""
        with self.transaction():
            self._require(identity)
            stale = {row[0] for row in self.connection.execute("SELECT id FROM samples WHERE identity = ?",
                                                               (identity,))}
            self.connection.execute("DELETE FROM identities WHERE id = ?", (identity,))
            self._pending.append(lambda: self._index_remove(stale))

    def _require(self, identity):
        if not self.has_identity(identity):
            raise KeyError(f"gallery {self.path} has no identity {identity}")

    def has_identity(self, identity):
        return self.connection.execute("SELECT 1 FROM identities WHERE id = ?", (identity,)).fetchone() is not None

    # ------------------------------------------------------------------------ reads
    def find(self, key):
        """Identity id from an id (int or digits) or a name."""
        if isinstance(key, int) or str(key).isdigit():
            identity = int(key)
            self._require(identity)
            return identity
        row = self.connection.execute("SELECT id FROM identities WHERE name = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"gallery {self.path} has no identity named {key!r}")
        return row[0]

    def identities(self):
        """Every identity with its sample count, oldest first."""
        rows = self.connection.execute(
            "SELECT i.id, i.name, i.created, i.last_seen, COUNT(s.id) FROM identities i "
            "LEFT JOIN samples s ON s.identity = i.id GROUP BY i.id ORDER BY i.id").fetchall()
        return [Identity(*row) for row in rows]

    def name(self, identity):
        row = self.connection.execute("SELECT name FROM identities WHERE id = ?", (identity,)).fetchone()
        return None if row is None else row[0]

    def thumbnail(self, identity):
        """The newest thumbnail (JPEG bytes) of `identity`, or None."""
        row = self.connection.execute(
            "SELECT thumbnail FROM samples WHERE identity = ? AND thumbnail IS NOT NULL ORDER BY id DESC LIMIT 1",
            (identity,)).fetchone()
        return None if row is None else row[0]

    @property
    def sample_ids(self):
        return self._index()[0]

    @property
    def sample_identities(self):
        return self._index()[1]

    @property
    def embeddings(self):
        """(samples, D) float32 unit embeddings, rows aligned with `sample_ids`."""
        return self._index()[2]

    def features(self, sample_ids):
        """{name: (len(sample_ids), ...) float32} per-level features of the given samples."""
        missing = [sample for sample in sample_ids if sample not in self._feature_cache]
        if missing:
            marks = ",".join("?" * len(missing))
            for sample, blob in self.connection.execute(
                    f"SELECT id, features FROM samples WHERE id IN ({marks})", missing):
                self._feature_cache[sample] = npz_to_features(blob)
        rows = []
        for sample in sample_ids:
            if sample not in self._feature_cache:
                raise KeyError(f"gallery {self.path} has no sample {sample}")
            self._feature_cache.move_to_end(sample)
            rows.append(self._feature_cache[sample])
        while len(self._feature_cache) > _FEATURE_CACHE_SIZE:
            self._feature_cache.popitem(last=False)
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]} if rows else {}

    # ------------------------------------------------------------------ index upkeep
    def _index(self):
        if self._arrays is None:
            dim = self._embeddings[0].shape[0] if self._embeddings else 0
            self._arrays = (
                np.asarray(self._sample_ids, np.int64),
                np.asarray(self._sample_identities, np.int64),
                np.stack(self._embeddings) if self._embeddings else np.zeros((0, dim), np.float32),
            )
        return self._arrays

    def _index_add(self, sample, identity, embedding):
        self._sample_ids.append(sample)
        self._sample_identities.append(identity)
        self._embeddings.append(embedding)
        self._arrays = None

    def _index_remove(self, stale):
        keep = [i for i, sample in enumerate(self._sample_ids) if sample not in stale]
        self._sample_ids = [self._sample_ids[i] for i in keep]
        self._sample_identities = [self._sample_identities[i] for i in keep]
        self._embeddings = [self._embeddings[i] for i in keep]
        for sample in stale:
            self._feature_cache.pop(sample, None)
        self._arrays = None

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None
