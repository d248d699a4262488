"""How much a row's reconstructions depend on the rows predicted with it.

Run ``python benchmarks/row_noise.py [N_ROWS STEPS N_SAMPLES]`` (default ``8 25 3``). It fits an
LDMReconstructor on random betas of the toy model's scenes and predicts ``N_ROWS`` rows: all
together, each alone, in reverse order, and with one sample per batch. It prints, against the
rows predicted together, the largest difference in uint8 levels and the fraction of values that
differ. Each row's noise is keyed by its betas, so what remains is the rounding of batched
arithmetic: none with one sample per batch (``batch_size=1``), a level at most otherwise.
"""

import sys
import warnings

import numpy as np

from brainldm.datasets.scenes import make_stimuli
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.reconstruction import LDMReconstructor


def compare(name, reference, other):
    difference = np.abs(reference.astype(int) - other)
    print(f"{name:<34} max {difference.max()} levels, {(difference > 0).mean():.4%} of values")


def main(n_rows=8, steps=25, n_samples=3):
    warnings.simplefilter("ignore")
    scenes = make_stimuli(40, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 50))
    reconstructor = LDMReconstructor(
        latent_decoder=LatentDecoder(),
        text_decoder=TextDecoder(),
        steps=steps,
        n_samples_per_image=n_samples,
        batch_size=8,
    ).fit(X, scenes.images, scenes.captions)
    X_new = rng.normal(size=(n_rows, 50))
    together = reconstructor.predict(X_new)
    alone = np.concatenate([reconstructor.predict(X_new[j : j + 1]) for j in range(n_rows)])
    compare("each row alone (batch_size=8)", together, alone)
    compare("reversed order (batch_size=8)", together, reconstructor.predict(X_new[::-1])[::-1])
    one = reconstructor.set_params(batch_size=1)
    compare("together, batch_size=1", together, one.predict(X_new))
    single = one.predict(X_new)
    alone = np.concatenate([one.predict(X_new[j : j + 1]) for j in range(n_rows)])
    compare("batch_size=1: each row alone", single, alone)


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
