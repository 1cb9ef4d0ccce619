"""`msreid datasets NAME ROOT`: reads a dataset and prints its summary table.

Example:

```bash
msreid datasets cuhk01 /data/cuhk01 --num-test-ids 486 --split-seed 1 --check-files
```
"""

from keras_msreid.cli.arguments import add_dataset_options, dataset_options

HELP = "Read a ReID dataset and print its identities, images and cameras per split."


def add_arguments(parser):
    parser.add_argument(
        "name", help="dataset layout: market1501, dukemtmc, msmt17, cuhk03, cuhk01 or folder"
    )
    parser.add_argument("root", help="folder holding the dataset")
    parser.add_argument(
        "--check-files",
        action="store_true",
        help="decode every image once and report missing, corrupt, grayscale or RGBA files",
    )
    add_dataset_options(parser)


def run(args):
    import logging

    from keras_msreid.datasets import build_dataset

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dataset = build_dataset(args.name, args.root, check_files=args.check_files, **dataset_options(args))
    print(dataset.summary())
    return 0
