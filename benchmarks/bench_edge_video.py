"""The edge demo on a real video: frame rate per stage, and identity quality against ground truth.

Runs `edge_demo.pipeline.run` (the demo itself, headless, a fresh gallery each run)
once per setting and thread count, one after the other in this process, and scores
each run's event log against a MOT Challenge ground-truth file with
`keras_msreid.metrics.tracking.score_tracks` (IDF1, identity switches, MOTA,
detection recall and precision, identities created against true people), on the
annotated frames only.

Settings (`--settings`, any of):
- `full`: HOG over the whole frame, `--detect-resize 1.5 --hog-scale 1.1 --min-score 1.0`
  (what found vtest.avi's people before motion regions);
- `pi`: `python -m edge_demo run --profile pi`: the same HOG, only where the picture
  moves (`--motion`).

```bash
msreid export MODEL --out export ...
python benchmarks/bench_edge_video.py ../shared/data/vtest.avi --model-dir export \\
    --truth benchmarks/ground_truth/vtest.gt.txt --threads 1 2 --json edge_vtest.json
```
"""

import argparse
import json
import os
import sys
import tempfile

from keras_msreid.edge_demo.cli import PROFILES
from keras_msreid.edge_demo.pipeline import RunOptions, run
from keras_msreid.metrics.tracking import read_event_log, read_mot_file, score_tracks

FULL_FRAME = dict(detect_resize=1.5, hog_scale=1.1, min_score=1.0)
SETTINGS = {"full": FULL_FRAME, "pi": PROFILES["pi"]}
STAGES = ("detect", "extract", "match", "output")


def run_setting(video, model_dir, mode, options, threads, max_frames):
    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as quiet:
        events = os.path.join(folder, "events.jsonl")
        summary = run(RunOptions(model_dir=model_dir, source=video, mode=mode, headless=True,
                                 gallery=os.path.join(folder, "gallery.sqlite"), events=events, threads=threads,
                                 max_frames=max_frames, stats_every=1e9, **options),
                      log=quiet)
        return summary, read_event_log(events) if os.path.exists(events) else {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--model-dir", required=True, help="export folder (msreid export --out)")
    parser.add_argument("--mode", default="int8", choices=("int8", "float32"))
    parser.add_argument("--truth", help="MOT Challenge ground truth of the video (frames from 1)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--json", help="also write every run's summary and scores here")
    args = parser.parse_args()

    truth = read_mot_file(args.truth) if args.truth else None
    rows = []
    for name in args.settings:
        for threads in args.threads:
            summary, events = run_setting(args.video, args.model_dir, args.mode, SETTINGS[name], threads,
                                          args.max_frames)
            frames = None
            if truth is not None and args.max_frames:
                frames = [frame for frame in truth if frame < args.max_frames]
            scores = score_tracks(truth, events, frames) if truth is not None else {}
            rows.append(dict(setting=name, threads=threads, summary=summary, scores=scores))
            print(f"{name} x{threads}: {summary['fps']:.1f} fps", file=sys.stderr, flush=True)

    print(f"\n{'setting':<8} {'threads':>7} {'frames':>6} {'fps':>6} " + " ".join(f"{s + ' ms':>10}" for s in STAGES)
          + f" {'IDF1':>6} {'MOTA':>6} {'recall':>6} {'prec.':>6} {'IDsw':>5} {'ids':>4} {'people':>6}")
    for row in rows:
        summary, scores = row["summary"], row["scores"]
        stages = " ".join(f"{summary.get(f'{s}_ms_median', 0):10.1f}" for s in STAGES)
        quality = (f" {100 * scores['idf1']:6.1f} {100 * scores['mota']:6.1f} {100 * scores['recall']:6.1f} "
                   f"{100 * scores['precision']:6.1f} {scores['num_switches']:5d} {summary['identities_created']:4d} "
                   f"{scores['people']:6d}") if scores else ""
        print(f"{row['setting']:<8} {row['threads']:>7} {summary['frames']:>6} {summary['fps']:6.1f} {stages}{quality}")
    print("(stage times: medians per frame; ids: identities the demo created; people: in the ground truth)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
