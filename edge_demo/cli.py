"""Command line: `python -m edge_demo run | enroll | list | rename | forget`.

Example:

    python -m edge_demo run --model-dir models --source 0 --headless --events events.jsonl
    python -m edge_demo enroll --gallery gallery.sqlite --model-dir models --name Alice photos/alice
    python -m edge_demo list --gallery gallery.sqlite --thumbnails thumbs/

A user's mistake (a missing, empty, damaged or write-protected file, a flag out of
range, an export the demo cannot run) ends the command with one line on stderr,
`python -m edge_demo <command>: error: <what, naming the path or flag>`, and exit
status 2. A traceback means a bug in the demo.
"""

import argparse
import dataclasses
import datetime
import math
import os
import sqlite3
import sys
import tempfile

import cv2
import numpy as np

from .crops import crop_person
from .detectors import HOG_MODELS, HOGDetector
from .gallery import Gallery, check_gallery_path, describe_sqlite_error
from .identifier import encode_thumbnail
from .native import first_line, native_stderr
from .pipeline import RunOptions, run
from .reid_models import MODES, ReIDModels, check_mode, read_metadata
from .sources import SourceError, parse_source

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Detection settings a `--profile` presets (flags given as well win). pi: HOG only where the
# picture moves, on a 1.5x frame, with the fine pyramid the time saved pays for: on vtest.avi
# 27 frames/s at 2 threads and a higher IDF1 than whole-frame HOG (docs/RESULTS.md,
# "Edge demo in real time").
PROFILE_SETTINGS = ("detect_resize", "hog_scale", "min_score", "motion")
PROFILES = {"pi": dict(detect_resize=1.5, hog_scale=1.05, min_score=1.0, motion=True)}
# Exceptions that mean the user's input is wrong, not the demo.
USER_ERRORS = (FileNotFoundError, ValueError, KeyError, SourceError, ImportError, OSError)


class UsageError(Exception):
    """A command line argparse refuses; `main` prints it as one line."""

    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and `main` returns 2 instead of exiting."""

    def error(self, message):
        raise UsageError(self.prog, message)


class Number:
    """argparse type: an int or a finite float within a range, which the error message states.

    `low_open` / `high_open` exclude the bound. Example: `Number(float, 0, 1, low_open=True)`
    takes (0, 1] and answers "-1" with "must be a number in (0, 1], got '-1'".
    """

    def __init__(self, kind, low=None, high=None, low_open=False, high_open=False):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.__name__ = "integer" if kind is int else "number"

    def describe(self):
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            if self.kind is int and not (self.low_open or self.high_open):
                return f"{what} from {self.low} to {self.high}"
            return f"{what} in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high}"
        return f"a finite {self.__name__}" if self.kind is float else what

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if (self.kind is float and not math.isfinite(value)) or low_bad or high_bad:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


_positive_int = Number(int, 1)


def _identity_name(text):
    """A name `find` can address: not blank, not only digits (those are ids), printable."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be blank, got {text!r}")
    if text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must not be only digits (digits address identity ids), got {text!r}")
    if not text.isprintable():
        raise argparse.ArgumentTypeError(f"must be printable text without control characters, got {text!r}")
    return text


def _add_model_arguments(parser):
    parser.add_argument("--model-dir", required=True, help="export folder with metadata.json (msreid export --out)")
    parser.add_argument("--mode", default="int8", choices=MODES, help="which exported models to run (default int8)")
    parser.add_argument("--threads", type=_positive_int, help="interpreter and OpenCV threads (default: runtime's)")


