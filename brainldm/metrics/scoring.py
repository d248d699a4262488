"""Every reconstruction metric of a suite, from the seen images and their reconstructions.

A *suite* fixes how each metric is computed as one group of peers computes
it (which network layer, at which input size, resized how); a *protocol*
fixes how identification counts (:data:`~brainldm.metrics.PROTOCOLS`). The
two are independent: Takagi & Nishimoto's features can be scored pairwise
and Brain-Diffuser's with the paper's protocol, but only matching pairs
reproduce a paper's numbers.
"""

import os
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from brainldm._images import check_uint8
from brainldm._validation import HasMethods, Interval, Options, check_options, validate_params
from brainldm.metrics.identification import (
    PROTOCOLS,
    identification_from_correlations,
    standardize_rows,
)
from brainldm.metrics.images import pixel_correlation, ssim, ssim_braindiffuser

__all__ = ["METRICS", "SUITES", "IdentificationScorer", "check_metrics"]

METRICS = {
    "pixcorr": "Pearson r of the RGB pixels, per image (higher is better)",
    "ssim": "2-D SSIM of the grey images, per image (higher is better)",
    "ssim_braindiffuser": "Brain-Diffuser's and MindEye's column-wise SSIM (higher is better)",
    "alexnet2": "two-way identification on AlexNet's second conv layer",
    "alexnet5": "two-way identification on AlexNet's fifth conv layer",
    "alexnet7": "two-way identification on AlexNet's fc7",
    "inception": "two-way identification on Inception V3's pooled features",
    "clip": "two-way identification on CLIP ViT-L/14's image embedding",
    "clip_h6": "two-way identification on CLIP's vision hidden_states[6]",
    "clip_h12": "two-way identification on CLIP's vision hidden_states[12]",
    "effnet": "correlation distance of EfficientNet-B1's pooled features (lower is better)",
    "swav": "correlation distance of SwAV ResNet-50's pooled features (lower is better)",
    "toy_early": "two-way identification on the toy net's first conv layer",
    "toy_middle": "two-way identification on the toy net's second conv layer",
    "toy_late": "two-way identification on the toy net's last conv layer",
    "toy_embedding": "two-way identification on the toy net's embedding",
    "toy_colour": "fraction of reconstructions whose main colour the toy net names as the original's",
    "toy_shape": "fraction of reconstructions whose main shape the toy net names as the original's",
    "toy_background": "fraction of reconstructions whose background colour the toy net names as the original's",
}
"""Names of the metrics and what each measures."""

_PIXEL = {"pixcorr": pixel_correlation, "ssim": ssim, "ssim_braindiffuser": ssim_braindiffuser}
_DISTANCES = ("effnet", "swav")
_HEADS = {"toy_colour": "colour", "toy_shape": "shape", "toy_background": "background_colour"}


def _tap(network, layer, size, crop=False, interpolation="bilinear"):
    return dict(network=network, layer=layer, size=size, crop=crop, interpolation=interpolation)


def _pixels(size=None, interpolation="lanczos"):
    return {name: dict(size=size, interpolation=interpolation) for name in _PIXEL}


_TOY = {
    f"toy_{layer}": _tap("toy", layer, None) for layer in ("early", "middle", "late", "embedding")
}
_TOY |= {name: dict(network="toy", head=head) for name, head in _HEADS.items()}

