"""Lazy exports: a package names its public objects without importing their modules.

``import brainldm`` then costs nothing, and ``brainldm.LatentDecoder`` imports
:mod:`brainldm.decoding` (and torch) only when first looked up, as diffusers'
``_LazyModule`` and scientific Python's ``lazy_loader`` do.
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, exports):
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package's lazy exports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str to str
        Public name -> the module (absolute) that defines it.

    Returns
    -------
    getattr, dir, all
        To assign to the package's ``__getattr__``, ``__dir__`` and ``__all__``.

    Examples
    --------
    >>> getattr_, dir_, all_ = lazy_exports("pkg", {"sqrt": "math"})
    >>> getattr_("sqrt")(4.0), all_
    (2.0, ['sqrt'])
    """

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(exports) | {"__version__"})

    return __getattr__, __dir__, sorted(exports)
