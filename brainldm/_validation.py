"""Checks of parameters and arguments shared by every module, with one wording per problem.

A parameter is checked against constraints, declared once: an estimator lists them
per parameter in its class attribute ``_parameter_constraints`` (as scikit-learn's
estimators do; a subclass's dict extends its bases') and calls
:func:`validate_params` at the start of ``fit``; a function checks an argument with
:func:`check_parameter` (or its shorthands :func:`check_int`, :func:`check_number`,
:func:`check_options`). A value that satisfies none of its constraints raises
:class:`InvalidParameterError`, worded one way::

    The 'steps' parameter of img2img must be an int in the range [1, inf). Got 0 instead.

torch is imported inside the functions that need it, so that ``brainldm.datasets``
can use this module without loading torch.
"""

import re
from numbers import Integral, Real

import numpy as np

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "check_captions",
    "check_finite",
    "check_int",
    "check_number",
    "check_options",
    "check_parameter",
    "parse_subject",
    "resolve_device",
    "resolve_dtype",
    "subject_name",
    "validate_params",
]

DTYPES = ("float32", "float16", "bfloat16")
"""Names of the precisions models may run in."""


class InvalidParameterError(ValueError, TypeError):
    """A parameter or argument satisfies none of its constraints.

    A ``ValueError``, and a ``TypeError`` too, as scikit-learn's error of the same name,
    since a value of the wrong type is among the problems it reports.
    """


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


class Interval:
    """Numbers of one type between two bounds; None is an unbounded side.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real}
        Integers, or any real number (integers included).
    left, right : number or None
        The bounds.
    closed : {"both", "left", "right", "neither"}, default="both"
        The sides that belong to the interval; an unbounded side is open.

    Examples
    --------
    >>> from numbers import Integral, Real
    >>> str(Interval(Integral, 1, None))
    'an int in the range [1, inf)'
    >>> interval = Interval(Real, 0, 1, closed="right")
    >>> interval.is_satisfied_by(1), interval.is_satisfied_by(0), str(interval)
    (True, False, 'a float in the range (0.0, 1.0]')
    """

    def __init__(self, type, left, right, *, closed="both"):
        self.type, self.left, self.right = type, left, right
        self.closed = {
            (True, True): "both",
            (True, False): "left",
            (False, True): "right",
            (False, False): "neither",
        }[
            (
                closed in ("both", "left") and left is not None,
                closed in ("both", "right") and right is not None,
            )
        ]

    def is_satisfied_by(self, value):
        # bool is an Integral for Python; as a count or a size it is a mistake.
        if _is_bool(value) or not isinstance(value, self.type) or np.isnan(value):
            return False
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        above = self.left is None or (value >= self.left if left_closed else value > self.left)
        below = self.right is None or (value <= self.right if right_closed else value < self.right)
        return bool(above and below)

    def __str__(self):
        def bound(value, infinite):
            if value is None:
                return infinite
            return value if self.type is Integral else float(value)

        return (
            f"{'an int' if self.type is Integral else 'a float'} in the range "
            f"{'[' if self.closed in ('both', 'left') else '('}{bound(self.left, '-inf')}, "
            f"{bound(self.right, 'inf')}{']' if self.closed in ('both', 'right') else ')'}"
        )


class Options:
    """One of a few values, usually strings.

    Parameters
    ----------
    options : iterable
        The values allowed, in the order messages list them.

    Examples
    --------
    >>> options = Options(("takagi2023", "diffusers"))
    >>> options.is_satisfied_by("diffusers"), str(options)
    (True, "a str among {'takagi2023', 'diffusers'}")
    >>> Options([-1]).is_satisfied_by(True), str(Options([-1]))
    (False, 'one of {-1}')
    """

    def __init__(self, options):
        self.options = tuple(options)

    def is_satisfied_by(self, value):
        # Compared by type too: True == 1 and np.str_("a") == "a", but only the latter is meant.
        return any(
            type(value) is type(option) or isinstance(value, str) and isinstance(option, str)
            for option in self.options
            if _equal(value, option)
        )

    def __str__(self):
        listed = ", ".join(map(repr, self.options))
        strings = all(isinstance(option, str) for option in self.options)
        return f"a str among {{{listed}}}" if strings else f"one of {{{listed}}}"


def _equal(value, option):
    try:
        return bool(value == option)
    except (TypeError, ValueError):
        return False


class _InstanceOf:
    def __init__(self, type):
        self.type = type

    def is_satisfied_by(self, value):
        # A bool is a valid bool, never a valid number.
        numeric = self.type in (Integral, Real, int, float)
        return isinstance(value, self.type) and not (numeric and _is_bool(value))

    def __str__(self):
        module, name = self.type.__module__, self.type.__qualname__
        return (
            f"an instance of {name!r}"
            if module == "builtins"
            else f"an instance of '{module}.{name}'"
        )


