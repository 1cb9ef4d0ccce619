"""`msreid evaluate`: rank a dataset's queries against its gallery with a trained model."""

import json
import logging

from keras_msreid.cli.arguments import (add_dataset_options, add_dataset_source, add_protocol_option, add_ranking_options,
                                        dataset_options)

HELP = "Evaluate a trained model (CMC rank-1/5/10/20, mAP, mINP) on a dataset's query/gallery split."


def add_arguments(parser):
    parser.add_argument("model", help="a .keras file written by msreid train")
    add_dataset_source(parser)
    add_protocol_option(parser)
    add_ranking_options(parser)
    add_dataset_options(parser)
    parser.add_argument("--json", help="also write the results to this JSON file")


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from keras_msreid.datasets import build_dataset
    from keras_msreid.models import load_model
    from keras_msreid.retrieval.evaluate import evaluate_model
    from keras_msreid.utils.atomic import atomic_write_text

    model = load_model(args.model)
    dataset = build_dataset(args.dataset, args.root, check_files=True, **dataset_options(args))
    results = evaluate_model(
        model,
        dataset,
        ranking=args.ranking,
        shortlist=args.shortlist,
        fusion_weight=args.fusion_weight,
        protocol=args.protocol,
        progress=True,
    )
    print(f"{'ranking':>10}  rank-1  rank-5  rank-10  rank-20    mAP   mINP")
    for name, result in results.items():
        print(f"{name:>10}  {result['rank1']:.3f}   {result['rank5']:.3f}   {result['rank10']:.3f}    "
              f"{result['rank20']:.3f}  {result['mAP']:.3f}  {result['mINP']:.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    return 0
