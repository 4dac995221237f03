"""What sparse connection and weight sharing save: a conv layer as a matrix, and its costs.

* :func:`conv_as_matrix` writes a conv2d (or conv3d) layer as the matrix it is:
  ``M @ x.ravel()`` equals ``conv2d(x[None], weight, ...).ravel()``. Its non-zeros are the
  sparse connections; its distinct values are the shared weights.
* :func:`compare_layers` counts parameters, multiply-adds, FLOPs and bytes for the dense
  layer, the locally connected layer and the conv layer (2-D or 3-D) that map the same input
  to the same output size.

This module uses only fastconv's public API.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

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


class _Layer(NamedTuple):
    """A validated conv layer of any dimension: what the connection count needs."""

    weight: np.ndarray  # (K, C // groups, *ksize), result dtype
    in_shape: tuple  # (C, *spatial)
    out_spatial: tuple
    stride: tuple
    pad: tuple  # padding before, per spatial axis
    dilation: tuple
    groups: int


def _nd_of(input_shape) -> int:
    """3 for a (C, D, H, W) input_shape, else 2 (and the 2-D checks judge it, as before)."""
    if isinstance(input_shape, (tuple, list, np.ndarray)) and len(input_shape) == 4:
        return 3
    return 2


def _layer(weight, input_shape, stride, padding, dilation, groups) -> _Layer:
    """Validate a 2-D layer as conv2d does (its own spec), a 3-D one with _spec's helpers
    (the checks and messages of conv2d's, on three spatial axes; no conv3d kernel needed)."""
    if _nd_of(input_shape) == 2:
        spec, shape = _geometry(weight, input_shape, stride, padding, dilation, groups)
        return _Layer(spec.weight, shape, spec.out_shape[2:], spec.stride, spec.pad,
                      spec.dilation, spec.groups)
    nd = 3
    weight = S.as_real_array(weight, "weight")
    weight = weight.astype(S.result_dtype(weight), copy=False)
    shape = tuple(S.int_tuple(input_shape, nd + 1, "input_shape", 1))
    if weight.ndim != nd + 2:
        raise ValueError(f"weight must have 5 dimensions (out_channels, in_channels/groups, "
                         f"kD, kH, kW) for a (C, D, H, W) input, got shape {weight.shape}")
    groups = S._as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    K, Cg, *ksize = weight.shape
    C = shape[0]
    if K == 0 or Cg == 0 or 0 in ksize:
        raise ValueError(f"weight must not be empty, got shape {weight.shape}")
    if C % groups or K % groups or Cg * groups != C:
        raise ValueError(f"groups={groups} with weight of shape {weight.shape} does not fit "
                         f"{C} input channels (expected weight.shape[1] == C // groups and "
                         f"groups dividing both channel counts)")
    stride = S.int_tuple(stride, nd, "stride", 1)
    dilation = S.int_tuple(dilation, nd, "dilation", 1)
    pairs = S._spatial_padding(padding, nd, ksize, stride, dilation)
    out = tuple(S.conv_out_size(n, k, s, sum(pr), d)
                for n, k, s, pr, d in zip(shape[1:], ksize, stride, pairs, dilation))
    if min(out) < 1:
        raise ValueError(f"the output would be empty: input_shape {shape} with padding "
                         f"{pairs} and a kernel of {tuple(ksize)} (dilation {dilation})")
    return _Layer(weight, shape, out, stride, tuple(p[0] for p in pairs), dilation, groups)


def conv_as_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *,
                   format="csr", max_bytes=DENSE_LIMIT):
    """The matrix of a conv2d or conv3d layer (zero padding) acting on one flattened input.

    Parameters
    ----------
    weight : array_like
        (K, C // groups, kh, kw), as for :func:`fastconv.conv2d`; or (K, C // groups, kd, kh,
        kw), as for ``conv3d``, with a (C, D, H, W) ``input_shape``.
    input_shape : tuple of 3 or 4 ints
        (C, H, W) or (C, D, H, W) of one input.
    stride, padding, dilation, groups
        As :func:`fastconv.conv2d` (``padding`` may be 'same' or 'valid'), per spatial axis.
    format : {'csr', 'dense'}, default 'csr'
        A ``scipy.sparse.csr_matrix`` or a dense ndarray.
    max_bytes : int, default 2**30
        A dense matrix larger than this is refused with a ValueError.

    Returns
    -------
    scipy.sparse.csr_matrix or ndarray
        Shape (K * Ho * Wo, C * H * W) (in 3-D (K * Do * Ho * Wo, C * D * H * W)), dtype
        ``result_type(weight, float32)``. Every connection of the layer is a stored entry,
        including the ones whose weight is zero, so ``nnz`` counts connections.

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

    In 3-D: 2 filters of 3x3x3 on a 4x5x5 volume, 54 shared weights in 972 connections.

    >>> M3 = fastconv.analysis.conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 4, 5, 5))
    >>> M3.shape, M3.nnz
    ((36, 100), 972)
    """
    if format not in ("csr", "dense"):
        raise ValueError(f"format must be 'csr' or 'dense', got {format!r}")
    g = _layer(weight, input_shape, stride, padding, dilation, groups)
    w = g.weight
    K, Cg = w.shape[:2]
    ksize = w.shape[2:]
    nd = len(ksize)
    Kg = K // g.groups
    n_rows = K * math.prod(g.out_spatial)
    n_cols = math.prod(g.in_shape)
    if format == "dense":
        nbytes = n_rows * n_cols * w.itemsize
        if nbytes > max_bytes:
            raise ValueError(
                f"a dense ({n_rows}, {n_cols}) matrix needs {nbytes:,} bytes, over "
                f"max_bytes={max_bytes:,}; use format='csr'"
            )
    # every (k, c, *kernel offsets, *output positions) connection, by broadcasting: no loop
    # over entries. Axes: 0 filter, 1 channel in the group, 2..2+nd kernel, then outputs.
    full = (K, Cg) + tuple(ksize) + tuple(g.out_spatial)

    def axis(n, a):
        return np.arange(n).reshape([-1 if i == a else 1 for i in range(len(full))])

    k = axis(K, 0)
    rows = k
    cols = (k // Kg) * Cg + axis(Cg, 1)
    valid = np.ones((1,) * len(full), bool)
    for a in range(nd):
        o = axis(g.out_spatial[a], 2 + nd + a)
        i = o * g.stride[a] - g.pad[a] + axis(ksize[a], 2 + a) * g.dilation[a]
        valid = valid & (i >= 0) & (i < g.in_shape[1 + a])
        rows = rows * g.out_spatial[a] + o
        cols = cols * g.in_shape[1 + a] + i
    valid = np.broadcast_to(valid, full)
    rows = np.broadcast_to(rows, full)[valid]
    cols = np.broadcast_to(cols, full)[valid]
    data = np.broadcast_to(w[(Ellipsis,) + (None,) * nd], full)[valid]
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
    input_shape : tuple of 3 or 4 ints
        (C, H, W) of one example, for a conv2d layer; (C, D, H, W) for a conv3d layer (a
        video clip or a volume).
    out_channels : int
        K, the conv layer's filters.
    kernel_size : int or tuple
        A pair in 2-D, a triple in 3-D (an int for all axes).
    stride, padding : int or tuple
        As :func:`fastconv.conv2d` (per spatial axis).
    dtype : str or dtype, default 'float32'
        For the byte counts.

    Returns
    -------
    LayerTable
        Three rows: ``dense`` (every input to every output, with bias), ``local`` (the
        conv's window, one filter per output position, bias per output), ``conv`` (one
        shared filter bank, bias per channel, as ``torch.nn.Conv2d`` / ``Conv3d``). Counts
        are per example; multiply-adds count every window position, padding included.

    Examples
    --------
    >>> import fastconv
    >>> t = fastconv.analysis.compare_layers((1, 28, 28), 6, 3)
    >>> [(r.layer, r.params) for r in t]
    [('dense', 3183960), ('local', 40560), ('conv', 60)]

    A 3-D layer: 4 filters of 3x3x3 over an 8-frame 16x16 clip (padding 1: the output is
    4x8x16x16). The dense layer with the same output has 16.8 million parameters, the conv
    layer 112 (about 150,000 times fewer) and 75 times fewer multiply-adds; the locally
    connected layer (the conv's windows, no sharing) has the conv's multiply-adds and 2,048
    times its parameters: weight sharing alone saves that factor.

    >>> t3 = fastconv.analysis.compare_layers((1, 8, 16, 16), 4, 3, padding=1)
    >>> [(r.layer, r.params, r.macs) for r in t3]
    [('dense', 16785408, 16777216), ('local', 229376, 221184), ('conv', 112, 221184)]
    >>> t3[0].params // t3[2].params, t3[0].macs // t3[2].macs
    (149869, 75)
    """
    itemsize = np.dtype(dtype).itemsize
    nd = _nd_of(input_shape)
    shape = tuple(int(v) for v in S.int_tuple(input_shape, nd + 1, "input_shape", 1))
    C = shape[0]
    K = S.int_tuple(out_channels, 1, "out_channels", 1)[0]
    ksize = S.int_tuple(kernel_size, nd, "kernel_size", 1)
    weight = np.broadcast_to(np.zeros((), dtype), (K, C) + tuple(ksize))
    g = _layer(weight, shape, stride, padding, 1, 1)
    n_pos = math.prod(g.out_spatial)
    n_in, n_out, window = math.prod(shape), K * n_pos, C * math.prod(ksize)
    rows = []
    for layer, weights, biases, macs, work in (
        ("dense", n_in * n_out, n_out, n_in * n_out, 0),
        ("local", n_out * window, n_out, n_out * window, 0),
        ("conv", K * window, K, n_out * window, window * n_pos * itemsize),
    ):
        params = weights + biases
        rows.append(LayerCost(layer, params, macs, 2 * macs, params * itemsize,
                              n_in * itemsize, n_out * itemsize, work))
    return LayerTable(rows)
