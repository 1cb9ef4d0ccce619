"""Writes a synthetic ReID dataset in the Market-1501 layout.

The layout and naming are those of the real Market-1501 release, so the Market
reader loads it unchanged:

    out_dir/bounding_box_train/0002_c1s1_000451_03.jpg
    out_dir/bounding_box_test/...   gallery, with distractors 0000_* and junk -1_*
    out_dir/query/...               one query per test identity and camera
    out_dir/msreid_synthetic.json   generator, seed and the expected counts

Half of the identities train, half test. Every identity walks past at least two
cameras; the pictures of one identity in one camera form a track (one viewpoint,
consecutive frame numbers), so same-camera matches are easy and the protocol drops
them. Every picture has its own random stream derived from the seed, so the output
is byte-identical for a seed whatever the order of rendering.

Example:

>>> manifest = write_market1501("/tmp/synthetic_market", num_ids=100, num_cameras=6, seed=0)
>>> sorted(manifest["counts"])
['gallery_images', 'query_images', 'train_ids', 'train_images']
"""

import concurrent.futures
import json
import os
import shutil
import tempfile

import cv2
import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.synthetic.appearance import identity_appearance
from keras_msreid.synthetic.camera import camera_style
from keras_msreid.synthetic.crop import (
    render_crop,
    render_distractor,
    render_junk,
    sample_view,
)

MANIFEST_NAME = "msreid_synthetic.json"
TRAIN_DIR, GALLERY_DIR, QUERY_DIR = "bounding_box_train", "bounding_box_test", "query"
MAX_CAMERAS = 9  # Market names hold the camera as one digit: c1..c9
MAX_IDS = 9999  # and the person as four

# Random streams: the first key after the seed keeps them independent (1 and 2 are
# the identity and camera streams of `identity_appearance` and `camera_style`).
_PLAN_STREAM, _PICTURE_STREAM, _TRACK_STREAM = 0, 3, 4
_DISTRACTOR_FRACTION, _JUNK_FRACTION = 0.05, 0.02


def _file_name(person_id, camera, sequence, frame, box):
    person = "-1" if person_id < 0 else f"{person_id:04d}"
    return f"{person}_c{camera}s{sequence}_{frame:06d}_{box:02d}.jpg"


