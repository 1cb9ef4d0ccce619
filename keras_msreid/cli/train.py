"""`msreid train`: train (or resume) a model on a ReID dataset."""

import argparse
import dataclasses
import logging

HELP = "Train an MSReID model with model.fit; run again to resume after a kill."


def add_arguments(parser):
    parser.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    parser.add_argument("--dataset", help="market1501, dukemtmc, msmt17, cuhk03, cuhk01 or folder")
    parser.add_argument("--root", help="dataset root folder")
    parser.add_argument("--out", dest="out_dir", help="run directory (checkpoints, logs, model.keras)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int, dest="steps_per_epoch")
    parser.add_argument("--learning-rate", type=float, dest="learning_rate")
    parser.add_argument("--p", type=int, help="identities per batch")
    parser.add_argument("--k", type=int, help="images per identity in a batch")
    parser.add_argument("--levels", nargs="*", help="similarity levels, e.g. low mid high (none: embedding only)")
    parser.add_argument("--parts", type=int, help="STN patches per level")
    parser.add_argument("--no-stn", dest="use_stn", action="store_const", const=False,
                        help="fixed centre patches instead of learned attention")
    parser.add_argument("--image-size", type=int, nargs=2, dest="image_size", metavar=("H", "W"))
    parser.add_argument("--eval-every", type=int, dest="eval_every", help="evaluate every N epochs")
    parser.add_argument("--protocol", help="market1501, cuhk01 or cuhk03_sgs")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--num-test-ids", type=int, help="CUHK01: test identities (100 or 486)")
    parser.add_argument("--split-seed", type=int, help="CUHK01: seed of the identity split")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"))
    parser.add_argument("--mixed-precision", dest="mixed_precision", action="store_const", const=True)
    parser.add_argument("--xla", dest="jit_compile", action="store_const", const=True,
                        help="compile the train step with XLA (for GPUs: on a 2-core CPU it was 8x slower)")
    parser.add_argument("--no-check-files", dest="check_files", action="store_const", const=False,
                        help="skip decoding every image once before training")


def config_from_args(args):
    from keras_msreid.training.config import TrainConfig

    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    overrides = {key: value for key, value in vars(args).items() if key in fields and value is not None}
    options = {key: getattr(args, key) for key in ("num_test_ids", "split_seed") if getattr(args, key) is not None}
    if options:
        overrides["dataset_options"] = options
    if args.config:
        return TrainConfig.load(args.config, **overrides)
    return TrainConfig(**overrides)


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from keras_msreid.training.trainer import train

    config = config_from_args(args)
    if not config.root:
        raise SystemExit("msreid train: error: --root (or root: in --config) is required")
    _, metrics = train(config)
    for ranking, result in metrics.items():
        print(f"{ranking:>10}: rank-1 {result['rank1']:.3f}  rank-5 {result['rank5']:.3f}  mAP {result['mAP']:.3f}")
    print(f"model: {config.out_dir}/model.keras")
    return 0
