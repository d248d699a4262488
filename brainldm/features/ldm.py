"""Features from a latent diffusion model, as scikit-learn transformers.

Each extractor turns stimuli into a 2-D float32 array (n_samples, n_features)
that feeds ridge models directly; ``feature_shape_`` gives each sample's
original shape back (``features.reshape(-1, *extractor.feature_shape_)``).

- :class:`LatentFeatures`: images -> ``z``, the scaled VAE latent.
- :class:`TextFeatures`: captions -> ``c``, the mean text encoding.
- :class:`DenoisedLatentFeatures`: (image, captions) pairs -> ``z_c``, the
  latent after denoising from noise level ``strength`` under ``c``.
- :class:`UNetLayerFeatures`: (image, captions) pairs -> pooled U-Net
  activations at chosen layers and denoising steps.
- :func:`denoising_features`: all of them for the encoding analyses at once:
  ``z``, ``c``, ``z_c`` from several img2img strengths, and ``z_c`` and U-Net
  layers along one chain, from one denoising pass per strength, cached.

Images are uint8 arrays (n, height, width, 3) or sequences of images;
captions are one list of strings per image. Extractors that need both take
the (n, 2) object array made by :func:`image_caption_pairs`, whose rows index
like any sample array (cross-validation splits, ``X[train]``).

The diffusion model is a parameter given as a name (``"toy"``, a folder, a hub
id) or a :class:`~brainldm.diffusion.StableDiffusion`; it is loaded on first
use and not stored among the parameters, so ``clone`` stays cheap and
``Pipeline(memory=...)`` caches results without pickling weights.

To plug in your own extractor, subclass :class:`FeatureExtractor`.
"""

import hashlib

import numpy as np
from sklearn.utils import Bunch

from brainldm._cache import check_cache, digest
from brainldm._validation import check_captions
from brainldm.diffusion import StableDiffusion
from brainldm.features.base import MODEL_CACHE, FeatureExtractor

__all__ = [
    "DenoisedLatentFeatures",
    "LDMFeatures",
    "LatentFeatures",
    "TextFeatures",
    "UNetLayerFeatures",
    "content_id",
    "denoising_features",
    "image_caption_pairs",
    "load_ldm",
]


def load_ldm(model, device=None, dtype=None):
    """The latent diffusion model that ``model`` names, loaded once and shared.

    Parameters
    ----------
    model : str, path-like or StableDiffusion
        ``"toy"``, a folder in the Stable Diffusion layout or a hub id,
        loaded through :data:`brainldm.features.MODEL_CACHE` so that every
        estimator naming it shares one copy; a
        :class:`~brainldm.diffusion.StableDiffusion` is returned as it is.
    device, dtype : str, default=None
        As in :meth:`StableDiffusion.from_pretrained
        <brainldm.diffusion.StableDiffusion.from_pretrained>`.

    Returns
    -------
    model : StableDiffusion

    Examples
    --------
    >>> from brainldm.features import load_ldm
    >>> load_ldm("toy") is load_ldm("toy")
    True
    """
    if isinstance(model, StableDiffusion):
        return model
    if not isinstance(model, str) and not hasattr(model, "__fspath__"):
        raise ValueError(
            "model must be a StableDiffusion, a folder, a hub id or 'toy', got "
            f"{type(model).__name__}"
        )
    return MODEL_CACHE.get(
        ("StableDiffusion", str(model), device, dtype),
        lambda: StableDiffusion.from_pretrained(model, device=device, dtype=dtype),
    )


def image_caption_pairs(images, captions):
    """Pair each image with its captions, as the input of the pair extractors.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images.
    captions : sequence of sequences of str
        One list of captions per image.

    Returns
    -------
    X : ndarray of shape (n_images, 2), dtype object
        Column 0 holds the images, column 1 their lists of captions.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.features import image_caption_pairs
    >>> X = image_caption_pairs(np.zeros((2, 8, 8, 3), np.uint8), [["a star"], ["a ring", "ring"]])
    >>> X.shape, X[1, 1]
    ((2, 2), ['a ring', 'ring'])
    """
    images = list(images)
    captions = check_captions(captions)
    if len(images) != len(captions):
        raise ValueError(
            f"images has {len(images)} images but captions has {len(captions)} lists; pass one "
            "list of captions per image"
        )
    pairs = np.empty((len(images), 2), dtype=object)
    for j, (image, texts) in enumerate(zip(images, captions, strict=True)):
        pairs[j, 0], pairs[j, 1] = image, texts
    return pairs


