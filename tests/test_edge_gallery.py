"""The SQLite gallery: round trips, caps, model guard, transactions, and a kill mid-write."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_msreid.edge_demo.gallery import Gallery, npz_to_features

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample(seed, dim=8):
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=dim).astype(np.float32)
    return {"embedding": embedding / np.linalg.norm(embedding),
            "high_map": rng.normal(size=(4, 2, 3)).astype(np.float32),
            "high_patch": rng.normal(size=(1, 2, 2, 3)).astype(np.float32)}


def test_samples_round_trip_and_survive_a_restart(tmp_path):
    path = tmp_path / "g.sqlite"
    gallery = Gallery(path, fingerprint="model-a")
    with gallery.transaction():
        alice = gallery.create_identity(name="Alice", now=100.0)
        first = gallery.add_sample(alice, sample(0), thumbnail=b"jpeg-bytes", source="enroll", now=101.0)
        bob = gallery.create_identity(now=102.0)
        gallery.add_sample(bob, sample(1), now=103.0)
    gallery.close()

    reopened = Gallery(path, fingerprint="model-a")
    assert [(i.id, i.name, i.samples, i.created, i.last_seen) for i in reopened.identities()] == [
        (alice, "Alice", 1, 100.0, 101.0), (bob, None, 1, 102.0, 103.0)]
    np.testing.assert_array_equal(reopened.sample_identities, [alice, bob])
    np.testing.assert_array_equal(reopened.embeddings[0], sample(0)["embedding"])
    stored = reopened.features([first])
    # Per-level features are stored as float16.
    np.testing.assert_allclose(stored["high_map"][0], sample(0)["high_map"], rtol=1e-3, atol=1e-3)
    assert stored["high_patch"].shape == (1, 1, 2, 2, 3)
    assert reopened.thumbnail(alice) == b"jpeg-bytes"
    assert reopened.find("Alice") == alice and reopened.find(str(bob)) == bob
    reopened.close()


def test_blobs_are_npy_not_pickle(tmp_path):
    gallery = Gallery(tmp_path / "g.sqlite")
    with gallery.transaction():
        gallery.add_sample(gallery.create_identity(), sample(0))
    embedding_blob, features_blob = gallery.connection.execute("SELECT embedding, features FROM samples").fetchone()
    assert embedding_blob.startswith(b"\x93NUMPY")
    assert features_blob.startswith(b"PK")  # an npz archive of .npy members
    assert sorted(npz_to_features(features_blob)) == ["high_map", "high_patch"]
    gallery.close()


def test_cap_drops_oldest_automatic_samples_before_enrolled_ones(tmp_path):
    gallery = Gallery(tmp_path / "g.sqlite", max_samples=3)
    with gallery.transaction():
        person = gallery.create_identity()
        enrolled = gallery.add_sample(person, sample(0), source="enroll", now=1.0)
        autos = [gallery.add_sample(person, sample(i), now=1.0 + i) for i in range(1, 5)]
    kept = gallery.connection.execute("SELECT id FROM samples ORDER BY id").fetchall()
    assert [row[0] for row in kept] == [enrolled, autos[2], autos[3]]
    np.testing.assert_array_equal(gallery.sample_ids, [enrolled, autos[2], autos[3]])
    assert len(gallery.embeddings) == 3
    gallery.close()


def test_a_failed_transaction_leaves_database_and_index_unchanged(tmp_path):
    gallery = Gallery(tmp_path / "g.sqlite")
    with pytest.raises(RuntimeError, match="power cut"):
        with gallery.transaction():
            person = gallery.create_identity()
            gallery.add_sample(person, sample(0))
            raise RuntimeError("power cut")
    assert gallery.identities() == []
    assert gallery.embeddings.shape[0] == 0
    gallery.close()


def test_gallery_refuses_features_of_another_model(tmp_path):
    path = tmp_path / "g.sqlite"
    gallery = Gallery(path, fingerprint="model-a")
    with gallery.transaction():
        gallery.add_sample(gallery.create_identity(), sample(0))
    gallery.close()
    with pytest.raises(ValueError, match=r"g\.sqlite holds features of another model \(model-a"):
        Gallery(path, fingerprint="model-b")
    Gallery(path).close()  # listing without a model is fine


def test_rename_forget_and_unique_names(tmp_path):
    gallery = Gallery(tmp_path / "g.sqlite")
    with gallery.transaction():
        first = gallery.create_identity(name="Alice")
        gallery.add_sample(first, sample(0))
        second = gallery.create_identity()
        gallery.add_sample(second, sample(1))
    with pytest.raises(ValueError, match="already has an identity named 'Alice'"):
        gallery.rename(second, "Alice")
    gallery.rename(second, "Bob")
    gallery.forget(first)
    assert [(i.id, i.name) for i in gallery.identities()] == [(second, "Bob")]
    np.testing.assert_array_equal(gallery.sample_identities, [second])
    with pytest.raises(KeyError, match="has no identity named 'Alice'"):
        gallery.find("Alice")
    with pytest.raises(KeyError, match=f"has no identity {first}"):
        gallery.forget(first)
    gallery.close()


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(ValueError, match=r"notes\.txt is not a gallery database"):
        Gallery(path)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from keras_msreid.edge_demo.gallery import Gallery

    gallery = Gallery(sys.argv[1], fingerprint="model-a")
    rng = np.random.default_rng(0)
    count = 0
    while True:
        with gallery.transaction():
            person = gallery.create_identity()
            for _ in range(3):
                gallery.add_sample(person, {"embedding": rng.normal(size=64).astype(np.float32),
                                            "low_map": rng.normal(size=(40, 16, 32)).astype(np.float32)},
                                   thumbnail=bytes(20000))
        count += 1
        if count == 5:
            print("committed", flush=True)
""")


