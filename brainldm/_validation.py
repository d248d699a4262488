"""Checks of arguments shared by every module, with one wording per problem.

Scalars go through scikit-learn's parameter-constraint machinery, so a bad
value raises :class:`~sklearn.utils._param_validation.InvalidParameterError`
(both a ``ValueError`` and a ``TypeError``) worded as scikit-learn words it:
``The 'steps' parameter of img2img must be an int in the range [1, inf). Got 0
instead.`` torch is imported inside the functions that need it, so that
``brainldm.datasets`` can use this module without loading torch.
"""

import re
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "InvalidParameterError",
    "check_captions",
    "check_finite",
    "check_int",
    "check_number",
    "check_options",
    "parse_subject",
    "renamed",
    "resolve_device",
    "resolve_dtype",
    "subject_name",
]

DTYPES = ("float32", "float16", "bfloat16")
"""Names of the precisions models may run in."""


def _closed(min_val, max_val, closed="both"):
    """The sides of an interval that are closed, leaving infinite sides open."""
    left = closed in ("both", "left") and min_val is not None
    right = closed in ("both", "right") and max_val is not None
    return {(True, True): "both", (True, False): "left", (False, True): "right"}.get(
        (left, right), "neither"
    )


def _check(constraint, value, name, caller):
    if isinstance(value, (bool, np.bool_)) and not isinstance(constraint, StrOptions):
        # bool is an Integral for Python; as a count or a size it is a mistake.
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must be {constraint}. Got {value!r} instead."
        )
    validate_parameter_constraints({name: [constraint]}, {name: value}, caller_name=caller)


def check_int(value, name, caller, *, min_val=None, max_val=None):
    """Return ``value`` as an int, or raise if it is no integer in [min_val, max_val].

    Examples
    --------
    >>> check_int(3, "steps", "img2img", min_val=1)
    3
    >>> check_int(0, "steps", "img2img", min_val=1)
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'steps' parameter of img2img must be an int in the range [1, inf). Got 0 instead.
    """
    _check(
        Interval(Integral, min_val, max_val, closed=_closed(min_val, max_val)), value, name, caller
    )
    return int(value)


def check_number(value, name, caller, *, min_val=None, max_val=None, closed="both"):
    """Return ``value`` as a finite float, or raise if it is outside the interval.

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``, as in
    scikit-learn's ``Interval``.

    Examples
    --------
    >>> check_number(0.8, "strength", "img2img", min_val=0, max_val=1, closed="right")
    0.8
    >>> check_number(float("nan"), "guidance", "img2img", min_val=0)
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'guidance' parameter of img2img must be a float in the range [0.0, inf). Got nan instead.
    """
    interval = Interval(Real, min_val, max_val, closed=_closed(min_val, max_val, closed))
    _check(interval, value, name, caller)
    return float(value)


def check_options(value, name, caller, options):
    """Return ``value`` if it is one of the strings ``options`` (or None when listed).

    Examples
    --------
    >>> check_options("takagi2023", "noise_schedule", "img2img", ("takagi2023", "diffusers"))
    'takagi2023'
    """
    strings = {option for option in options if option is not None}
    constraints = [StrOptions(strings)] + ([None] if None in options else [])
    validate_parameter_constraints({name: constraints}, {name: value}, caller_name=caller)
    return value


def check_finite(
    array, name, remedy="remove or impute them (e.g. drop those voxels) before fitting"
):
    """Raise a ValueError that counts and locates NaN or infinite entries.

    The array is scanned in blocks of rows, so that a mask of the whole array
    is never held in memory.

    Parameters
    ----------
    array : numpy array or torch tensor
    name : str
        Name of the argument, used in the message.
    remedy : str, optional
        What to do about it, the end of the message.

    Raises
    ------
    ValueError
        If `array` holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> check_finite(np.array([[0.0, np.nan], [np.inf, 1.0]]), "X")
    Traceback (most recent call last):
    ...
    ValueError: X contains 1 NaN and 1 infinite values, at (row, column) (0, 1), (1, 0); remove or impute them (e.g. drop those voxels) before fitting
    """
    import torch

    from brainldm._backend import as_tensor

    tensor, _ = as_tensor(array)
    if not tensor.is_floating_point():
        return
    matrix = tensor.reshape(len(tensor), -1) if tensor.ndim else tensor.reshape(1, 1)
    n_nan = n_inf = 0
    where = []
    rows_per_block = max(1, 2**24 // max(1, matrix.shape[1]))
    for start in range(0, len(matrix), rows_per_block):
        block = matrix[start : start + rows_per_block]
        nan, inf = torch.isnan(block), torch.isinf(block)
        n_nan += int(nan.sum())
        n_inf += int(inf.sum())
        if len(where) < 5 and (n_nan or n_inf):
            for row, column in torch.nonzero(nan | inf)[: 5 - len(where)].tolist():
                where.append((start + row, column))
    if n_nan or n_inf:
        two_d = tensor.ndim >= 2
        locations = ", ".join(f"({row}, {column})" if two_d else f"{row}" for row, column in where)
        more = ", ..." if n_nan + n_inf > len(where) else ""
        axes = "(row, column)" if two_d else "index"
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite values, at {axes} "
            f"{locations}{more}; {remedy}"
        )


