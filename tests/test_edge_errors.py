"""Fault injection on `python -m edge_demo`: a user's mistake is one line on stderr and exit status 2.

Each bad input (missing, empty, damaged, write-protected file or folder, a flag
out of range, an export the demo cannot run, an unknown identity) must give
exactly one stderr line `python -m edge_demo <command>: error: ...` naming the
path or flag, exit status 2 and no traceback; and must leave the files it was
given as they were. A gallery that cannot be written is still listed.

Most cases call `cli.main` in this process (stderr captured at the file
descriptor, so lines printed by OpenCV or LiteRT count too). Write-protection
cases run in one subprocess: as root, chmod alone protects nothing, so there the
subprocess drops CAP_DAC_OVERRIDE first.
"""

import ctypes
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import test_edge_demo
from test_edge_demo import IMAGE_SIZE, person_crops

from keras_msreid.edge_demo import cli
from keras_msreid.edge_demo.gallery import Gallery, GalleryError

colour_export = test_edge_demo.colour_export  # the tiny float32 export, as a fixture of this module too

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINGERPRINT = "colour-stand-in"  # colour_export's source model


def run_cli(capfd, argv):
    """(exit status, stdout, stderr) of `cli.main(argv)`; argparse's SystemExit counts as a status."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit:  # argparse before the one-line convention
        code = exit.code
    out, err = capfd.readouterr()
    return code, out, err


def assert_user_error(code, err, command, *named):
    lines = err.splitlines()
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m edge_demo {command}: error: "), err
    for name in named:
        assert str(name) in lines[0], (name, err)
    return lines[0]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else None


def make_gallery(path, fingerprint=FINGERPRINT):
    """A gallery with identity 1, Alice, holding one sample with a thumbnail."""
    gallery = Gallery(path, fingerprint=fingerprint)
    crop = person_crops(1, seed=3)[0]
    with gallery.transaction():
        alice = gallery.create_identity(name="Alice", now=1.7e9)
        rng = np.random.default_rng(0)
        gallery.add_sample(alice, {"embedding": rng.normal(size=12).astype(np.float32),
                                   "high_map": rng.normal(size=(16, 8, 12)).astype(np.float32)},
                           thumbnail=cv2.imencode(".jpg", crop)[1].tobytes(), source="enroll", now=1.7e9)
    gallery.close()
    return path


def write_video(path, frames=3):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(frames):
        writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.release()
    return path


# ------------------------------------------------------------------ damaged galleries
def _damaged_galleries(folder):
    good = make_gallery(folder / "good.sqlite")
    data = good.read_bytes()
    made = {}
    made["missing"] = folder / "none.sqlite"
    made["missing folder"] = folder / "nowhere" / "g.sqlite"
    (folder / "folder.sqlite").mkdir()
    made["a folder"] = folder / "folder.sqlite"
    made["text file"] = folder / "notes.sqlite"
    made["text file"].write_text("shopping list\n" * 50)
    made["empty file"] = folder / "empty.sqlite"
    made["empty file"].write_bytes(b"")
    made["truncated"] = folder / "truncated.sqlite"
    made["truncated"].write_bytes(data[:len(data) // 3])
    made["garbage pages"] = folder / "garbage.sqlite"
    made["garbage pages"].write_bytes(data[:100] + bytes(np.random.default_rng(0).integers(0, 256, 8000, np.uint8)))
    made["other program's database"] = folder / "foreign.sqlite"
    connection = sqlite3.connect(made["other program's database"])
    connection.execute("CREATE TABLE notes (text)")
    connection.commit()
    connection.close()
    made["newer schema"] = folder / "v99.sqlite"
    shutil.copy(good, made["newer schema"])
    connection = sqlite3.connect(made["newer schema"])
    connection.execute("PRAGMA user_version=99")
    connection.commit()
    connection.close()
    return made


GALLERY_FAULTS = ("missing", "missing folder", "a folder", "text file", "empty file", "truncated", "garbage pages",
                  "other program's database", "newer schema")
GALLERY_COMMANDS = {"list": [], "rename": ["1", "Carol"], "forget": ["--all"]}


@pytest.fixture(scope="module")
def galleries(tmp_path_factory):
    return _damaged_galleries(tmp_path_factory.mktemp("galleries"))


@pytest.mark.parametrize("command", sorted(GALLERY_COMMANDS))
@pytest.mark.parametrize("fault", GALLERY_FAULTS)
def test_bad_gallery_is_one_line_and_left_untouched(galleries, capfd, fault, command):
    path = galleries[fault]
    before = digest(path)
    code, _, err = run_cli(capfd, [command, "--gallery", path, *GALLERY_COMMANDS[command]])
    assert_user_error(code, err, command, path)
    assert digest(path) == before, "the command changed a file it refused"


@pytest.mark.parametrize("argv", [["rename", "Zed", "Zoe"], ["rename", "42", "Zoe"], ["forget", "Zed"],
                                  ["forget", "1", "42"]], ids=" ".join)
def test_unknown_identity_is_named_and_changes_nothing(tmp_path, capfd, argv):
    path = make_gallery(tmp_path / "g.sqlite")
    before = digest(path)
    code, _, err = run_cli(capfd, [argv[0], "--gallery", path, *argv[1:]])
    line = assert_user_error(code, err, argv[0], path)
    assert "has no identity" in line and ("Zed" in line or "42" in line)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["g.sqlite"]


# ------------------------------------------------------------------------- flag values
RUN_FLAGS = [
    ("--stats-every", "abc", "> 0"), ("--stats-every", "0", "> 0"), ("--stats-every", "-1", "> 0"),
    ("--stats-every", "nan", "> 0"), ("--detect-resize", "0", "(0, 8]"), ("--detect-resize", "nan", "(0, 8]"),
    ("--detect-resize", "inf", "(0, 8]"), ("--hog-scale", "1", "(1, 4]"), ("--hog-scale", "nan", "(1, 4]"),
    ("--min-score", "-1", ">= 0"), ("--min-score", "nan", ">= 0"), ("--min-height", "-5", ">= 0"),
    ("--contained", "0", "(0, 1]"), ("--contained", "1.5", "(0, 1]"), ("--contained", "nan", "(0, 1]"),
    ("--threshold", "nan", "[-1, 1]"), ("--threshold", "2", "[-1, 1]"), ("--track-similarity", "nan", "[-1, 1]"),
    ("--mjpeg-port", "0", "1 to 65535"), ("--mjpeg-port", "65536", "1 to 65535"),
    ("--mjpeg-port", "-1", "1 to 65535"), ("--mjpeg-port", "http", "1 to 65535"),
    ("--person-class", "-1", ">= 0"), ("--max-frames", "0", ">= 1"), ("--shortlist", "0", ">= 1"),
    ("--confirm-frames", "-2", ">= 1"), ("--max-missed", "1.5", ">= 1"), ("--threads", "0", ">= 1"),
]


@pytest.mark.parametrize("flag, value, allowed", RUN_FLAGS, ids=[f"{f}={v}" for f, v, _ in RUN_FLAGS])
def test_bad_run_flag_is_refused_up_front_with_its_range(tmp_path, capfd, flag, value, allowed):
    # The model folder does not exist: the flag must be refused before anything is opened.
    code, _, err = run_cli(capfd, ["run", "--model-dir", tmp_path / "models", "--source", tmp_path / "walk.mp4",
                                   "--gallery", tmp_path / "g.sqlite", "--headless", flag, value])
    line = assert_user_error(code, err, "run", flag, repr(value))
    assert "must be " in line and allowed in line, line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, flag", [
    (["enroll", "--max-samples", "0", "--name", "Bob"], "--max-samples"),
    (["enroll", "--name", ""], "--name"),
    (["enroll", "--name", "   "], "--name"),
    (["enroll", "--name", "12"], "--name"),
    (["rename", "1", ""], "name"),
    (["rename", "1", "007"], "name"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_name_or_count_is_refused(tmp_path, capfd, argv, flag):
    path = make_gallery(tmp_path / "g.sqlite")
    before = digest(path)
    extra = ["--model-dir", tmp_path / "models", "folder"] if argv[0] == "enroll" else []
    code, _, err = run_cli(capfd, [argv[0], "--gallery", path, *argv[1:], *extra])
    assert_user_error(code, err, argv[0], f"argument {flag}")
    assert digest(path) == before


# -------------------------------------------------------------------------- exports
def _damage(folder, fault, aligned_scorer):
    metadata_path = folder / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    extractor = folder / metadata["models"]["float32"]["extractor"]["file"]
    if fault == "truncated metadata.json":
        metadata_path.write_text(metadata_path.read_text()[:40])
    elif fault == "empty metadata.json":
        metadata_path.write_text("")
    elif fault == "binary metadata.json":
        metadata_path.write_bytes(b"\xff\xfe\x00\x13garbage")
    elif fault == "metadata.json a list":
        metadata_path.write_text("[1, 2]")
    elif fault == "metadata.json null":
        metadata_path.write_text("null")
    elif fault == "image_size not a size":
        metadata_path.write_text(json.dumps({**metadata, "image_size": [0, -5]}))
    elif fault == "mode entry a string":
        metadata_path.write_text(json.dumps({**metadata, "models": {"float32": "extractor.tflite"}}))
    elif fault == "image_size not the extractor's":
        metadata_path.write_text(json.dumps({**metadata, "image_size": [128, 64]}))
    elif fault == "text .tflite with its sha256":
        extractor.write_text("hello")
        metadata["models"]["float32"]["extractor"]["sha256"] = hashlib.sha256(b"hello").hexdigest()
        metadata_path.write_text(json.dumps(metadata))
    elif fault == "truncated .tflite without sha256":
        extractor.write_bytes(extractor.read_bytes()[:1000])
        del metadata["models"]["float32"]["extractor"]["sha256"]
        metadata_path.write_text(json.dumps(metadata))
    elif fault == "extractor and scorer swapped":
        entries = metadata["models"]["float32"]
        entries["extractor"], entries["scorer"] = entries["scorer"], entries["extractor"]
        metadata_path.write_text(json.dumps(metadata))
    elif fault in ("format version 1", "a scorer of aligned pairs"):
        (folder / "scorer_aligned.tflite").write_bytes(aligned_scorer)
        metadata["models"]["float32"]["scorer"] = {"file": "scorer_aligned.tflite",
                                                   "sha256": hashlib.sha256(aligned_scorer).hexdigest()}
        metadata["format_version"] = 1 if fault == "format version 1" else metadata["format_version"]
        metadata_path.write_text(json.dumps(metadata))
    elif fault == "model folder is a file":
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    else:
        raise AssertionError(fault)


EXPORT_FAULTS = ("truncated metadata.json", "empty metadata.json", "binary metadata.json", "metadata.json a list",
                 "metadata.json null", "image_size not a size", "mode entry a string", "image_size not the extractor's",
                 "text .tflite with its sha256", "truncated .tflite without sha256", "extractor and scorer swapped",
                 "format version 1", "a scorer of aligned pairs", "model folder is a file")


@pytest.fixture(scope="module")
def alice(tmp_path_factory):
    """A folder of Alice's crops: two good ones, a truncated JPEG and a text file named .jpg."""
    folder = tmp_path_factory.mktemp("alice")
    for index, crop in enumerate(person_crops(2, seed=5)[:2]):
        cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(person_crops(1, seed=6)[0], cv2.COLOR_RGB2BGR))[1].tobytes()
    (folder / "cut.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (folder / "notes.jpg").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def aligned_scorer():
    """What an export of format version 1 held: a scorer of aligned pairs (TFLite bytes)."""
    return test_edge_demo.to_tflite(test_edge_demo.colour_models(query_batch=None)[1])


@pytest.mark.parametrize("fault", EXPORT_FAULTS)
def test_damaged_export_is_one_line_naming_it(colour_export, aligned_scorer, alice, tmp_path, capfd, fault):
    models = tmp_path / "models"
    shutil.copytree(colour_export, models)
    _damage(models, fault, aligned_scorer)
    gallery = tmp_path / "g.sqlite"
    code, _, err = run_cli(capfd, ["enroll", "--model-dir", models, "--mode", "float32", "--gallery", gallery,
                                   "--name", "Alice", alice])
    line = assert_user_error(code, err, "enroll", models)
    if fault == "a scorer of aligned pairs":
        assert "takes aligned pairs, not one query against many rows" in line
    assert not gallery.exists(), "a failed enroll left a gallery behind"


# ----------------------------------------------------------------------- enrol images
def test_corrupt_images_are_named_and_skipped(colour_export, alice, tmp_path, capfd):
    gallery = tmp_path / "g.sqlite"
    code, out, err = run_cli(capfd, ["enroll", "--model-dir", colour_export, "--mode", "float32",
                                     "--gallery", gallery, "--name", "Alice", alice])
    assert code == 0, err
    assert "enrolled 2 images of Alice as identity 1 (2 samples kept)" in out
    lines = sorted(err.splitlines())
    assert len(lines) == 2, err
    for line, name in zip(lines, ("cut.jpg", "notes.jpg")):
        assert line.startswith(f"skipped {alice / name}: not a readable image"), err


@pytest.mark.parametrize("contents", ["none usable", "no images", "empty folder", "a file"])
def test_enroll_without_a_usable_image_is_one_line(colour_export, tmp_path, capfd, contents):
    folder = tmp_path / "photos"
    if contents == "a file":
        folder.write_text("x")
    else:
        folder.mkdir()
    if contents == "none usable":
        (folder / "a.jpg").write_text("not an image")
        (folder / "b.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()[:30])
    if contents == "no images":
        (folder / "notes.txt").write_text("x")
    gallery = tmp_path / "g.sqlite"
    code, _, err = run_cli(capfd, ["enroll", "--model-dir", colour_export, "--mode", "float32",
                                   "--gallery", gallery, "--name", "Alice", folder])
    line = assert_user_error(code, err, "enroll", folder)
    if contents == "none usable":
        assert "a.jpg" in line and "b.png" in line
    assert not gallery.exists()


# ----------------------------------------------------------------------------- run
RUN_FAULTS = ("missing source", "empty source", "text file as source", "folder as source", "detector not SSD",
              "detector text file", "out-video is the source", "events is the gallery", "out-video a folder",
              "events a folder", "events in a missing folder", "out-video not .mp4 or .avi",
              "motion with a TFLite detector")


@pytest.mark.parametrize("fault", RUN_FAULTS)
def test_bad_run_input_is_one_line_and_overwrites_nothing(colour_export, tmp_path, capfd, fault):
    video = write_video(tmp_path / "walk.avi")
    gallery = tmp_path / "g.sqlite"
    argv = ["run", "--model-dir", colour_export, "--mode", "float32", "--headless", "--gallery", gallery]
    source, named = video, None
    if fault == "missing source":
        source = named = tmp_path / "nowhere.mp4"
    elif fault == "empty source":
        source = named = tmp_path / "empty.mp4"
        source.write_bytes(b"")
    elif fault == "text file as source":
        source = named = tmp_path / "notes.mp4"
        source.write_text("not a video\n" * 100)
    elif fault == "folder as source":
        source = named = tmp_path
    elif fault == "detector not SSD":
        named = colour_export / "extractor_float32.tflite"
        argv += ["--detector", named]
    elif fault == "detector text file":
        named = tmp_path / "ssd.tflite"
        named.write_text("hello")
        argv += ["--detector", named]
    elif fault == "motion with a TFLite detector":
        named = "--motion"
        argv += ["--motion", "--detector", colour_export / "extractor_float32.tflite"]
    elif fault == "out-video is the source":
        named = "--out-video"
        argv += ["--out-video", video]
    elif fault == "events is the gallery":
        make_gallery(gallery)
        named = "--events"
        argv += ["--events", gallery]
    elif fault == "out-video a folder":
        named = tmp_path / "out.mp4"
        named.mkdir()
        argv += ["--out-video", named]
    elif fault == "events a folder":
        named = tmp_path
        argv += ["--events", named]
    elif fault == "events in a missing folder":
        named = tmp_path / "logs" / "events.jsonl"
        argv += ["--events", named]
    elif fault == "out-video not .mp4 or .avi":
        named = tmp_path / "out.mov"
        argv += ["--out-video", named]
    before = {name: digest(tmp_path / name) for name in os.listdir(tmp_path)}
    code, _, err = run_cli(capfd, argv + ["--source", source])
    assert_user_error(code, err, "run", named)
    assert {name: digest(tmp_path / name) for name in os.listdir(tmp_path)} == before


# ------------------------------------------------------------- transactions stay atomic
class _FailingCommit:
    """A connection whose COMMIT fails, as on a full disk."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.connection.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.connection, name)


def test_a_failed_commit_keeps_nothing_and_the_gallery_stays_usable(tmp_path):
    path = make_gallery(tmp_path / "g.sqlite")
    gallery = Gallery(path, fingerprint=FINGERPRINT)
    real = gallery.connection
    gallery.connection = _FailingCommit(real)
    with pytest.raises(sqlite3.OperationalError, match="full"), gallery.transaction():
        bob = gallery.create_identity(name="Bob")
        gallery.add_sample(bob, {"embedding": np.ones(12, np.float32)})
    gallery.connection = real
    assert [entry.name for entry in gallery.identities()] == ["Alice"]
    assert len(gallery.sample_ids) == 1
    with gallery.transaction():  # the next frame's transaction still works
        gallery.rename(1, "Alicia")
    gallery.close()
    reopened = Gallery(path, readonly=True)
    assert [entry.name for entry in reopened.identities()] == ["Alicia"]
    reopened.close()


def test_readonly_gallery_never_writes(tmp_path):
    path = make_gallery(tmp_path / "g.sqlite")
    before = digest(path)
    gallery = Gallery(path, readonly=True)
    assert [entry.name for entry in gallery.identities()] == ["Alice"]
    with pytest.raises(GalleryError, match="read-only"):
        gallery.rename(1, "Carol")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        gallery.connection.execute("DELETE FROM samples")
    gallery.close()
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["g.sqlite"]  # no -wal / -shm left behind


# -------------------------------------------------------------- write-protected files
DRIVER = textwrap.dedent("""
    import json, os, sys, tempfile, traceback

    from keras_msreid.edge_demo import cli

    probe = sys.argv[1]
    try:
        open(probe, "a").close()
        enforced = False
    except PermissionError:
        enforced = True
    results = {}
    for name, argv in json.loads(sys.argv[2]).items():
        with tempfile.TemporaryFile() as err:
            saved = os.dup(2)
            os.dup2(err.fileno(), 2)
            try:
                try:
                    code = cli.main(argv)
                except SystemExit as exit:
                    code = exit.code
                except BaseException:
                    traceback.print_exc()
                    code = "raised"
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            err.seek(0)
            results[name] = [code, err.read().decode()]
        print(f"--- {name}", flush=True)
    print("RESULTS " + json.dumps({"enforced": enforced, "results": results}))
""")


def _without_dac_override():
    """As root, give up the capability to ignore file permissions (this process and its children)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: gone from exec'd programs


@pytest.fixture(scope="module")
def protected(colour_export, tmp_path_factory):
    """Runs every write-protection case in one subprocess; {case: (status, stdout+stderr)}."""
    base = tmp_path_factory.mktemp("protected")
    make_gallery(base / "ro.sqlite")
    os.chmod(base / "ro.sqlite", 0o444)
    (base / "rodir").mkdir()
    (base / "rofolder").mkdir()
    make_gallery(base / "rodir" / "g.sqlite")
    make_gallery(base / "writable.sqlite")
    make_gallery(base / "unreadable.sqlite")
    os.chmod(base / "unreadable.sqlite", 0)
    write_video(base / "walk.avi")
    (base / "events.jsonl").write_text("")
    os.chmod(base / "events.jsonl", 0o444)
    (base / "photos").mkdir()
    for index, crop in enumerate(person_crops(2, seed=5)[:2]):
        cv2.imwrite(str(base / "photos" / f"{index}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    shutil.copy(base / "photos" / "0.png", base / "photos" / "locked.png")
    os.chmod(base / "photos" / "locked.png", 0)
    (base / "probe").write_text("")
    os.chmod(base / "probe", 0o444)
    model = ["--model-dir", str(colour_export), "--mode", "float32"]
    run = ["run", *model, "--source", str(base / "walk.avi"), "--headless"]
    cases = {
        "list file": ["list", "--gallery", str(base / "ro.sqlite")],
        "list folder": ["list", "--gallery", str(base / "rodir" / "g.sqlite"), "--thumbnails", str(base / "thumbs")],
        "list unreadable": ["list", "--gallery", str(base / "unreadable.sqlite")],
        "list thumbnails": ["list", "--gallery", str(base / "writable.sqlite"), "--thumbnails", str(base / "rofolder")],
        "rename file": ["rename", "--gallery", str(base / "ro.sqlite"), "1", "Carol"],
        "rename folder": ["rename", "--gallery", str(base / "rodir" / "g.sqlite"), "Alice", "Carol"],
        "forget file": ["forget", "--gallery", str(base / "ro.sqlite"), "--all"],
        "forget folder": ["forget", "--gallery", str(base / "rodir" / "g.sqlite"), "1"],
        "enroll file": ["enroll", *model, "--gallery", str(base / "ro.sqlite"), "--name", "Bob", str(base / "photos")],
        "enroll new in folder": ["enroll", *model, "--gallery", str(base / "rofolder" / "g.sqlite"), "--name", "Bob",
                                 str(base / "photos")],
        "enroll unreadable image": ["enroll", *model, "--gallery", str(base / "writable.sqlite"), "--name", "Bob",
                                    str(base / "photos")],
        "run file": [*run, "--gallery", str(base / "ro.sqlite")],
        "run folder": [*run, "--gallery", str(base / "rodir" / "g.sqlite")],
        "run events": [*run, "--gallery", str(base / "new.sqlite"), "--events", str(base / "events.jsonl")],
        "run out-video": [*run, "--gallery", str(base / "new.sqlite"), "--out-video", str(base / "rofolder" / "a.mp4")],
    }
    os.chmod(base / "rodir", 0o555)
    os.chmod(base / "rofolder", 0o555)
    before = {name: digest(base / name) for name in ("ro.sqlite", "rodir/g.sqlite", "events.jsonl")}
    try:
        result = subprocess.run([sys.executable, "-c", DRIVER, str(base / "probe"), json.dumps(cases)], cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False, preexec_fn=_without_dac_override,
                                env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"})
    finally:
        os.chmod(base / "rodir", 0o755)
        os.chmod(base / "rofolder", 0o755)
    line = next((line for line in result.stdout.splitlines() if line.startswith("RESULTS ")), None)
    assert line is not None, result.stdout + result.stderr
    found = json.loads(line[len("RESULTS "):])
    if not found["enforced"]:
        pytest.skip("file permissions are not enforced here (root without a way to drop CAP_DAC_OVERRIDE)")
    assert {name: digest(base / name) for name in before} == before, "a write-protected file was changed"
    return base, found["results"]


@pytest.mark.parametrize("case", ["list file", "list folder"])
def test_list_works_on_a_write_protected_gallery(protected, case):
    base, results = protected
    code, err = results[case]
    assert code == 0 and err == "", err
    if case == "list folder":
        assert cv2.imread(str(base / "thumbs" / "identity_1.jpg")).shape == IMAGE_SIZE + (3,)


@pytest.mark.parametrize("case, named", [
    ("rename file", "ro.sqlite"), ("rename folder", "g.sqlite"), ("forget file", "ro.sqlite"),
    ("forget folder", "g.sqlite"), ("enroll file", "ro.sqlite"), ("enroll new in folder", "rofolder"),
    ("run file", "ro.sqlite"), ("run folder", "g.sqlite"), ("run events", "events.jsonl"),
    ("run out-video", "rofolder"), ("list unreadable", "unreadable.sqlite"), ("list thumbnails", "rofolder"),
])
def test_write_protected_target_is_one_line(protected, case, named):
    _, results = protected
    code, err = results[case]
    assert_user_error(code, err, case.split()[0], named)


def test_unreadable_image_is_named_and_skipped(protected):
    base, results = protected
    code, err = results["enroll unreadable image"]
    assert code == 0, err
    assert err == f"skipped {base / 'photos' / 'locked.png'}: cannot read it (Permission denied)\n"


# ------------------------------------------------------------------ python -m edge_demo
@pytest.mark.parametrize("argv, command, named", [
    (["run", "--model-dir", "models", "--source", "0", "--mjpeg-port", "99999"], "run", "--mjpeg-port"),
    (["list", "--gallery", "README.md"], "list", "README.md"),
], ids=["flag", "gallery"])
def test_module_entry_point_exits_2_with_one_line(argv, command, named):
    result = subprocess.run([sys.executable, "-m", "edge_demo", *argv], cwd=os.path.join(REPO, "edge_demo"),
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.stdout == ""
    assert_user_error(result.returncode, result.stderr, command, named)
