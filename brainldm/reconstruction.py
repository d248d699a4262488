"""Reconstruct seen images from fMRI: decoders to ``z`` and ``c``, then the diffusion model.

:class:`LDMReconstructor` is the method of Takagi & Nishimoto (CVPR 2023) as
one scikit-learn estimator: ``fit`` encodes the seen images (and captions)
into the model's ``z`` (and ``c``) and fits a ridge decoder to each from the
betas; ``predict`` decodes new betas and turns them into images by the
img2img chain (mode ``"zc"``) or its controls (``"z"``, ``"c"``,
``"coarse"``); ``score`` identifies the reconstructions among the seen
images, so that ``GridSearchCV`` tunes the chain on training data alone.
"""

import json
import os
from numbers import Integral, Real

import numpy as np
from joblib import Memory
from sklearn.base import BaseEstimator, clone
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted, validate_data

from brainldm._cache import Cache, check_cache, digest
from brainldm._images import check_images, check_uint8, resize
from brainldm._validation import (
    HasMethods,
    Interval,
    Options,
    check_captions,
    check_finite,
    check_int,
    check_options,
    validate_params,
)
from brainldm._warnings import warn
from brainldm.metrics.identification import standardize_rows
from brainldm.ridge import BaseRidgeCV, cv_splits

__all__ = [
    "MODES",
    "PRESETS",
    "RESCALES",
    "SELECTS",
    "LDMReconstructor",
    "betas_ids",
    "rescale_features",
    "select_samples",
]

MODES = ("zc", "z", "c", "coarse")
"""What :meth:`LDMReconstructor.predict` generates from: decoded ``z`` and ``c`` (the
method), ``z`` alone (img2img against the empty prompt), ``c`` alone (text-to-image
from noise), or ``X_z``, the decoded ``z`` through the VAE decoder alone."""

RESCALES = (None, "train", "batch")
"""How decoded features are mapped back to the spread of the true ones."""

SELECTS = (None, "decoded")
"""How :meth:`LDMReconstructor.predict` chooses among an image's samples."""

PRESETS = (None, "takagi2023")
"""Named settings; ``"takagi2023"`` is the original code's choices."""