class _NoneConstraint:
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class _Boolean:
    def is_satisfied_by(self, value):
        return _is_bool(value)

    def __str__(self):
        return "a bool"


class HasMethods:
    """Objects with some methods, such as a regressor's ``fit`` and ``predict``.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> HasMethods(["fit", "predict"]).is_satisfied_by(Ridge())
    True
    >>> str(HasMethods(["fit", "predict"]))
    "an object with methods 'fit', 'predict'"
    """

    def __init__(self, methods):
        self.methods = tuple(methods)

    def is_satisfied_by(self, value):
        return all(callable(getattr(value, method, None)) for method in self.methods)

    def __str__(self):
        return f"an object with methods {', '.join(map(repr, self.methods))}"


def _constraint(spec):
    """The constraint object a declaration names."""
    if spec is None:
        return _NoneConstraint()
    if spec == "boolean":
        return _Boolean()
    if isinstance(spec, type):
        return _InstanceOf(spec)
    if hasattr(spec, "is_satisfied_by"):
        return spec
    raise TypeError(f"unknown parameter constraint {spec!r}")


def check_parameter(value, name, caller, *constraints):
    """Return ``value`` if it satisfies one of ``constraints``, else raise.

    Parameters
    ----------
    value : object
    name : str
        Name of the parameter, for the message.
    caller : str
        Name of the function or class that takes it, for the message.
    *constraints : Interval, Options, HasMethods, type, None or "boolean"
        What a valid value is: in an interval, one of some strings, an object
        with some methods, an instance of a type, None, or a bool.

    Returns
    -------
    value

    Raises
    ------
    InvalidParameterError
        If `value` satisfies none of the constraints.

    Examples
    --------
    >>> check_parameter(None, "metric", "fit", str, None) is None
    True
    >>> check_parameter(3, "rescale", "LDMReconstructor", Options(["train", "batch"]), None)
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'rescale' parameter of LDMReconstructor must be a str among {'train', 'batch'} or None. Got 3 instead.
    """
    objects = [_constraint(spec) for spec in constraints]
    if any(constraint.is_satisfied_by(value) for constraint in objects):
        return value
    wording = [str(constraint) for constraint in objects]
    allowed = wording[0] if len(wording) == 1 else f"{', '.join(wording[:-1])} or {wording[-1]}"
    raise InvalidParameterError(
        f"The {name!r} parameter of {caller} must be {allowed}. Got {value!r} instead."
    )


def validate_params(estimator):
    """Check an estimator's parameters against its class's ``_parameter_constraints``.

    The constraints are merged along the class's MRO, so that a subclass declares
    only the parameters it adds (or those it constrains differently). Parameters
    without a declaration are not checked here.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Its ``get_params(deep=False)`` are checked.

    Raises
    ------
    InvalidParameterError
        Naming the first parameter that satisfies none of its constraints.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> class Smoother(BaseEstimator):
    ...     _parameter_constraints = {"width": [Interval(Integral, 1, None)]}
    ...     def __init__(self, width=3):
    ...         self.width = width
    >>> validate_params(Smoother(width=0))
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'width' parameter of Smoother must be an int in the range [1, inf). Got 0 instead.
    """
    declared = {}
    for cls in reversed(type(estimator).__mro__):
        declared.update(vars(cls).get("_parameter_constraints", {}))
    for name, value in estimator.get_params(deep=False).items():
        if name in declared:
            check_parameter(value, name, type(estimator).__name__, *declared[name])


def check_int(value, name, caller, *, min_val=None, max_val=None):
    """Return ``value`` as an int, or raise if it is no integer in [min_val, max_val].

    Examples
    --------
    >>> check_int(3, "steps", "img2img", min_val=1)
    3
    >>> check_int(0, "steps", "img2img", min_val=1)
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'steps' parameter of img2img must be an int in the range [1, inf). Got 0 instead.
    """
    return int(check_parameter(value, name, caller, Interval(Integral, min_val, max_val)))


def check_number(value, name, caller, *, min_val=None, max_val=None, closed="both"):
    """Return ``value`` as a float, or raise if it is no number in the interval.

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``, as in
    :class:`Interval`.

    Examples
    --------
    >>> check_number(0.8, "strength", "img2img", min_val=0, max_val=1, closed="right")
    0.8
    >>> check_number(float("nan"), "guidance", "img2img", min_val=0)
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'guidance' parameter of img2img must be a float in the range [0.0, inf). Got nan instead.
    """
    interval = Interval(Real, min_val, max_val, closed=closed)
    return float(check_parameter(value, name, caller, interval))


def check_options(value, name, caller, options):
    """Return ``value`` if it is one of the strings ``options`` (or None when listed).

    Examples
    --------
    >>> check_options("takagi2023", "noise_schedule", "img2img", ("takagi2023", "diffusers"))
    'takagi2023'
    """
    strings = Options(option for option in options if option is not None)
    return check_parameter(value, name, caller, strings, *([None] if None in options else []))


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
