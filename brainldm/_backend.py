"""Array backends for the ridge solver: numpy arrays, torch tensors, CPU or CUDA.

Devices are resolved by :func:`brainldm._validation.resolve_device`.

The solver computes with torch on the requested device. numpy inputs are
wrapped without copying (``torch.from_numpy``) and results go back to numpy, so
one code path serves numpy, torch on CPU and torch on CUDA.
"""

import warnings

import numpy as np
import torch

__all__ = ["as_tensor", "compute_dtype", "exact_float32", "to_output"]


def compute_dtype(*arrays):
    """Return float32 when every array is float32 or narrower, else float64.

    Examples
    --------
    >>> import numpy as np
    >>> compute_dtype(np.zeros(2, np.float32), np.zeros(2, np.float32))
    torch.float32
    >>> compute_dtype(np.zeros(2, np.float32), np.zeros(2, np.int64))
    torch.float64
    """
    narrow = (np.float16, np.float32, torch.float16, torch.bfloat16, torch.float32)
    return torch.float32 if all(a.dtype in narrow for a in arrays) else torch.float64


def exact_float32(array):
    """A torch float16 or bfloat16 tensor as a float32 numpy array (exact); else unchanged.

    numpy has no bfloat16, so the estimators, which validate numpy arrays, cannot take
    such a tensor as it is; float32 holds both narrow types exactly, so the fit is that of
    the same values passed as float32.

    Examples
    --------
    >>> exact_float32(torch.ones(2, dtype=torch.bfloat16)).dtype
    dtype('float32')
    >>> exact_float32(np.ones(2, np.float16)).dtype
    dtype('float16')
    """
    if isinstance(array, torch.Tensor) and array.dtype in (torch.float16, torch.bfloat16):
        return array.detach().cpu().float().numpy()
    return array


def as_tensor(array, dtype=None, device=None):
    """Wrap `array` as a torch tensor, copying only when dtype or device differ.

    Parameters
    ----------
    array : numpy array or torch tensor
    dtype : torch.dtype or None
    device : torch.device or None

    Returns
    -------
    tensor : torch.Tensor
    copied : bool
        Whether `tensor` owns new memory, so that it may be changed in place
        without touching the caller's array.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> tensor, copied = as_tensor(x)
    >>> tensor.shape, copied
    (torch.Size([2, 3]), False)
    """
    original = array
    if isinstance(array, torch.Tensor):
        source = array
    else:
        array = np.asarray(array)
        if array.dtype.byteorder not in "=|":
            array = array.astype(array.dtype.newbyteorder("="))
        if any(stride < 0 for stride in array.strides):
            array = np.ascontiguousarray(array)  # torch cannot view a reversed array
        with warnings.catch_warnings():
            # Read-only arrays are only read here; the solver writes to its own copies.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            source = torch.from_numpy(array)
    tensor = source.to(dtype=dtype or source.dtype, device=device or source.device)
    return tensor, tensor.data_ptr() != _data_pointer(original)


def _data_pointer(array):
    """Address of the first element of a numpy array or torch tensor."""
    if isinstance(array, torch.Tensor):
        return array.data_ptr()
    return np.asarray(array).__array_interface__["data"][0]


def to_output(tensor, as_numpy):
    """Return `tensor` as a numpy array (moved to CPU) or unchanged.

    Examples
    --------
    >>> import torch
    >>> to_output(torch.ones(2), as_numpy=True)
    array([1., 1.], dtype=float32)
    """
    if as_numpy:
        return tensor.detach().cpu().numpy()
    return tensor
