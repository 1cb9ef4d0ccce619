"""`msreid synth`: writes the built-in synthetic dataset in the Market-1501 layout.

Example:

```bash
msreid synth --out data/synthetic --ids 100 --cameras 6 --seed 0
msreid datasets market1501 data/synthetic   # it reads as Market-1501
msreid synth --out data/synthetic --video data/street.mp4   # plus a video of test identities
```
"""

from keras_msreid.cli.arguments import at_least

HELP = "Write a synthetic Market-1501-layout ReID dataset of rendered pedestrians."


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--ids", type=int, default=100, help="identities, half train, half test (default 100)")
    parser.add_argument("--cameras", type=int, default=6, help="cameras, 2 to 9 (default 6)")
    parser.add_argument("--seed", type=at_least(0), default=0,
                        help="the same seed writes byte-identical files (default 0)")
    parser.add_argument("--height", type=int, default=128, help="image height in pixels (default 128)")
    parser.add_argument("--width", type=int, default=64, help="image width in pixels (default 64)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--video", help="also write a video (.mp4 or .avi) of test identities walking by")
    parser.add_argument("--video-people", type=at_least(1), default=3, help="people in the video (default 3)")
    parser.add_argument("--video-frames", type=at_least(1), default=120, help="frames in the video (default 120)")


def run(args):
    import os
    import sys
    import time

    from keras_msreid.synthetic import write_market1501

    if args.video:
        from keras_msreid.errors import UserError
        from keras_msreid.synthetic.video import CODECS

        if os.path.splitext(args.video)[1].lower() not in CODECS:  # before minutes of rendering, not after
            raise UserError(f"--video {args.video} must end with one of {', '.join(sorted(CODECS))}")
    start = time.perf_counter()

    def progress(done, total):
        step = max(1, total // 10)  # about ten progress lines
        if done % step == 0 or done == total:
            print(f"rendered {done}/{total} images", file=sys.stderr, flush=True)

    manifest = write_market1501(
        args.out, num_ids=args.ids, num_cameras=args.cameras, seed=args.seed,
        image_size=(args.height, args.width), overwrite=args.overwrite, progress=progress,
    )
    if args.video:
        from keras_msreid.synthetic import write_pedestrian_video

        # Test identities (they have queries), drawn as in the dataset with the same seed.
        test_ids = sorted({int(name[:4]) for name in os.listdir(os.path.join(args.out, "query"))})
        people = test_ids[: args.video_people]
        write_pedestrian_video(args.video, people, frames=args.video_frames, seed=args.seed)
        print(f"wrote {args.video}: {args.video_frames} frames with identities {people}")
    counts = manifest["counts"]
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {counts['train_ids']} training identities, "
          f"{counts['train_images']} training images, {counts['query_images']} queries, "
          f"{counts['gallery_images']} gallery images (distractors included, junk excluded)")
    return 0
