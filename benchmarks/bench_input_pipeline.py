"""Images per second delivered by the training input pipeline (issue 2 target: 1,500/s).

Three tables, each figure a median over repeated timings in the same run:
1. whole pipelines: PK batches at 160x64 from image files, with and without the
   default augmentation, from files or from the decoded-image cache, next to a plain
   shuffle-decode-batch reference;
2. the per-image stage alone (one thread): decode, and decode + resize with the
   antialiased kernel against the plain bilinear one `load_image` uses to upscale;
3. each augmentation op on one batch, uint8 against float32 input.
Without --root it writes a temporary Market-1501-style folder of 128x64 JPEGs of
smooth random colour (about the size and decoding cost of real crops).

    python benchmarks/bench_input_pipeline.py
    python benchmarks/bench_input_pipeline.py --root ../shared/data/cuhk01
"""

import argparse
import collections
import os
import pathlib
import re
import statistics
import tempfile
import time

import cv2
import numpy as np

Record = collections.namedtuple("Record", "path pid camid")

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
CUHK01_NAME = re.compile(r"^(\d{4})(\d{3})\.png$")
IMAGE_SIZE = (160, 64)


def write_synthetic_folder(folder, num_images, seed=0):
    """Market-1501-named 128x64 JPEGs of smooth colour noise, 4 to 12 per identity."""
    rng = np.random.default_rng(seed)
    records = []
    pid = 0
    while len(records) < num_images:
        for index in range(int(rng.integers(4, 13))):
            coarse = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
            image = cv2.resize(coarse, (64, 128), interpolation=cv2.INTER_CUBIC)
            grain = rng.normal(0, 6, image.shape)
            image = np.clip(image + grain, 0, 255).astype(np.uint8)
            camid = int(rng.integers(1, 7))
            path = os.path.join(folder, f"{pid:04d}_c{camid}s1_{index:06d}_00.jpg")
            cv2.imwrite(path, image)
            records.append(Record(path, pid, camid))
        pid += 1
    return records


def read_folder(root):
    """Records from Market-style names (`0002_c1s1_...jpg`) or CUHK01 names (`0001001.png`)."""
    root = pathlib.Path(root)
    if (root / "bounding_box_train").is_dir():
        root = root / "bounding_box_train"
    if not root.is_dir():
        raise SystemExit(f"--root {root} is not a folder")
    records = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        market, cuhk01 = MARKET_NAME.match(path.name), CUHK01_NAME.match(path.name)
        if market and int(market.group(1)) >= 0:
            records.append(Record(str(path), int(market.group(1)), int(market.group(2))))
        elif cuhk01:
            camid = 1 if int(cuhk01.group(2)) <= 2 else 2
            records.append(Record(str(path), int(cuhk01.group(1)) - 1, camid))
    if not records:
        raise SystemExit(f"--root {root}: no Market-1501 or CUHK01 style image names found")
    return records