def betas_ids(X):
    """A 63-bit id of each row of betas: the key of its sampling noise.

    :class:`LDMReconstructor` seeds sample ``i`` of a row from
    ``(random_state, betas_ids(row), i)``, so a row's images are a function of
    its own betas, whatever rows are predicted with it and in whatever order.
    The id is a digest of the row's values as float64, so the same betas in
    float32 and float64 get the same id.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_voxels)

    Returns
    -------
    ids : list of int
        One non-negative integer below ``2**63`` per row.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.reconstruction import betas_ids
    >>> X = np.random.default_rng(0).normal(size=(3, 5))
    >>> betas_ids(X)[::-1] == betas_ids(X[::-1])
    True
    >>> betas_ids(X.astype(np.float32)) == betas_ids(X.astype(np.float32).astype(np.float64))
    True
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"betas_ids takes a 2-D betas matrix, got shape {X.shape}")
    wide = np.ascontiguousarray(X, dtype=np.float64)
    return [int(digest(row, size=8), 16) >> 1 for row in wide]


# The suite whose metrics (and their computation) score() uses.
_SCORE_SUITE = "braindiffuser"

# Rows of X reconstructed per entry of the cache.
_CHUNK = 16


def rescale_features(Y, source_mean, source_std, target_mean, target_std):
    """Map features from one per-dimension mean and spread to another.

    ``(Y - source_mean) / source_std * target_std + target_mean``, with
    dimensions of no source spread left at ``target_mean``. With the
    predictions' own statistics as the source and the training targets' as
    the target, this is Brain-Diffuser's rescaling of decoded features.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
    source_mean, source_std, target_mean, target_std : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.array([[0.0, 1.0], [2.0, 1.0]])
    >>> rescale_features(Y, Y.mean(0), Y.std(0), np.array([5.0, 5.0]), np.array([2.0, 2.0]))
    array([[3., 5.],
           [7., 5.]], dtype=float32)
    """
    Y, source_mean = np.asarray(Y, np.float64), np.asarray(source_mean, np.float64)
    # A spread within float32 rounding of the mean is no spread: those dimensions are constant.
    flat = np.asarray(source_std) <= 1e-5 * np.abs(source_mean)
    std = np.where(flat | (np.asarray(source_std) <= 0), np.inf, source_std)
    return ((Y - source_mean) / std * target_std + target_mean).astype(np.float32)


def select_samples(reconstructions, images, extractor=None):
    """The sample of each image that looks most like the image: the paper's figure choice.

    Takagi & Nishimoto's figures show, of each image's samples, the one most
    similar to the seen image. That uses the truth, so
    :meth:`LDMReconstructor.predict` never does it (its ``select="decoded"``
    uses the brain alone); use this for figures that mirror the paper's.

    Parameters
    ----------
    reconstructions : ndarray of shape (n_images, n_samples, height, width, 3), uint8
    images : ndarray of shape (n_images, h, w, 3), uint8
        The seen images, in the same order.
    extractor : transformer, default=None
        Features in which similarity is the Pearson correlation (anything with
        ``fit_transform(images)``); None is the toy perceptual network's
        embedding (:class:`~brainldm.features.perceptual.ToyPerceptualFeatures`).

    Returns
    -------
    selected : ndarray of shape (n_images, height, width, 3), uint8
    indices : ndarray of shape (n_images,)
        The sample chosen for each image.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> scenes = make_stimuli(2, seed=0).images
    >>> candidates = np.stack([scenes[::-1], scenes], axis=1)  # sample 1 is the image
    >>> selected, indices = select_samples(candidates, scenes)
    >>> indices.tolist()
    [1, 1]
    """
    reconstructions = np.asarray(reconstructions)
    check_uint8(reconstructions, "reconstructions")
    if reconstructions.ndim != 5:
        raise ValueError(
            "reconstructions must have shape (n_images, n_samples, height, width, 3), got "
            f"{reconstructions.shape}"
        )
    images = np.asarray(check_images(images))
    if len(images) != len(reconstructions):
        raise ValueError(
            f"images has {len(images)} images but reconstructions has {len(reconstructions)}; "
            "pass one seen image per reconstructed image"
        )
    if extractor is None:
        from brainldm.features.perceptual import ToyPerceptualFeatures

        extractor = ToyPerceptualFeatures()
    n, n_samples = reconstructions.shape[:2]
    size = images.shape[1]
    flat = resize(reconstructions.reshape(n * n_samples, *reconstructions.shape[2:]), size)
    features = standardize_rows(extractor.fit_transform(np.concatenate([images, flat])))
    seen, generated = features[:n], features[n:].reshape(n, n_samples, -1)
    indices = np.einsum("if,isf->is", seen, generated).argmax(1)
    return reconstructions[np.arange(n), indices], indices


def _check_score_metric(metric, default, caller, load):
    """``(name, metric)`` of a reconstructor's score, or an error naming ``metric=``."""
    from brainldm.metrics import METRICS, SUITES, check_metrics

    taps = SUITES[_SCORE_SUITE]["taps"]
    if isinstance(metric, str) and metric not in taps:
        raise ValueError(
            f"metric={metric!r}{' (the default for this model)' if default else ''} is not an "
            f"identification metric of {caller}.score; choose among "
            f"{sorted(set(taps) & set(METRICS))}, or pass a feature extractor"
        )
    try:
        ((name, resolved),) = check_metrics(
            [metric], suite=_SCORE_SUITE, load=load, param="metric"
        ).items()
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"metric={metric!r}{', the default for this model,' if default else ''} scores "
            f"with a network whose weights are not available, so {caller}.score could not "
            f"run: {error} ({caller} finds weights through BRAINLDM_WEIGHTS_DIR). Or set "
            "metric= to one that needs no weights, e.g. 'pixcorr'."
        ) from None
    return name, resolved


