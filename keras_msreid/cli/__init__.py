"""The `msreid` command line: a thin layer over the Python API.

Each sub-command lives in its own module of this package, exposing
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. Modules are
imported only when their command runs, so `msreid --help` does not load TensorFlow.

One convention for every command: a user error (a `UserError`, or an `OSError`:
a missing, unreadable or misplaced file, a full disk) is printed as one line,
`msreid <command>: error: <message>`, with exit status 2, as argparse does for a
bad flag. Any other exception is a bug and keeps its traceback.
"""

import argparse
import importlib
import os
import sys

from keras_msreid.errors import UserError

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
    # TensorFlow's C++ start-up lines are noise for a user; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args._module.run(args)
    except (UserError, OSError) as error:  # a path, a permission, a full disk: the user's to fix
        return report_error(f"msreid {args.command}", error)


def report_error(prog, error):
    """Prints `error` as the one line `PROG: error: MESSAGE` on stderr; returns exit status 2."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error)
    message = " ".join(message.split()) or type(error).__name__
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