def _split_pairs(X):
    """Images and captions of an (n, 2) pair array (or DataFrame)."""
    if hasattr(X, "to_numpy"):
        X = X.to_numpy(dtype=object)
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 2):
        raise ValueError(
            "X must be the (n_images, 2) object array of image_caption_pairs(images, captions), "
            f"got {type(X).__name__} with shape {getattr(X, 'shape', None)}"
        )
    return list(X[:, 0]), list(X[:, 1])


def content_id(image, captions):
    """A 63-bit id of an image and its captions: the id that seeds its img2img noise.

    :class:`DenoisedLatentFeatures` and :class:`UNetLayerFeatures` pass it as
    ``image_ids`` to :meth:`StableDiffusion.denoise
    <brainldm.diffusion.StableDiffusion.denoise>`, so an image's noise does not
    depend on its row.

    Parameters
    ----------
    image : uint8 array of shape (height, width, 3)
    captions : sequence of str

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.features import content_id
    >>> image = np.zeros((4, 4, 3), np.uint8)
    >>> content_id(image, ["a red circle"]) == content_id(image.copy(), ["a red circle"])
    True
    >>> content_id(image, ["a red circle"]) == content_id(image, ["a blue circle"])
    False
    """
    digest = hashlib.sha256(np.ascontiguousarray(np.asarray(image)).tobytes())
    digest.update("\n".join(captions).encode())
    return int.from_bytes(digest.digest()[:8], "little") >> 1


class LDMFeatures(FeatureExtractor):
    """Base class of the extractors that run a latent diffusion model.

    Subclasses have the parameters ``model``, ``device`` and ``dtype`` and
    call ``self._get_model()``, which loads a named model on first use
    (through :data:`brainldm.features.MODEL_CACHE`, so that extractors naming
    the same model share it) or returns the
    :class:`~brainldm.diffusion.StableDiffusion` given.

    Examples
    --------
    The VAE's posterior noise, as a plug-in extractor:

    >>> import numpy as np
    >>> from brainldm.features import LDMFeatures
    >>> class PosteriorNoise(LDMFeatures):
    ...     def __init__(self, model="toy", device=None, dtype=None):
    ...         self.model, self.device, self.dtype = model, device, dtype
    ...     def _feature_shape(self):
    ...         return self._get_model().latent_shape
    ...     def _extract(self, X):
    ...         sd = self._get_model()
    ...         return sd.encode_images(X, sample_posterior=True) - sd.encode_images(X)
    >>> images = np.zeros((5, 64, 64, 3), np.uint8)
    >>> PosteriorNoise().fit_transform(images).shape
    (5, 1024)
    """

    def _get_model(self):
        key = (str(self.model), self.device, self.dtype)
        if getattr(self, "_model_key", None) != key:
            self._model_loaded = load_ldm(self.model, device=self.device, dtype=self.dtype)
            self._model_key = key
        return self._model_loaded


class LatentFeatures(LDMFeatures):
    """Images -> ``z``, the scaled VAE latent at the model's working size.

    Parameters
    ----------
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model, loaded on first use when named.
    sample_posterior : bool, default=False
        Sample the VAE posterior instead of taking its mode.
    random_state : int, default=0
        Seed of the posterior samples.
    batch_size : int, default=16
        Images encoded at once.
    device : str, default=None
        Device of a named model; ``None`` is the CPU.
    dtype : str, default=None
        Precision of a named model; ``None`` is float32.
    progress : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    feature_shape_ : tuple of int
        (channels, h, w) of ``z``; (4, 40, 40) for SD v1.4.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.features import LatentFeatures
    >>> images = np.zeros((3, 85, 85, 3), np.uint8)
    >>> extractor = LatentFeatures("toy")
    >>> extractor.fit_transform(images).shape, extractor.feature_shape_
    ((3, 1024), (4, 16, 16))
    """

    def __init__(
        self,
        model="toy",
        *,
        sample_posterior=False,
        random_state=0,
        batch_size=16,
        device=None,
        dtype=None,
        progress=False,
    ):
        self.model = model
        self.sample_posterior = sample_posterior
        self.random_state = random_state
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _feature_shape(self):
        return self._get_model().latent_shape

    def _extract(self, X):
        return self._get_model().encode_images(
            X,
            sample_posterior=self.sample_posterior,
            random_state=self.random_state,
            batch_size=self.batch_size,
            progress=self.progress,
        )


