"""`write_report`: the pictures and numbers of one evaluated model, in one folder.

Writes, in `out_dir`:

- `ranked_list.png`: queries beside their top-ranked gallery images (green: same
  identity, red: another), scores under each (`draw_ranked_list`);
- `cmc.png`: CMC curves of every ranking, plus those of other runs (`plot_cmc`);
- `attention.png`: the STN boxes of each level on a query and its best-ranked true
  match (models with similarity levels; `draw_attention`);
- `metrics.json`: `evaluate_model`'s result (per ranking: rank-k, mAP, mINP, CMC);
- `report.json`: the settings and the files written.

Example:

>>> files = write_report("runs/a/report", model, build_dataset("cuhk01", root))  # CUHK01's protocol
>>> files["ranked_list"]
'runs/a/report/ranked_list.png'
"""

import json
import pathlib

import numpy as np

from keras_msreid.data.pipeline import load_image
from keras_msreid.reports.attention import draw_attention, theta_to_boxes
from keras_msreid.reports.cmc_plot import plot_cmc
from keras_msreid.reports.ranked_list import draw_ranked_list
from keras_msreid.retrieval.evaluate import evaluate_scores, rank_dataset
from keras_msreid.utils.atomic import atomic_write_text

# Protocols under which a gallery image of the query's identity and camera is junk.
_SAME_CAMERA_JUNK = ("market1501", "cuhk03_sgs")


def write_report(out_dir, model, dataset, *, protocol=None, ranking="exhaustive", shortlist=100,
                 fusion_weight=0.5, num_queries=8, top=10, label="model", compare=None, batch_size=128,
                 progress=False):
    """Evaluates `model` on `dataset` and writes the report files; returns name -> path.

    Args:
        out_dir: folder to write into (created).
        model: an `MSReID`.
        dataset: a `ReIDDataset` with query and gallery records.
        protocol, ranking, shortlist, fusion_weight, batch_size, progress: as in `evaluate_model`.
        num_queries: rows of the ranked-list picture (queries spread over the query list).
        top: gallery images per row.
        label: name of this model in the CMC legend.
        compare: optional `{label: evaluate_model result}` of other runs for the CMC plot.
    """
    out_dir = pathlib.Path(out_dir)
    protocol = protocol or dataset.protocol
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, _, _ = rank_dataset(model, dataset, ranking=ranking, shortlist=shortlist,
                                fusion_weight=fusion_weight, batch_size=batch_size, progress=progress)
    metrics = evaluate_scores(scores, dataset, protocol)
    main = next(name for name in ("fusion", "csn", "embedding") if name in scores)
    files = {"metrics": out_dir / "metrics.json", "ranked_list": out_dir / "ranked_list.png",
             "cmc": out_dir / "cmc.png"}
    atomic_write_text(files["metrics"], json.dumps(metrics, indent=2))

    rows = np.unique(np.linspace(0, len(dataset.query) - 1, min(num_queries, len(dataset.query))).round().astype(int))
    ranked = [_ranked_gallery(scores[main][row], dataset.query[row], dataset.gallery, protocol) for row in rows]
    width = min(top, *(len(order) for order in ranked))
    if width == 0:
        raise ValueError("a chosen query has no gallery image left to show after removing junk")
    top_indices = np.array([order[:width] for order in ranked])
    top_scores = np.take_along_axis(scores[main][rows], top_indices, axis=1)
    gallery_pids = np.array([record.pid for record in dataset.gallery])
    matches = gallery_pids[top_indices] == np.array([dataset.query[row].pid for row in rows])[:, None]
    draw_ranked_list([dataset.query[row].path for row in rows], [record.path for record in dataset.gallery],
                     top_indices, top_scores, matches, files["ranked_list"])

    curves = {f"{label} {name}": result["cmc"] for name, result in metrics.items()}
    for other_label, other in (compare or {}).items():
        curves.update({f"{other_label} {name}": result["cmc"] for name, result in other.items()})
    plot_cmc(curves, files["cmc"], title=f"CMC on {dataset.name} ({protocol}, {ranking})")

    if model.levels:
        # The first row's query and its best-ranked true match (its top-1 if it has none).
        query = dataset.query[rows[0]]
        is_match = gallery_pids[ranked[0]] == query.pid
        rank = int(np.argmax(is_match)) if is_match.any() else 0
        match = dataset.gallery[ranked[0][rank]]
        files["attention"] = out_dir / "attention.png"
        draw_attention_pair(model, [query, match], files["attention"], captions=[
            f"query id {query.pid}", f"gallery id {match.pid}, rank {rank + 1}{'' if is_match.any() else ' (no match)'}"
        ])

    files["report"] = out_dir / "report.json"
    settings = dict(dataset=dataset.name, protocol=protocol, ranking=ranking, shortlist=shortlist,
                    fusion_weight=fusion_weight, pictured_ranking=main, queries=rows.tolist())
    files = {name: str(path) for name, path in files.items()}
    atomic_write_text(files["report"], json.dumps({"settings": settings, "files": files}, indent=2))
    return files


def draw_attention_pair(model, records, path, captions=None):
    """Draws the STN boxes of every level of `model` on the images of `records`."""
    images = np.stack([load_image(str(record.path), model.image_size).numpy() for record in records])
    features = model.extractor().predict_on_batch(images)
    boxes = [
        {
            level: theta_to_boxes(features[f"{level}_theta"][index], features[f"{level}_map"].shape[1:3],
                                  model.image_size, model.backbone.patch_size)
            for level in model.levels
        }
        for index in range(len(records))
    ]
    pixels = [np.clip(np.round(image), 0, 255).astype(np.uint8) for image in images]
    return draw_attention(pixels, boxes, path, captions)


def _ranked_gallery(query_scores, query, gallery, protocol):
    """Gallery indices by decreasing score, without the protocol's junk for this query."""
    keep = np.array([
        record.pid >= 0 and not (protocol in _SAME_CAMERA_JUNK and record.pid == query.pid and record.camid == query.camid)
        for record in gallery
    ])
    order = np.argsort(-query_scores, kind="stable")
    return order[keep[order]]
