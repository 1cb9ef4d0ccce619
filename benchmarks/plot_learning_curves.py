"""Learning curves of `msreid train --eval-every N` runs: validation rank-1 and mAP per epoch and per CPU-minute.

Reads each run's `evaluations.csv` (written by `ReIDEvaluation`), prints one table
row per evaluation and a summary per run (best and last fusion / embedding mAP), and
saves a PNG with rank-1 and mAP against epochs and against training CPU-minutes.
A model with a pair head is drawn by its fusion ranking (solid) and its embedding
(dashed); an embedding-only model by its embedding.

Usage:
    python benchmarks/plot_learning_curves.py "all levels=runs/a" "high only=runs/b" --out docs/curves.png
"""

import argparse
import pathlib

from keras_msreid.training.evaluation_callback import read_curve


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR", help="a label and a run folder of msreid train")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="validation identities")
    args = parser.parse_args()
    curves = {}
    for spec in args.runs:
        label, _, folder = spec.rpartition("=")
        path = pathlib.Path(folder) / "evaluations.csv"
        if not label or not path.is_file():
            parser.error(f"{spec!r}: expected LABEL=RUN_DIR with RUN_DIR/evaluations.csv")
        curves[label] = read_curve(path)

    print(f"{'run':<22} {'epoch':>5} {'CPU-min':>7} {'emb R1':>6} {'emb mAP':>7} {'pair R1':>7} {'pair mAP':>8} "
          f"{'fus R1':>6} {'fus mAP':>7}")
    for label, rows in curves.items():
        for row in rows:
            cells = [f"{100 * row[key]:6.1f}" if key in row else f"{'-':>6}"
                     for key in ("embedding_rank1", "embedding_mAP", "csn_rank1", "csn_mAP", "fusion_rank1",
                                 "fusion_mAP")]
            print(f"{label:<22} {int(row['epoch']):>5} {row['training_cpu_seconds'] / 60:7.1f} {cells[0]} "
                  f"{cells[1]:>7} {cells[2]:>7} {cells[3]:>8} {cells[4]:>6} {cells[5]:>7}")
    print(f"\n{'run':<22} {'ranking':<10} {'best mAP':>8} {'at epoch':>8} {'last mAP':>8} {'last R1':>7} "
          f"{'epochs':>6} {'CPU-min':>7}")
    for label, rows in curves.items():
        for ranking in ("fusion", "embedding"):
            if f"{ranking}_mAP" not in rows[0]:
                continue
            best = max(rows, key=lambda row: row[f"{ranking}_mAP"])
            print(f"{label:<22} {ranking:<10} {100 * best[f'{ranking}_mAP']:8.1f} {int(best['epoch']):8d} "
                  f"{100 * rows[-1][f'{ranking}_mAP']:8.1f} {100 * rows[-1][f'{ranking}_rank1']:7.1f} "
                  f"{int(rows[-1]['epoch']):6d} {rows[-1]['training_cpu_seconds'] / 60:7.1f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row")
    for index, (label, rows) in enumerate(curves.items()):
        colour = f"C{index}"
        for ranking, style in (("fusion", "-"), ("embedding", "--")):
            if f"{ranking}_mAP" not in rows[0]:
                continue
            name = label if ranking == "fusion" or "fusion_mAP" not in rows[0] else f"{label} (embedding)"
            for row_index, metric in enumerate(("rank1", "mAP")):
                values = [100 * row[f"{ranking}_{metric}"] for row in rows]
                axes[row_index][0].plot([row["epoch"] for row in rows], values, style, color=colour, label=name)
                axes[row_index][1].plot([row["training_cpu_seconds"] / 60 for row in rows], values, style,
                                        color=colour, label=name)
    for row_index, metric in enumerate(("rank-1 (%)", "mAP (%)")):
        axes[row_index][0].set_ylabel(metric)
        for column in axes[row_index]:
            column.grid(alpha=0.3)
    axes[1][0].set_xlabel("epoch")
    axes[1][1].set_xlabel("training CPU-minutes (the process, all its threads)")
    axes[0][1].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"Learning curves, {args.title}: fusion (solid), embedding (dashed)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
