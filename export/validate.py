"""Checks an export against its Keras model on an evaluation split.

For the Keras float model and every exported mode (run with the LiteRT
interpreter through the edge demo's runtime, `edge_demo.reid_models`): per extractor output, the max and mean
absolute error against Keras; for the scores of all query x gallery pairs, their
correlation and max / mean absolute difference with Keras; CMC / mAP of the
embedding ranking (cosine) and of the CSN-score ranking; and the balanced
accuracy of same / different decisions at the export's match threshold.

Every query is scored against the whole gallery with the scorer, which suits
small test splits such as CUHK01's 200 x 200.

From the command line: `msreid validate EXPORT --dataset cuhk01 --root /data/cuhk01`
(keras_msreid/cli/validate.py).
"""

import os

import numpy as np

from keras_msreid.edge_demo.reid_models import ReIDModels, read_metadata
from keras_msreid.export.threshold import balanced_accuracy
from keras_msreid.errors import UserError
from keras_msreid.retrieval.ranking import rank_exhaustive


class EvaluationSplit:
    """Query and gallery images with their identities and cameras."""

    def __init__(self, query_images, gallery_images, query_ids, gallery_ids, query_cams, gallery_cams, protocol):
        self.images = {"query": np.asarray(query_images), "gallery": np.asarray(gallery_images)}
        self.ids = {"query": np.asarray(query_ids), "gallery": np.asarray(gallery_ids)}
        self.cams = {"query": np.asarray(query_cams), "gallery": np.asarray(gallery_cams)}
        self.protocol = protocol

    @classmethod
    def from_dataset(cls, dataset, image_size, protocol=None):
        """Loads the query and gallery as uint8 pixels: what a camera gives every model.

        `protocol` None scores by the dataset's own (`ReIDDataset.protocol`).
        """
        from keras_msreid.export.images import load_images

        def pixels(records):
            return np.round(load_images(records, image_size)).astype(np.uint8)

        return cls(
            pixels(dataset.query),
            pixels(dataset.gallery),
            [r.pid for r in dataset.query],
            [r.pid for r in dataset.gallery],
            [r.camid for r in dataset.query],
            [r.camid for r in dataset.gallery],
            protocol or dataset.protocol,
        )

    def ranking(self, similarity):
        from keras_msreid.metrics import evaluate_ranking

        return evaluate_ranking(
            similarity,
            self.ids["query"],
            self.ids["gallery"],
            self.cams["query"],
            self.cams["gallery"],
            protocol=self.protocol,
            higher_is_better=True,
        ).as_dict()

    def is_same(self):
        return self.ids["query"][:, None] == self.ids["gallery"][None, :]


def _batches(images, size):
    for start in range(0, len(images), size):
        yield images[start : start + size]


def _keras_results(model, split, batch_size):
    extractor = model.extractor()
    features = {
        part: extractor.predict(split.images[part].astype(np.float32), batch_size=batch_size, verbose=0)
        for part in ("query", "gallery")
    }
    scores = None
    if model.levels:
        scorer = model.scorer("grouped")
        names = model.scorer_feature_names
        num_gallery = len(split.images["gallery"])
        rows = []
        for index in range(len(split.images["query"])):
            inputs = {f"a_{n}": np.repeat(features["query"][n][index : index + 1], num_gallery, 0) for n in names}
            inputs.update({f"b_{n}": features["gallery"][n] for n in names})
            rows.append(np.asarray(scorer(inputs, training=False)["score"]))
        scores = np.stack(rows)
    return features, scores


def _litert_results(reid, split, batch_size):
    features = {
        # Every extractor output as LiteRT gives it, to compare each with Keras.
        part: _concatenate([reid.extractor(images=batch) for batch in _batches(split.images[part], batch_size)])
        for part in ("query", "gallery")
    }
    scores = None
    if reid.scorer is not None:
        # Encoded once per image, as the device stores them; every pair scored by the device's scorer.
        gallery = reid.encode(features["gallery"], side="b")
        query = reid.encode(features["query"], side="a")
        scores = rank_exhaustive(reid.score, query, gallery)
    return features, scores


def _concatenate(dicts):
    return {name: np.concatenate([d[name] for d in dicts]) for name in dicts[0]}


def _summaries(features, scores, split, threshold):
    embedding = {part: features[part]["embedding"] for part in features}
    summary = {"embedding_ranking": split.ranking(embedding["query"] @ embedding["gallery"].T)}
    if scores is not None:
        summary["score_ranking"] = split.ranking(scores)
        summary["balanced_accuracy"] = float(balanced_accuracy(scores.ravel(), split.is_same().ravel(), threshold))
        summary["distinct_scores"] = int(len(np.unique(scores)))
    return summary


