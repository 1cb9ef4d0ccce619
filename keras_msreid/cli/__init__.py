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
import tempfile

from keras_msreid.errors import UserError
from keras_msreid.utils.heap import keep_freed_memory

# Sub-command name -> module in this package.
COMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "summary": "summary",
    "datasets": "datasets",
    "synth": "synth",
    "export": "export",
    "validate": "validate",
    "search": "search",
    "report": "report",
}
# The commands that load TensorFlow (the others stay fast and TensorFlow-free).
TENSORFLOW_COMMANDS = ("train", "evaluate", "summary", "export", "validate", "search", "report")


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
    if args.command in TENSORFLOW_COMMANDS:
        # Before TensorFlow allocates anything: its large buffers are then reused step after step.
        keep_freed_memory()
        if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
            _import_tensorflow_quietly()
    try:
        return args._module.run(args)
    except (UserError, OSError) as error:  # a path, a permission, a full disk: the user's to fix
        return report_error(f"msreid {args.command}", error)


def _import_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with the process's stderr held back.

    TensorFlow's C++ start-up lines (absl's "before InitializeLog", the CUDA probe of
    a machine without a GPU) are written before any log level applies, so only holding
    file descriptor 2 silences them. They are shown if the import fails; set
    TF_CPP_MIN_LOG_LEVEL (0: everything) to see them always.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        imported = False
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            imported = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not imported:  # what TensorFlow said is then the user's only clue
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))


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
