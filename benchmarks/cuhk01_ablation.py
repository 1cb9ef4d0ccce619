"""CUHK01 ablation of the multi-level similarity network under an equal CPU budget.

Trains each variant for the same CPU budget (process CPU time, all threads, counted
from the end of the first step so that graph tracing is excluded; robust to other
load on the machine) on the 871/100 (or 485/486) split of
CUHK01, for several seeded identity splits, and ranks the 100 test identities three
ways: by the embedding alone, by the CSN pair score alone, and by their fusion, each
over the whole gallery (exhaustive) and, for the pair scores, also as a rescoring of
the embedding's top 10 (two-stage, "@10").

Variants (issue 3): (a) all three levels, (b) high level only, (c) embedding only,
(d) all levels without STN (fixed centre patch), (e) all levels without the ranking loss;
(issue 11) (f) high level only without STN, (g) mid and high levels, and the peers
MobileNetV2 x0.35 and x1.0 and MobileNetV3-Small (`keras.applications`, from scratch,
the same embedding head, losses and recipe).

Usage:
    python benchmarks/cuhk01_ablation.py ../shared/data/cuhk01 --minutes 6 --splits 0 1 2
    python benchmarks/cuhk01_ablation.py --report a.json b.json   # one table of several runs
    python benchmarks/cuhk01_ablation.py ../shared/data/cuhk01 --json a.json --save-dir M --reevaluate
        # re-ranks the models saved in M with the current ranking code, updating a.json
Prints a table (mean and spread over splits) and writes the raw results as JSON; a run
whose JSON already holds a (split, variant) skips it, so a killed run goes on.
"""

import argparse
import json
import os
import time

import keras
import numpy as np

from keras_msreid.data.pipeline import make_train_dataset, steps_per_epoch
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.retrieval.evaluate import evaluate_model
from keras_msreid.utils.atomic import atomic_write_text

# The paper's ranking loss, which the pair-head variants were defined and measured with
# (the default has been without it since session 18).
WITH_RANKING = {"ranking": 1.0}

VARIANTS = {
    # With the STN, as these variants were defined and measured (the default has none since session 13).
    "a_all_levels": dict(levels=("low", "mid", "high"), use_stn=True, loss_weights=WITH_RANKING),
    "b_high_only": dict(levels=("high",), use_stn=True, loss_weights=WITH_RANKING),
    "c_embedding_only": dict(levels=()),
    "d_no_stn": dict(levels=("low", "mid", "high"), use_stn=False, loss_weights=WITH_RANKING),
    "e_no_ranking_loss": dict(levels=("low", "mid", "high"), use_stn=True, loss_weights={"ranking": 0.0}),
    # Probes of why the high-level pair head idles at first (issue 11).
    "f_high_no_stn": dict(levels=("high",), use_stn=False, loss_weights=WITH_RANKING),
    "g_mid_high": dict(levels=("mid", "high"), use_stn=True, loss_weights=WITH_RANKING),
    # Hard pairs are chosen by the embedding, which pools the same high-level map:
    # are they what holds the high-level head at chance?
    "h_high_random_pairs": dict(levels=("high",), use_stn=True, loss_weights=WITH_RANKING, compile_options=dict(
        hard_positives=0, hard_negatives=0, random_positives=2, random_negatives=2)),
    "i_high_pair_weight3": dict(levels=("high",), use_stn=True, loss_weights={"verification": 3.0, "ranking": 3.0}),
    # The peers a user would pick instead (issue 11): keras.applications networks from
    # scratch under the same embedding head, losses and recipe; embedding only.
    "p_mobilenetv2_x035": dict(backbone="MobileNetV2", alpha=0.35),
    "p_mobilenetv2_x1": dict(backbone="MobileNetV2", alpha=1.0),
    "p_mobilenetv3_small": dict(backbone="MobileNetV3Small", alpha=1.0),
}


class StopAfterCPU(keras.callbacks.Callback):
    """Stops training once this process has used `seconds` of CPU after its first step."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.steps = 0
        self.start = None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.start is None:
            self.start = time.process_time()
        elif time.process_time() - self.start > self.seconds:
            self.model.stop_training = True


def evaluate_rankings(model, dataset):
    """Every ranking exhaustively, and the pair scores also as a rescoring of the embedding's top 10 ("@10")."""
    results = evaluate_model(model, dataset, protocol="cuhk01")
    if model.levels:
        two_stage = evaluate_model(model, dataset, rankings=("csn", "fusion"), ranking="two-stage", shortlist=10,
                                   protocol="cuhk01")
        results.update({f"{ranking}@10": value for ranking, value in two_stage.items()})
    return results


