"""Shared descriptions of parameters, filled into docstrings by :func:`fill_doc`.

A parameter that several functions or estimators take is described once, in
:data:`docdict`, and a docstring names it by ``%(name)s`` (nilearn's
mechanism), so that it reads the same everywhere. Entries are written for the
indentation of a class's or a function's docstring (4 spaces for the name line,
8 for the description).
"""

__all__ = ["docdict", "fill_doc"]

# Entries name entries that name entries, at most this deep.
_MAX_DEPTH = 4

docdict = {}
"""Parameter (or section) name -> its description, as it appears in a docstring."""

docdict["device"] = """device : str, torch.device or None, default=None
        Where the computation runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
        ``"mps"``; None is the CPU."""

docdict["progress"] = """progress : bool, default=False
        Show a progress bar."""

docdict["batch_size_images"] = """batch_size : int, default=32
        Images per forward pass."""

docdict["dtype"] = """dtype : {"float32", "float16", "bfloat16"} or None, default=None
        Precision of the network; None is float32. Features are float32."""

docdict["crop"] = """crop : bool, default=True
        Resize the shorter side and take the centre square; False squashes
        the image (the same on square images). See
        :func:`~brainldm.features.perceptual.prepare_images`."""

docdict["perceptual_weights"] = """weights : str, path-like or None, default=None
        The weights file, or a folder holding it under its standard name
        (:data:`~brainldm.features.perceptual.NETWORKS`); None looks in
        ``$BRAINLDM_WEIGHTS_DIR``, then torch's hub cache, then downloads
        (see :func:`~brainldm.features.perceptual.find_weights`)."""

docdict["perceptual_network"] = """%(perceptual_weights)s
    %(device)s
    %(dtype)s
    %(batch_size_images)s
    %(progress)s"""

docdict["perceptual_parameters"] = """%(crop)s
    interpolation : {"bilinear", "bicubic", "lanczos", "nearest"}, default="bilinear"
        PIL's resizing filter.
    %(perceptual_network)s"""

docdict["workflow_memory"] = """memory : str, path-like or joblib.Memory, default=None
        Where the cache lives; None is ``out/cache``."""

docdict["workflow_log"] = """progress : bool, default=False
        Show progress bars.
    log : callable, default=None
        Receives progress lines (e.g. ``print``); None discards them."""

# The encoding analyses (brainldm.encoding).
docdict["analysis_arrays"] = """X_train : array of shape (n_train, n_voxels)
        Training betas, one row per trial or per image (read one chunk of
        voxels at a time, so a ``np.memmap`` is never loaded whole).
    X_test : array of shape (n_test, n_voxels)
        Held-out betas, e.g. the test images' averaged repetitions."""

docdict["analysis_rows"] = """groups : array of shape (n_train,), default=None
        The image of each training row: folds never split an image's trials,
        and each PCA is fitted on one row per image.
    rows_train, rows_test : arrays of int, default=None
        The row of the feature arrays that each row of ``X_train`` and
        ``X_test`` shows (e.g. ``rows_train`` of :func:`encoding_features`);
        None: the feature arrays hold one row per row of ``X_train``, then one
        per row of ``X_test``.
    roi_masks : dict of str to bool array of shape (n_voxels,), default=None
        ROIs of the per-ROI summaries (e.g. ``load_nsd``'s ``roi_masks``);
        None summarizes none.
    masker : VolumeMasker, default=None
        Turns the per-voxel maps into NIfTI images (``maps``); None makes none."""

docdict["analysis_fit"] = """n_components : int, default=6400
        PCA size of each feature space (fitted on the training images), capped
        at what the data allow.
    cv : int or "loo", default=5
        Folds of the cross-validation that picks each voxel's alpha (grouped
        by image when ``groups`` are given); an int applies to every model.
        ``"loo"``: the encoders (:class:`VoxelwiseEncoder`) score exact
        leave-one-out from one decomposition of all rows, for one row per
        image (refused, before any work, when ``groups`` repeat); the banded
        ridge partitions, whose leave-one-out does not pay (scoring costs
        2 n² per alpha and voxel), keep 5 folds. Part of the cache key only
        when not 5, so a default run's entries are those it always had.
    chunk_size : int, default=8192
        Voxels fitted together; each finished chunk is saved in ``memory``.
        Not part of the cache key: a finished analysis is reused whatever
        ``chunk_size`` asks for it.
    device : str, default=None
        Where the ridge solvers run: None (the CPU), ``"cpu"`` or ``"cuda"``.
    distributed : bool, default=False
        Fit each encoder's voxel batches on the current dask client
        (:class:`VoxelwiseEncoder` ``distributed=True``).
    memory : None, str, path-like or joblib.Memory, default=None
        Cache location of the PCA scores, voxel chunks and results; a rerun
        with the same data and settings recomputes nothing.
    progress : bool, default=False
        Show progress bars."""

