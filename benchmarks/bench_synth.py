"""Speed of the synthetic dataset writer, and HOG detection of the synthetic video's people.

1. `write_market1501` at the default size (100 identities, 6 cameras, 128x64): images
   per second, median of a few runs, written to a temporary folder.
2. `write_pedestrian_video` clips, run through the edge demo's default detector
   (OpenCV HOG people detector, winStride (8, 8), scale 1.05): per person, the share
   of frames in which a detection matches the ground truth, counted over frames where
   the person is fully inside the frame and at most 30% covered by nearer people. A
   match is IoU >= 0.4 with the window HOG would ideally report for the box (the
   detector's 64x128 window frames a 96-pixel person: height x 4/3, width half of that).

    python benchmarks/bench_synth.py            # both parts
    python benchmarks/bench_synth.py --skip-video --runs 5
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

from keras_msreid.synthetic import write_market1501, write_pedestrian_video

# (seed, people, frames) of the clips measured: pairs that cross, and a busier scene.
CLIPS = ((0, (0, 1), 60), (1, (2, 3), 60), (2, (4, 5), 60), (3, (6, 7, 8), 80))
MATCH_IOU = 0.4


def bench_dataset(num_ids, num_cameras, runs):
    rates = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            manifest = write_market1501(os.path.join(root, "synthetic"), num_ids=num_ids, num_cameras=num_cameras,
                                        seed=run)
            seconds = time.perf_counter() - start
            images = sum(len(files) for _, _, files in os.walk(root)) - 1  # minus the manifest
        rates.append(images / seconds)
        print(f"  run {run}: {images} images ({manifest['counts']}) in {seconds:.2f} s "
              f"= {images / seconds:.0f} images/s")
    print(f"dataset writer, {num_ids} ids x {num_cameras} cameras: median {statistics.median(rates):.0f} images/s "
          f"over {runs} runs")


def ideal_window(box):
    x, y, w, h = box
    height = h * 128 / 96
    return (x + w / 2 - height / 4, y + h / 2 - height / 2, height / 2, height)


def iou(a, b):
    width = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def bench_video(directory):
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    print(f"{'seed':>4} {'id':>4} {'person':>6} {'frames':>6} {'detected':>8} {'rate':>6}   false detections / frame")
    rates = []
    for seed, people, frames in CLIPS:
        path = os.path.join(directory, f"walk_{seed}.mp4")
        truth = write_pedestrian_video(path, list(people), frames=frames, seed=seed)
        capture = cv2.VideoCapture(path)
        counted = np.zeros(len(people), int)
        detected = np.zeros(len(people), int)
        false_detections = 0
        for entries in truth:
            ok, frame = capture.read()
            if not ok:
                raise RuntimeError(f"could not read back a frame of {path}")
            rects, _ = hog.detectMultiScale(frame, winStride=(8, 8), scale=1.05)
            windows = [ideal_window(e["box"]) for e in entries]
            false_detections += sum(max((iou(w, r) for w in windows), default=0.0) < MATCH_IOU for r in rects)
            for entry, window in zip(entries, windows):
                if entry["visible"] < 0.99 or entry["occluded"] > 0.3:
                    continue
                counted[entry["person"]] += 1
                detected[entry["person"]] += max((iou(window, r) for r in rects), default=0.0) >= MATCH_IOU
        capture.release()
        for index, person in enumerate(people):
            rate = detected[index] / max(1, counted[index])
            rates.append(rate)
            print(f"{seed:>4} {person:>4} {index:>6} {counted[index]:>6} {detected[index]:>8} {100 * rate:>5.0f}%"
                  + (f"   {false_detections / frames:.2f}" if index == 0 else ""))
    print(f"HOG detection rate per person: median {100 * statistics.median(rates):.0f}%, "
          f"min {100 * min(rates):.0f}%, max {100 * max(rates):.0f}%")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-dataset", action="store_true")
    parser.add_argument("--skip-video", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_dataset:
        bench_dataset(args.ids, args.cameras, args.runs)
    if not args.skip_video:
        with tempfile.TemporaryDirectory() as directory:
            bench_video(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
