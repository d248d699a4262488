"""How the pooling grid of the U-Net layer analysis changes what the layers explain.

Reads the features of a finished ``brainldm encode`` run (its cache), block-averages
each layer's activations, pooled to ``p`` x ``p`` by the run, to every coarser grid
that divides ``p``, fits a :class:`~brainldm.encoding.VoxelwiseEncoder` per grid on
the training images and prints the median held-out r per ROI, at each read step.

Run ``brainldm encode --nsd-root toy_nsd --out toy-encode`` first, then
``python benchmarks/pool_size.py toy_nsd toy-encode``.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits


def coarser(activations, channels, pool, grid):
    """(n, channels * pool**2) activations averaged to (n, channels * grid**2)."""
    block = pool // grid
    shaped = activations.reshape(len(activations), channels, grid, block, grid, block)
    return shaped.mean(axis=(3, 5)).reshape(len(activations), -1)


def measure(
    nsd_root,
    encode_out,
    subject="subj01",
    steps=("early", "late"),
    rois=("early", "ventral"),
    threads=1,
):
    """Median held-out r per (step, layer, grid) and ROI, as a list of dicts."""
    from encode_run import load_run

    from brainldm.encoding import VoxelwiseEncoder
    from brainldm.features import load_ldm

    table = []
    with threadpool_limits(threads):
        sd = load_ldm("toy")
        data, features = load_run(nsd_root, encode_out, subject, sd)
        pool = features.pool_size
        shapes = sd.unet_output_shapes(features.layer_names, 1)
        grids = [g for g in range(pool, 0, -1) if pool % g == 0]
        print(
            f"{data.subject}: {len(data.images_train)} training images, {len(data.images_test)} "
            f"test images; the run pooled to {pool} x {pool}; median held-out r per ROI "
            f"({', '.join(f'{r} {int(data.roi_masks[r].sum())} voxels' for r in rois)})"
        )
        print(
            f"{'step':>7} {'layer':>14} {'grid':>5} {'values':>7} "
            + " ".join(f"{roi:>9}" for roi in rois)
        )
        columns = np.flatnonzero(np.any([data.roi_masks[r] for r in rois], axis=0))
        for step in steps:
            for layer in features.layer_names:
                channels = shapes[layer][0]
                full = features.layers[layer, step]
                for grid in grids:
                    X = coarser(full, channels, pool, grid)
                    start = time.perf_counter()
                    encoder = VoxelwiseEncoder(n_components=min(X.shape[1], 6400))
                    encoder.fit(
                        X[features.rows_train], data.X_train[:, columns], groups=data.images_train
                    )
                    r = np.full(data.X_test.shape[1], np.nan)
                    r[columns] = encoder.score_voxels(
                        X[features.rows_test], data.X_test[:, columns]
                    )
                    medians = {roi: float(np.nanmedian(r[data.roi_masks[roi]])) for roi in rois}
                    table.append(dict(step=step, layer=layer, grid=grid, median_r=medians))
                    print(
                        f"{step:>7} {layer:>14} {grid:>5} {X.shape[1]:>7} "
                        + " ".join(f"{m:9.3f}" for m in medians.values())
                        + f"   ({time.perf_counter() - start:.1f} s)",
                        flush=True,
                    )
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nsd_root")
    parser.add_argument("encode_out", help="--out of a finished brainldm encode run")
    parser.add_argument("--subject", default="subj01")
    parser.add_argument("--steps", nargs="+", default=["early", "late"])
    parser.add_argument("--rois", nargs="+", default=["early", "ventral"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    measure(args.nsd_root, args.encode_out, args.subject, args.steps, args.rois, args.threads)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="n_components")
    main()