def run_variant(name, dataset, seconds, seed, learning_rate, save_path=None):
    options = dict(VARIANTS[name])
    loss_weights = options.pop("loss_weights", None)
    compile_options = options.pop("compile_options", {})
    keras.utils.set_random_seed(seed)
    model = MSReID.from_options(num_classes=dataset.num_train_pids, **options)
    steps = steps_per_epoch(dataset.train)
    # Linear warm-up over one epoch, then constant (alpha=1: no decay), which stays fair
    # wherever the budget cuts training.
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate * 0.1, decay_steps=1, alpha=1.0, warmup_target=learning_rate, warmup_steps=steps
    )
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4), loss_weights=loss_weights,
                  **compile_options)
    stopper = StopAfterCPU(seconds)
    start = time.perf_counter()
    data = make_train_dataset(dataset.train, seed=seed, deterministic=True, cache_decoded=True)
    history = model.fit(data, steps_per_epoch=steps, epochs=10_000, callbacks=[stopper], verbose=0).history
    train_seconds = time.perf_counter() - start
    results = evaluate_rankings(model, dataset)
    if save_path:
        model.save(save_path)
    # Per epoch: does the pair head learn from the start (pair accuracy above 0.6 early)?
    curves = {key: [round(float(v), 4) for v in values] for key, values in history.items()
              if key in ("loss", "pair_accuracy", "verification_loss")}
    return {"split": seed, "steps": stopper.steps, "train_seconds": train_seconds,
            "images_per_cpu_second": stopper.steps * 64 / seconds, "results": results, "epochs": curves}


def reevaluate(raw, root, test_ids, save_dir, validation_ids=0):
    """Replaces each run's results by `evaluate_rankings` of its saved model, where saved."""
    for name, runs in raw.items():
        for run in runs:
            path = os.path.join(save_dir, f"{name}_split{run['split']}.keras")
            if not os.path.exists(path):
                print(f"{path}: not saved, results kept", flush=True)
                continue
            model = keras.saving.load_model(path, safe_mode=True)
            dataset = build_dataset("cuhk01", root, num_test_ids=test_ids, split_seed=run["split"],
                                    validation_ids=validation_ids)
            run["results"] = evaluate_rankings(model, dataset)
            print(f"{path}: re-ranked", flush=True)


def print_table(raw, minutes, test_ids, validation_ids=0):
    splits = sorted({run["split"] for runs in raw.values() for run in runs})
    held_out = f"{validation_ids} validation ids (from the training ids)" if validation_ids else f"{test_ids} test ids"
    print(f"\nCUHK01 {held_out}, splits {splits}, {minutes} CPU-min of training each; "
          "mean +- std over splits (percent)")
    print(f"{'variant':<20} {'ranking':<10} {'rank-1':>13} {'rank-5':>13} {'mAP':>13} {'img/CPU-s':>9} {'splits':>6}")
    for name in VARIANTS:
        runs = raw.get(name)
        if not runs:
            continue
        speed = np.median([run["images_per_cpu_second"] for run in runs])
        for ranking in runs[0]["results"]:
            cells = []
            for metric in ("rank1", "rank5", "mAP"):
                values = 100 * np.array([run["results"][ranking][metric] for run in runs])
                cells.append(f"{values.mean():6.1f} +- {values.std():4.1f}")
            print(f"{name:<20} {ranking:<10} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} {speed:9.1f} "
                  f"{len(runs):>6}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", help="CUHK01 folder (e.g. ../shared/data/cuhk01)")
    parser.add_argument("--minutes", type=float, default=6.0, help="training CPU minutes per variant and split")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="peak AdamW learning rate")
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2], help="identity split seeds")
    parser.add_argument("--test-ids", type=int, default=100, help="100 (871/100 split) or 486")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", default="cuhk01_ablation.json", help="raw results (read first, to resume)")
    parser.add_argument("--save-dir", help="also save every trained model here as VARIANT_splitN.keras")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="only print the table of these result files")
    parser.add_argument("--reevaluate", action="store_true",
                        help="re-rank the runs of --json whose models are in --save-dir, then print the table")
    parser.add_argument("--validation-ids", type=int, default=0,
                        help="rank this many identities carved from the training ones instead of the test ones "
                             "(for choosing a recipe; the test identities are then not used at all)")
    args = parser.parse_args()

    if args.report:
        raw = {}
        for path in args.report:
            with open(path) as handle:
                for name, runs in json.load(handle).items():
                    raw.setdefault(name, []).extend(runs)
        print_table(raw, args.minutes, args.test_ids, args.validation_ids)
        return
    if not args.root:
        parser.error("the CUHK01 folder is required unless --report is given")
    raw = {}
    if os.path.exists(args.json):
        with open(args.json) as handle:
            raw = json.load(handle)
    if args.reevaluate:
        if not args.save_dir:
            parser.error("--reevaluate needs --save-dir")
        reevaluate(raw, args.root, args.test_ids, args.save_dir, args.validation_ids)
        atomic_write_text(args.json, json.dumps(raw, indent=2))
        print_table(raw, args.minutes, args.test_ids, args.validation_ids)
        return
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)
    for split in args.splits:
        dataset = build_dataset("cuhk01", args.root, num_test_ids=args.test_ids, split_seed=split,
                                validation_ids=args.validation_ids, check_files=True)
        for name in args.variants:
            if any(run["split"] == split for run in raw.get(name, [])):
                continue
            print(f"split {split}: training {name} for {args.minutes} CPU-min", flush=True)
            save_path = os.path.join(args.save_dir, f"{name}_split{split}.keras") if args.save_dir else None
            raw.setdefault(name, []).append(
                run_variant(name, dataset, args.minutes * 60, split, args.learning_rate, save_path)
            )
            atomic_write_text(args.json, json.dumps(raw, indent=2))
    print_table(raw, args.minutes, args.test_ids, args.validation_ids)


if __name__ == "__main__":
    main()
