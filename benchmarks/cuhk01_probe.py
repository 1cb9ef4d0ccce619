"""One training probe on CUHK01: fixed epochs, one setting changed at a time.

Trains an MSReID on one seeded 871/100 split of CUHK01 for a fixed number of epochs
(AdamW, linear warm-up over the first epoch, then constant) and prints the final
training losses and the rank-1 / rank-5 / mAP of each ranking (exhaustive, and for
the pair scores also two-stage over the embedding's top 10, "@10"). Used to choose the
learning rate, augmentation and losses before the equal-budget ablation.

    python benchmarks/cuhk01_probe.py ../shared/data/cuhk01 --epochs 8 --levels --learning-rate 1e-2
    python benchmarks/cuhk01_probe.py ../shared/data/cuhk01 --epochs 8 --levels --no-augment
    python benchmarks/cuhk01_probe.py ../shared/data/cuhk01 --epochs 8 --levels --loss-weight triplet=0
    python benchmarks/cuhk01_probe.py ../shared/data/cuhk01 --epochs 8 --learning-rate 3e-3
"""

import argparse
import time

import keras

from keras_msreid.data.augment import AugmentConfig
from keras_msreid.data.pipeline import make_train_dataset, steps_per_epoch
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from cuhk01_ablation import evaluate_rankings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="CUHK01 folder (e.g. ../shared/data/cuhk01)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--levels", nargs="*", default=["low", "mid", "high"], help="none: embedding only")
    parser.add_argument("--no-augment", action="store_true", help="train without flips, padding and erasing")
    parser.add_argument("--loss-weight", action="append", default=[], metavar="NAME=W",
                        help="e.g. triplet=0 (identity, triplet, verification, ranking)")
    parser.add_argument("--split", type=int, default=0, help="identity split seed")
    args = parser.parse_args()

    dataset = build_dataset("cuhk01", args.root, num_test_ids=100, split_seed=args.split, check_files=False)
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(num_classes=dataset.num_train_pids, levels=tuple(args.levels))
    steps = steps_per_epoch(dataset.train)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate * 0.1, decay_steps=1, alpha=1.0, warmup_target=args.learning_rate, warmup_steps=steps
    )
    loss_weights = {name: float(value) for name, value in (item.split("=") for item in args.loss_weight)}
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4), loss_weights=loss_weights)
    data = make_train_dataset(dataset.train, augment=None if args.no_augment else AugmentConfig(), seed=0,
                              cache_decoded=True)
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=args.epochs, verbose=0).history
    seconds = time.perf_counter() - start
    losses = ", ".join(f"{name} {values[-1]:.3f}" for name, values in history.items() if values[-1])
    print(f"{args.epochs} epochs in {seconds:.0f} s; last epoch: {losses}")
    for ranking, result in evaluate_rankings(model, dataset).items():
        print(f"{ranking:>10}: rank-1 {100 * result['rank1']:5.1f}  rank-5 {100 * result['rank5']:5.1f}  "
              f"mAP {100 * result['mAP']:5.1f}")


if __name__ == "__main__":
    main()
