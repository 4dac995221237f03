"""What sparse connection and weight sharing save: a conv layer as a matrix, and its costs.

* :func:`conv_as_matrix` writes a conv2d layer as the matrix it is: ``M @ x.ravel()`` equals
  ``conv2d(x[None], weight, ...).ravel()``. Its non-zeros are the sparse connections; its
  distinct values are the shared weights.
* :func:`compare_layers` counts parameters, multiply-adds, FLOPs and bytes for the dense
  layer, the locally connected layer and the conv layer that map the same input to the same
  output size.

This module uses only fastconv's public API.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from . import _spec as S
from .functional import conv2d

__all__ = ["conv_as_matrix", "compare_layers", "LayerCost", "LayerTable"]

DENSE_LIMIT = 2**30  # bytes a dense matrix from conv_as_matrix may take by default


def _geometry(weight, input_shape, stride, padding, dilation, groups):
    """The validated conv geometry for one (C, H, W) input, without allocating the input."""
    weight = S.as_real_array(weight, "weight")
    shape = tuple(S.int_tuple(input_shape, 3, "input_shape", 1))
    dtype = S.result_dtype(weight)
    x = np.broadcast_to(np.zeros((), dtype), (1,) + shape)
    spec = S.conv_spec(x, weight, None, stride, padding, dilation, groups, "zeros", 2)
    return spec, shape


def conv_as_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *,
                   format="csr", max_bytes=DENSE_LIMIT):
    """The matrix of a conv2d layer (zero padding) acting on one flattened input.

    Parameters
    ----------
    weight : array_like
        (K, C // groups, kh, kw), as for :func:`fastconv.conv2d`.
    input_shape : tuple of 3 ints
        (C, H, W) of one input.
    stride, padding, dilation, groups
        As :func:`fastconv.conv2d` (``padding`` may be 'same' or 'valid').
    format : {'csr', 'dense'}, default 'csr'
        A ``scipy.sparse.csr_matrix`` or a dense ndarray.
    max_bytes : int, default 2**30
        A dense matrix larger than this is refused with a ValueError.

    Returns
    -------
    scipy.sparse.csr_matrix or ndarray
        Shape (K * Ho * Wo, C * H * W), dtype ``result_type(weight, float32)``. Every
        connection of the layer is a stored entry, including the ones whose weight is zero,
        so ``nnz`` counts connections.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.arange(1., 10.).reshape(1, 1, 3, 3)
    >>> M = fastconv.analysis.conv_as_matrix(w, (1, 5, 5))
    >>> M.shape, M.nnz, len(np.unique(M.data))
    ((9, 25), 81, 9)
    >>> x = np.random.default_rng(0).random((1, 5, 5))
    >>> np.allclose(M @ x.ravel(), fastconv.conv2d(x[None], w).ravel())
    True
    """
    if format not in ("csr", "dense"):
        raise ValueError(f"format must be 'csr' or 'dense', got {format!r}")
    spec, (C, H, W) = _geometry(weight, input_shape, stride, padding, dilation, groups)
    w = spec.weight
    K, Cg, kh, kw = w.shape
    _, _, Ho, Wo = spec.out_shape
    G = spec.groups
    Kg = K // G
    n_rows, n_cols = K * Ho * Wo, C * H * W
    if format == "dense":
        nbytes = n_rows * n_cols * w.itemsize
        if nbytes > max_bytes:
            raise ValueError(
                f"a dense ({n_rows}, {n_cols}) matrix needs {nbytes:,} bytes, over "
                f"max_bytes={max_bytes:,}; use format='csr'"
            )
    (sh, sw), (pt, pl), (dh, dw) = spec.stride, spec.pad, spec.dilation
    # every (k, c, i, j, oh, ow) connection, by broadcasting: no loop over entries
    k = np.arange(K)[:, None, None, None, None, None]
    c = (k // Kg) * Cg + np.arange(Cg)[None, :, None, None, None, None]
    i = np.arange(kh)[None, None, :, None, None, None]
    j = np.arange(kw)[None, None, None, :, None, None]
    oh = np.arange(Ho)[None, None, None, None, :, None]
    ow = np.arange(Wo)[None, None, None, None, None, :]
    ih = oh * sh - pt + i * dh
    iw = ow * sw - pl + j * dw
    full = (K, Cg, kh, kw, Ho, Wo)
    valid = np.broadcast_to((ih >= 0) & (ih < H) & (iw >= 0) & (iw < W), full)
    rows = np.broadcast_to((k * Ho + oh) * Wo + ow, full)[valid]
    cols = np.broadcast_to((c * H + ih) * W + iw, full)[valid]
    data = np.broadcast_to(w[:, :, :, :, None, None], full)[valid]
    if format == "dense":
        M = np.zeros((n_rows, n_cols), w.dtype)
        M[rows, cols] = data
        return M
    from scipy import sparse

    return sparse.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols))


@dataclass(frozen=True)
class LayerCost:
    """The costs of one layer mapping one input example to its output."""

    layer: str
    params: int
    macs: int  # multiply-adds per example
    flops: int  # 2 * macs
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    workspace_bytes: int  # im2col columns for one example, where a backend would build them


class LayerTable(list):
    """A list of :class:`LayerCost` rows that prints as a table and converts to JSON."""

    COLUMNS = ("layer", "params", "macs", "flops", "weight_bytes", "input_bytes",
               "output_bytes", "workspace_bytes")

    def to_dicts(self) -> list:
        return [asdict(r) for r in self]

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dicts(), **kw)

    def __str__(self) -> str:
        cells = [self.COLUMNS] + [
            tuple(r.layer if col == "layer" else f"{getattr(r, col):,}" for col in self.COLUMNS)
            for r in self
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.COLUMNS))]
        lines = []
        for n, row in enumerate(cells):
            lines.append("  ".join(
                cell.ljust(wd) if i == 0 else cell.rjust(wd)
                for i, (cell, wd) in enumerate(zip(row, widths))
            ))
            if n == 0:
                lines.append("  ".join("-" * wd for wd in widths))
        return "\n".join(lines)


def compare_layers(input_shape, out_channels, kernel_size, stride=1, padding=0,
                   dtype="float32") -> LayerTable:
    """Dense vs locally connected vs conv, for the same input and output sizes.

    Parameters
    ----------
    input_shape : tuple of 3 ints
        (C, H, W) of one example.
    out_channels : int
        K, the conv layer's filters.
    kernel_size : int or pair
    stride, padding : int or pair
        As :func:`fastconv.conv2d`.
    dtype : str or dtype, default 'float32'
        For the byte counts.

    Returns
    -------
    LayerTable
        Three rows: ``dense`` (every input to every output, with bias), ``local`` (the
        conv's window, one filter per output position, bias per output), ``conv`` (one
        shared filter bank, bias per channel, as ``torch.nn.Conv2d``). Counts are per
        example; multiply-adds count every window position, padding included.

    Examples
    --------
    >>> import fastconv
    >>> t = fastconv.analysis.compare_layers((1, 28, 28), 6, 3)
    >>> [(r.layer, r.params) for r in t]
    [('dense', 3183960), ('local', 40560), ('conv', 60)]
    """
    itemsize = np.dtype(dtype).itemsize
    C, H, W = (int(v) for v in S.int_tuple(input_shape, 3, "input_shape", 1))
    K = S.int_tuple(out_channels, 1, "out_channels", 1)[0]
    kh, kw = S.int_tuple(kernel_size, 2, "kernel_size", 1)
    weight = np.broadcast_to(np.zeros((), dtype), (K, C, kh, kw))
    spec, _ = _geometry(weight, (C, H, W), stride, padding, 1, 1)
    _, _, Ho, Wo = spec.out_shape
    n_in, n_out, window = C * H * W, K * Ho * Wo, C * kh * kw
    rows = []
    for layer, weights, biases, macs, work in (
        ("dense", n_in * n_out, n_out, n_in * n_out, 0),
        ("local", n_out * window, n_out, n_out * window, 0),
        ("conv", K * window, K, n_out * window, window * Ho * Wo * itemsize),
    ):
        params = weights + biases
        rows.append(LayerCost(layer, params, macs, 2 * macs, params * itemsize,
                              n_in * itemsize, n_out * itemsize, work))
    return LayerTable(rows)
