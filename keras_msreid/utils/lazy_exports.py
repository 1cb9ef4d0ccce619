"""Package attributes imported from their submodules on first use."""

import importlib


def lazy_exports(package, exports):
    """`(__getattr__, __all__)` for a package whose public names live in submodules.

    `exports` maps each name to its submodule. Importing the package imports none of
    them, so its TensorFlow-free submodules stay importable without TensorFlow.

    Example (in a package's `__init__.py`):

    >>> __getattr__, __all__ = lazy_exports(__name__, {"PKSampler": "pk_sampler"})
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__, sorted(exports)
