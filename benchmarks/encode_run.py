"""The data and features of a finished ``brainldm encode`` run, read from its cache.

Shared by the benchmarks that study a run's features (``pool_size.py``,
``encoding_truth.py``): the same reader, training rows and settings as the CLI's
defaults, so nothing is denoised again.
"""

from pathlib import Path


def load_run(nsd_root, encode_out, subject="subj01", model="toy"):
    """(data, features) of ``subject`` in the run written under ``encode_out``."""
    from brainldm.cli import ENCODE_STEPS, ENCODE_STRENGTHS
    from brainldm.datasets.nsd import load_nsd
    from brainldm.encoding import encoding_features

    out = Path(encode_out)
    data = load_nsd(nsd_root, subject, average_train=True, progress=False, cache_dir=out / "cache")
    features = encoding_features(
        data,
        model,
        strengths=ENCODE_STRENGTHS,
        steps=ENCODE_STEPS,
        memory=out / "cache" / data.subject,
    )
    return data, features