SUITES = {
    "braindiffuser": dict(
        metrics=("pixcorr", "ssim", "ssim_braindiffuser", "alexnet2", "alexnet5", "inception")
        + ("clip", "effnet", "swav"),
        taps=_pixels(interpolation="bicubic")
        | dict(
            alexnet2=_tap("alexnet", "features.4", 224),
            alexnet5=_tap("alexnet", "features.11", 224),
            alexnet7=_tap("alexnet", "classifier.5", 224),
            inception=_tap("inception", "avgpool", 224),
            clip=_tap("clip", "image_embeds", 224),
            effnet=_tap("efficientnet", "avgpool", 224),
            swav=_tap("swav", "avgpool", 224),
        )
        | _TOY,
    ),
    "mindeye": dict(
        metrics=("pixcorr", "ssim", "ssim_braindiffuser", "alexnet2", "alexnet5", "inception")
        + ("clip", "effnet", "swav"),
        taps=_pixels(size=425, interpolation="bilinear")
        | dict(
            alexnet2=_tap("alexnet", "features.4", 256),
            alexnet5=_tap("alexnet", "features.11", 256),
            alexnet7=_tap("alexnet", "classifier.5", 256),
            inception=_tap("inception", "avgpool", 342),
            clip=_tap("clip", "image_embeds", 224),
            effnet=_tap("efficientnet", "avgpool", 255),
            swav=_tap("swav", "avgpool", 224),
        )
        | _TOY,
    ),
    "takagi2023": dict(
        metrics=("alexnet2", "alexnet5", "alexnet7", "inception", "clip", "clip_h6", "clip_h12"),
        taps=_pixels()
        | dict(
            alexnet2=_tap("alexnet", "features.5", 299, crop=True),
            alexnet5=_tap("alexnet", "features.12", 299, crop=True),
            alexnet7=_tap("alexnet", "classifier.5", 299, crop=True),
            inception=_tap("inception", "flatten", 299, crop=True),
            clip=_tap("clip", "image_embeds", 224, crop=True, interpolation="bicubic"),
            clip_h6=_tap("clip", "hidden_states.6", 224, crop=True, interpolation="bicubic"),
            clip_h12=_tap("clip", "hidden_states.12", 224, crop=True, interpolation="bicubic"),
        )
        | _TOY,
    ),
    "toy": dict(metrics=("pixcorr", "ssim", *_TOY), taps=_pixels() | _TOY),
}
"""Suites: name -> ``metrics`` (the default list) and ``taps`` (how each metric it offers is
computed: network, layer, input size, crop, interpolation)."""


_NETWORKS = ("alexnet", "inception", "efficientnet", "swav", "clip", "toy")


def _is_transformer(value):
    return HasMethods(["transform"]).is_satisfied_by(value) and not isinstance(value, type)


def _custom_name(entry, position, param):
    """The (name, transformer) of a custom entry of ``metrics``; raise if it is none."""
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        name, transformer = entry
        if not _is_transformer(transformer):
            raise TypeError(
                f"{param}[{position}] = {entry!r} pairs {name!r} with {transformer!r}, which has "
                "no transform method; pair each name with a feature extractor or a fitted "
                "scikit-learn transformer"
            )
    elif _is_transformer(entry):
        name, transformer = type(entry).__name__.lower(), entry
    else:
        raise TypeError(
            f"{param}[{position}] is {entry!r}: each entry of {param} must be a metric name, a "
            "feature extractor (an object with transform, such as a "
            "brainldm.features.FeatureExtractor) or a (name, extractor) tuple"
        )
    if not name or name in METRICS:
        raise ValueError(
            f"{param}[{position}] names a custom metric {name!r}, "
            + ("which is empty" if not name else "which is the name of a built-in metric")
            + "; name it with a (name, extractor) tuple of another name"
        )
    return name, transformer


def _resolve(metrics, suite, param):
    """name -> a name of METRICS or a custom transformer, in order, duplicate names merged."""
    taps = SUITES[suite]["taps"]
    if metrics is None:
        metrics = SUITES[suite]["metrics"]
    single = isinstance(metrics, str) or _is_transformer(metrics)
    try:
        entries = [metrics] if single else list(metrics)
    except TypeError:
        raise TypeError(
            f"{param} must be a metric name, a feature extractor or a list of them and of "
            f"(name, extractor) tuples, got {metrics!r}"
        ) from None
    resolved, unknown = {}, []
    for position, entry in enumerate(entries):
        if isinstance(entry, str):
            if entry in taps:
                resolved[entry] = entry
            else:
                unknown.append(entry)
            continue
        name, transformer = _custom_name(entry, position, param)
        if name in resolved:
            raise ValueError(
                f"{param} names two custom metrics {name!r}; give each its own name with "
                "(name, extractor) tuples"
            )
        resolved[name] = transformer
    if unknown or not resolved:
        which = (
            f"{param}={metrics!r} is not a metric"
            if isinstance(metrics, str)
            else f"{param} {unknown} are not metrics"
            if unknown
            else f"{param} is empty"
        )
        raise ValueError(
            f"{which} offered by suite={suite!r}; choose among {sorted(taps)}, or pass a "
            f"feature extractor (other suites: {sorted(set(SUITES) - {suite})})"
        )
    return resolved


