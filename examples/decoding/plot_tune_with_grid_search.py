"""Tune the reconstruction with a grid search on the training data alone
======================================================================

:class:`~brainldm.reconstruction.LDMReconstructor` is a scikit-learn estimator whose
``score`` is two-way identification of its reconstructions, so
:class:`~sklearn.model_selection.GridSearchCV` can choose its settings: which ROI ``z`` is
decoded from and how much noise img2img adds (``strength``). The search sees the
training trials only; the test images are scored once, by the chosen settings.

Each training image was shown three times. Folds that split an image's trials would
reward settings that remember images, so the folds are grouped by image
(:class:`~sklearn.model_selection.GroupKFold` with ``groups=data.images_train``), and
the same groups reach the decoders' own cross-validation through scikit-learn's metadata
routing.

Run: ``python examples/decoding/plot_tune_with_grid_search.py [output-folder]``.
"""

# %%
# A small toy world
# -----------------
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.decoding import LatentDecoder
from brainldm.reconstruction import LDMReconstructor

# Some columns' best alpha at the grid's end, a few constant simulated voxels dropped.
warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
warnings.filterwarnings("ignore", "subj01: dropped", UserWarning)
out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
root = make_toy_nsd(
    out / "toy_nsd",
    n_sessions=4,
    n_released_sessions=3,
    trials_per_session=150,
    n_shared=40,
    subjects=("subj01",),
    progress=False,
)
data = load_nsd(root, "subj01", progress=False)
rois = {name: data.roi_masks[name] for name in ("early", "ventral")}

# %%
# The search
# ----------
# Mode ``"z"`` (img2img from the decoded ``z``, no text) with few steps and one sample
# per image keeps each of the 4 x 3 fits quick; the cache (``memory``) encodes the
# training images once for all of them. ``set_fit_request`` asks for the groups (and
# tells the search that this mode needs no captions).
with sklearn.config_context(enable_metadata_routing=True):
    reconstructor = LDMReconstructor(
        "toy",
        latent_decoder=LatentDecoder(voxels=rois["early"]),
        mode="z",
        steps=5,
        n_samples_per_image=1,
        memory=out / "cache",
    ).set_fit_request(groups=True, captions=False)
    search = GridSearchCV(
        reconstructor,
        {"latent_decoder__voxels": list(rois.values()), "strength": [0.5, 0.8]},
        cv=GroupKFold(3),
    )
    search.fit(data.X_train, data.stimuli[data.images_train], groups=data.images_train)


def roi_name(voxels):
    return next(name for name, mask in rois.items() if np.array_equal(mask, voxels))


table = pd.DataFrame(
    {
        "z from": [
            roi_name(params["latent_decoder__voxels"]) for params in search.cv_results_["params"]
        ],
        "strength": search.cv_results_["param_strength"],
        "mean score": search.cv_results_["mean_test_score"],
        "std": search.cv_results_["std_test_score"],
    }
)
print(table.round(3).to_string(index=False))

# %%
# The chosen settings on the test images
# --------------------------------------
# Refitted on every training trial; the test images were never seen by the search.
best = search.best_params_
print(f"chosen: z from {roi_name(best['latent_decoder__voxels'])}, strength {best['strength']}")
test_score = search.score(data.X_test, data.stimuli[data.images_test])
print(f"identification of the test reconstructions: {test_score:.2f} (chance 0.50)")
