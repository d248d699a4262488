"""Warnings that point at the user's call: the first frame outside the package."""

import os
import sys
import warnings

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message, category=UserWarning):
    """:func:`warnings.warn` with the location of the first caller outside brainldm.

    A warning about a call's settings or data is the user's to act on: it is
    shown at the line of the user's code that made the call (or of the
    library, such as scikit-learn's, that called brainldm for the user), not
    inside brainldm, however deep the call that noticed it.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn("add larger alphas")
    >>> caught[0].filename.endswith("_warnings.py")
    False
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
