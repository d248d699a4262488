"""Scores of saved reconstructions: a reconstructions file or a folder of PNGs."""

import re
from pathlib import Path

import numpy as np

from brainldm._docs import fill_doc
from brainldm._io import check_writable, write_csv, write_json
from brainldm._validation import check_options, subject_name
from brainldm.metrics.identification import PROTOCOLS
from brainldm.workflows import _summaries
from brainldm.workflows._reconstruct import RECORDS
from brainldm.workflows._results import EvaluationResult

__all__ = ["evaluate"]


def _read_pngs(folder):
    """Images named ``<73k index>.png`` or ``<73k index>_<sample>.png``: ids and images."""
    from PIL import Image

    found = {}
    for path in sorted(Path(folder).glob("*.png")):
        match = re.fullmatch(r"(\d+)(?:_(\d+))?", path.stem)
        if match is None:
            raise ValueError(
                f"{path.name}: name reconstructions <73k index>.png or "
                "<73k index>_<sample>.png, e.g. 2950_0.png"
            )
        sample = int(match.group(2) or 0)
        found.setdefault(int(match.group(1)), {})[sample] = np.asarray(
            Image.open(path).convert("RGB")
        )
    if not found:
        raise FileNotFoundError(f"{folder} holds no .png reconstructions")
    counts = {len(samples) for samples in found.values()}
    if len(counts) != 1:
        raise ValueError(f"{folder}: every image needs as many samples, got {sorted(counts)}")
    ids = np.array(sorted(found))
    images = np.stack([np.stack([found[i][s] for s in sorted(found[i])]) for i in ids])
    return ids, {Path(folder).name: lambda: images}, {}


def _read_reconstructions(path):
    """73k ids, a loader per set of reconstructions by name, and what the file records.

    ``path`` is an existing folder of PNGs or file.
    """
    path = Path(path)
    if path.is_dir():
        return _read_pngs(path)
    with np.load(path) as saved:
        if "images" not in saved.files:
            raise ValueError(
                f"{path} has no 'images' array (the 73k index of each reconstructed image); "
                f"it holds {saved.files}"
            )
        records = {k: saved[k].item() for k in ("subject", "model", "suite") if k in saved.files}
        ids, names = saved["images"].astype(np.int64), saved.files

    # One set in memory at a time: a subject's modes on real data are gigabytes each.
    def loader(name):
        def load():
            with np.load(path) as saved:
                return saved[name]

        return load

    return ids, {name: loader(name) for name in names if name not in RECORDS}, records


@fill_doc
def evaluate(
    reconstructions,
    nsd_root,
    *,
    subject=None,
    suite=None,
    metrics=None,
    protocols=PROTOCOLS,
    weights=None,
    device=None,
    dtype=None,
    out=None,
    progress=False,
    log=None,
):
    """Score saved reconstructions against the seen images of an NSD-layout folder.

    Writes ``<name>-evaluation.json`` (the summary) and
    ``<name>-evaluation.csv`` (every image's value) into ``out``, which is
    checked first: a folder that cannot be written raises a ValueError
    before anything is read.

    Parameters
    ----------
    reconstructions : str or path-like
        A ``.npz`` with ``images`` (the 0-based 73k index of each image) and
        one array per set of reconstructions, of shape (n, n_samples, h, w, 3)
        or (n, h, w, 3), uint8 (as :func:`reconstruct` writes them); or a
        folder of PNGs named ``<73k index>.png`` or
        ``<73k index>_<sample>.png``, one set.
    nsd_root : str or path-like
        Folder in NSD's layout holding the seen images.
    subject : str, default=None
        Label of the scores; None is the one the file records.
    suite, metrics, weights, device, dtype
        As :class:`~brainldm.metrics.IdentificationScorer`; ``suite=None`` is
        the one the file records, else ``"braindiffuser"``.
    protocols : sequence of {"pairwise", "takagi2023"}, default=both
    out : str or path-like, default=None
        Output folder; None is the folder holding ``reconstructions``.
    %(workflow_log)s

    Returns
    -------
    result : EvaluationResult
        The per-image scores, their means per protocol, set and metric, the
        summary written as JSON and the paths written.

    Examples
    --------
    >>> from brainldm.workflows import evaluate
    >>> result = evaluate("out/reconstructions-subj01.npz", "toy_nsd")  # doctest: +SKIP
    >>> print(result.report())  # doctest: +SKIP
    """
    import pandas as pd

    from brainldm.datasets.nsd import NSDStimuli

    protocols = [check_options(p, "protocols", "evaluate", PROTOCOLS) for p in protocols]
    log = log or (lambda line: None)
    path = Path(reconstructions)
    if not (path.is_dir() or path.is_file()):
        raise FileNotFoundError(f"{path} is neither a reconstructions .npz nor a folder of PNGs")
    out = check_writable(path.parent if out is None else out, "out", "evaluate")
    ids, sets, records = _read_reconstructions(path)
    # NSD's layout (nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5, imgBrick).
    brick = Path(nsd_root) / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    if not brick.is_file():
        raise FileNotFoundError(
            f"{brick} not found: nsd_root must be an NSD-layout folder holding the seen images"
        )
    seen = NSDStimuli(brick)[ids]
    suite = suite or records.get("suite", "braindiffuser")
    subject = subject_name(subject) if subject is not None else records.get("subject")
    scoring = dict(suite=suite, metrics=None if metrics is None else list(metrics))
    scoring |= dict(weights=weights, device=device, dtype=dtype, progress=progress)
    rows = []
    for name, load in sets.items():
        images = load()
        for protocol in protocols:
            log(f"scoring {name} ({protocol} protocol)")
            scores = _summaries.score(scoring, seen, images, (protocol,))
            rows += _summaries.rows(subject, ids, name, scores)
    table = pd.DataFrame(rows, columns=_summaries.COLUMNS)
    means = _summaries.image_means(table)
    stem = path.name if path.is_dir() else path.stem
    settings = dict(reconstructions=str(path), subject=subject, suite=suite)
    settings |= dict(metrics=scoring["metrics"], protocols=list(protocols))
    settings |= dict(device=device, dtype=dtype)
    chance = _summaries.chance_levels(table["metric"].unique())
    files = [out / f"{stem}-evaluation.json", out / f"{stem}-evaluation.csv"]
    summary = write_json(files[0], dict(settings=settings, scores=means, chance=chance))
    write_csv(files[1], table)
    return EvaluationResult(summary, table, _summaries.means_frame(means), files)
