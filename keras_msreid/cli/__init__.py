"""The `msreid` command line: a thin layer over the Python API.

Each sub-command lives in its own module of this package, exposing
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. Modules are
imported only when their command runs, so `msreid --help` does not load TensorFlow.
"""

import argparse
import importlib
import sys

# Sub-command name -> module in this package.
COMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "summary": "summary",
    "datasets": "datasets",
    "synth": "synth",
    "export": "export",
    "search": "search",
    "report": "report",
}


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="msreid",
        description="Multi-level similarity person re-identification (Keras 3 / TFLite).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv=None):
    """Entry point of the `msreid` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    return args._module.run(args)


if __name__ == "__main__":
    sys.exit(main())