def test_gallery_survives_a_kill_mid_write(tmp_path):
    path = tmp_path / "g.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert writer.stdout.readline().strip() == b"committed"
        # It keeps writing transactions back to back: the kill lands inside one.
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = connection.execute(
        "SELECT COUNT(s.id) FROM identities i LEFT JOIN samples s ON s.identity = i.id GROUP BY i.id").fetchall()
    connection.close()
    assert len(counts) >= 5
    assert {row[0] for row in counts} == {3}, "an identity was committed without all its samples"
    gallery = Gallery(path, fingerprint="model-a")
    assert gallery.embeddings.shape == (3 * len(counts), 64)
    gallery.close()


def test_changes_by_another_process_are_picked_up(tmp_path):
    path = tmp_path / "g.sqlite"
    running = Gallery(path)
    with running.transaction():
        first = running.create_identity()
        running.add_sample(first, sample(0))
    other = Gallery(path)  # e.g. `enroll` and `forget` while the demo runs
    with other.transaction():
        alice = other.create_identity(name="Alice")
        other.add_sample(alice, sample(1))
    other.forget(first)
    other.close()
    with running.transaction():  # the demo's next frame
        np.testing.assert_array_equal(running.sample_identities, [alice])
        assert not running.has_identity(first)
        with pytest.raises(KeyError, match=f"has no identity {first}"):
            running.add_sample(first, sample(2))
    running.close()


def test_list_rename_and_forget_commands(tmp_path, capsys):
    from keras_msreid.edge_demo import cli

    path = tmp_path / "g.sqlite"
    gallery = Gallery(path)
    with gallery.transaction():
        for seed in range(3):
            gallery.add_sample(gallery.create_identity(now=1.7e9), sample(seed))
    gallery.close()
    assert cli.main(["rename", "--gallery", str(path), "2", "Carol"]) == 0
    assert cli.main(["forget", "--gallery", str(path), "1"]) == 0
    assert cli.main(["list", "--gallery", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["identity 2 is now Carol", "forgot 1 identities"]
    assert [line.split()[:3] for line in lines[3:]] == [["2", "Carol", "1"], ["3", "-", "1"]]
    assert cli.main(["forget", "--gallery", str(path), "Dave"]) == 2
    assert "has no identity named 'Dave'" in capsys.readouterr().err
    assert cli.main(["forget", "--gallery", str(path)]) == 2
    assert "name the identities to forget, or pass --all" in capsys.readouterr().err
    assert cli.main(["forget", "--gallery", str(path), "--all"]) == 0
    emptied = Gallery(path)
    assert emptied.identities() == []
    emptied.close()
    assert cli.main(["list", "--gallery", str(tmp_path / "none.sqlite")]) == 2
    assert capsys.readouterr().err == f"python -m edge_demo list: error: gallery {tmp_path / 'none.sqlite'} does not exist\n"