def _plan(num_ids, num_cameras, seed):
    """Lists every picture to render as (folder, file name, kind, person id, camera)."""
    rng = np.random.default_rng([seed, _PLAN_STREAM])
    id_range = min(MAX_IDS, 2 * num_ids)  # sparse ids, like Market's 0002, 0007, ...
    person_ids = np.sort(rng.choice(np.arange(1, id_range + 1), size=num_ids, replace=False))
    train_ids = set(rng.choice(person_ids, size=num_ids // 2, replace=False).tolist())
    used_names = set()
    pictures = []

    def add(folder, person_id, camera, sequence, frame, kind):
        name = _file_name(person_id, camera, sequence, frame, int(rng.integers(1, 9)))
        while name in used_names:  # only distractors and junk can collide
            frame += 1
            name = _file_name(person_id, camera, sequence, frame, int(rng.integers(1, 9)))
        used_names.add(name)
        pictures.append((folder, name, kind, person_id, camera))

    for person_id in person_ids.tolist():
        count = int(rng.integers(2, num_cameras + 1))
        cameras = np.sort(rng.choice(np.arange(1, num_cameras + 1), size=count, replace=False))
        for camera in cameras.tolist():
            sequence, frame = int(rng.integers(1, 7)), int(rng.integers(1, 150000))
            if person_id in train_ids:
                folders = [TRAIN_DIR] * int(rng.integers(2, 6))
            else:
                folders = [QUERY_DIR] + [GALLERY_DIR] * int(rng.integers(1, 5))
            for folder in folders:
                frame += int(rng.integers(5, 40))
                add(folder, person_id, camera, sequence, frame, "person")
    gallery_size = sum(folder == GALLERY_DIR for folder, *_ in pictures)
    for person_id, kind, fraction in ((0, "distractor", _DISTRACTOR_FRACTION), (-1, "junk", _JUNK_FRACTION)):
        for _ in range(max(1, round(fraction * gallery_size))):
            camera = int(rng.integers(1, num_cameras + 1))
            add(GALLERY_DIR, person_id, camera, int(rng.integers(1, 7)), int(rng.integers(1, 150000)), kind)
    return pictures


def _cached(cache, key, make):
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _render(index, picture, seed, image_size, cache):
    """Renders one planned picture as BGR uint8 with its own random stream."""
    _, _, kind, person_id, camera = picture
    style = _cached(cache, ("camera", camera), lambda: camera_style(camera, seed))
    rng = np.random.default_rng([seed, _PICTURE_STREAM, index])
    if kind == "distractor":
        rgb = render_distractor(style, rng, image_size)
    elif kind == "junk":  # a sliver of some random person
        rgb = render_junk(identity_appearance(int(rng.integers(1, MAX_IDS + 1)), seed), style, rng, image_size)
    else:
        appearance = _cached(cache, ("person", person_id), lambda: identity_appearance(person_id, seed))
        track_rng = lambda: np.random.default_rng([seed, _TRACK_STREAM, person_id, camera])  # noqa: E731
        view = _cached(cache, ("view", person_id, camera), lambda: sample_view(style, track_rng()))
        rgb = render_crop(appearance, style, rng, image_size, view=view)
    return rgb[..., ::-1], style.jpeg_quality


def _validate(num_ids, num_cameras, image_size):
    if not 2 <= num_ids <= MAX_IDS:
        raise UserError(f"num_ids must be between 2 and {MAX_IDS} (Market names hold 4 digits), got {num_ids}")
    if not 2 <= num_cameras <= MAX_CAMERAS:
        raise UserError(
            f"num_cameras must be between 2 and {MAX_CAMERAS} (Market names hold 1 digit), got {num_cameras}"
        )
    if len(image_size) != 2 or min(image_size) < 16:
        raise UserError(f"image_size must be (height, width) of at least 16 pixels each, got {image_size}")


def _check_target(out_dir, overwrite):
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"output path {out_dir} exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f"output directory {out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it"
        )


def _count(pictures, num_ids, num_cameras, seed, image_size):
    train = [p for p in pictures if p[0] == TRAIN_DIR and p[2] == "person"]
    return {
        "generator": "keras_msreid.synthetic",
        "seed": int(seed),
        "num_ids": int(num_ids),
        "num_cameras": int(num_cameras),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "counts": {
            "train_ids": len({p[3] for p in train}),
            "train_images": len(train),
            "query_images": sum(p[0] == QUERY_DIR for p in pictures),
            "gallery_images": sum(p[0] == GALLERY_DIR and p[2] != "junk" for p in pictures),
        },
    }


def write_market1501(out_dir, num_ids=100, num_cameras=6, seed=0, image_size=(128, 64), overwrite=False,
                     progress=None, workers=4):
    """Writes a synthetic Market-1501-layout dataset and returns its manifest.

    Args:
        out_dir: dataset root to create. An existing non-empty directory is
            replaced only with `overwrite=True`.
        num_ids: number of identities (half train, half test), 2 to 9999.
        num_cameras: number of cameras, 2 to 9.
        seed: the same seed gives byte-identical files.
        image_size: (height, width) of the crops.
        progress: optional callable `progress(done, total)` called as pictures are written.
        workers: threads rendering and writing pictures; the output does not depend on it.

    Returns:
        The manifest also written to `out_dir/msreid_synthetic.json`: generator,
        seed, num_ids, num_cameras, image_size and counts (train_ids and
        train_images without junk, query_images, gallery_images after dropping
        junk -1 with distractors 0000 included).
    """
    _validate(num_ids, num_cameras, image_size)
    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_target(out_dir, overwrite)
    parent, base = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    pictures = _plan(num_ids, num_cameras, seed)
    manifest = _count(pictures, num_ids, num_cameras, seed, image_size)
    # Build in a hidden sibling and rename at the end: a killed run leaves no
    # directory that looks like a complete dataset.
    staging = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    try:
        for folder in (TRAIN_DIR, GALLERY_DIR, QUERY_DIR):
            os.mkdir(os.path.join(staging, folder))
        cache = {}

        def write(index):
            bgr, quality = _render(index, pictures[index], seed, tuple(image_size), cache)
            path = os.path.join(staging, pictures[index][0], pictures[index][1])
            if not cv2.imwrite(path, bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"could not write image {path}")

        # Threads overlap OpenCV's drawing, encoding and file writes (which release the
        # GIL); every picture has its own random stream, so the files do not depend on
        # the order in which threads finish.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        try:
            for done, _ in enumerate(pool.map(write, range(len(pictures))), start=1):
                if progress is not None:
                    progress(done, len(pictures))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        with open(os.path.join(staging, MANIFEST_NAME), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _replace_directory(source, target):
    """Moves `source` to `target`, deleting an old `target` only once `source` is in place."""
    if not os.path.isdir(target):
        os.replace(source, target)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
    os.replace(target, old)  # rename onto the empty placeholder
    os.replace(source, target)
    shutil.rmtree(old)