def build_parser():
    parser = _Parser(prog="python -m edge_demo",
                                     description="Re-identify people from a camera with LiteRT only.")
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="watch a source, identify and enrol people")
    _add_model_arguments(run_parser)
    run_parser.add_argument("--source", required=True,
                            help="camera index (0), video file, rtsp:// or http:// URL, or 'picamera'")
    run_parser.add_argument("--gallery", default="gallery.sqlite", help="SQLite gallery (created if missing)")
    run_parser.add_argument("--headless", action="store_true", help="never open a window")
    run_parser.add_argument("--out-video", help="write the annotated video here (.mp4 or .avi)")
    run_parser.add_argument("--events", help="append JSON-lines events here")
    run_parser.add_argument("--mjpeg-port", type=Number(int, 1, 65535), help="serve an MJPEG stream on this port")
    run_parser.add_argument("--mjpeg-host", default="127.0.0.1",
                            help="address of the MJPEG stream (default 127.0.0.1; 0.0.0.0 exposes it, unauthenticated)")
    run_parser.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    run_parser.add_argument("--stats-every", type=Number(float, 0, low_open=True), default=10.0,
                            help="seconds between statistics lines")
    run_parser.add_argument("--detector", default="hog", help="'hog' or an SSD-style detector .tflite file")
    run_parser.add_argument("--hog-model", default="default", choices=sorted(HOG_MODELS),
                            help="HOG people model: default (people >= ~100 px) or daimler (smaller people)")
    run_parser.add_argument("--detect-resize", type=Number(float, 0, 8, low_open=True),
                            help="scale frames by this before HOG detection (>1 finds smaller people, slower; "
                                 "default 1)")
    run_parser.add_argument("--hog-scale", type=Number(float, 1, 4, low_open=True),
                            help="step between HOG pyramid scales (default 1.05; 1.1 is about 1.6x faster)")
    run_parser.add_argument("--min-score", type=Number(float, 0),
                            help="detection score threshold: HOG SVM margin or TFLite score (default 0.5)")
    run_parser.add_argument("--min-height", type=Number(float, 0), default=0.0,
                            help="ignore people shorter than this (px)")
    run_parser.add_argument("--contained", type=Number(float, 0, 1, low_open=True), default=0.8,
                            help="drop a detection with this share of its area inside a larger one (default 0.8; "
                                 "1 drops only those wholly inside)")
    run_parser.add_argument("--profile", choices=sorted(PROFILES),
                            help="preset detection settings: pi = HOG in motion regions with the settings measured "
                                 "for a fixed camera (edge_demo/README.md); flags given as well win")
    run_parser.add_argument("--person-class", type=Number(int, 0), default=0,
                            help="person class id of a TFLite detector")
    run_parser.add_argument("--motion", action="store_true", default=None,
                            help="run HOG only where the picture moves (a fixed camera: several times faster)")
    run_parser.add_argument("--shortlist", type=_positive_int, default=5, help="identities rescored by the scorer")
    run_parser.add_argument("--threshold", type=Number(float, -1, 1),
                            help="match threshold (default: from metadata.json)")
    run_parser.add_argument("--max-samples", type=_positive_int, default=20, help="samples kept per identity")
    run_parser.add_argument("--confirm-frames", type=_positive_int, default=3,
                            help="frames a new person is matched before being identified or enrolled")
    run_parser.add_argument("--max-missed", type=_positive_int, default=10,
                            help="frames a track survives without a detection")
    run_parser.add_argument("--track-similarity", type=Number(float, -1, 1), default=0.5,
                            help="smallest embedding cosine for a detection to continue a track")

    enroll = commands.add_parser("enroll", help="add a named person from a folder of images")
    _add_model_arguments(enroll)
    enroll.add_argument("--gallery", required=True)
    enroll.add_argument("--name", required=True, type=_identity_name)
    enroll.add_argument("--detect", action="store_true",
                        help="images are whole scenes: enrol the largest person HOG finds in each")
    enroll.add_argument("--max-samples", type=_positive_int, default=20)
    enroll.add_argument("folder", help="folder of images of one person (crops, or scenes with --detect)")

    listing = commands.add_parser("list", help="list the gallery's identities")
    listing.add_argument("--gallery", required=True)
    listing.add_argument("--thumbnails", help="write each identity's newest thumbnail into this folder")

    rename = commands.add_parser("rename", help="name an identity")
    rename.add_argument("--gallery", required=True)
    rename.add_argument("identity", help="identity id or current name")
    rename.add_argument("name", type=_identity_name)

    forget = commands.add_parser("forget", help="delete identities and their samples")
    forget.add_argument("--gallery", required=True)
    forget.add_argument("identities", nargs="*", help="identity ids or names")
    forget.add_argument("--all", action="store_true", help="delete every identity")
    return parser