def _select_decoded(sd, images, z):
    """Per row, the sample whose own latent correlates best with the decoded ``z``."""
    n, n_samples = images.shape[:2]
    flat = images.reshape(n * n_samples, *images.shape[2:])
    latents = sd.encode_images(flat).reshape(n, n_samples, -1)
    similarity = np.einsum(
        "if,isf->is",
        standardize_rows(z.reshape(n, -1)),
        standardize_rows(latents.reshape(n * n_samples, -1)).reshape(n, n_samples, -1),
    )
    return images[np.arange(n), similarity.argmax(1)]


def _predict_in_blocks(decoder, X):
    """``decoder.predict(X)`` as float32 rows, computed in zero-padded blocks of ``_CHUNK`` rows.

    A matrix product of one row takes another BLAS path than one of many rows and rounds
    differently (by about 1e-6): every row goes through a product of the same shape, so a
    row's decoded features, and so its images, do not depend on the rows decoded with it.
    """
    blocks = []
    for start in range(0, len(X), _CHUNK):
        block = X[start : start + _CHUNK]
        padded = np.zeros((_CHUNK, X.shape[1]), X.dtype)
        padded[: len(block)] = block
        predicted = np.asarray(decoder.predict(padded), dtype=np.float32)
        blocks.append(predicted.reshape(_CHUNK, -1)[: len(block)])
    return np.concatenate(blocks)


def _resize_bicubic(images, size):
    """PIL's default resize of the original code (bicubic), for the takagi2023 preset."""
    from PIL import Image

    return np.stack(
        [np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC)) for image in images]
    )


