"""Deprecated alias of :mod:`brainldm.toy.training.ldm`, removed in brainldm 0.3.

Its names are those of the new module, and ``python -m brainldm.toy.train_ldm``
still runs :func:`brainldm.toy.training.ldm.main`; run
``python -m brainldm.toy.training.ldm`` instead.
"""

from brainldm.toy._deprecated import moved_module

_moved, __getattr__ = moved_module("brainldm.toy.train_ldm", "brainldm.toy.training.ldm")
__all__ = _moved.__all__
__deprecated_alias__ = True

if __name__ == "__main__":
    _moved.main()