class TextFeatures(LDMFeatures):
    """Captions -> ``c``, the mean over each image's captions of the text encoding.

    ``X`` is one list of captions per image.

    Parameters
    ----------
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model, loaded on first use when named.
    batch_size : int, default=64
        Captions encoded at once.
    device : str, default=None
        Device of a named model; ``None`` is the CPU.
    dtype : str, default=None
        Precision of a named model; ``None`` is float32.
    progress : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    feature_shape_ : tuple of int
        (tokens, hidden size); (77, 768) for SD v1.4.

    Examples
    --------
    >>> from brainldm.features import TextFeatures
    >>> TextFeatures("toy").fit_transform([["a red star"], ["a blue ring", "a ring"]]).shape
    (2, 9856)
    """

    def __init__(self, model="toy", *, batch_size=64, device=None, dtype=None, progress=False):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _feature_shape(self):
        return self._get_model().text_shape

    def _extract(self, X):
        return self._get_model().encode_text(X, batch_size=self.batch_size, progress=self.progress)


class _DenoisingFeatures(LDMFeatures):
    """Shared work of the extractors that denoise each image under its captions."""

    def _denoise(self, X, layers, pool_size=1):
        images, captions = _split_pairs(X)
        sd = self._get_model()
        latents = sd.encode_images(images, size=sd.generation_size, batch_size=self.batch_size)
        c = sd.encode_text(captions)
        return sd.denoise(
            latents,
            c,
            strength=self.strength,
            steps=self.steps,
            read_steps=self.read_steps,
            layers=layers,
            pool_size=pool_size,
            guidance=self.guidance,
            eta=self.eta,
            random_state=self.random_state,
            image_ids=[
                content_id(image, texts) for image, texts in zip(images, captions, strict=True)
            ],
            noise_schedule=self.noise_schedule,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    def _n_read(self):
        return len(self._get_model().read_step_indices(self.read_steps, self.steps, self.strength))


class DenoisedLatentFeatures(_DenoisingFeatures):
    """(image, captions) pairs -> ``z_c``, the latent denoised under ``c``.

    Each image is encoded at the generation size, noised to ``strength`` and
    denoised by DDIM under the mean encoding of its captions, with
    classifier-free guidance, as :meth:`StableDiffusion.img2img
    <brainldm.diffusion.StableDiffusion.img2img>` does; the latent after each
    read step is kept. ``X`` is :func:`image_caption_pairs` ``(images,
    captions)``.

    Parameters
    ----------
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model, loaded on first use when named.
    strength : float in (0, 1], default=0.8
        Noise level; ``int(strength * steps)`` steps are run.
    steps : int, default=50
        Steps of the full DDIM schedule.
    read_steps : int, str or sequence of them, default="late"
        Steps after which the latent is read: indices among the steps run,
        or ``"early"``, ``"middle"``, ``"late"``.
    guidance : float, default=5.0
        Classifier-free guidance scale.
    eta : float, default=0.0
        DDIM noise.
    random_state : int, default=42
        Seed of the noise; each image's generator is seeded from ``random_state``
        and a hash of the image and its captions, so its features do not
        depend on its row or on the other images.
    noise_schedule : {"takagi2023", "diffusers"}, default="takagi2023"
        As in :meth:`StableDiffusion.img2img
        <brainldm.diffusion.StableDiffusion.img2img>`.
    batch_size : int, default=8
        Images denoised at once.
    device : str, default=None
        Device of a named model; ``None`` is the CPU.
    dtype : str, default=None
        Precision of a named model; ``None`` is float32.
    progress : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    feature_shape_ : tuple of int
        (channels, h, w) of the latent at the generation size for one read
        step given as a scalar; (n_read, channels, h, w) for a sequence.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.features import DenoisedLatentFeatures, image_caption_pairs
    >>> scenes = make_stimuli(3, seed=0)
    >>> X = image_caption_pairs(scenes.images, scenes.captions)
    >>> zc = DenoisedLatentFeatures("toy", steps=10, read_steps=["early", "late"])
    >>> zc.fit_transform(X).shape, zc.feature_shape_
    ((3, 2048), (2, 4, 16, 16))
    """

    def __init__(
        self,
        model="toy",
        *,
        strength=0.8,
        steps=50,
        read_steps="late",
        guidance=5.0,
        eta=0.0,
        random_state=42,
        noise_schedule="takagi2023",
        batch_size=8,
        device=None,
        dtype=None,
        progress=False,
    ):
        self.model = model
        self.strength = strength
        self.steps = steps
        self.read_steps = read_steps
        self.guidance = guidance
        self.eta = eta
        self.random_state = random_state
        self.noise_schedule = noise_schedule
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _feature_shape(self):
        shape = self._get_model().generation_latent_shape
        if isinstance(self.read_steps, (str, int, np.integer)):
            return shape
        return (self._n_read(),) + shape

    def _extract(self, X):
        latents = self._denoise(X, layers=()).latents
        return latents.reshape((len(latents),) + self.feature_shape_)


class UNetLayerFeatures(_DenoisingFeatures):
    """(image, captions) pairs -> pooled U-Net activations at layers x steps.

    The denoising is that of :class:`DenoisedLatentFeatures`; during each read
    step, the output of each layer (for the conditional branch of guidance)
    is pooled by adaptive averaging of each channel to a ``pool_size`` x
    ``pool_size`` grid (1 is the spatial mean). Columns run layer by layer,
    and within a layer step by step; ``feature_slices_`` names them.

    Parameters
    ----------
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model, loaded on first use when named.
    layers : sequence of str, default=None
        U-Net modules as paths of ``unet.named_modules()``. ``None`` is the
        paper's five: the first two down blocks, the mid block and the last
        two up blocks (``down_blocks.0``, ``down_blocks.1``, ``mid_block``,
        ``up_blocks.2``, ``up_blocks.3`` for SD v1.4; ``up_blocks.1``,
        ``up_blocks.2`` for a three-block U-Net such as the toy's).
    read_steps : int, str or sequence of them, default=("early", "middle", "late")
        Denoising steps during which activations are read: indices among the
        steps run, or ``"early"``, ``"middle"``, ``"late"``.
    pool_size : int, default=2
        Side of the pooling grid. SD v1.4's five default layers give 51,200
        values per step at 4, 12,800 at 2 and 3,200 at 1.
    strength, steps, guidance, eta, random_state, noise_schedule
        As in :class:`DenoisedLatentFeatures`.
    batch_size : int, default=8
        Images denoised at once.
    device : str, default=None
        Device of a named model; ``None`` is the CPU.
    dtype : str, default=None
        Precision of a named model; ``None`` is float32.
    progress : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    layers_ : tuple of str
        The layers read.
    feature_slices_ : dict
        ``(layer, step)`` -> slice of the columns of that layer at that
        read step (``step`` as given in ``read_steps``).
    feature_shapes_ : dict
        ``layer`` -> (channels, pool_size, pool_size).
    feature_shape_ : tuple of int
        (n_features,): the layers' shapes differ, so use ``feature_slices_``
        and ``feature_shapes_`` to reshape.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.features import UNetLayerFeatures, image_caption_pairs
    >>> scenes = make_stimuli(3, seed=0)
    >>> X = image_caption_pairs(scenes.images, scenes.captions)
    >>> unet = UNetLayerFeatures("toy", steps=10, read_steps=["early", "late"], pool_size=1)
    >>> features = unet.fit_transform(X)
    >>> unet.layers_
    ('down_blocks.0', 'down_blocks.1', 'mid_block', 'up_blocks.1', 'up_blocks.2')
    >>> features.shape, features[:, unet.feature_slices_["mid_block", "late"]].shape
    ((3, 512), (3, 64))
    """

    def __init__(
        self,
        model="toy",
        *,
        layers=None,
        read_steps=("early", "middle", "late"),
        pool_size=2,
        strength=0.8,
        steps=50,
        guidance=5.0,
        eta=0.0,
        random_state=42,
        noise_schedule="takagi2023",
        batch_size=8,
        device=None,
        dtype=None,
        progress=False,
    ):
        self.model = model
        self.layers = layers
        self.read_steps = read_steps
        self.pool_size = pool_size
        self.strength = strength
        self.steps = steps
        self.guidance = guidance
        self.eta = eta
        self.random_state = random_state
        self.noise_schedule = noise_schedule
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def fit(self, X, y=None):
        """Resolve the layers and steps and record the columns of each.

        Parameters
        ----------
        X : ndarray of shape (n_images, 2), dtype object
            Ignored but for the input convention (:func:`image_caption_pairs`).
        y : None
            Ignored.

        Returns
        -------
        self : UNetLayerFeatures
        """
        self.feature_shapes_ = self._get_model().unet_output_shapes(self.layers, self.pool_size)
        self.layers_ = tuple(self.feature_shapes_)
        steps = self.read_steps
        steps = [steps] if isinstance(steps, (str, int, np.integer)) else list(steps)
        # Check read_steps now rather than after the images are denoised.
        self._n_read()
        self.feature_slices_, start = {}, 0
        for layer in self.layers_:
            width = int(np.prod(self.feature_shapes_[layer]))
            for step in steps:
                self.feature_slices_[layer, step] = slice(start, start + width)
                start += width
        return super().fit(X, y)

    def _feature_shape(self):
        return (max(s.stop for s in self.feature_slices_.values()),)

    def _extract(self, X):
        activations = self._denoise(X, self.layers_, self.pool_size).activations
        n = len(next(iter(activations.values())))
        return np.concatenate([activations[layer].reshape(n, -1) for layer in self.layers_], axis=1)


def _step_name(step):
    return step if isinstance(step, str) else f"step{int(step)}"


def _denoise_strength(sd, x0, c, image_ids, strength, read_steps, layers, settings):
    """One denoising pass: z_c at each read step, pooled activations of ``layers``."""
    out = sd.denoise(
        x0,
        c,
        strength=strength,
        steps=settings["steps"],
        read_steps=list(read_steps),
        layers=list(layers),
        pool_size=settings["pool_size"],
        guidance=settings["guidance"],
        random_state=settings["random_state"],
        image_ids=image_ids,
        batch_size=settings["batch_size"],
        progress=settings["progress"],
    )
    arrays = {
        f"zc/{_step_name(s)}": out.latents[:, k].reshape(len(x0), -1)
        for k, s in enumerate(read_steps)
    }
    for layer in layers:
        for k, step in enumerate(read_steps):
            arrays[f"{layer}/{_step_name(step)}"] = out.activations[layer][:, k].reshape(
                len(x0), -1
            )
    return arrays


def denoising_features(
    images,
    captions,
    model="toy",
    *,
    strengths=(0.8,),
    steps=25,
    stage_strength=0.8,
    read_steps=("early", "middle", "late"),
    layers=(),
    pool_size=1,
    guidance=5.0,
    random_state=42,
    image_ids=None,
    batch_size=16,
    memory=None,
    progress=False,
):
    """``z``, ``c``, ``z_c`` per img2img strength and U-Net layers per step, one pass per strength.

    ``z`` (the VAE latent at the model's image size) and ``c`` (the mean text
    encoding of each image's captions); ``z_c`` at the end of the img2img
    chain from each of ``strengths``; and, during the chain from
    ``stage_strength``, ``z_c`` (the scheduler's ``prev_sample``) and the
    activations of ``layers`` pooled to ``pool_size`` at each of
    ``read_steps``. The chain from ``stage_strength`` is run once and serves
    the stages and the layers (and its strength, when among ``strengths``).

    Parameters
    ----------
    images : uint8 array of shape (n_images, height, width, 3) or sequence of images
    captions : sequence of sequences of str
        The captions of each image.
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model (:func:`load_ldm`).
    strengths : sequence of float in (0, 1], default=(0.8,)
        img2img noise levels.
    steps : int, default=25
        Steps of the full DDIM schedule.
    stage_strength : float in (0, 1], default=0.8
        The chain read at ``read_steps``.
    read_steps : sequence of str or int, default=("early", "middle", "late")
        As in :meth:`StableDiffusion.denoise <brainldm.diffusion.StableDiffusion.denoise>`.
    layers : sequence of str, default=()
        U-Net modules (paths of ``unet.named_modules()``) read along the chain.
    pool_size : int, default=1
        Side of the grid the activations are pooled to.
    guidance : float, default=5.0
        Classifier-free guidance scale.
    random_state : int, default=42
        Seed of the img2img noise; each image's generator is seeded from it
        and the image's id.
    image_ids : sequence of int, default=None
        An id per image (e.g. NSD's 73k ids), in its noise seed and in the
        cache keys; None numbers the images and keys them by their contents.
    batch_size : int, default=16
        Images denoised at once.
    memory : None, str, path-like or joblib.Memory, default=None
        Cache location: ``z`` and ``c`` and each strength's pass are saved
        there and reused (keyed by the model's weights, the images and every
        setting).
    progress : bool, default=False
        Show progress bars.

    Returns
    -------
    features : Bunch
        ``z``, ``c`` (n_images, n_features) float32, ``zc`` (strength ->
        array, for ``strengths`` and ``stage_strength``), ``stages`` (read step name -> z_c along the
        ``stage_strength`` chain), ``layers`` ((layer, read step name) ->
        pooled activations), ``read_steps`` (names) and ``key`` (the digest
        naming the cache entries).

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.features import denoising_features
    >>> scenes = make_stimuli(4, seed=0)
    >>> features = denoising_features(scenes.images, scenes.captions, strengths=[0.5, 1.0],
    ...                               steps=4, layers=["mid_block"], pool_size=2)
    >>> features.z.shape, features.zc[0.5].shape, sorted(features.stages)
    ((4, 1024), (4, 1024), ['early', 'late', 'middle'])
    >>> features.layers["mid_block", "early"].shape
    (4, 256)
    """
    sd = load_ldm(model)
    settings = dict(
        strengths=tuple(float(s) for s in strengths),
        steps=int(steps),
        stage_strength=float(stage_strength),
        read_steps=tuple(read_steps),
        layers=tuple(layers),
        shapes=sd.unet_output_shapes(tuple(layers), 1) if layers else {},
        pool_size=pool_size,
        guidance=float(guidance),
        random_state=int(random_state),
        batch_size=int(batch_size),
        progress=progress,
    )
    identity = (
        [np.asarray(image_ids)]
        if image_ids is not None
        else [np.asarray(images), [list(c) for c in captions]]
    )
    key_settings = {k: v for k, v in settings.items() if k != "progress"}
    cache = check_cache(memory)
    key_parts = [repr(sd), sd.fingerprint, *identity, key_settings]
    folder = cache.folder("features", key_parts)
    path = (lambda name: None) if folder is None else (lambda name: folder / f"{name}.npz")
    base = cache.load_or_compute(
        path("z_c"),
        lambda: {
            "z": sd.encode_images(images, batch_size=settings["batch_size"], progress=progress),
            "c": sd.encode_text(captions, progress=progress),
        },
    )
    n_images = len(base["z"])
    result = Bunch(
        z=base["z"].reshape(n_images, -1),
        c=base["c"].reshape(n_images, -1),
        zc={},
        stages={},
        layers={},
        read_steps=tuple(_step_name(s) for s in settings["read_steps"]),
        key=digest(*key_parts),
    )
    x0 = None
    for strength in sorted(set(settings["strengths"]) | {settings["stage_strength"]}):
        staged = strength == settings["stage_strength"]
        read = tuple(dict.fromkeys(settings["read_steps"] + ("late",))) if staged else ("late",)

        def compute(strength=strength, staged=staged, read=read):
            nonlocal x0
            if x0 is None:
                # z is the generation-size latent already when the two sizes agree (the toy's).
                x0 = (
                    base["z"]
                    if sd.image_size == sd.generation_size
                    else sd.encode_images(
                        images, size=sd.generation_size, batch_size=settings["batch_size"]
                    )
                )
            layers_read = settings["layers"] if staged else ()
            return _denoise_strength(
                sd, x0, base["c"], image_ids, strength, read, layers_read, settings
            )

        arrays = cache.load_or_compute(path(f"strength-{strength:.2f}"), compute)
        result.zc[strength] = arrays["zc/late"]
        if staged:
            for step in result.read_steps:
                result.stages[step] = arrays[f"zc/{step}"]
                for layer in settings["layers"]:
                    result.layers[layer, step] = arrays[f"{layer}/{step}"]
    return result