def _existing_gallery(path, readonly=False):
    return Gallery(path, readonly=readonly, create=False)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _check_distinct(paths):
    """Refuses one file given to two flags (say --events the gallery): one would overwrite the other."""
    named = [(flag, path) for flag, path in paths if path is not None]
    for index, (flag, path) in enumerate(named):
        for other_flag, other in named[index + 1:]:
            if _same_file(path, other):
                raise ValueError(f"{other_flag} {other} is the same file as {flag} {path}: give each its own path")


def _check_output_file(flag, path):
    """An output file the command will create or append to: its folder exists, and it is writable."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"folder {directory} of {flag} {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder, not a file")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise OSError(f"{flag} {path} is read-only")
    elif not os.access(directory, os.W_OK):
        raise OSError(f"cannot create {flag} {path}: folder {directory} is not writable")


def _profile_settings(args):
    """The detection settings: a flag given wins, then the `--profile`, then `RunOptions`' default."""
    defaults = {field.name: field.default for field in dataclasses.fields(RunOptions)}
    profile = dict(PROFILES.get(args.profile, {}))
    if args.detector != "hog":
        profile.pop("motion", None)  # motion regions narrow HOG's search; an SSD sees the whole frame
    return {name: getattr(args, name) if getattr(args, name) is not None else profile.get(name, defaults[name])
            for name in PROFILE_SETTINGS}


def command_run(args):
    settings = _profile_settings(args)
    kind, _ = parse_source(args.source)
    _check_distinct([("--source", args.source if kind == "file" else None), ("--gallery", args.gallery),
                     ("--out-video", args.out_video), ("--events", args.events),
                     ("--detector", None if args.detector == "hog" else args.detector)])
    for flag, path in (("--out-video", args.out_video), ("--events", args.events)):
        if path is not None:
            _check_output_file(flag, path)
    options = RunOptions(
        model_dir=args.model_dir, source=args.source, mode=args.mode, gallery=args.gallery, headless=args.headless,
        out_video=args.out_video, events=args.events, mjpeg_port=args.mjpeg_port, mjpeg_host=args.mjpeg_host,
        threads=args.threads, max_frames=args.max_frames, stats_every=args.stats_every, detector=args.detector,
        hog_model=args.hog_model, min_height=args.min_height, contained=args.contained,
        person_class=args.person_class, **settings,
        shortlist=args.shortlist, threshold=args.threshold, max_samples=args.max_samples,
        confirm_frames=args.confirm_frames, max_missed=args.max_missed, track_similarity=args.track_similarity)
    run(options)


def _read_image(path):
    """(BGR image, None), or (None, why it cannot be used)."""
    if os.path.isdir(path):
        return None, "a folder, not an image"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, f"cannot read it ({error.strerror})"
    if not data:
        return None, "not a readable image (empty file)"
    # libjpeg and libpng print their complaints on descriptor 2: they become the reason.
    with native_stderr() as printed:
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
    complaint = first_line(printed.text)
    if image is None:
        return None, "not a readable image" + (f" ({complaint})" if complaint else "")
    if "Premature end" in complaint or "Corrupt" in complaint:
        return None, f"not a readable image (damaged: {complaint})"
    return image, None


