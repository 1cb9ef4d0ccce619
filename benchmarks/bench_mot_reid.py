"""Re-identification of the annotated people of a video: an export's modes ranked on its own camera.

A MOT Challenge ground truth (`frame,id,left,top,width,height,...`) names every person
box of the annotated frames; cut out of the video and resized to the export's image
size, they are a re-identification set of the camera the demo runs on. Every crop is a
query against every other; as the "other camera" of the Market-1501 protocol, crops
of the same person count only from another block of `--block` frames (a person seen
a moment later looks almost the same). Each mode ranks by embedding cosine and by
pair score (every pair scored, as `msreid validate` does), so float32 and int8 can be
compared on the deployment's own people rather than on the training dataset's.

```bash
python benchmarks/bench_mot_reid.py ../shared/data/vtest.avi --truth benchmarks/ground_truth/vtest.gt.txt \\
    --model-dir export
```
"""

import argparse

import cv2
import numpy as np

from keras_msreid.edge_demo.reid_models import ReIDModels
from keras_msreid.metrics import evaluate_ranking
from keras_msreid.metrics.tracking import read_mot_file
from keras_msreid.retrieval.ranking import embedding_similarity, rank_exhaustive


def annotated_crops(video, truth, image_size):
    """`(crops uint8 RGB (N, H, W, 3), person ids, frame indices from 0)` of every box in `truth`."""
    boxes = read_mot_file(truth)
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise ValueError(f"cannot open video {video}")
    crops, people, frames = [], [], []
    index = 0
    while index <= max(boxes):
        ok, frame = capture.read()
        if not ok:
            break
        for person, (left, top, width, height) in boxes.get(index, []):
            x0, y0 = max(0, int(round(left))), max(0, int(round(top)))
            x1, y1 = min(frame.shape[1], int(round(left + width))), min(frame.shape[0], int(round(top + height)))
            if x1 - x0 < 4 or y1 - y0 < 8:
                continue  # a box almost entirely outside the frame
            crop = cv2.resize(frame[y0:y1, x0:x1], (image_size[1], image_size[0]), interpolation=cv2.INTER_LINEAR)
            crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            people.append(person)
            frames.append(index)
        index += 1
    if not crops:
        raise ValueError(f"no box of {truth} lies in a frame of {video}")
    return np.stack(crops), np.array(people), np.array(frames)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--truth", required=True, help="MOT Challenge ground truth of the video (frames from 1)")
    parser.add_argument("--model-dir", required=True, help="export folder (msreid export --out)")
    parser.add_argument("--modes", nargs="+", default=["float32", "int8"])
    parser.add_argument("--block", type=int, default=100, help="frames per block; same-person matches only "
                                                               "from another block")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    args = parser.parse_args()

    image_size = None
    rows = []
    for mode in args.modes:
        reid = ReIDModels.load(args.model_dir, mode, num_threads=args.threads)
        if image_size is None:
            image_size = reid.image_size
            try:
                crops, people, frames = annotated_crops(args.video, args.truth, image_size)
            except ValueError as error:
                parser.error(str(error))
            blocks = frames // args.block
        features = reid.extract(crops)
        rankings = {"embedding": embedding_similarity(features["embedding"], features["embedding"])}
        if reid.scorer is not None:
            rankings["pair score"] = rank_exhaustive(reid.score, features, features)
        for name, scores in rankings.items():
            result = evaluate_ranking(scores, people, people, blocks, blocks, higher_is_better=True)
            rows.append(f"{mode:<8} {name:<11} {100 * result.cmc[0]:>6.1f} {100 * result.cmc[4]:>6.1f} "
                        f"{100 * result.mAP:>6.1f} {result.num_queries:>8}")
    print(f"{len(crops)} crops of {len(set(people.tolist()))} people; same-person matches from another "
          f"block of {args.block} frames")
    print(f"{'mode':<8} {'ranking':<11} {'R1':>6} {'R5':>6} {'mAP':>6} {'queries':>8}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
