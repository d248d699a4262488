"""Deprecated alias of :mod:`brainldm.toy.training.perceptual`, removed in brainldm 0.3.

Its names are those of the new module, and
``python -m brainldm.toy.train_perceptual`` still runs
:func:`brainldm.toy.training.perceptual.main`; run
``python -m brainldm.toy.training.perceptual`` instead.
"""

from brainldm.toy._deprecated import moved_module

_moved, __getattr__ = moved_module(
    "brainldm.toy.train_perceptual", "brainldm.toy.training.perceptual"
)
__all__ = _moved.__all__
__deprecated_alias__ = True

if __name__ == "__main__":
    _moved.main()
