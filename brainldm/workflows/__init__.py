"""Workflows: the paper's runs from Python, as the ``brainldm`` command runs them.

:func:`reconstruct` fits, reconstructs and scores NSD subjects (the decoding
half); :func:`demo` is that on the toy world; :func:`evaluate` scores saved
reconstructions; :func:`encode` runs the four encoding analyses (the encoding
half); :func:`estimate_encode` says what :func:`encode` runs on given
shapes and roughly how long it takes, as the workflows log before they
start (and warn, :class:`LongRunWarning`, when it is hours). Each checks its settings before any work, writes its files atomically
under ``out``, caches what it computed (in ``out/cache`` by default, shared
with the command for the same settings) and returns a result object: the
tables as pandas DataFrames, the summary written as JSON, the paths written,
and what its figures are drawn from.

>>> from brainldm.workflows import demo, encode, evaluate, reconstruct
"""

from brainldm.workflows._cost import LongRunWarning, estimate_encode
from brainldm.workflows._encode import encode
from brainldm.workflows._evaluate import evaluate
from brainldm.workflows._reconstruct import demo, reconstruct
from brainldm.workflows._results import EncodingResult, EvaluationResult, ReconstructionResult

# Documented (and pickled) under this module, where users import them from.
for _public in (encode, estimate_encode, evaluate, demo, reconstruct) + (
    EncodingResult,
    EvaluationResult,
    ReconstructionResult,
    LongRunWarning,
):
    _public.__module__ = __name__

__all__ = [
    "EncodingResult",
    "EvaluationResult",
    "LongRunWarning",
    "ReconstructionResult",
    "demo",
    "encode",
    "estimate_encode",
    "evaluate",
    "reconstruct",
]