def time_batches(dataset, batch_size, batches, warmup):
    """(images per wall second, images per CPU second of this process) on a fresh iterator.

    The CPU figure counts all threads, so it stays meaningful when other processes
    share the machine.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batch_size * batches / wall, batch_size * batches / cpu


def reference_dataset(records, batch_size, augment):
    """No PK grouping and no corrupt-file net: shuffle, decode in parallel, batch."""
    import tensorflow as tf

    from keras_msreid.data.augment import augment_batch
    from keras_msreid.data.pipeline import load_image

    paths = tf.constant([record.path for record in records])
    labels = tf.constant([record.pid for record in records], tf.int32)

    def load(index):
        return load_image(paths[index], IMAGE_SIZE, tf.uint8), labels[index]

    def finish(step, batch):
        images, batch_labels = batch
        if augment is None:
            return tf.cast(images, tf.float32), batch_labels
        step_seed = tf.stack([tf.constant(0, tf.int64), step])
        return augment_batch(images, step_seed, augment), batch_labels

    return (
        tf.data.Dataset.range(len(records))
        .shuffle(len(records))
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(batch_size, drop_remainder=True)
        .enumerate()
        .map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .prefetch(tf.data.AUTOTUNE)
    )


def pipeline_table(records, args):
    from keras_msreid.data import AugmentConfig, make_train_dataset

    batch_size = args.p * args.k
    jitter = AugmentConfig(brightness=0.2, contrast=0.15)
    variants = {
        "PK + default augmentation (flip, pad-crop, erasing)": lambda: make_train_dataset(
            records, IMAGE_SIZE, args.p, args.k, AugmentConfig()
        ),
        "PK + default augmentation + brightness/contrast jitter": lambda: make_train_dataset(
            records, IMAGE_SIZE, args.p, args.k, jitter
        ),
        "PK + default augmentation, deterministic=True": lambda: make_train_dataset(
            records, IMAGE_SIZE, args.p, args.k, AugmentConfig(), deterministic=True
        ),
        "PK + default augmentation, cache_decoded=True": lambda: make_train_dataset(
            records, IMAGE_SIZE, args.p, args.k, AugmentConfig(), cache_decoded=True
        ),
        "PK, no augmentation": lambda: make_train_dataset(
            records, IMAGE_SIZE, args.p, args.k, None
        ),
        "reference: shuffle, decode, batch + default augmentation": lambda: reference_dataset(
            records, batch_size, AugmentConfig()
        ),
        "reference: shuffle, decode, batch": lambda: reference_dataset(records, batch_size, None),
    }
    rates = {name: [] for name in variants}
    # Rounds over all variants, so that load from other processes hits them alike.
    for _ in range(args.runs):
        for name, build in variants.items():
            rates[name].append(time_batches(build(), batch_size, args.batches, args.warmup))
    print(f"\n1. Pipelines, {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, batch {args.p}x{args.k}: "
          f"{args.runs} rounds of {args.batches} batches after {args.warmup} warm-up\n")
    print("| pipeline | median images/s | min | max | images per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in rates.items():
        wall = [rate for rate, _ in runs]
        cpu = statistics.median(rate for _, rate in runs)
        print(f"| {name} | {statistics.median(wall):,.0f} | {min(wall):,.0f} | "
              f"{max(wall):,.0f} | {cpu:,.0f} |", flush=True)


def per_image_table(records, args):
    import tensorflow as tf

    from keras_msreid.data import load_image

    def decode(path):
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    stages = {
        "decode": decode,
        "decode + resize, antialiased kernel": lambda path: tf.image.resize(
            decode(path), IMAGE_SIZE, antialias=True
        ),
        "load_image (plain bilinear when upscaling), uint8": lambda path: load_image(
            path, IMAGE_SIZE, tf.uint8
        ),
    }
    paths = [record.path for record in records]
    rates = {name: [] for name in stages}
    for _ in range(args.runs):
        for name, stage in stages.items():
            dataset = tf.data.Dataset.from_tensor_slices(paths).repeat().map(stage).batch(64)
            rates[name].append(time_batches(dataset, 64, 10, 2)[0])
    print("\n2. Per-image stage, one thread, images/s (median)\n")
    print("| stage | images/s |")
    print("|---|---:|")
    for name, runs in rates.items():
        print(f"| {name} | {statistics.median(runs):,.0f} |", flush=True)


def augment_table(args):
    import tensorflow as tf

    from keras_msreid.data import augment

    seed = tf.constant([0, 1], tf.int64)
    ops = {
        "flip + pad-crop": lambda x: augment.augment_batch(
            x, seed, augment.AugmentConfig(erasing_probability=0)
        ),
        "random erasing (mean fill)": lambda x: augment.random_erasing(x, seed),
        "random erasing (random fill)": lambda x: augment.random_erasing(x, seed, fill="random"),
        "brightness + contrast jitter": lambda x: augment.color_jitter(x, seed, 0.2, 0.15),
        "augment_batch, default config": lambda x: augment.augment_batch(x, seed),
    }
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.p * args.k, *IMAGE_SIZE, 3), dtype=np.uint8)
    inputs = {"uint8": tf.constant(batch), "float32": tf.constant(batch, tf.float32)}
    print(f"\n3. Augmentation ops on one {args.p * args.k}-image batch, ms (median of 20 calls)\n")
    print("| op | uint8 input | float32 input |")
    print("|---|---:|---:|")
    for name, op in ops.items():
        compiled = tf.function(op)
        times = []
        for images in inputs.values():
            compiled(images)
            calls = []
            for _ in range(20):
                start = time.perf_counter()
                compiled(images)
                calls.append(time.perf_counter() - start)
            times.append(1e3 * statistics.median(calls))
        print(f"| {name} | {times[0]:.1f} | {times[1]:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (Market-1501 or CUHK01 naming)")
    parser.add_argument("--images", type=int, default=2000, help="synthetic images to write")
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batches", type=int, default=60, help="batches per timed run")
    parser.add_argument("--runs", type=int, default=3, help="rounds over all variants")
    parser.add_argument("--warmup", type=int, default=10, help="batches before each timing")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        if args.root:
            records, source = read_folder(args.root), args.root
        else:
            records = write_synthetic_folder(folder, args.images)
            source = f"synthetic 128x64 JPEGs in {folder}"
        print(f"source: {source}; {len(records)} images, "
              f"{len({r.pid for r in records})} identities; TF {tf.__version__}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        pipeline_table(records, args)
        per_image_table(records, args)
        augment_table(args)
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end "
              "(this benchmark alone accounts for about 2)")


if __name__ == "__main__":
    main()