docdict["analysis_partition"] = """n_iter : int, default=20
        Band weightings tried by the banded ridge's random search
        (:class:`BandedVariancePartitioner`'s ``n_iter``; 20 was measured on
        the toy world, docs/encoding_analyses.md).
    solver : {"primal", "dual", "auto"}, default="primal"
        How each banded ridge is solved (:class:`BandedVariancePartitioner`'s
        ``solver``): ``"primal"`` is himalaya's solver, as the paper;
        ``"dual"`` the kernel form on the CPU, much cheaper when there are
        fewer training rows than features (NSD's 8,859 images against 2 x
        6,400 components) and the same partition to float32 rounding;
        ``"auto"`` dual where rows < features on the CPU. With a dual solver
        and ``memory``, each band's kernel and model alone are saved in
        ``memory``, so the partitions sharing ``z`` (here and in the other
        analysis of [z, z_c]) compute z's once per chunk of voxels.
        ``"dual"`` with ``device="cuda"`` raises before any work. Part of the
        cache key only when not ``"primal"``.
    solver_params : dict, default=None
        Passed to :class:`BandedVariancePartitioner` (himalaya's random search:
        ``alphas``, ``n_targets_batch``...).
    %(analysis_fit)s

    Returns
    -------
    result : Bunch
        ``labels``; per label (axis 0) and voxel: ``r_joint``, ``r2_joint``,
        ``significant`` (the joint model's r, FDR over voxels), and per band
        (``"z"``, ``"zc"``): ``split`` (himalaya's split r², the paper's
        view), ``r2_alone`` and ``unique`` (r² of the joint model less that of
        the other band alone); ``map_values`` (``unique_zc_LABEL``,
        ``split_zc_LABEL``, ``r_joint_LABEL``) and ``maps`` (as NIfTI images) and
        ``summary``: per label and ROI,
        :func:`~brainldm.metrics.summarize_paired` of z_c against z for
        ``unique`` and ``split`` (Holm over the ROIs and both measures of a
        label) and ``unique_zc_se``, the bootstrap standard error over voxels
        of z_c's mean unique variance
        (:func:`~brainldm.metrics.bootstrap_se`)."""


docdict["feature_shape_"] = """feature_shape_ : tuple of int
        Shape of one image's features at ``layer``."""

docdict["ridge_parameters"] = """alphas : sequence of float, default=DEFAULT_ALPHAS
        Positive regularisation strengths tried for every target (by default
        1e-2 to 1e8 by decades).
    cv : int, scikit-learn splitter or "loo", default=5
        Folds: an int gives unshuffled ``KFold``, or ``GroupKFold`` when
        ``groups`` are passed to `fit`; or any splitter. ``"loo"``: exact
        leave-one-out from one decomposition, for one row per image (refused
        when ``groups`` repeat).
    voxels : array of bool or int, default=None
        Columns of X used (an ROI mask of length n_features, or indices);
        None uses all.
    standardize : bool, default=True
        Z-score each voxel with the train mean and standard deviation, as the
        paper does. The scaling is folded into ``coef_``.
    fit_intercept : bool, default=True
        Fit an intercept per target (the original code fits none).
    alpha_per_target : bool, default=True
        Choose an alpha per target, else one shared by all targets.
    n_targets_batch : int or None, default=2048
        Targets solved together; bounds peak memory.
    %(device)s
    progress : bool, default=False
        Show a progress bar over target batches."""

docdict["ridge_attributes"] = """coef_ : array of shape (n_targets, n_voxels) or (n_voxels,)
        Weights on the raw columns ``voxel_indices_`` of X.
    intercept_ : array of shape (n_targets,) or float
    best_alphas_ : array of shape (n_targets,) or float
        Alpha chosen for each target.
    cv_scores_ : array of shape (n_targets,) or float
        Mean over folds of the negative MSE at the chosen alpha (over rows,
        of the squared leave-one-out error, with ``cv="loo"``).
    voxel_indices_ : array of shape (n_voxels,)
        Columns of X the decoder reads.
    n_features_in_ : int
        Number of columns of X seen in `fit`."""


docdict["ridge_notes"] = """Notes
    -----
    A decoder built with ``**brainldm.ridge.TAKAGI2023`` reproduces the
    original code (no intercept, unshuffled ``KFold(5)`` that ignores
    groups, alphas 1e-6 to 1); the defaults fit an intercept and group folds
    by image when ``groups`` are given, which avoids the leak of repeated
    images across folds.

    See Also
    --------
    brainldm.ridge.solve_ridge_cv : the solver.
    reshape_targets : restore the shape of the flat targets."""


def fill_doc(obj):
    """Fill the ``%(name)s`` placeholders of ``obj``'s docstring from :data:`docdict`.

    Entries may themselves name other entries, at any depth, filled first.

    Parameters
    ----------
    obj : function or class
        Decorated; its docstring is replaced in place.

    Returns
    -------
    obj

    Raises
    ------
    KeyError
        If the docstring names an entry :data:`docdict` lacks.

    Examples
    --------
    >>> @fill_doc
    ... def run(progress=False):
    ...     '''Run.
    ...
    ...     Parameters
    ...     ----------
    ...     %(progress)s
    ...     '''
    >>> print(run.__doc__.splitlines()[4])
        progress : bool, default=False
    """
    if obj.__doc__:
        filled = dict(docdict)
        for _ in range(_MAX_DEPTH):
            filled = {name: text % filled for name, text in filled.items()}
        try:
            obj.__doc__ = obj.__doc__ % filled
        except KeyError as error:
            raise KeyError(
                f"{obj.__qualname__}'s docstring names {error.args[0]!r}, which docdict lacks"
            ) from None
    return obj