def _enrolment_crops(folder, image_size, detect):
    """(crops of the usable images in `folder`, [(path, why) of the others]); raises if none is usable."""
    if not os.path.exists(folder):
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder} is a file, not a folder")
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise OSError(f"cannot list image folder {folder}: {error.strerror}") from None
    names = [name for name in names if name.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise ValueError(f"no images in {folder} (extensions {', '.join(IMAGE_EXTENSIONS)})")
    detector = HOGDetector() if detect else None
    crops, skipped = [], []
    for name in names:
        path = os.path.join(folder, name)
        image, reason = _read_image(path)
        if image is None:
            skipped.append((path, reason))
            continue
        box = (0, 0, image.shape[1], image.shape[0])
        if detector is not None:
            found = detector(image)
            if not found:
                skipped.append((path, "no person found"))
                continue
            box = max(found, key=lambda d: d.box[2] * d.box[3]).box
        crops.append(crop_person(image, box, image_size))
    if not crops:
        reasons = "; ".join(f"{os.path.basename(path)}: {reason}" for path, reason in skipped[:3])
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        raise ValueError(f"no usable image of a person in {folder} ({reasons}{more})")
    return crops, skipped


def command_enroll(args):
    # Everything that can be checked cheaply first; the gallery is opened (or made) only to write.
    metadata = read_metadata(args.model_dir)
    check_mode(args.model_dir, metadata, args.mode)
    check_gallery_path(args.gallery)
    crops, skipped = _enrolment_crops(args.folder, tuple(metadata["image_size"]), args.detect)
    models = ReIDModels.load(args.model_dir, args.mode, num_threads=args.threads)
    features = models.extract(crops)
    gallery = Gallery(args.gallery, fingerprint=models.fingerprint, max_samples=args.max_samples)
    try:
        with gallery.transaction():
            try:
                identity = gallery.find(args.name)
            except KeyError:
                identity = gallery.create_identity(name=args.name)
            for index, crop in enumerate(crops):
                gallery.add_sample(identity, {name: value[index] for name, value in features.items()},
                                   thumbnail=encode_thumbnail(crop), source="enroll")
        kept = next(entry.samples for entry in gallery.identities() if entry.id == identity)
    finally:
        gallery.close()
    # Said once the enrolment succeeded: an error stays the only line of a failed command.
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"enrolled {len(crops)} images of {args.name} as identity {identity} ({kept} samples kept)")


def _when(timestamp):
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _thumbnail_folder(folder):
    """Makes `folder` if needed and checks that files can be written there."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--thumbnails {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".identity-", suffix=".partial", dir=folder)
    except OSError as error:
        raise OSError(f"cannot write thumbnails into --thumbnails {folder}: {error.strerror}") from None
    os.close(handle)
    os.remove(probe)
    return folder


def _write_atomically(path, data):
    handle, partial = tempfile.mkstemp(prefix=".identity-", suffix=".partial", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def command_list(args):
    # Read-only: works on a write-protected gallery, and never changes the file.
    gallery = _existing_gallery(args.gallery, readonly=True)
    try:
        thumbnails = _thumbnail_folder(args.thumbnails) if args.thumbnails else None
        print(f"{'id':>5}  {'name':<20} {'samples':>7}  {'created':<19}  last seen")
        for entry in gallery.identities():
            print(f"{entry.id:>5}  {entry.name or '-':<20} {entry.samples:>7}  {_when(entry.created)}  "
                  f"{_when(entry.last_seen)}")
            jpeg = gallery.thumbnail(entry.id) if thumbnails else None
            if jpeg is not None:
                _write_atomically(os.path.join(thumbnails, f"identity_{entry.id}.jpg"), jpeg)
    finally:
        gallery.close()


def command_rename(args):
    gallery = _existing_gallery(args.gallery)
    try:
        identity = gallery.find(args.identity)
        gallery.rename(identity, args.name)
    finally:
        gallery.close()
    print(f"identity {identity} is now {args.name}")


def command_forget(args):
    if args.all == bool(args.identities):
        raise ValueError("name the identities to forget, or pass --all (not both)")
    gallery = _existing_gallery(args.gallery)
    try:
        with gallery.transaction():  # all of them, or none
            targets = ([entry.id for entry in gallery.identities()] if args.all
                       else list(dict.fromkeys(gallery.find(key) for key in args.identities)))
            for identity in targets:
                gallery.forget(identity)
    finally:
        gallery.close()
    print(f"forgot {len(targets)} identities")


COMMANDS = {"run": command_run, "enroll": command_enroll, "list": command_list, "rename": command_rename,
            "forget": command_forget}


def describe_error(error):
    """The message of a user error, in one line."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.filename}: {error.strerror}"
        if error.filename2 is not None:
            message += f" ({error.filename2})"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


def _fail(prog, message):
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return 2


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        return _fail(error.prog, error.message)
    prog = f"{parser.prog} {args.command}"
    try:
        COMMANDS[args.command](args)
    except sqlite3.Error as error:
        return _fail(prog, describe_sqlite_error(args.gallery, error))
    except USER_ERRORS as error:
        return _fail(prog, describe_error(error))
    return 0
