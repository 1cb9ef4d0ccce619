"""`msreid search`: rank a feature store's images for one or more query images.

Example:

```bash
# First call: extract the gallery into a store (resumes if killed, reused afterwards).
msreid search run/model.keras --query person.jpg --store stores/market \
    --dataset market1501 --root data/Market-1501
# Later calls only read the store.
msreid search run/model.keras --query person.jpg --store stores/market --top 10
# A folder gallery grows in place: only images new to the folder are extracted.
msreid search run/model.keras --query person.jpg --store stores/cam1 --gallery cam1/
# Take images out of the store (no query needed to maintain it).
msreid search run/model.keras --store stores/cam1 --remove cam1/old.jpg
# Rewrite it as one segment without the removed rows (after many appends or removals).
msreid search run/model.keras --store stores/cam1 --compact
# Bring stores extracted apart (one per camera or machine) into one; every image keeps its id.
msreid search run/model.keras --store stores/all --merge stores/cam1 stores/cam2
```
"""

import os

import numpy as np

from keras_msreid.cli.arguments import add_ranking_options, at_least

HELP = "Rank the images of a feature store for query images (top-n with scores)."


def add_arguments(parser):
    parser.add_argument("model", help="the .keras model the store was (or is to be) extracted with")
    parser.add_argument("--query", nargs="+", help="query image file(s); without, only the store is built or updated")
    parser.add_argument("--store", required=True, help="feature store folder")
    parser.add_argument("--top", type=at_least(1), default=10, help="results printed per query (default 10)")
    add_ranking_options(parser, choose_ranking=False)
    source = parser.add_argument_group(
        "building or updating the store (it then holds exactly these images: new ones are extracted, "
        "missing ones removed; all again for another model)")
    source.add_argument("--gallery", help="folder of gallery images (searched recursively)")
    source.add_argument("--dataset", help="dataset name whose --split goes into the store (with --root)")
    source.add_argument("--root", help="dataset root folder")
    source.add_argument("--split", default="gallery", choices=("gallery", "query", "train"))
    parser.add_argument("--merge", nargs="+", metavar="STORE",
                        help="copy these stores' images (same model) into the store, ids kept; creates it if missing")
    parser.add_argument("--remove", nargs="+", metavar="PATH", help="take these images out of the store")
    parser.add_argument("--compact", action="store_true",
                        help="then rewrite the store as one segment without removed rows (ids kept)")
    parser.add_argument("--batch-size", type=at_least(1), default=128, help="images per extractor call (default 128)")


def run(args):
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from keras_msreid.errors import UserError
    from keras_msreid.models import load_model
    from keras_msreid.retrieval.extract import build_feature_store, extract_features, keras_score_fn
    from keras_msreid.retrieval.feature_store import (
        FeatureStore,
        compact_feature_store,
        merge_feature_stores,
        remove_from_feature_store,
    )
    from keras_msreid.retrieval.ranking import embedding_similarity, rank_two_stage
    from keras_msreid.utils.file_hash import sha256_of_file

    if not (args.query or args.remove or args.compact or args.gallery or args.dataset or args.merge):
        raise UserError("give --query images to rank, or --gallery / --dataset / --merge / --remove / --compact to "
                        "update the store")
    if args.merge and (args.gallery or args.dataset):
        raise UserError("--merge adds other stores' images, --gallery / --dataset make the store hold exactly "
                        "theirs: give one of them")
    queries = _decodable(args.query, "--query") if args.query else None
    records = _gallery_records(args)
    model = load_model(args.model)
    model_sha256 = sha256_of_file(args.model)
    if args.merge:
        for source in args.merge:
            try:
                source_sha256 = FeatureStore.load(source).model_sha256
            except FileNotFoundError as error:
                raise UserError(f"--merge {source}: {error}") from None
            if source_sha256 != model_sha256:
                raise UserError(f"--merge {source} was extracted with another model than {args.model}")
        merge_feature_stores(args.store, args.merge)
    if records is None:
        try:
            store = FeatureStore.load(args.store)
        except (FileNotFoundError, ValueError) as error:
            raise UserError(f"{error}; build the store with --gallery FOLDER or --dataset NAME --root ROOT") from None
        if store.model_sha256 != model_sha256:
            raise UserError(f"store {args.store} was extracted with another model than {args.model}; "
                            "rebuild it with --gallery or --dataset")
    else:
        store = build_feature_store(args.model, records, args.store, batch_size=args.batch_size, model=model)
    if args.remove:
        store = remove_from_feature_store(args.store, args.remove)
    if args.compact:
        store = compact_feature_store(args.store)
    if queries is None:
        print(f"store {args.store}: {store.count} images, {store.bytes_per_image / 1024:.1f} KiB of features each")
        return 0
    if store.count == 0:
        raise UserError(f"store {args.store} holds no images")

    names = ["embedding"] + (model.scorer_feature_names if model.levels else [])
    query_features = extract_features(model.extractor(), queries, model.image_size, progress=False, names=names)
    gallery = {name: store.features[name] for name in names}
    if model.levels:
        scores = rank_two_stage(keras_score_fn(model.scorer("shift_add")), query_features, gallery,
                                shortlist=args.shortlist, fusion_weight=args.fusion_weight, index=store.index())
    else:
        scores = embedding_similarity(query_features["embedding"], gallery["embedding"])
    for query_path, row in zip(queries, scores):
        print(f"query {query_path}")
        print(f"{'rank':>4}  {'score':>7}  {'id':>5}  {'camera':>6}  path")
        for rank, index in enumerate(np.argsort(-row, kind="stable")[: args.top], start=1):
            print(f"{rank:>4}  {row[index]:7.4f}  {store.pids[index]:>5}  {store.camids[index]:>6}  {store.paths[index]}")
    return 0


def _decodable(paths, flag):
    """The images among `paths` that decode; each one that does not is reported on stderr and skipped."""
    from keras_msreid.datasets import ImageRecord, check_images
    from keras_msreid.errors import UserError

    kept = [record.path for record in check_images([ImageRecord(path, -1, -1) for path in paths])]
    if not kept:
        raise UserError(f"no image of {flag} decodes: {', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}")
    return kept


def _gallery_records(args):
    from keras_msreid.errors import UserError

    if args.gallery:
        from keras_msreid.datasets.base import is_image_file

        if not os.path.isdir(args.gallery):
            raise UserError(f"--gallery {args.gallery} is not a folder")
        paths = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(args.gallery) for name in names if is_image_file(name)
        )
        if not paths:
            raise UserError(f"--gallery {args.gallery} holds no image files")
        return _decodable(paths, "--gallery")
    if args.dataset:
        if not args.root:
            raise UserError("--dataset needs --root")
        from keras_msreid.datasets import build_dataset

        return getattr(build_dataset(args.dataset, args.root, check_files=True), args.split)
    return None
