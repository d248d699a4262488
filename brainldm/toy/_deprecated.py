"""Aliases of modules that moved, kept working for a deprecation period."""

import importlib
import warnings

__all__ = ["moved_module"]


def moved_module(old, new):
    """Warn that module ``old`` moved to ``new``; return ``new`` and a ``__getattr__`` for ``old``.

    Called at the top of the old module, which keeps ``__all__`` of the new
    one and takes the returned function as its module ``__getattr__``, so
    that every public name of the new module is found under the old path.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     module, getattr_ = moved_module("brainldm.toy.old_name", "brainldm.toy.perceptual")
    >>> getattr_("toy_heads") is module.toy_heads
    True
    >>> print(caught[0].message)
    brainldm.toy.old_name was moved to brainldm.toy.perceptual and will be removed in brainldm 0.3; use brainldm.toy.perceptual (python -m brainldm.toy.perceptual for a script) instead
    """
    module = importlib.import_module(new)
    warnings.warn(
        f"{old} was moved to {new} and will be removed in brainldm 0.3; use {new} "
        f"(python -m {new} for a script) instead",
        FutureWarning,
        stacklevel=3,
    )

    def __getattr__(name):
        if name in module.__all__:
            return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return module, __getattr__