def _network_weights(weights, network):
    """What ``weights`` (a folder, or a dict network -> file or folder) says for ``network``."""
    if isinstance(weights, dict):
        return weights.get(network)
    return None if network == "toy" else weights


def check_metrics(metrics=None, *, suite="braindiffuser", weights=None, load=True, param="metrics"):
    """Resolve metrics and check that their networks' weights can be had, before any work.

    Parameters
    ----------
    metrics : str, transformer or sequence, optional
        As :class:`IdentificationScorer` takes it: names of :data:`METRICS`,
        feature extractors, ``(name, extractor)`` tuples; None is the suite's
        list.
    suite : {"braindiffuser", "mindeye", "takagi2023", "toy"}, default="braindiffuser"
        The suite whose metrics the names must be.
    weights : str, path-like or dict, optional
        Where the networks' weights are, as :class:`IdentificationScorer`
        takes it.
    load : bool, default=True
        Also check that the weights of each network that a named metric runs
        are on disk, or can be downloaded (see
        :func:`~brainldm.features.perceptual.check_weights`): nothing is
        downloaded, and only the toy network, when ``weights`` names one, is
        loaded (into :data:`~brainldm.features.MODEL_CACHE`, for later use).
    param : str, default="metrics"
        The caller's name for ``metrics``, used in the messages.

    Returns
    -------
    metrics : dict of str to str or transformer
        Each metric's name (custom ones' named by their tuple or their class
        name in lower case) -> the name itself, or the custom transformer.

    Raises
    ------
    TypeError
        If an entry is neither a name, a transformer nor a (name, extractor)
        tuple.
    ValueError
        If a name is not a metric of ``suite`` (the message lists those that
        are), or two custom metrics share a name.
    FileNotFoundError
        If ``load`` and a network's weights can't be had: the error that
        loading it would raise, naming what to fetch from where.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from brainldm.metrics import check_metrics
    >>> flat = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    >>> list(check_metrics(["toy_embedding", ("pixels", flat)], suite="toy"))
    ['toy_embedding', 'pixels']
    >>> check_metrics("clipp", param="metric", load=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: metric='clipp' is not a metric offered by suite='braindiffuser'; choose among [...], or pass a feature extractor (other suites: [...])
    """
    check_options(suite, "suite", "check_metrics", tuple(SUITES))
    if not isinstance(weights, (str, os.PathLike, dict, type(None))):
        raise TypeError(
            f"weights must be a folder, a dict network -> file or folder, or None, got {weights!r}"
        )
    if isinstance(weights, dict):
        extra = sorted(set(weights) - set(_NETWORKS))
        if extra:
            raise ValueError(f"weights names unknown networks {extra}; use {list(_NETWORKS)}")
    resolved = _resolve(metrics, suite, param)
    if load:
        taps = SUITES[suite]["taps"]
        networks = [taps[m].get("network") for m in resolved.values() if isinstance(m, str)]
        for network in dict.fromkeys(n for n in networks if n is not None):
            _check_network(network, _network_weights(weights, network))
    return resolved


def _check_network(network, weights):
    from brainldm.features import perceptual

    if network != "toy":
        perceptual.check_weights(network, weights)
    elif weights is not None:  # the shipped toy network is always there; another is loaded once
        perceptual.ToyPerceptualFeatures(weights=weights).fit(None)


