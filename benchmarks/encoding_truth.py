"""What each feature space of the encoding analyses carries of how the toy brain was made.

Reads the features of a finished ``brainldm encode`` run on a toy world (its cache) and the
world's ground truth (:func:`~brainldm.datasets.toy.load_toy_ground_truth`), fits ridge
regressions (scikit-learn's ``RidgeCV``, an alpha per target, on 500 principal components
of the z-scored features fitted on the training images) from z, c and each strength's z_c
to the generating features (low-level and semantic) and to the noise-free signal of the
early and ventral voxels, and prints the median test R2 of each. It tells which results of
the paper the toy world can show (docs/encoding_analyses.md).

Run ``brainldm encode --nsd-root toy_nsd --out toy-encode`` first, then
``python benchmarks/encoding_truth.py toy_nsd toy-encode``.
"""

import argparse

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler


def held_out_r2(space, targets, train, test, n_components=500):
    """R2 on the ``test`` rows, per target, of a ridge from ``space`` fitted on ``train``."""
    scaler = StandardScaler().fit(space[train])
    X = scaler.transform(space)
    X = PCA(min(n_components, X.shape[1], len(train)), random_state=0).fit(X[train]).transform(X)
    model = RidgeCV(alphas=np.logspace(-1, 6, 15), alpha_per_target=True)
    prediction = model.fit(X[train], targets[train]).predict(X[test])
    y = targets[test]
    return 1 - ((y - prediction) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


def measure(nsd_root, encode_out, subject="subj01"):
    """Median test R2 of each feature space (row) for each target (column), as a dict."""
    from encode_run import load_run

    from brainldm.datasets.toy import load_toy_ground_truth

    data, features = load_run(nsd_root, encode_out, subject)
    truth = load_toy_ground_truth(nsd_root, subject)
    index = {tuple(v): i for i, v in enumerate(truth.voxel_ijk)}
    rows = np.array([index[tuple(v)] for v in data.voxel_ijk])
    generating = truth.features[features.images]
    signal = generating @ truth.weights[rows].T
    train, test = np.unique(features.rows_train), np.unique(features.rows_test)
    spaces = {"z": features.z, "c": features.c}
    spaces.update({f"z_c {s:.1f}": features.zc[s] for s in features.strengths})
    targets = {
        f"{group} features ({(truth.feature_groups == group).sum()})": generating[
            :, truth.feature_groups == group
        ]
        for group in ("low_level", "semantic")
    }
    for roi in ("early", "ventral"):
        mask = data.roi_masks[roi]
        targets[f"{roi} voxels' signal ({mask.sum()})"] = signal[:, mask]
    print(f"{data.subject}: median test R2 ({len(train)} training, {len(test)} test images)")
    print(f"{'from':>10} " + " ".join(f"{name:>28}" for name in targets))
    table = {}
    for name, space in spaces.items():
        values = [float(np.median(held_out_r2(space, y, train, test))) for y in targets.values()]
        table[name] = dict(zip(targets, values, strict=True))
        print(f"{name:>10} " + " ".join(f"{v:28.3f}" for v in values), flush=True)
    return {"n_train": len(train), "n_test": len(test), "r2": table}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nsd_root", help="a toy world")
    parser.add_argument("encode_out", help="--out of a finished brainldm encode run")
    parser.add_argument("--subject", default="subj01")
    args = parser.parse_args(argv)
    measure(args.nsd_root, args.encode_out, args.subject)


if __name__ == "__main__":
    main()
