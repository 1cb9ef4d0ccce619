"""`msreid report`: ranked-list picture, CMC curves, STN attention boxes and a metrics JSON.

Example:

```bash
msreid report runs/cuhk01                        # model, dataset and protocol from the run folder
msreid report runs/a --compare runs/b runs/c     # CMC curves of several runs in one plot
msreid report m.keras --dataset market1501 --root data/Market-1501 --out report/
```
"""

import json
import pathlib

from keras_msreid.cli.arguments import (add_dataset_options, add_dataset_source, add_protocol_option,
                                        add_ranking_options, at_least, dataset_options)
from keras_msreid.errors import UserError

HELP = "Write a report (ranked lists, CMC plot, STN attention boxes, metrics.json) for a trained model."


def add_arguments(parser):
    parser.add_argument("model", metavar="RUN_OR_MODEL",
                        help="a run folder of msreid train (its model.keras, dataset and protocol) or a .keras model")
    add_dataset_source(parser, required=False, dataset_help="dataset name (instead of the run folder's)")
    add_protocol_option(parser, first_default="the run folder's if its config sets one, else ")
    add_dataset_options(parser)
    parser.add_argument("--out", help="report folder (default RUN_FOLDER/report)")
    parser.add_argument("--compare", nargs="*", default=[], help="other run folders whose metrics.json CMC to plot too")
    add_ranking_options(parser)
    parser.add_argument("--queries", type=at_least(1), default=8, help="queries in the ranked-list picture (default 8)")
    parser.add_argument("--top", type=at_least(1), default=10, help="gallery images per query in the picture (default 10)")


def run(args):
    source = _resolve(args)
    compare = {pathlib.Path(run).name: _run_metrics(run) for run in args.compare}
    from keras_msreid.datasets import build_dataset
    from keras_msreid.models import load_model
    from keras_msreid.reports.report import write_report

    model = load_model(source["model"])
    dataset = build_dataset(source["dataset"], source["root"], check_files=True, **source["options"])
    files = write_report(
        source["out"], model, dataset, protocol=source["protocol"], ranking=args.ranking, shortlist=args.shortlist,
        fusion_weight=args.fusion_weight, num_queries=args.queries, top=args.top, label=source["label"],
        compare=compare, progress=True,
    )
    metrics = json.loads(pathlib.Path(files["metrics"]).read_text())
    for ranking, result in metrics.items():
        print(f"{ranking:>10}: rank-1 {result['rank1']:.3f}  rank-5 {result['rank5']:.3f}  mAP {result['mAP']:.3f}")
    for name, path in files.items():
        print(f"{name:>12}: {path}")
    return 0


def _resolve(args):
    """Model, dataset, protocol and output folder from the run folder and/or the flags (flags win)."""
    options = dataset_options(args)
    source = {"model": args.model, "dataset": args.dataset, "root": args.root, "protocol": args.protocol,
              "options": options, "out": args.out, "label": pathlib.Path(args.model).stem}
    run = pathlib.Path(args.model)
    if run.is_dir():
        from keras_msreid.training.config import TrainConfig

        if not (run / "config.yaml").is_file():
            raise UserError(f"{run} is not a run folder of msreid train (no config.yaml)")
        config = TrainConfig.load(run / "config.yaml")
        source.update(
            model=str(run / "model.keras"), dataset=args.dataset or config.dataset,
            root=args.root or config.root, protocol=args.protocol or config.protocol,
            options={**config.dataset_options, **options}, out=args.out or str(run / "report"), label=run.name,
        )
    missing = [flag for flag, key in (("--dataset", "dataset"), ("--root", "root"), ("--out", "out"))
               if not source[key]]
    if missing:
        raise UserError(f"a model file needs {', '.join(missing)} (a run folder gives them)")
    return source


def _run_metrics(run_dir):
    """The per-ranking results (with CMC curves) of a run's metrics.json."""
    path = pathlib.Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no {path} to compare with")
    try:
        metrics = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path} is not valid JSON ({error})") from None
    curves = isinstance(metrics, dict) and metrics and all(isinstance(r, dict) and "cmc" in r for r in metrics.values())
    if not curves:
        raise UserError(f"{path} has no CMC curves (evaluate the run again with this version)")
    return metrics