class IdentificationScorer(BaseEstimator):
    """Score reconstructions against the seen images with a suite of metrics.

    Parameters
    ----------
    metrics : str, transformer or sequence of them and of (name, transformer) tuples, optional
        Metrics to compute: names of :data:`METRICS` that ``suite`` offers,
        and custom metrics, any :class:`~brainldm.features.FeatureExtractor`
        or scikit-learn style transformer whose ``transform`` maps uint8
        images (n, height, width, 3) to features (n, ...). A custom metric is
        scored as the networks' layers are: two-way identification on the
        Pearson correlation of the features, by ``protocol``. It is named by
        its tuple, or else by its class name in lower case; one that is not
        fitted (a scikit-learn estimator that ``check_is_fitted`` rejects,
        such as a :class:`~brainldm.features.FeatureExtractor` before
        ``fit``) is cloned and fitted on the originals. None is the suite's
        list. See :func:`check_metrics`.
    suite : {"braindiffuser", "mindeye", "takagi2023", "toy"}, default="braindiffuser"
        How each metric is computed (:data:`SUITES`): Brain-Diffuser's
        layers and sizes (224 px), MindEye 1's (256 / 342 / 255 px),
        Takagi & Nishimoto's (299 px Resize + CenterCrop, CLIP's own
        preprocessing, hidden states 6 and 12), or the toy world's (the toy
        perceptual network's layers and heads, with PixCorr and SSIM).
    protocol : {"pairwise", "takagi2023"}, default="pairwise"
        Two-way identification protocol (see
        :func:`~brainldm.metrics.two_way_identification`). ``"pairwise"``
        scores one sample per image, ``sample_index``; ``"takagi2023"`` all
        samples, and per-image metrics (PixCorr, SSIM, distances, toy
        attributes) then average over the samples.
    sample_index : int, default=0
        Index of the sample that ``"pairwise"`` scores when reconstructions
        hold several per image.
    weights : str, path-like or dict, optional
        Where the networks' weights are: a folder holding the standard file
        names (:data:`~brainldm.features.perceptual.NETWORKS`), or a dict
        network (``"alexnet"``, ``"inception"``, ``"efficientnet"``,
        ``"swav"``, ``"clip"``, ``"toy"``) -> file or folder. None looks in
        ``$BRAINLDM_WEIGHTS_DIR`` and torch's hub cache, then downloads (see
        :func:`~brainldm.features.perceptual.find_weights`); the toy network
        is the shipped one unless the dict names another.
    device : str or torch.device, optional
        Where the networks run; None is the CPU.
    dtype : {"float32", "float16", "bfloat16"}, optional
        Precision of the torchvision and CLIP networks; None is float32.
    batch_size : int, default=32
        Images per forward pass; the reconstructions' features are reduced
        to their correlations with the originals' batch by batch, so only the
        originals' features are held at once.
    progress : bool, default=False
        Show a progress bar per network.

    See Also
    --------
    check_metrics : checks the metrics and their networks' weights before any work.
    brainldm.metrics.compare_modes : tests between modes on per-image scores.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.metrics import IdentificationScorer
    >>> originals = make_stimuli(12, seed=3).images
    >>> noise = np.random.default_rng(0).normal(0, 10, originals.shape)
    >>> reconstructions = np.clip(originals + noise, 0, 255).astype(np.uint8)
    >>> scorer = IdentificationScorer(["toy_embedding", "toy_shape", "pixcorr"], suite="toy")
    >>> {name: round(value, 2) for name, value in scorer.score(originals, reconstructions).items()}
    {'toy_embedding': 1.0, 'toy_shape': 0.83, 'pixcorr': 0.96}

    A custom metric: identification on the pixels of an 8 x 8 grid, by a
    stateless transformer named by its tuple:

    >>> from sklearn.preprocessing import FunctionTransformer
    >>> grid = FunctionTransformer(lambda X: X[:, ::8, ::8].reshape(len(X), -1))
    >>> scorer = IdentificationScorer(["toy_embedding", ("grid", grid)], suite="toy")
    >>> {name: round(value, 2) for name, value in scorer.score(originals, reconstructions).items()}
    {'toy_embedding': 1.0, 'grid': 1.0}
    """

    def __init__(
        self,
        metrics=None,
        suite="braindiffuser",
        protocol="pairwise",
        sample_index=0,
        weights=None,
        device=None,
        dtype=None,
        batch_size=32,
        progress=False,
    ):
        self.metrics = metrics
        self.suite = suite
        self.protocol = protocol
        self.sample_index = sample_index
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.progress = progress

    _parameter_constraints = {
        "suite": [Options(SUITES)],
        "protocol": [Options(PROTOCOLS)],
        "sample_index": [Interval(Integral, 0, None)],
        "weights": [str, os.PathLike, dict, None],
        "batch_size": [Interval(Integral, 1, None)],
        "progress": ["boolean"],
    }

    def _check_params(self):
        validate_params(self)
        metrics = check_metrics(self.metrics, suite=self.suite, weights=self.weights, load=False)
        return metrics, SUITES[self.suite]["taps"]

    def _check_images(self, originals, reconstructions, metrics, taps):
        originals = np.asarray(originals)
        reconstructions = np.asarray(reconstructions)
        for name, array, ndims in (
            ("originals", originals, (4,)),
            ("reconstructions", reconstructions, (4, 5)),
        ):
            check_uint8(array, name)
            if array.ndim not in ndims or array.shape[-1] != 3:
                shapes = " or ".join(
                    {4: "(n, height, width, 3)", 5: "(n, n_samples, height, width, 3)"}[d]
                    for d in ndims
                )
                raise ValueError(f"{name} must have shape {shapes}, got {array.shape}")
        if reconstructions.ndim == 4:
            reconstructions = reconstructions[:, None]
        if len(originals) != len(reconstructions):
            raise ValueError(
                f"originals has {len(originals)} images but reconstructions has "
                f"{len(reconstructions)}; pass the reconstructions of the same images, in order"
            )
        if len(originals) < 2:
            raise ValueError(f"scoring needs at least 2 images, got {len(originals)}")
        n_samples = reconstructions.shape[1]
        if self.protocol == "pairwise":
            if self.sample_index >= n_samples:
                raise ValueError(
                    f"sample_index={self.sample_index} but reconstructions hold {n_samples} "
                    "sample(s) per image"
                )
            reconstructions = reconstructions[:, self.sample_index : self.sample_index + 1]
        for metric in metrics:
            if metrics[metric] == metric and metric.startswith("ssim"):
                size = taps[metric]["size"] or min(originals.shape[1:3])
                if size < 11:
                    raise ValueError(f"{metric} needs images of at least 11 px, got {size} px")
        return originals, reconstructions

    def score(self, originals, reconstructions, per_image=False):
        """Compute the metrics.

        Parameters
        ----------
        originals : ndarray of shape (n_images, height, width, 3), uint8
            The seen images.
        reconstructions : ndarray of shape (n_images, h, w, 3) or (n_images, n_samples, h, w, 3), uint8
            Their reconstructions, in the same order, of any size (custom metrics
            see them resized to the originals' size with LANCZOS).
        per_image : bool, default=False
            Return each image's value of each metric (the fraction of
            distractors beaten, for identification), whose mean is the score.

        Returns
        -------
        scores : dict of str to float or to ndarray of shape (n_images,)
            In the order of ``metrics``, custom metrics under their names.
        """
        metrics, taps = self._check_params()
        originals, reconstructions = self._check_images(originals, reconstructions, metrics, taps)
        named = [metric for metric, entry in metrics.items() if isinstance(entry, str)]
        values = {}
        for metric in named:
            if metric in _PIXEL:
                tap = taps[metric]
                per_sample = [
                    _PIXEL[metric](originals, reconstructions[:, s], **tap)
                    for s in range(reconstructions.shape[1])
                ]
                values[metric] = np.mean(per_sample, axis=0)
        groups = {}
        for metric in named:
            if metric not in _PIXEL:
                tap = taps[metric]
                key = tuple(tap.get(k) for k in ("network", "size", "crop", "interpolation"))
                groups.setdefault(key, []).append(metric)
        for key, group in groups.items():
            values |= self._network_scores(
                self._extractor(*key), [taps[m] for m in group], group, originals, reconstructions
            )
        custom = [metric for metric, entry in metrics.items() if not isinstance(entry, str)]
        if custom:
            # A custom extractor sees the reconstructions at the originals' size.
            at_size = _to_size(reconstructions, originals.shape[1:3])
        for metric in custom:  # a network of one layer, its own
            extractor = _CustomFeatures(metric, _fitted(metrics[metric], originals))
            values |= self._network_scores(
                extractor, [dict(layer=metric)], [metric], originals, at_size
            )
        return {m: values[m] if per_image else float(np.mean(values[m])) for m in metrics}

    def _network_scores(self, extractor, group_taps, group, originals, reconstructions):
        n, n_samples = reconstructions.shape[:2]
        flat = reconstructions.reshape(n * n_samples, *reconstructions.shape[2:])
        values = {}
        heads = {m: tap["head"] for m, tap in zip(group, group_taps, strict=True) if "head" in tap}
        if heads:
            true = extractor.predict_heads(originals)
            predicted = extractor.predict_heads(flat)
            for metric, head in heads.items():
                same = predicted[head].reshape(n, n_samples) == true[head][:, None]
                values[metric] = same.mean(1)
        layers = {
            m: tap["layer"] for m, tap in zip(group, group_taps, strict=True) if "layer" in tap
        }
        if layers:
            r = self._correlations(extractor, sorted(set(layers.values())), originals, flat)
            for metric, layer in layers.items():
                r_layer = r[layer].reshape(n, n_samples, n)
                if metric in _DISTANCES:
                    values[metric] = 1.0 - np.einsum("isi->is", r_layer).mean(1)
                else:
                    values[metric] = identification_from_correlations(
                        r_layer, protocol=self.protocol, per_image=True
                    )
        return values

    def _correlations(self, extractor, layers, originals, flat):
        """r[layer][k, i]: correlation of reconstruction k's features with original i's."""
        targets = {
            layer: standardize_rows(features.reshape(len(features), -1), dtype=np.float32)
            for layer, features in extractor.extract_layers(originals, layers).items()
        }
        r = {layer: np.empty((len(flat), len(originals)), np.float32) for layer in layers}
        starts = range(0, len(flat), self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            desc = getattr(extractor, "name", type(extractor).__name__)
            starts = tqdm(starts, desc=desc, unit="batch")
        for start in starts:
            features = extractor.extract_layers(flat[start : start + self.batch_size], layers)
            for layer, batch in features.items():
                z = standardize_rows(batch.reshape(len(batch), -1), dtype=np.float32)
                r[layer][start : start + len(batch)] = z @ targets[layer].T
        return r

    def _extractor(self, network, size, crop, interpolation):
        from brainldm.features import perceptual

        weights = _network_weights(self.weights, network)
        if network == "toy":
            return perceptual.ToyPerceptualFeatures(
                weights=weights, device=self.device, batch_size=self.batch_size
            )
        classes = dict(
            alexnet=perceptual.AlexNetFeatures,
            inception=perceptual.InceptionFeatures,
            efficientnet=perceptual.EfficientNetFeatures,
            swav=perceptual.SwAVFeatures,
            clip=perceptual.CLIPVisionFeatures,
        )
        return classes[network](
            size=size,
            crop=crop,
            interpolation=interpolation,
            weights=weights,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
        )


def _to_size(reconstructions, shape):
    """(n, n_samples, h, w, 3) reconstructions resized with LANCZOS to ``shape`` (height, width)."""
    if reconstructions.shape[2:4] == tuple(shape):
        return reconstructions
    from PIL import Image

    height, width = shape
    return np.stack(
        [
            [
                np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
                for image in row
            ]
            for row in reconstructions
        ]
    )


def _fitted(transformer, originals):
    """``transformer`` if fitted or stateless, else a clone of it fitted on the originals."""
    if isinstance(transformer, BaseEstimator) and hasattr(transformer, "fit"):
        try:
            check_is_fitted(transformer)
        except NotFittedError:
            return clone(transformer).fit(originals)
    return transformer


class _CustomFeatures:
    """A custom metric's transformer, as a network whose one layer is named after the metric."""

    def __init__(self, name, transformer):
        self.name, self.transformer = name, transformer

    def extract_layers(self, X, layers):
        features = np.asarray(self.transformer.transform(X))
        if features.ndim < 1 or len(features) != len(X):
            raise ValueError(
                f"metric {self.name!r}: {type(self.transformer).__name__}.transform returned "
                f"features of shape {features.shape} for {len(X)} images; it must return an "
                "array of shape (n_images, ...)"
            )
        return dict.fromkeys(layers, features)