def validate_export(export_dir, split, model=None, modes=None, num_threads=None, batch_size=32):
    """Runs Keras and each exported mode on `split`; returns the report dict.

    Args:
        export_dir: folder with `metadata.json`.
        split: an `EvaluationSplit`.
        model: the Keras model; by default the metadata's `source_model.path`.
        modes: modes to check (default: all exported).
        num_threads: LiteRT interpreter threads.
        batch_size: images per extractor invoke.
    """
    from keras_msreid.models import load_model

    try:
        metadata = read_metadata(export_dir)
    except ValueError as error:  # the runtime's reasons are the user's to fix
        raise UserError(str(error)) from None
    if model is None:
        path = metadata["source_model"]["path"]
        if not path or not os.path.isfile(path):
            raise UserError(f"the export's source model {path!r} is not available: pass the Keras model "
                            "(msreid validate --reference MODEL.keras)")
        model = load_model(path)
    modes = list(metadata["models"]) if modes is None else list(modes)
    threshold = metadata["match_threshold"]
    reference_features, reference_scores = _keras_results(model, split, batch_size)
    report = {
        "protocol": split.protocol,
        "num_query": len(split.images["query"]),
        "num_gallery": len(split.images["gallery"]),
        "match_threshold": threshold,
        "keras": _summaries(reference_features, reference_scores, split, threshold),
        "modes": {},
    }
    for mode in modes:
        try:
            reid = ReIDModels.load(export_dir, mode, num_threads=num_threads)
        except ValueError as error:
            raise UserError(str(error)) from None
        features, scores = _litert_results(reid, split, batch_size)
        errors = {}
        for name in reid.extractor.outputs:
            difference = np.abs(
                np.concatenate([features[p][name] - reference_features[p][name] for p in ("query", "gallery")])
            )
            errors[name] = {"max_abs": float(difference.max()), "mean_abs": float(difference.mean())}
        entry = {"output_errors": errors}
        if scores is not None:
            difference = np.abs(scores - reference_scores)
            entry["score_agreement"] = {
                "correlation": float(np.corrcoef(scores.ravel(), reference_scores.ravel())[0, 1]),
                "max_abs": float(difference.max()),
                "mean_abs": float(difference.mean()),
            }
        entry.update(_summaries(features, scores, split, threshold))
        report["modes"][mode] = entry
    return report


def format_report(report):
    """The report as text tables: accuracy per model, then errors per output."""
    lines = [
        f"{report['num_query']} queries x {report['num_gallery']} gallery, protocol {report['protocol']}, "
        f"match threshold {report['match_threshold']:.4f}",
        "",
        f"{'model':<9} {'emb R1':>7} {'emb mAP':>7} {'CSN R1':>7} {'CSN mAP':>7} {'bal.acc':>7} "
        f"{'score r':>8} {'score max|d|':>12} {'distinct':>8}",
    ]
    rows = [("keras", report["keras"])] + list(report["modes"].items())
    for name, entry in rows:
        score = entry.get("score_ranking")
        agreement = entry.get("score_agreement")
        lines.append(
            f"{name:<9} {100 * entry['embedding_ranking']['rank1']:7.2f} {100 * entry['embedding_ranking']['mAP']:7.2f} "
            + (
                f"{100 * score['rank1']:7.2f} {100 * score['mAP']:7.2f} {100 * entry['balanced_accuracy']:7.2f} "
                if score
                else f"{'-':>7} {'-':>7} {'-':>7} "
            )
            + (
                f"{agreement['correlation']:8.5f} {agreement['max_abs']:12.5f} "
                if agreement
                else f"{'-':>8} {'-':>12} "
            )
            + (f"{entry['distinct_scores']:8d}" if score else "")
        )
    lines += ["", "max / mean abs error of each extractor output against Keras"]
    modes = list(report["modes"])
    if modes:
        lines.append(f"{'output':<12} " + " ".join(f"{mode:>19}" for mode in modes))
        for name in report["modes"][modes[0]]["output_errors"]:
            cells = [report["modes"][mode]["output_errors"][name] for mode in modes]
            lines.append(
                f"{name:<12} " + " ".join(f"{c['max_abs']:9.5f} {c['mean_abs']:9.5f}" for c in cells)
            )
    return "\n".join(lines)
