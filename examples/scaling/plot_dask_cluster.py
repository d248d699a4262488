"""Fit voxelwise encoding models on a dask cluster
===============================================

A whole-brain NSD subject has about 250,000 voxels: a voxelwise encoder's ridge fits
split into batches of voxels, and with ``distributed=True`` each batch is a task on the
workers of the current :class:`dask.distributed.Client`. Each fold is decomposed once, in
this process, and sent to the workers; the weights equal the serial fit's to float
rounding.

Here the cluster is two workers in this process, one thread each, and the problem tiny
(a toy brain of about a thousand voxels in batches of 100), so the cluster's overhead
outweighs the fit. On a real cluster the workers are processes on other machines and the
client comes from their scheduler, e.g. ``Client(SLURMCluster(...))`` with dask-jobqueue;
the encoder's code is the same. (Local worker *processes*, ``LocalCluster(processes=True)``,
start by running the script that creates them again: put the code under
``if __name__ == "__main__":`` there.) ``brainldm encode --dask N`` (``encode(...,
dask=N)``) spreads whole subjects over the workers in the same way.

Run: ``python examples/scaling/plot_dask_cluster.py [output-folder]``.
"""

# %%
# A tiny toy world and its features
# ---------------------------------
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.encoding import VoxelwiseEncoder
from brainldm.features import LatentFeatures

# Some voxels' best alpha at the grid's end, a few constant simulated voxels dropped.
warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
warnings.filterwarnings("ignore", "subj01: dropped", UserWarning)
out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
root = make_toy_nsd(
    out / "toy_nsd",
    n_sessions=6,
    n_released_sessions=6,
    trials_per_session=60,
    n_shared=20,
    volume_shape=(12, 14, 12),
    subjects=("subj01",),
    progress=False,
)
data = load_nsd(root, "subj01", rois="brain", progress=False)
seen = np.unique(np.concatenate([data.images_train, data.images_test]))
z = LatentFeatures("toy").fit_transform(data.stimuli[seen])
train, test = np.searchsorted(seen, data.images_train), np.searchsorted(seen, data.images_test)
print(f"{data.X_train.shape[1]} voxels, {len(data.X_train)} training trials")

# %%
# The same encoder, serial and on the cluster
# -------------------------------------------
# ``distributed=True`` sends each batch of ``n_targets_batch`` voxels to a worker.
settings = dict(n_components=40, n_targets_batch=100)
start = time.perf_counter()
serial = VoxelwiseEncoder(**settings).fit(z[train], data.X_train, groups=data.images_train)
print(f"serial: {time.perf_counter() - start:.1f} s")

with (
    LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster,
    Client(cluster) as client,
):
    start = time.perf_counter()
    encoder = VoxelwiseEncoder(distributed=True, **settings)
    encoder.fit(z[train], data.X_train, groups=data.images_train)
    print(
        f"on {len(client.scheduler_info()['workers'])} workers: {time.perf_counter() - start:.1f} s"
    )

print("largest difference in the weights:", float(np.abs(encoder.coef_ - serial.coef_).max()))
r = encoder.score_voxels(z[test], data.X_test)
print(f"median r in early cortex: {np.nanmedian(r[data.roi_masks['early']]):.2f}")
