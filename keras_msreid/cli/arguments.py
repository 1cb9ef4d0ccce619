"""Argument types that check a flag's range as it is parsed, so a bad value fails before any work.

argparse turns their `ArgumentTypeError` into its usual `msreid <command>: error:
argument --flag: ...` line with exit status 2.

Example:

>>> parser.add_argument("--shortlist", type=at_least(1), default=100)
"""

import argparse
import math


def at_least(low):
    """An integer type that refuses values below `low`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def within(low, high):
    """A float type that refuses values outside `[low, high]` (and NaN)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {text}")
        return value

    parse.__name__ = f"number in [{low}, {high}]"
    return parse


DATASET_HELP = "market1501, dukemtmc, msmt17, cuhk03, cuhk01 or folder"


def add_dataset_source(parser, required=True, dataset_help=DATASET_HELP):
    """Adds `--dataset` and `--root`: which dataset a command reads, and where it lies."""
    parser.add_argument("--dataset", required=required, help=dataset_help)
    parser.add_argument("--root", required=required, help="dataset root folder")


# The `build_dataset` keywords of the reader options every command that reads a dataset shares.
DATASET_OPTIONS = ("variant", "num_test_ids", "split_seed", "validation_ids")


def add_dataset_options(parser):
    """Adds the dataset reader's options, with one name and meaning in every command."""
    group = parser.add_argument_group("dataset reader options")
    group.add_argument("--variant", choices=("labeled", "detected"), help="cuhk03: which boxes (default labeled)")
    group.add_argument("--num-test-ids", type=at_least(1), help="cuhk01: test identities (100 or 486)")
    group.add_argument("--split-seed", type=at_least(0), help="cuhk01: seed of the identity split")
    group.add_argument("--validation-ids", type=at_least(1),
                       help="cuhk01: carve this many identities out of the training ones and use them as the "
                            "query/gallery instead of the test identities (for choosing a recipe)")
    return group


PROTOCOL_HELP = "evaluation protocol (default: {}the dataset's own: cuhk01 for cuhk01, market1501 for the others)"


def add_protocol_option(parser, first_default=""):
    """Adds `--protocol`; left out, a command scores by the dataset's own (`ReIDDataset.protocol`)."""
    from keras_msreid.metrics.ranking import PROTOCOLS

    return parser.add_argument("--protocol", choices=PROTOCOLS, help=PROTOCOL_HELP.format(first_default))


def add_ranking_options(parser, choose_ranking=True):
    """Adds how queries are ranked: `--ranking` (where a command offers the choice), `--shortlist`, `--fusion-weight`."""
    group = parser.add_argument_group("ranking options")
    if choose_ranking:
        group.add_argument("--ranking", default="auto", choices=("auto", "exhaustive", "two-stage"),
                           help="auto: exhaustive up to 1 M query x gallery pairs, two-stage above")
    group.add_argument("--shortlist", type=at_least(1), default=100,
                       help="two-stage: gallery images the embedding shortlists for the pair score (default 100)")
    group.add_argument("--fusion-weight", type=within(0.0, 1.0), default=0.5,
                       help="weight of the pair score against the embedding similarity, both standardised "
                            "per query (default 0.5)")
    return group


# The flags that set one option of the model (`MSReID.from_options`) each: option -> flag.
MODEL_FLAGS = {"backbone": "--backbone", "levels": "--levels", "parts": "--parts", "use_stn": "--stn"}


def add_model_options(parser, title="model options"):
    """Adds `MODEL_FLAGS`, with one name and meaning in every command that builds a model."""
    group = parser.add_argument_group(title)
    group.add_argument("--backbone", help="msreid (default), or a keras.applications peer: MobileNetV2, MobileNetV3Small")
    group.add_argument("--levels", nargs="*",
                       help="similarity levels, e.g. low mid high (default high; none: embedding only)")
    group.add_argument("--parts", type=int, help="STN patches per level")
    group.add_argument("--stn", dest="use_stn", action="store_const", const=True,
                       help="patches placed by a learned spatial transformer (the paper's STN) instead of fixed "
                            "centre ones")
    return group


def model_options(args):
    """The `MSReID.from_options` keywords of the model flags given on the command line."""
    return {key: getattr(args, key) for key in MODEL_FLAGS if getattr(args, key, None) is not None}


def dataset_options(args):
    """The `build_dataset` keywords of the dataset options given on the command line."""
    return {key: getattr(args, key) for key in DATASET_OPTIONS if getattr(args, key, None) is not None}