class LDMReconstructor(BaseEstimator):
    """Reconstruct seen images from fMRI with a latent diffusion model.

    ``fit`` encodes the seen images to ``z`` (and their captions to ``c``)
    through ``model`` and fits ``latent_decoder`` (and ``text_decoder``) from
    the betas; ``predict`` decodes betas and generates images; ``score``
    identifies them among the seen images. One betas matrix feeds both
    decoders, each reading its own ROI (their ``voxels``).

    Parameters
    ----------
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model: ``"toy"``, a folder in the Stable
        Diffusion layout, a hub id such as ``"CompVis/stable-diffusion-v1-4"``,
        or a loaded model. Named models are loaded on first use and shared.
    latent_decoder : regressor, default=None
        Betas -> flat ``z``. None is ``LatentDecoder()`` on every column of X,
        with a warning: the paper decodes ``z`` from early visual cortex,
        ``LatentDecoder(voxels=data.roi_masks["early"])``.
    text_decoder : regressor, default=None
        Betas -> flat ``c``. None is ``TextDecoder()`` on every column, with a
        warning: the paper decodes ``c`` from ventral visual cortex.
    mode : {"zc", "z", "c", "coarse"}, default="zc"
        What images are generated from (:data:`MODES`). Only the decoders a
        mode needs are fitted.
    strength : float in (0, 1], default=0.8
        img2img noise level (modes ``"zc"`` and ``"z"``).
    steps : int, default=50
        DDIM steps.
    guidance : float, default=5.0
        Classifier-free guidance scale against the empty prompt.
    n_samples_per_image : int, default=5
        Images generated per row of X (the paper draws 5).
    random_state : int, default=42
        Seed of the generation; sample ``i`` of a row draws its noise from
        ``(random_state, betas_ids(row), i)`` (:func:`betas_ids`, a digest of
        the row's betas), so a row's images are the same alone, in any subset
        and in any order.
    noise_schedule : {"takagi2023", "diffusers"}, default="takagi2023"
        As in :meth:`StableDiffusion.img2img <brainldm.diffusion.StableDiffusion.img2img>`.
    rescale : {"train", "batch"} or None, default="train"
        Map decoded features, per dimension, to the training targets' mean
        and standard deviation before generation: ridge shrinks them toward
        the mean, and guidance turns a near-mean ``c`` into a near-mean image.
        ``"train"`` takes the decoded features' statistics from
        cross-validated predictions on the training rows, stored at fit (a
        ridge decoder's folds refitted at the alphas it chose);
        ``"batch"`` from the rows given to predict (Brain-Diffuser's formula,
        at least 2 rows); None generates from the decoded features as they
        are (the paper).
    select : {"decoded"} or None, default=None
        None returns every sample; ``"decoded"`` returns, per row, the sample
        whose own latent correlates best with the decoded ``z`` (the brain
        alone chooses; modes ``"zc"`` and ``"z"``). See
        :func:`select_samples` for the paper's choice, which uses the truth.
    preset : {"takagi2023"} or None, default=None
        ``"takagi2023"`` makes the original code's choices where they differ
        from brainldm's: decoded features are used unscaled (``rescale`` is
        ignored), ``X_z`` is truncated to uint8 and upsampled with PIL's
        bicubic filter, one VAE posterior sample of the re-encoded image is
        shared by its samples, every image gets the same noise (the original
        reseeds to 42 before each), and generated images are truncated to
        uint8. The same settings, not bit-identical results: the original
        draws its noise from torch's global CUDA generator in another order and
        runs CompVis' modules under autocast. The decoders are yours to set:
        ``LatentDecoder(**brainldm.ridge.TAKAGI2023)`` fits as the original.
    metric : str, transformer or (str, transformer), default=None
        Identification metric of :meth:`score`: a name of
        :data:`brainldm.metrics.METRICS`, or a feature extractor (optionally
        named by a tuple), as :class:`~brainldm.metrics.IdentificationScorer`
        takes it; None is ``"toy_embedding"`` for the toy model (and any model
        trained on the toy world) and ``"clip"`` for others. ``fit`` checks
        it, and that its network's weights are on disk or can be downloaded
        (:func:`~brainldm.metrics.check_metrics`), before any work, so that a
        grid search fails at once instead of scoring NaN; without the weights,
        choose a metric that needs none, e.g. ``"pixcorr"``.
    batch_size : int, default=8
        Samples denoised at once.
    device, dtype : str, default=None
        Where and in which precision a named model runs.
    memory : str, path-like, joblib.Memory or None, default=None
        Where to cache (:mod:`brainldm._cache`): the encoded training targets
        (``z`` and ``c`` of the seen images and captions, named by the
        model's fingerprint and their content, so that another fit on the
        same images, as at each point of a grid search, does not encode them
        again) and the generated images, written atomically in chunks of 16
        rows and named by what they depend on, so an interrupted ``predict``
        resumes where it stopped and a repeated one recomputes nothing. None
        caches nothing.
    progress : bool, default=False
        Show progress bars.

    Attributes
    ----------
    latent_decoder_, text_decoder_ : regressor or None
        The fitted decoders (None where the mode needs none).
    latent_shape_, text_shape_ : tuple of int
        Shapes of one image's ``z`` and ``c``.
    rescale_ : dict
        ``"z"`` / ``"c"`` -> Bunch of ``target_mean``, ``target_std`` (the
        training targets') and ``decoded_mean``, ``decoded_std`` (of the
        cross-validated decoded training features, with ``rescale="train"``:
        for a brainldm ridge estimator, each fold refitted at the alphas it
        chose on every row; any other regressor is cloned and fitted per fold).
    n_features_in_ : int
        Columns of X.

    Notes
    -----
    Why ``rescale="train"`` is the default, measured on the toy world (subj01,
    the first 100 test images, 25 steps, 5 samples, identification on the toy
    perceptual embedding; ``benchmarks/rescale_modes.py 100 25 5``): pairwise,
    z 0.660, c 0.702, zc 0.769 with it, against 0.621, 0.600, 0.642 with
    ``rescale=None`` (the paper's protocol: 0.811, 0.819, 0.884 against 0.734,
    0.817, 0.876). ``"batch"`` scores alike, 0.663, 0.703, 0.771 (0.813,
    0.825, 0.881), but makes a row's images depend on the rows predicted with
    it, and cannot reconstruct one row.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.decoding import LatentDecoder
    >>> from brainldm.reconstruction import LDMReconstructor
    >>> scenes = make_stimuli(12, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(12, 30))
    >>> recon = LDMReconstructor(
    ...     latent_decoder=LatentDecoder(), mode="z", steps=4, n_samples_per_image=2
    ... )
    >>> recon.fit(X, scenes.images).predict(X[:3]).shape
    (3, 2, 64, 64, 3)
    >>> recon.decode(X[:3]).z.shape
    (3, 4, 16, 16)
    """

    def __init__(
        self,
        model="toy",
        latent_decoder=None,
        text_decoder=None,
        mode="zc",
        strength=0.8,
        steps=50,
        guidance=5.0,
        n_samples_per_image=5,
        random_state=42,
        noise_schedule="takagi2023",
        rescale="train",
        select=None,
        preset=None,
        metric=None,
        batch_size=8,
        device=None,
        dtype=None,
        memory=None,
        progress=False,
    ):
        self.model = model
        self.latent_decoder = latent_decoder
        self.text_decoder = text_decoder
        self.mode = mode
        self.strength = strength
        self.steps = steps
        self.guidance = guidance
        self.n_samples_per_image = n_samples_per_image
        self.random_state = random_state
        self.noise_schedule = noise_schedule
        self.rescale = rescale
        self.select = select
        self.preset = preset
        self.metric = metric
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.memory = memory
        self.progress = progress

    _parameter_constraints = {
        "latent_decoder": [HasMethods(["fit", "predict"]), None],
        "text_decoder": [HasMethods(["fit", "predict"]), None],
        "mode": [Options(MODES)],
        "strength": [Interval(Real, 0, 1, closed="right")],
        "steps": [Interval(Integral, 1, None)],
        "guidance": [Interval(Real, 0, None)],
        "n_samples_per_image": [Interval(Integral, 1, None)],
        "random_state": [Interval(Integral, 0, None)],
        "rescale": [Options(RESCALES[1:]), None],
        "select": [Options(SELECTS[1:]), None],
        "preset": [Options(PRESETS[1:]), None],
        "metric": [str, HasMethods(["transform"]), tuple, None],
        "batch_size": [Interval(Integral, 1, None)],
        "memory": [str, os.PathLike, Memory, Cache, None],
        "progress": ["boolean"],
    }

    def _check_params(self):
        from brainldm.diffusion import NOISE_SCHEDULES

        validate_params(self)
        check_options(self.noise_schedule, "noise_schedule", type(self).__name__, NOISE_SCHEDULES)
        if self.select == "decoded" and self.mode == "c":
            raise ValueError(
                "select='decoded' chooses the sample closest to the decoded z, which mode='c' "
                "does not decode; use mode 'zc' or 'z', or select=None"
            )

    def _check_betas(self, X, reset):
        """X as a float array, its NaN and infinite values located by (row, column)."""
        X = validate_data(
            self, X, dtype=(np.float64, np.float32), reset=reset, ensure_all_finite=False
        )
        check_finite(
            X,
            "X",
            "drop those voxels (columns) or trials (rows), or impute them, before "
            + ("fitting" if reset else "predicting"),
        )
        return X

    def _default_metric(self):
        return "toy_embedding" if self._model().trained_on_toy_world else "clip"

    def _check_metric(self, load):
        """The metric of :meth:`score` as ``(name, metric)``, its weights checked if ``load``."""
        metric = self.metric if self.metric is not None else self._default_metric()
        return _check_score_metric(metric, self.metric is None, type(self).__name__, load)

    def _model(self):
        from brainldm.features.ldm import load_ldm

        return load_ldm(self.model, device=self.device, dtype=self.dtype)

    def _parts(self):
        return {"zc": ("z", "c"), "z": ("z",), "c": ("c",), "coarse": ("z",)}[self.mode]

    def _rescaling(self):
        return None if self.preset == "takagi2023" else self.rescale

    def _decoder(self, part):
        from brainldm.decoding import LatentDecoder, TextDecoder

        given = self.latent_decoder if part == "z" else self.text_decoder
        if given is not None:
            return clone(given)
        name, roi = ("LatentDecoder", "early") if part == "z" else ("TextDecoder", "ventral")
        warn(
            f"{type(self).__name__}: the default {name}() decodes {part} from every column of "
            f"X; pass {'latent' if part == 'z' else 'text'}_decoder={name}(voxels="
            f"data.roi_masks[{roi!r}]) to decode it from {roi} visual cortex, as the paper does"
        )
        return (LatentDecoder if part == "z" else TextDecoder)()

    def fit(self, X, images, captions=None, groups=None):
        """Encode the seen images (and captions) and fit the decoders.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels)
            Betas, one row per trial.
        images : array-like of shape (n_samples, height, width, 3) or sequence
            The uint8 image each trial showed.
        captions : sequence of sequences of str, default=None
            Each trial's image's captions; needed by modes ``"zc"`` and ``"c"``.
        groups : array-like of shape (n_samples,), default=None
            Group of each trial (e.g. its image), passed to the decoders so
            that cross-validation keeps an image's repetitions in one fold.
            Inside ``GridSearchCV`` it arrives through metadata routing:
            ``sklearn.set_config(enable_metadata_routing=True)`` and
            ``LDMReconstructor(...).set_fit_request(groups=True, captions=True)``.

        Returns
        -------
        self : LDMReconstructor
        """
        self._check_params()
        X = self._check_betas(X, reset=True)
        images = check_images(images)
        if len(images) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but images has {len(images)}; pass the image of each row"
            )
        if "c" in self._parts():
            if captions is None:
                raise ValueError(
                    f"mode={self.mode!r} decodes c, so fit needs captions: one list per row of X"
                )
            captions = check_captions(captions)
            if len(captions) != len(X):
                raise ValueError(
                    f"X has {len(X)} rows but captions has {len(captions)} lists; pass one per row"
                )
        groups = None if groups is None else np.asarray(groups)
        cache = check_cache(self.memory)
        sd = self._model()
        self._check_metric(load=True)
        self.latent_shape_, self.text_shape_ = tuple(sd.latent_shape), tuple(sd.text_shape)
        self.latent_decoder_ = self.text_decoder_ = None
        self.rescale_ = {}
        for part in self._parts():
            Y = self._targets(sd, part, images, captions, cache)
            decoder = self._decoder(part).fit(X, Y, groups=groups)
            setattr(self, "latent_decoder_" if part == "z" else "text_decoder_", decoder)
            wide = Y.astype(np.float64)
            self.rescale_[part] = Bunch(target_mean=wide.mean(0), target_std=wide.std(0))
            if self._rescaling() == "train":
                decoded = self._cross_decoded(decoder, X, Y, groups)
                wide = decoded.astype(np.float64)
                self.rescale_[part].update(decoded_mean=wide.mean(0), decoded_std=wide.std(0))
        return self

    def _targets(self, sd, part, images, captions, cache):
        """Flat z (or c) of every row, each distinct image (or caption set) encoded once.

        The encoded targets are cached by the model and the content they encode, so
        that fits on the same images (a grid search's points) encode them once.
        """
        if part == "z":
            keys = [digest(image) for image in images]
        else:
            keys = [json.dumps(texts) for texts in captions]
        unique = list(dict.fromkeys(keys))
        first = {key: j for j, key in reversed(list(enumerate(keys)))}
        rows = [first[key] for key in unique]

        def encode():
            if part == "z":
                encoded = sd.encode_images([images[j] for j in rows], progress=self.progress)
            else:
                encoded = sd.encode_text([captions[j] for j in rows], progress=self.progress)
            return {"targets": encoded.reshape(len(rows), -1)}

        model = [repr(sd), sd.fingerprint]
        encoded = cache.arrays(f"targets-{part}", [*model, unique], encode)["targets"]
        index = {key: i for i, key in enumerate(unique)}
        return encoded[[index[key] for key in keys]]

    def _cross_decoded(self, decoder, X, Y, groups):
        """Decoded training features, each row by a model that did not see its image.

        The statistics describe the decoder that will predict: a ridge decoder's folds
        are refitted at the alphas it chose on all the rows. Alphas chosen anew on each
        fold differ for some targets, and the spread of their predictions then differs
        from the decoder's (measured in docs/reconstruction.md).
        """
        decoded = np.empty(Y.shape, np.float32)
        for train, test in cv_splits(5, len(X), groups):
            fold_groups = None if groups is None else groups[train]
            if isinstance(decoder, BaseRidgeCV):
                fold = decoder.refit_at_chosen_alphas(X[train], Y[train], fold_groups)
            else:
                fold = clone(decoder).fit(X[train], Y[train], groups=fold_groups)
            decoded[test] = fold.predict(X[test])
        return decoded

    def decode(self, X):
        """The decoded ``z`` and ``c`` of each row, rescaled as set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels)

        Returns
        -------
        decoded : sklearn.utils.Bunch
            ``z`` of shape (n_samples, *latent_shape_) and ``c`` of shape
            (n_samples, *text_shape_), float32; None where the mode needs none.
        """
        check_is_fitted(self, "rescale_")
        return self._decode(self._check_betas(X, reset=False))

    def _decode(self, X):
        decoded = Bunch(z=None, c=None)
        for part in self._parts():
            decoder = self.latent_decoder_ if part == "z" else self.text_decoder_
            Y = _predict_in_blocks(decoder, X)
            stats = self.rescale_[part]
            if self._rescaling() == "train":
                Y = rescale_features(
                    Y, stats.decoded_mean, stats.decoded_std, stats.target_mean, stats.target_std
                )
            elif self._rescaling() == "batch":
                if len(X) < 2:
                    raise ValueError(
                        "rescale='batch' takes the decoded features' statistics from the rows "
                        f"given, which needs at least 2, got {len(X)}; use rescale='train'"
                    )
                # In float64: heavily regularised dimensions vary by a few float32 steps.
                wide = Y.astype(np.float64)
                Y = rescale_features(
                    Y, wide.mean(0), wide.std(0), stats.target_mean, stats.target_std
                )
            shape = self.latent_shape_ if part == "z" else self.text_shape_
            decoded[part] = Y.reshape(len(X), *shape)
        return decoded

    def predict(self, X, image_ids=None):
        """Reconstruct the image each row of betas saw.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels)
        image_ids : array-like of int of shape (n_samples,), default=None
            A non-negative id per row that keys its sampling noise in place of
            its betas (:func:`betas_ids`), e.g. NSD's 73k index, so that rows of
            one image get the same noise. Inside a meta-estimator it arrives
            through metadata routing (``set_predict_request(image_ids=True)``).

        Returns
        -------
        images : ndarray of shape (n_samples, n_samples_per_image, size, size, 3), uint8
            ``n_samples_per_image`` images per row at the model's generation size (one
            for mode ``"coarse"``, ``X_z`` upsampled with LANCZOS), or of
            shape (n_samples, size, size, 3) with ``select="decoded"``. A row's
            images depend on its betas (or id), ``random_state`` and the
            settings alone, not on the other rows.
        """
        check_is_fitted(self, "rescale_")
        X = self._check_betas(X, reset=False)
        decoded = self._decode(X)
        n = len(X)
        if image_ids is None:
            ids = betas_ids(X)
        else:
            ids = [check_int(key, "image_ids", "predict", min_val=0) for key in image_ids]
            if len(ids) != n:
                raise ValueError(
                    f"image_ids has {len(ids)} ids for {n} rows of X; pass one per row"
                )
        sd = self._model()
        images = self._generate_cached(sd, decoded, ids)
        if self.select == "decoded":
            images = _select_decoded(sd, images, decoded.z)
        return images

    def _generate_cached(self, sd, decoded, ids):
        from tqdm.auto import tqdm

        n = len(ids)
        chunks = [slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
        cache = check_cache(self.memory)
        parts = []
        for rows in tqdm(chunks, desc="reconstructing", unit="chunk", disable=not self.progress):
            path = cache.path("images", self._chunk_parts(sd, decoded, rows, ids[rows]))
            chunk = Cache.load_or_compute(
                path, lambda rows=rows: {"images": self._generate(sd, decoded, rows, ids[rows])}
            )
            parts.append(chunk["images"])
        return np.concatenate(parts)

    def _generation_settings(self):
        return dict(
            steps=self.steps,
            guidance=self.guidance,
            n_samples_per_image=self.n_samples_per_image,
            random_state=self.random_state,
            batch_size=self.batch_size,
        )

    def _chunk_parts(self, sd, decoded, rows, ids):
        """What a chunk of generated images depends on: model, settings, decoded rows, noise keys."""
        settings = dict(
            self._generation_settings(),
            mode=self.mode,
            strength=self.strength,
            noise_schedule=self.noise_schedule,
            preset=self.preset,
        )
        arrays = [decoded[part][rows] for part in ("z", "c") if decoded[part] is not None]
        return [repr(sd), sd.fingerprint, settings, *arrays, [str(key) for key in ids]]

    def _generate(self, sd, decoded, rows, ids):
        settings = dict(self._generation_settings(), image_ids=ids)
        z = None if decoded.z is None else decoded.z[rows]
        c = None if decoded.c is None else decoded.c[rows]
        original = self.preset == "takagi2023"
        if original:
            # The original truncates to uint8, upsamples X_z bicubically, shares one posterior
            # sample among an image's samples and reseeds before every image.
            settings.update(rounding="truncate", image_ids=[0] * len(ids))
        if self.mode == "coarse":
            coarse = sd.decode_latents(z, rounding=settings.get("rounding", "round"))
            if original:
                return _resize_bicubic(coarse, sd.generation_size)[:, None]
            return resize(coarse, sd.generation_size)[:, None]
        if self.mode == "c":
            return sd.text2img(c, **settings)
        if original:
            settings.update(upsample="bicubic", sample_posterior="per-image")
        return sd.img2img(
            z, c, strength=self.strength, noise_schedule=self.noise_schedule, **settings
        )

    def score(self, X, images):
        """Two-way identification of the reconstructions among the seen images.

        Rows that saw the same image are averaged first (as NSD's test betas
        average an image's repetitions), so an image is reconstructed once and
        is never its own distractor; each reconstruction (the selected
        sample, else sample 0) is then scored pairwise on ``metric``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels)
        images : array-like of shape (n_samples, height, width, 3)
            The image each row saw; at least 2 distinct images.

        Returns
        -------
        score : float
            In [0, 1]; 0.5 is chance.
        """
        from brainldm.metrics import IdentificationScorer

        X = self._check_betas(X, reset=False)
        images = check_images(images)
        if len(images) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but images has {len(images)}; pass the image of each row"
            )
        keys = [digest(image) for image in images]
        unique = list(dict.fromkeys(keys))
        if len(unique) < 2:
            raise ValueError(f"score needs at least 2 distinct images, got {len(unique)}")
        owner = np.array([unique.index(key) for key in keys])
        X_mean = np.stack([X[owner == k].mean(0) for k in range(len(unique))])
        seen = np.stack([images[keys.index(key)] for key in unique])
        reconstructed = self.predict(X_mean)
        if reconstructed.ndim == 5:
            reconstructed = reconstructed[:, 0]
        name, metric = self._check_metric(load=False)
        metric = metric if isinstance(metric, str) else (name, metric)
        scorer = IdentificationScorer(metrics=[metric], suite=_SCORE_SUITE, device=self.device)
        return scorer.score(seen, reconstructed)[name]
