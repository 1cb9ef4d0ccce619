"""Command line: `python -m edge_demo run | enroll | list | rename | forget`.

Example:

    python -m edge_demo run --model-dir models --source 0 --headless --events events.jsonl
    python -m edge_demo enroll --gallery gallery.sqlite --model-dir models --name Alice photos/alice
    python -m edge_demo list --gallery gallery.sqlite --thumbnails thumbs/
"""

import argparse
import datetime
import os
import sys

import cv2

from edge_demo.crops import crop_person
from edge_demo.detectors import HOG_MODELS, HOGDetector
from edge_demo.gallery import Gallery
from edge_demo.identifier import encode_thumbnail
from edge_demo.pipeline import RunOptions, run
from edge_demo.reid_models import ReIDModels
from edge_demo.sources import SourceError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MODES = ("float32", "float16", "dynamic", "int8")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_model_arguments(parser):
    parser.add_argument("--model-dir", required=True, help="export folder with metadata.json (msreid export --out)")
    parser.add_argument("--mode", default="int8", choices=MODES, help="which exported models to run (default int8)")
    parser.add_argument("--threads", type=_positive_int, help="interpreter and OpenCV threads (default: runtime's)")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m edge_demo",
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
    run_parser.add_argument("--mjpeg-port", type=int, help="serve an MJPEG stream on this port")
    run_parser.add_argument("--mjpeg-host", default="127.0.0.1",
                            help="address of the MJPEG stream (default 127.0.0.1; 0.0.0.0 exposes it, unauthenticated)")
    run_parser.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    run_parser.add_argument("--stats-every", type=float, default=10.0, help="seconds between statistics lines")
    run_parser.add_argument("--detector", default="hog", help="'hog' or an SSD-style detector .tflite file")
    run_parser.add_argument("--hog-model", default="default", choices=sorted(HOG_MODELS),
                            help="HOG people model: default (people >= ~100 px) or daimler (smaller people)")
    run_parser.add_argument("--detect-resize", type=float, default=1.0,
                            help="scale frames by this before HOG detection (>1 finds smaller people, slower)")
    run_parser.add_argument("--hog-scale", type=float, default=1.05,
                            help="step between HOG pyramid scales (1.1 is about 1.6x faster than 1.05)")
    run_parser.add_argument("--min-score", type=float, default=0.5,
                            help="detection score threshold: HOG SVM margin or TFLite score (default 0.5)")
    run_parser.add_argument("--min-height", type=float, default=0.0, help="ignore people shorter than this (px)")
    run_parser.add_argument("--contained", type=float, default=0.8,
                            help="drop a detection with this share of its area inside a larger one (default 0.8; "
                                 "1 drops only those wholly inside)")
    run_parser.add_argument("--person-class", type=int, default=0, help="person class id of a TFLite detector")
    run_parser.add_argument("--shortlist", type=_positive_int, default=5, help="identities rescored by the scorer")
    run_parser.add_argument("--threshold", type=float, help="match threshold (default: from metadata.json)")
    run_parser.add_argument("--max-samples", type=_positive_int, default=20, help="samples kept per identity")
    run_parser.add_argument("--confirm-frames", type=_positive_int, default=3,
                            help="frames a new person is matched before being identified or enrolled")
    run_parser.add_argument("--max-missed", type=_positive_int, default=10,
                            help="frames a track survives without a detection")
    run_parser.add_argument("--track-similarity", type=float, default=0.5,
                            help="smallest embedding cosine for a detection to continue a track")

    enroll = commands.add_parser("enroll", help="add a named person from a folder of images")
    _add_model_arguments(enroll)
    enroll.add_argument("--gallery", required=True)
    enroll.add_argument("--name", required=True)
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
    rename.add_argument("name")

    forget = commands.add_parser("forget", help="delete identities and their samples")
    forget.add_argument("--gallery", required=True)
    forget.add_argument("identities", nargs="*", help="identity ids or names")
    forget.add_argument("--all", action="store_true", help="delete every identity")
    return parser


def _existing_gallery(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"gallery {path} does not exist")
    return Gallery(path)


def command_run(args):
    options = RunOptions(
        model_dir=args.model_dir, source=args.source, mode=args.mode, gallery=args.gallery, headless=args.headless,
        out_video=args.out_video, events=args.events, mjpeg_port=args.mjpeg_port, mjpeg_host=args.mjpeg_host,
        threads=args.threads, max_frames=args.max_frames, stats_every=args.stats_every, detector=args.detector,
        hog_model=args.hog_model, detect_resize=args.detect_resize, hog_scale=args.hog_scale,
        min_score=args.min_score, min_height=args.min_height, contained=args.contained,
        person_class=args.person_class,
        shortlist=args.shortlist, threshold=args.threshold, max_samples=args.max_samples,
        confirm_frames=args.confirm_frames, max_missed=args.max_missed, track_similarity=args.track_similarity)
    run(options)


def _enrolment_crops(folder, image_size, detect):
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} does not exist")
    detector = HOGDetector() if detect else None
    crops = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        path = os.path.join(folder, name)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            print(f"skipped {path}: not a readable image", file=sys.stderr)
            continue
        box = (0, 0, image.shape[1], image.shape[0])
        if detector is not None:
            found = detector(image)
            if not found:
                print(f"skipped {path}: no person found", file=sys.stderr)
                continue
            box = max(found, key=lambda d: d.box[2] * d.box[3]).box
        crops.append(crop_person(image, box, image_size))
    if not crops:
        raise ValueError(f"no usable images of a person in {folder} (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return crops


def command_enroll(args):
    models = ReIDModels.load(args.model_dir, args.mode, num_threads=args.threads)
    crops = _enrolment_crops(args.folder, models.image_size, args.detect)
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
    print(f"enrolled {len(crops)} images of {args.name} as identity {identity} ({kept} samples kept)")


def _when(timestamp):
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def command_list(args):
    gallery = _existing_gallery(args.gallery)
    try:
        if args.thumbnails:
            os.makedirs(args.thumbnails, exist_ok=True)
        print(f"{'id':>5}  {'name':<20} {'samples':>7}  {'created':<19}  last seen")
        for entry in gallery.identities():
            print(f"{entry.id:>5}  {entry.name or '-':<20} {entry.samples:>7}  {_when(entry.created)}  "
                  f"{_when(entry.last_seen)}")
            jpeg = gallery.thumbnail(entry.id) if args.thumbnails else None
            if jpeg is not None:
                path = os.path.join(args.thumbnails, f"identity_{entry.id}.jpg")
                partial = path + ".partial"
                with open(partial, "wb") as f:
                    f.write(jpeg)
                os.replace(partial, path)
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
        with gallery.transaction():
            targets = ([entry.id for entry in gallery.identities()] if args.all
                       else [gallery.find(key) for key in args.identities])
            for identity in targets:
                gallery.forget(identity)
    finally:
        gallery.close()
    print(f"forgot {len(targets)} identities")


COMMANDS = {"run": command_run, "enroll": command_enroll, "list": command_list, "rename": command_rename,
            "forget": command_forget}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError, KeyError, SourceError, ImportError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