def resolve_device(device, *arrays):
    """Return the torch device to compute on.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` computes where the torch tensors among `arrays` live (the CPU
        for numpy arrays, or when none is given); ``"cpu"``, ``"cuda"``,
        ``"cuda:1"`` or ``"mps"`` ask for a device.
    *arrays : numpy arrays or torch tensors
        The inputs.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` names no torch device.
    RuntimeError
        If a GPU is asked for and torch cannot use it.

    Examples
    --------
    >>> import numpy as np
    >>> resolve_device(None, np.zeros(3))
    device(type='cpu')
    """
    import torch

    if device is None:
        for array in arrays:
            if isinstance(array, torch.Tensor):
                return array.device
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be None, 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}, "
            "torch.cuda.is_available() is False): pass device='cpu' or device=None, or run on "
            "a machine with a GPU and a CUDA build of torch"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but torch cannot use Apple's MPS here: pass "
            "device='cpu' or device=None"
        )
    return device


def resolve_dtype(dtype):
    """Return the torch dtype named by ``dtype``; None is float32.

    Examples
    --------
    >>> resolve_dtype("float16"), resolve_dtype(None)
    (torch.float16, torch.float32)
    """
    import torch

    if dtype is None:
        return torch.float32
    named = {name: getattr(torch, name) for name in DTYPES}
    if isinstance(dtype, torch.dtype) and dtype in named.values():
        return dtype
    if isinstance(dtype, str) and dtype in named:
        return named[dtype]
    raise ValueError(f"dtype must be one of {sorted(named)} or None, got {dtype!r}")


def parse_subject(subject):
    """The number of an NSD subject: 1, ``"1"``, ``"subj01"`` -> 1.

    Examples
    --------
    >>> parse_subject("subj07"), parse_subject(2)
    (7, 2)
    >>> parse_subject("sub-x")
    Traceback (most recent call last):
    ...
    ValueError: subject='sub-x' is not an NSD subject; give its number (1) or its name ('subj01').
    """
    if isinstance(subject, (Integral, np.integer)) and not isinstance(subject, (bool, np.bool_)):
        number = int(subject)
    else:
        match = re.fullmatch(r"(?:subj)?0*(\d+)", str(subject).strip().lower())
        number = int(match.group(1)) if match else 0
    if number < 1:
        raise ValueError(
            f"subject={subject!r} is not an NSD subject; give its number (1) or its "
            f"name ('subj01')."
        )
    return number


def subject_name(subject):
    """NSD's folder name of a subject: 1, ``"1"``, ``"subj01"`` -> ``"subj01"``.

    Examples
    --------
    >>> subject_name(1)
    'subj01'
    """
    return f"subj{parse_subject(subject):02d}"


def check_captions(captions):
    """One list of strings per image; a bare string per image counts as one caption.

    Examples
    --------
    >>> check_captions(["a star", ["a ring", "ring"]])
    [['a star'], ['a ring', 'ring']]
    """
    if isinstance(captions, str):
        raise ValueError(
            f"captions must be one list of captions per image, got the string {captions[:40]!r}; "
            "wrap it as [[caption]]"
        )
    captions = [[texts] if isinstance(texts, str) else list(texts) for texts in captions]
    if not captions:
        raise ValueError("captions is empty; pass one list of captions per image")
    for j, texts in enumerate(captions):
        if not texts:
            raise ValueError(
                f"image {j} has no captions; every image needs at least one (use [''] for none)"
            )
        if not all(isinstance(text, str) for text in texts):
            raise ValueError(f"captions of image {j} must be strings, got {texts!r}")
    return captions


DEPRECATED = "deprecated"
"""Default of a renamed parameter's old name, so that passing it can be told apart."""


def renamed(old_value, old_name, new_value, new_name, caller):
    """The value of a renamed parameter: the old name's if given (with a FutureWarning).

    Examples
    --------
    >>> import warnings
    >>> renamed(DEPRECATED, "verbose", False, "progress", "fit")
    False
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = renamed(True, "verbose", False, "progress", "fit")
    >>> value, str(caught[0].message)
    (True, "fit: 'verbose' was renamed 'progress' and will be removed in brainldm 0.3; pass progress=True")
    """
    if isinstance(old_value, str) and old_value == DEPRECATED:
        return new_value
    import warnings

    warnings.warn(
        f"{caller}: {old_name!r} was renamed {new_name!r} and will be removed in brainldm 0.3; "
        f"pass {new_name}={old_value!r}",
        FutureWarning,
        stacklevel=3,
    )
    return old_value
