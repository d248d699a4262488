"""Measure where the background of a toy reconstruction comes from.

Run ``python benchmarks/toy_background.py [root]`` (the toy world is made in
``root``, default ``toy_nsd``, if it is not there). It prints

1. how well each scene attribute can be read from subj01's early and ventral
   voxels (multinomial logistic regression fitted on the training trials,
   accuracy on the averaged test images, against the majority class);
2. the share of captions that name the background's colour, and how well each
   attribute can be read from the true ``c`` of 1,000 scenes (5-fold
   cross-validated logistic regression on 100 principal components);
3. what the shipped toy LDM's img2img takes from ``z`` and what from ``c``,
   on 48 test scenes: the true ``z`` and ``c``, then the true ``z`` with
   another scene's ``c`` (scored against the seen scene, and its background
   against the scene that ``c`` describes), at strengths 0.8, 0.65 and 0.5.
"""

import sys
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainldm import load_nsd, load_toy_ground_truth, make_toy_nsd
from brainldm.datasets import scenes
from brainldm.diffusion import StableDiffusion
from brainldm.metrics import IdentificationScorer

_METRICS = ["toy_embedding", "toy_early", "toy_background", "toy_shape", "toy_colour"]


def decodability(data, attributes):
    """Test accuracy of each attribute from early and ventral voxels, with the majority rate."""
    table = {}
    for name in ("background_colour", "background_kind", "colour", "shape"):
        values = attributes[name]
        values = values if values.ndim == 1 else values[:, 0]  # the largest object's
        train, test = values[data.images_train], values[data.images_test]
        table[name] = {"majority": float(np.bincount(test).max() / len(test))}
        for roi in ("early", "ventral"):
            columns = data.roi_masks[roi]
            scaler = StandardScaler().fit(data.X_train[:, columns])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lbfgs' iteration limit
                model = LogisticRegression(C=0.01, max_iter=300).fit(
                    scaler.transform(data.X_train[:, columns]), train
                )
            table[name][roi] = float(model.score(scaler.transform(data.X_test[:, columns]), test))
        print(f"{name:>17}: " + ", ".join(f"{k} {v:.2f}" for k, v in table[name].items()))
    return table


def _from_c(n=1000):
    stim = scenes.make_stimuli(n, seed=0)
    captions = [caption for captions in stim.captions for caption in captions]
    named = np.mean([any(w in c.split() for w in scenes.BACKGROUND_COLOURS) for c in captions])
    print(f"captions naming the background's colour: {named:.3f} of {len(captions)}")
    c = StableDiffusion.from_pretrained("toy").encode_text(stim.captions).reshape(n, -1)
    a = stim.attributes
    for name, y in (
        ("background_colour", a.background_colour),
        ("background_kind", a.background_kind),
        ("colour", a.colour[:, 0]),
        ("shape", a.shape[:, 0]),
    ):
        model = make_pipeline(PCA(100), LogisticRegression(max_iter=500))
        accuracy = cross_val_score(model, c, y, cv=5).mean()
        print(
            f"{name:>17}: majority {np.bincount(y).max() / n:.2f}, from the true c {accuracy:.2f}"
        )


def _chain(data, n=48):
    sd = StableDiffusion.from_pretrained("toy")
    seen = data.stimuli[data.images_test[:n]]
    z = sd.encode_images(seen)
    c = sd.encode_text([data.captions[i] for i in data.images_test[:n]])
    other = np.roll(np.arange(n), 1)
    scorer = IdentificationScorer(_METRICS, suite="toy")
    background = IdentificationScorer(["toy_background"], suite="toy")
    runs = [("true z, true c", c, 0.8)] + [
        (f"true z, another scene's c, strength {s}", c[other], s) for s in (0.8, 0.65, 0.5)
    ]
    for label, condition, strength in runs:
        out = sd.img2img(z, condition, steps=25, strength=strength, batch_size=16)
        scores = {key: round(value, 3) for key, value in scorer.score(seen, out).items()}
        of_c = background.score(seen[other] if condition is not c else seen, out)
        print(f"{label}: {scores}; background as c's scene {of_c['toy_background']:.2f}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = make_toy_nsd(argv[0] if argv else "toy_nsd", progress=False)
    data = load_nsd(root, "subj01", progress=False)
    print("attribute decoding from subj01's betas (test accuracy):")
    decodability(data, load_toy_ground_truth(root, 1).attributes)
    print("the captions and the true c, 1,000 scenes:")
    _from_c()
    print("toy LDM img2img, 25 steps, guidance 5.0, 48 test scenes:")
    _chain(data)


if __name__ == "__main__":
    main()
