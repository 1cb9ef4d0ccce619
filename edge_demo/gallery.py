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
_FEATURE_CACHE_SIZE = 512


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
    """

    def __init__(self, path, fingerprint=None, max_samples=20):
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"folder {directory} of gallery {path} does not exist")
        self.path = os.fspath(path)
        self.max_samples = int(max_samples)
        try:
            self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{path} is not a gallery database: {error}") from None
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._pending = []
        self._feature_cache = collections.OrderedDict()
        self._seen_version = self._data_version()
        with self.transaction():
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(f"gallery {path} has schema version {version}; this demo reads {SCHEMA_VERSION}")
            for statement in _SCHEMA.strip().split(";\n"):
                self.connection.execute(statement)
            self.connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if fingerprint is not None:
                self._check_model(fingerprint)
        self._load_index()

    def _check_model(self, fingerprint):
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        has_samples = self.connection.execute("SELECT EXISTS (SELECT 1 FROM samples)").fetchone()[0]
        if row is not None and row[0] != fingerprint and has_samples:
            raise ValueError(
                f"gallery {self.path} holds features of another model ({row[0][:12]}...), not of this one "
                f"({fingerprint[:12]}...): use another --gallery, or `forget --all` to empty it"
            )
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
        self.connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            if self._data_version() != self._seen_version:  # another process wrote
                self._load_index()
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            self._pending.clear()
            raise
        finally:
            self._depth = 0
        self.connection.execute("COMMIT")
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
        self.connection.close()
