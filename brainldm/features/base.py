"""The contract of feature extractors, and the cache of the networks they run.

A feature extractor is a scikit-learn transformer that turns stimuli into a
2-D float32 array (n_samples, n_features); :class:`FeatureExtractor` holds
what every extractor shares. Extractors that run a network (a diffusion
model, a perceptual network) load it on first use through :data:`MODEL_CACHE`,
which keeps several loaded networks, keyed by what they are loaded from and
where they run, so that the extractors of one analysis share them. This
module imports neither torch nor the diffusion package.
"""

from collections import OrderedDict

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from brainldm._validation import validate_params

__all__ = ["MODEL_CACHE", "FeatureExtractor", "ModelCache", "clear_model_cache"]


class FeatureExtractor(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of feature extractors: stimuli in, a 2-D float32 array out.

    A subclass stores its parameters in ``__init__`` (scikit-learn's rule),
    and defines two methods:

    - ``_feature_shape(self)``: the shape of one sample's features;
    - ``_extract(self, X)``: features of all samples of ``X``, an array of
      shape ``(n_samples, *feature_shape)``.

    The base class checks the parameters against the class's
    ``_parameter_constraints`` (:func:`brainldm._validation.validate_params`)
    and sets ``feature_shape_`` in ``fit``, and validates the shape and
    flattens the features to float32 columns in ``transform``. Heavy objects (networks)
    that a subclass loads should be kept in attributes whose names start with
    ``_model``: they are dropped when the extractor is pickled (e.g. into a
    ``Pipeline(memory=...)`` cache) and loaded again on use.

    Attributes
    ----------
    feature_shape_ : tuple of int
        Shape of one sample's features; ``features.reshape(-1,
        *feature_shape_)`` undoes the flattening.

    Examples
    --------
    Mean colour of each image's quadrants, as a plug-in extractor:

    >>> import numpy as np
    >>> from brainldm.features import FeatureExtractor
    >>> class QuadrantColour(FeatureExtractor):
    ...     def __init__(self, grid=2):
    ...         self.grid = grid
    ...     def _feature_shape(self):
    ...         return (self.grid, self.grid, 3)
    ...     def _extract(self, X):
    ...         X = np.asarray(X, dtype=np.float32)
    ...         n, h, w, _ = X.shape
    ...         cells = X.reshape(n, self.grid, h // self.grid, self.grid, w // self.grid, 3)
    ...         return cells.mean(axis=(2, 4))
    >>> images = np.zeros((5, 8, 8, 3), np.uint8)
    >>> images[:, :4, :4, 0] = 255
    >>> extractor = QuadrantColour().fit(images)
    >>> features = extractor.transform(images)
    >>> features.shape, features.dtype
    ((5, 12), dtype('float32'))
    >>> features.reshape(-1, *extractor.feature_shape_)[0, 0, 0]
    array([255.,   0.,   0.], dtype=float32)
    """

    def _feature_shape(self):
        raise NotImplementedError(f"{type(self).__name__} must define _feature_shape")

    def _extract(self, X):
        raise NotImplementedError(f"{type(self).__name__} must define _extract")

    def fit(self, X, y=None):
        """Record the shape of the features; nothing is learned from ``X``.

        Parameters
        ----------
        X : stimuli
            Ignored but for the input convention of the extractor.
        y : None
            Ignored.

        Returns
        -------
        self : FeatureExtractor
        """
        validate_params(self)
        self.feature_shape_ = tuple(int(n) for n in self._feature_shape())
        self._n_features_out = int(np.prod(self.feature_shape_))
        return self

    def transform(self, X):
        """Features of ``X``.

        Parameters
        ----------
        X : stimuli
            As the extractor's class documents.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), float32
        """
        check_is_fitted(self, "feature_shape_")
        features = np.asarray(self._extract(X), dtype=np.float32)
        if features.shape[1:] != self.feature_shape_:
            raise RuntimeError(
                f"{type(self).__name__}._extract returned features of shape {features.shape[1:]} "
                f"per sample, but fit recorded {self.feature_shape_}; make _feature_shape and "
                "_extract agree"
            )
        return features.reshape(len(features), -1)

    def __getstate__(self):
        state = super().__getstate__()
        return {key: value for key, value in state.items() if not key.startswith("_model")}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []
        return tags


class ModelCache:
    """Loaded networks, shared by the extractors that name them, least recently used first out.

    Parameters
    ----------
    max_models : int, default=8
        How many networks stay loaded; loading one more drops the least
        recently used. Enough for a diffusion model and the five perceptual
        networks of the identification metrics.

    Examples
    --------
    >>> cache = ModelCache(max_models=2)
    >>> loads = []
    >>> def load(name):
    ...     loads.append(name)
    ...     return name.upper()
    >>> cache.get(("net", "a", "cpu"), lambda: load("a"))
    'A'
    >>> cache.get(("net", "a", "cpu"), lambda: load("a")), loads
    ('A', ['a'])
    >>> _ = cache.get(("net", "b", "cpu"), lambda: load("b"))
    >>> _ = cache.get(("net", "c", "cpu"), lambda: load("c"))
    >>> cache.keys()
    [('net', 'b', 'cpu'), ('net', 'c', 'cpu')]
    """

    def __init__(self, max_models=8):
        self.max_models = max_models
        self._models = OrderedDict()

    def get(self, key, load):
        """The network stored under ``key``, loaded by calling ``load()`` if absent.

        Parameters
        ----------
        key : tuple
            What identifies the network: its kind, its source (name, folder
            or hub id), its device and precision.
        load : callable
            Called with no argument to load the network when it is not cached.

        Returns
        -------
        model : object
        """
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        model = load()
        self._models[key] = model
        while len(self._models) > max(int(self.max_models), 1):
            self._models.popitem(last=False)
        return model

    def keys(self):
        """The keys of the cached networks, least recently used first."""
        return list(self._models)

    def clear(self):
        """Drop every cached network (their memory is freed once no extractor holds them)."""
        self._models.clear()

    def __len__(self):
        return len(self._models)

    def __repr__(self):
        return f"ModelCache({len(self)} of at most {self.max_models} models)"


MODEL_CACHE = ModelCache()
"""The cache that brainldm's extractors load their networks through."""


def clear_model_cache():
    """Drop the networks that extractors have loaded, e.g. to free GPU memory.

    Examples
    --------
    >>> from brainldm.features import clear_model_cache
    >>> clear_model_cache()
    """
    MODEL_CACHE.clear()
