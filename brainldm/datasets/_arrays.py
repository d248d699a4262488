"""Array operations of the reader that bound its peak memory."""

__all__ = ["drop_columns_in_place"]


def drop_columns_in_place(X, keep, block_bytes=64 * 2**20):
    """``X[:, keep]`` of a C-contiguous ``X``, built in X's own memory.

    At NSD's scale X is gigabytes; a fancy-indexed copy would double the peak memory.
    Rows are moved down block by block: the kept part of rows ``a:b`` goes to flat
    positions ``a * n_keep`` to ``b * n_keep``, which never reach an unread row.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> drop_columns_in_place(X, np.array([True, False, True]))
    array([[0., 2.],
           [3., 5.]])
    """
    n_rows, n_cols = X.shape
    n_keep = int(keep.sum())
    if n_keep == n_cols:
        return X
    flat = X.reshape(-1)
    step = max(1, block_bytes // (X.itemsize * n_cols))
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        flat[start * n_keep : stop * n_keep] = X[start:stop][:, keep].ravel()
    return flat[: n_rows * n_keep].reshape(n_rows, n_keep)
