"""fastconv over Dask arrays: larger-than-memory and multi-process runs of the same functions.

Needs the ``dask`` extra (``pip install "fastconv[dask]"``). :func:`conv2d`,
:func:`max_pool2d`, :func:`avg_pool2d`, :func:`correlate2d`, :func:`convolve2d`, their 3-D
counterparts :func:`conv3d`, :func:`max_pool3d`, :func:`avg_pool3d`, and
:func:`conv_transpose2d` take a ``dask.array.Array`` (or any array with ``chunks=``) and
the arguments of their NumPy namesakes in :mod:`fastconv`, and return a lazy
``dask.array.Array`` whose computed value is the NumPy function's result. So do the
filters of :mod:`fastconv.ndimage` (:func:`correlate`, :func:`convolve`, their ``1d``
forms, :func:`uniform_filter`, :func:`gaussian_filter`, :func:`maximum_filter`,
:func:`minimum_filter`, :func:`median_filter`, :func:`rank_filter`,
:func:`percentile_filter` and the ``1d`` forms), with scipy.ndimage's
arguments, on arrays of any number of dimensions: every axis they filter is a spatial axis
below, with stride 1 and the output the input's size. Only fastconv's public API runs
inside the tasks. The plan below is the same on every spatial axis (two or three of them);
:func:`conv_transpose2d`'s own plan, a gather, is in its docstring.

How an array is split
---------------------
* **Batch and channel axes** map block for block: every output block is computed by one
  fastconv call on the matching input block. :func:`conv2d` needs every input channel (of
  every group) in each call, so its channel axis is rechunked to a single chunk when it is
  split; its output channel axis is one chunk.
* **Spatial axes** follow the input chunks, with a halo built explicitly (not with
  ``dask.array.map_overlap``, which can express neither a halo that differs on the two
  sides, nor a strided output whose blocks do not line up with the input's):

  - output block ``j`` holds the windows that *end* in input chunk ``j``: window ``o``
    covers padded positions ``o * stride`` to ``o * stride + span - 1``, so the block
    boundaries are the input's, shifted by the padding before and the window span, and
    rounded up to the next multiple of the stride. A chunk size that is not a multiple
    of the stride gives output blocks of uneven size, and a chunk smaller than the stride
    may give no output block at all; nothing is rechunked, and every window is computed
    once, from exactly the NumPy call's pixels.
  - the task for an output block reads its own input chunk and, cut by small tasks of
    their own, the strips of the chunks before it that its windows reach into, however
    many chunks that is (a halo may be wider than a chunk). The halo lies on one side
    only, so Dask can use each input chunk for its own block and its strips, then drop it:
    memory stays near a band of chunks (an image row of them), as with ``map_overlap``.
  - padding happens at the **true image border** only. :func:`conv2d` (every
    ``padding_mode``), :func:`correlate2d` and :func:`convolve2d` (every ``boundary``,
    with ``fillvalue``) build the padded window region explicitly, reading the reflected,
    replicated or wrapped pixels from the chunks at the other side of the image where
    needed, and call fastconv with no padding. The pools pass their padding to fastconv
    (so max-pool pads with -inf, and ``count_include_pad`` and ``ceil_mode`` behave as
    in the NumPy call): each task's region starts at a multiple of the stride, at the true
    border or inside the image, so fastconv's windows fall exactly on the global ones;
    the few extra windows it computes at the region's edges are dropped. The ndimage
    filters build the region explicitly for every mode but ``constant`` (``wrap`` and the
    reflections read the chunks at the other side of the array), with a halo of the
    filter's reach on each side (its length less one, enough for any ``origin``; a
    Gaussian's radius); in
    ``constant`` mode the region stops at the array's border and the filter pads it with
    ``cval`` itself (filling it here would round ``cval`` to an integer input's dtype).
    The filtered region's own border effects fall in the halo, which is dropped.

Threads
-------
fastconv's threads and Dask's must not multiply. Each task runs fastconv with ``threads``
threads (default **1**: one fastconv thread per Dask thread, so a worker with T threads
uses T cores). The count is set with :func:`fastconv.set_num_threads` when the first
fastconv task of a process starts and restored when the last one running ends (a lock and
a counter, since the setting is process-global). While tasks run, other fastconv calls
in the same process use that count too, and concurrent tasks asking for different counts
share the one set last. To give each task more threads, run fewer Dask threads per
worker and pass ``threads=``.

Results equal the NumPy functions': the pools exactly; the convolutions up to the rounding
of a sum (a block may take another kernel path than the whole array).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import operator
import threading
from dataclasses import dataclass

import numpy as np

import fastconv
import fastconv.ndimage

try:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'fastconv.dask needs Dask: pip install "fastconv[dask]" '
        f"(dask[array] and distributed); the import failed with: {exc}"
    ) from exc

__all__ = [
    "conv2d", "max_pool2d", "avg_pool2d", "correlate2d", "convolve2d",
    "conv3d",
    "max_pool3d",
    "avg_pool3d",
    "conv_transpose2d",
    # scipy.ndimage's filters
    "correlate", "convolve", "correlate1d", "convolve1d", "uniform_filter", "uniform_filter1d",
    "gaussian_filter", "gaussian_filter1d", "maximum_filter", "minimum_filter",
    "maximum_filter1d", "minimum_filter1d", "median_filter", "rank_filter", "percentile_filter",
]


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------
_thread_lock = threading.Lock()
_thread_state = {"active": 0, "saved": None}


@contextlib.contextmanager
def _task_threads(n: int):
    """fastconv runs with ``n`` threads while any task of this process is inside."""
    with _thread_lock:
        if _thread_state["active"] == 0:
            _thread_state["saved"] = fastconv.get_num_threads()
        _thread_state["active"] += 1
        fastconv.set_num_threads(n)
    try:
        yield
    finally:
        with _thread_lock:
            _thread_state["active"] -= 1
            if _thread_state["active"] == 0:
                fastconv.set_num_threads(_thread_state["saved"])
                _thread_state["saved"] = None


def _threads_arg(threads) -> int:
    if threads is None:
        return 1
    if isinstance(threads, (bool, np.bool_)):
        raise TypeError(f"threads must be a positive int or None, got {threads!r}")
    try:
        n = operator.index(threads)
    except TypeError:
        raise TypeError(f"threads must be a positive int or None, got {threads!r}") from None
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    return int(n)


def _backend_arg(backend):
    # fastconv.use_backend is context-local and does not reach the workers: resolve it here
    return fastconv.get_backend() if backend is None else backend


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _as_dask(x, chunks, name: str):
    """``x`` as a dask array: rechunked to ``chunks`` if given, wrapped if not Dask."""
    if isinstance(x, da.Array):
        return x if chunks is None else x.rechunk(chunks)
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a real numeric array, got a {type(x).__name__}")
    return da.from_array(np.asarray(x), chunks="auto" if chunks is None else chunks)


def _in_memory(a):
    """A small operand (weight, bias, kernel) as a NumPy array (computed if Dask)."""
    if a is None:
        return None
    if isinstance(a, da.Array):
        a = a.compute()
    return np.asarray(a) if not isinstance(a, (str, bytes)) else a


def _tuple(v, n):
    """An int, a 1-tuple or an n-tuple as n ints; None if it is not one (fastconv raises
    then, or accepts a form the plan cannot read: the callers raise then)."""
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = tuple(v.tolist())
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            return None
        vals = tuple(v)
    else:
        vals = (v,) * n
    try:
        if any(isinstance(e, (bool, np.bool_)) for e in vals):
            return None
        return tuple(operator.index(e) for e in vals)
    except TypeError:
        return None


# --------------------------------------------------------------------------------------------
# the plan of one spatial axis
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Piece:
    """One output block along one spatial axis, and what its task reads.

    ``reads`` lists ``(input chunk, start, stop)`` slices, concatenated in order; ``take``
    (or None for all of it, in order) picks the region's positions from that concatenation,
    -1 marking a position filled with the constant; ``skip`` is the number of fastconv's
    outputs before the block's first; ``origin`` the input position of the region's first
    element (pools: for the indices of max_pool2d).
    """

    out: tuple  # (o0, o1) output positions
    reads: tuple
    take: object
    skip: int
    origin: int

    @property
    def size(self):
        return self.out[1] - self.out[0]


def _out_blocks(bounds, before, stride, span, n_out):
    """Output blocks following the input chunks: block j holds the windows that *end* in
    chunk j (window o ends at ``o * stride - before + span - 1``), i.e. boundaries
    ``ceil((b + before - span + 1) / stride)``; empty blocks are dropped.

    Ending, not starting: a block's halo then lies in the chunks before it, so in the order
    Dask runs the graph each input chunk is used by its own block and cut into strips for
    the blocks after it, then released. (Windows starting in the chunk would need the next
    row of chunks, and Dask would hold a whole band of the image.)"""
    cuts = [0]
    for b in bounds[1:-1]:
        cuts.append(min(n_out, max(cuts[-1], -(-(b + before - span + 1) // stride))))
    cuts.append(n_out)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _source_index(pos, size, mode):
    """The input position each padded position ``pos`` copies, or -1 for the fill value
    (the extension rules of numpy.pad, which fastconv applies)."""
    inside = (pos >= 0) & (pos < size)
    if mode == "fill":
        return np.where(inside, pos, -1)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    if mode == "wrap":
        return pos % size
    if mode == "symm":  # numpy 'symmetric': edge repeated, period 2 * size
        r = pos % (2 * size)
        return np.where(r < size, r, 2 * size - 1 - r)
    if mode == "reflect":  # numpy 'reflect': edge not repeated, period 2 * (size - 1)
        if size == 1:
            return np.zeros_like(pos)
        period = 2 * (size - 1)
        r = pos % period
        return np.where(r < size, r, period - r)
    raise AssertionError(mode)  # pragma: no cover - modes are mapped by the callers


def _reads_of(src, bounds, near=0):
    """The chunk slices holding the positions ``src`` (>= 0), and where each position lands
    in their concatenation. A region of fill only still reads one element (at ``near``) for
    the shape of the other axes."""
    valid = src >= 0
    if not valid.any():
        c = int(np.searchsorted(bounds, near, side="right")) - 1
        start = near - int(bounds[c])
        return ((c, start, start + 1),), np.full(src.shape, -1, np.int64)
    cid = np.searchsorted(bounds, np.where(valid, src, 0), side="right") - 1
    reads, offset = [], 0
    take = np.full(src.shape, -1, np.int64)
    for c in np.unique(cid[valid]):
        sel = valid & (cid == c)
        lo, hi = int(src[sel].min()), int(src[sel].max()) + 1
        take[sel] = offset + src[sel] - lo
        reads.append((int(c), lo - int(bounds[c]), hi - int(bounds[c])))
        offset += hi - lo
    if np.array_equal(take, np.arange(src.size)):
        take = None
    return tuple(reads), take


def _halo_plan(chunks, before, stride, span, n_out, mode):
    """Pieces of an axis whose windows are built explicitly: region = every padded position
    the block's windows cover, padding by ``mode``; fastconv then runs unpadded."""
    bounds = np.cumsum((0,) + tuple(chunks))
    size = int(bounds[-1])
    pieces = []
    for o0, o1 in _out_blocks(bounds, before, stride, span, n_out):
        lo = o0 * stride - before
        hi = (o1 - 1) * stride - before + span
        src = _source_index(np.arange(lo, hi), size, mode)
        reads, take = _reads_of(src, bounds, min(max(lo, 0), size - 1))
        pieces.append(_Piece((int(o0), int(o1)), reads, take, 0, int(lo)))
    return pieces


def _pool_plan(chunks, pad, stride, span, n_out, min_size=0):
    """Pieces of a pooled axis: the region is the input from a multiple of the stride (0 at
    the border) to the end of the block's last window (or the input's end); fastconv pads
    it by ``pad`` itself, and its window ``skip`` is the block's first.

    ``min_size``: a region shorter than this (where the input is not) is widened, forward
    then back by whole strides, with windows that are dropped (the 3-D pools: torch's
    avg_pool3d refuses an input smaller than the kernel, padding or not)."""
    bounds = np.cumsum((0,) + tuple(chunks))
    size = int(bounds[-1])
    pieces = []
    for o0, o1 in _out_blocks(bounds, pad, stride, span, n_out):
        lo = o0 * stride - pad
        hi = (o1 - 1) * stride - pad + span
        start = 0 if lo <= 0 else (lo // stride) * stride
        stop = min(hi, size)
        if stop - start < min_size:
            stop = min(start + min_size, size)
            start = max(0, min(start, (stop - min_size) // stride * stride))
        skip = o0 - start // stride
        reads, take = _reads_of(np.arange(start, stop), bounds)
        pieces.append(_Piece((int(o0), int(o1)), reads, take, int(skip), int(start)))
    return pieces


# --------------------------------------------------------------------------------------------
# the tasks
# --------------------------------------------------------------------------------------------
def _gather(a, take, axis, fill):
    if take is None:
        return a
    out = np.take(a, np.where(take >= 0, take, 0), axis=axis)
    missing = take < 0
    if missing.any():
        index = [slice(None)] * out.ndim
        index[axis] = missing
        out[tuple(index)] = fill
    return out


def _region(parts, cut, plans, fill, dtype):
    """Assemble one task's input region from its inputs ``parts[i0][i1]...`` (one nesting
    level per spatial axis of ``plans``, the pieces of the task's block): whole input
    blocks, or (where ``cut[i0, i1, ...]``) the halo strips already cut from them."""
    nd = len(plans)

    def assemble(part, index):
        depth = len(index)
        if depth == nd:
            if cut[index]:
                return part
            return part[(Ellipsis,) + tuple(slice(plans[a].reads[i][1], plans[a].reads[i][2])
                                            for a, i in enumerate(index))]
        pieces = [assemble(p, index + (i,)) for i, p in enumerate(part)]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=depth - nd)

    a = assemble(parts, ())
    takes = [p.take for p in plans]
    if any(t is not None for t in takes):
        if any(t is not None and (t < 0).any() for t in takes):
            a = a.astype(dtype, copy=False)  # fill in the result dtype, as fastconv does
        for axis, t in enumerate(takes):
            a = _gather(a, t, a.ndim - nd + axis, fill)
    return a


def _checked(res, shape):
    if res.shape[-len(shape):] != shape:  # a planning error, never a user error
        raise RuntimeError(f"fastconv.dask: a block gave shape {res.shape[-len(shape):]}, "
                           f"expected {shape}")
    return res


def _strip(block, *slices):
    """A halo strip: a copy, so the input block it comes from can be released."""
    return block[(Ellipsis,) + slices].copy()


def _halo_task(parts, cut, *plans, fill, dtype, func, threads):
    """One output block of a conv/correlate: build the padded region, run fastconv on it."""
    region = _region(parts, cut, plans, fill, dtype)
    with _task_threads(threads):
        res = func(region)
    return _checked(res, tuple(p.size for p in plans))


def _pool_task(parts, cut, *plans, func, threads, shape, return_indices):
    """One output block of a pool: run fastconv on the region, keep the block's windows.
    ``shape`` holds the whole input's spatial sizes (for the flat indices)."""
    region = _region(parts, cut, plans, 0, None)
    with _task_threads(threads):
        res = func(region)
    sel = (Ellipsis,) + tuple(slice(p.skip, p.skip + p.size) for p in plans)
    sizes = tuple(p.size for p in plans)
    if not return_indices:
        return _checked(res[sel], sizes)
    vals, idx = res[0][sel], res[1][sel]
    # flat positions in the region -> in the whole input (plane or volume)
    local = region.shape[-len(plans):]
    flat = np.zeros_like(idx)
    for axis, p in enumerate(plans):
        step = int(np.prod(local[axis + 1:], dtype=np.int64))
        coord = (idx // step) % local[axis] + p.origin
        flat = flat * shape[axis] + coord
    return _checked(vals, sizes), flat


# --------------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------------
def _graph(x, lead, lead_chunks, plans, task, token, dtype, outputs=1):
    """The dask array(s) of one blockwise-with-halo operation.

    ``lead`` lists ``(input block index, output block index)`` of the leading axes;
    ``plans`` holds the pieces of each spatial axis (the trailing axes of ``x``); ``task``
    is called as ``task(parts, cut, *pieces)``, one piece per spatial axis; with
    ``outputs=2`` it returns a pair, given as two arrays (``dtype`` a pair too).

    A task reads an input block whole when it needs most of it, else a strip cut from it by
    a task of its own: neighbours then send (and hold on to) only their halo strips, and a
    block can be released as soon as its own output block and its strips are done.
    """
    name = f"fastconv-{token}"
    strips = f"fastconv-halo-{token}"
    nd = len(plans)
    sp_chunks = x.chunks[-nd:]
    dsk = {}

    def nested(pieces, cut, index, lin):
        """The task's inputs, one list level per spatial axis (the strips made on the way)."""
        axis = len(index)
        if axis < nd:
            return [nested(pieces, cut, index + (i,), lin)
                    for i in range(len(pieces[axis].reads))]
        reads = [p.reads[i] for p, i in zip(pieces, index)]
        cids = tuple(r[0] for r in reads)
        key = (x.name,) + lin + cids
        if 2 * math.prod(r[2] - r[1] for r in reads) <= \
                math.prod(c[r[0]] for c, r in zip(sp_chunks, reads)):
            skey = (strips,) + lin + cids + tuple(v for r in reads for v in r[1:])
            dsk[skey] = (_strip, key) + tuple(slice(r[1], r[2]) for r in reads)
            key, cut[index] = skey, True
        return key

    for lin, lout in lead:
        for block in itertools.product(*(enumerate(plan) for plan in plans)):
            pieces = tuple(p for _, p in block)
            cut = np.zeros(tuple(len(p.reads) for p in pieces), bool)
            parts = nested(pieces, cut, (), lin)
            dsk[(name,) + lout + tuple(i for i, _ in block)] = (task, parts, cut) + pieces
    chunks = tuple(lead_chunks) + tuple(tuple(p.size for p in plan) for plan in plans)
    ndim = len(chunks)
    if outputs == 1:
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
        return da.Array(graph, name, chunks, meta=np.empty((0,) * ndim, dtype))
    arrays = []
    for i in range(outputs):
        sub = f"{name}-{i}"
        layer = {(sub,) + k[1:]: (operator.getitem, k, i) for k in dsk}
        graph = HighLevelGraph.from_collections(sub, {**dsk, **layer}, dependencies=[x])
        arrays.append(da.Array(graph, sub, chunks, meta=np.empty((0,) * ndim, dtype[i])))
    return tuple(arrays)


def _spatial_probe(x_shape, limits, keep=()):
    """A small shape with the checks of ``x_shape``: leading sizes at most 1 (except the
    axes in ``keep``), the ``len(limits)`` spatial sizes clipped to ``limits`` (each above
    every size fastconv compares them with, so a probe raises exactly where the whole array
    would)."""
    nd = min(len(limits), len(x_shape))
    lead = [s if i in keep else min(s, 1) for i, s in enumerate(x_shape[:len(x_shape) - nd])]
    return tuple(lead) + tuple(min(s, t) for s, t in zip(x_shape[len(x_shape) - nd:], limits))


def _probe(func, x, shape):
    """Run ``func`` on zeros of ``shape``: fastconv validates the arguments and tells the
    result dtype; an invalid call raises here, before any graph is built."""
    return func(np.zeros(shape, x.dtype))


def _unbatch(x, nd_batched):
    """(x with a batch axis, whether one was added): 3-D NCHW inputs get a batch of 1."""
    if x.ndim == nd_batched - 1:
        return x[None], True
    return x, False


# --------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------
_CONV_MODES = {"zeros": "fill", "reflect": "reflect", "replicate": "replicate",
               "circular": "wrap"}


def _conv_pairs(padding, ksize, stride, dilation):
    """(before, after) padding per spatial axis, as fastconv.conv2d documents it (odd
    leftover of 'same' at the end); None if fastconv would reject it."""
    nd = len(ksize)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            totals = [d * (k - 1) for k, d in zip(ksize, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        return None
    p = _tuple(padding, nd)
    return None if p is None else tuple((v, v) for v in p)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend=None, chunks=None, threads=None):
    """2-D cross-correlation of a Dask array, as :func:`fastconv.conv2d`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, H, W) or (C, H, W). Chunks along N map block for block; the channel axis is
        rechunked to one chunk if it is split; the spatial axes get halos (module docstring).
    weight, bias, stride, padding, dilation, groups, padding_mode, backend
        As :func:`fastconv.conv2d`; ``weight`` and ``bias`` are loaded into memory and
        shared by every task. ``padding_mode`` is applied at the true image border.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default
        ``"auto"``), e.g. for an out-of-core run of a NumPy array.
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array
        Lazy; computes to ``fastconv.conv2d(x, weight, ...)``. Output chunks: N as ``x``'s,
        out_channels one chunk, spatial axes one block per input chunk (module docstring).

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.random.default_rng(0).random((2, 3, 40, 30), dtype=np.float32)
    >>> w = np.ones((4, 3, 3, 3), dtype=np.float32)
    >>> y = fastconv.dask.conv2d(x, w, stride=2, padding=1, padding_mode="reflect",
    ...                          chunks=(1, 3, 13, 16))
    >>> y.shape, y.chunks[2]
    ((2, 4, 20, 15), (6, 7, 6, 1))
    >>> np.allclose(y.compute(), fastconv.conv2d(x, w, stride=2, padding=1,
    ...                                          padding_mode="reflect"), rtol=1e-5)
    True
    """
    return _conv(fastconv.conv2d, 2, x, weight, bias, stride, padding, dilation, groups,
                 padding_mode, backend, chunks, threads)


def _conv(fn, nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, backend,
          chunks, threads):
    """conv2d (``nd=2``) or conv3d (``nd=3``, ``fn`` fastconv's function) of a Dask array."""
    x = _as_dask(x, chunks, "x")
    weight = _in_memory(weight)
    bias = _in_memory(bias)
    threads = _threads_arg(threads)
    backend = _backend_arg(backend)
    call = functools.partial(fn, weight=weight, bias=bias, stride=stride,
                             dilation=dilation, groups=groups, backend=backend)
    what = f"fastconv.dask.{fn.__name__}"

    # the plan, if the arguments make sense; fastconv's own checks decide on a probe
    plan = None
    w_ok = isinstance(weight, np.ndarray) and weight.ndim == nd + 2
    st, dl = _tuple(stride, nd), _tuple(dilation, nd)
    if w_ok and st is not None and dl is not None and isinstance(padding_mode, str):
        ksize = weight.shape[2:]
        pairs = _conv_pairs(padding, ksize, st, dl)
        if pairs is not None:
            spans = [d * (k - 1) + 1 for k, d in zip(ksize, dl)]
            plan = (pairs, spans, st)
    if plan is None:
        limits = weight.shape[2:] if w_ok else (1,) * nd
    else:
        limits = [sp + sum(pr) + s + 1 for sp, pr, s in zip(plan[1], plan[0], plan[2])]
    probe_shape = _spatial_probe(x.shape, limits, keep=(x.ndim - nd - 1,))
    probe = _probe(functools.partial(call, padding=padding, padding_mode=padding_mode), x,
                   probe_shape)
    if plan is None:  # pragma: no cover - fastconv accepted what we could not read
        raise ValueError(f"{what} cannot plan stride={stride!r}, "
                         f"padding={padding!r}, dilation={dilation!r}")
    pairs, spans, st = plan
    sizes = x.shape[-nd:]
    n_out = [(n + sum(pr) - sp) // s + 1 for n, pr, sp, s in zip(sizes, pairs, spans, st)]
    expected = [(n + sum(pr) - sp) // s + 1
                for n, pr, sp, s in zip(probe_shape[-nd:], pairs, spans, st)]
    if list(probe.shape[-nd:]) != expected:  # pragma: no cover - the size rule changed
        raise RuntimeError(f"{what}: size rule mismatch, {probe.shape}")

    x, unbatched = _unbatch(x, nd + 2)
    if x.numblocks[1] > 1:
        x = x.rechunk({1: -1})  # every output channel needs all the input channels
    mode = _CONV_MODES[padding_mode]
    plans = [_halo_plan(c, pr[0], s, sp, n, mode)
             for c, pr, s, sp, n in zip(x.chunks[2:], pairs, st, spans, n_out)]
    func = functools.partial(call, padding=0)
    task = functools.partial(_halo_task, fill=0, dtype=probe.dtype, func=func, threads=threads)
    token = tokenize(fn.__name__, x.name, weight, bias, stride, padding, dilation, groups,
                     padding_mode, backend, threads)
    lead = [((i, 0), (i, 0)) for i in range(x.numblocks[0])]
    y = _graph(x, lead, (x.chunks[0], (probe.shape[-nd - 1],)), plans, task, token,
               probe.dtype)
    return y[0] if unbatched else y


# --------------------------------------------------------------------------------------------
# pools
# --------------------------------------------------------------------------------------------
def _pool(x, func, kernel_size, stride, padding, dilation, ceil_mode, chunks, threads,
          token_args, nd=2):
    x = _as_dask(x, chunks, "x")
    threads = _threads_arg(threads)
    k = _tuple(kernel_size, nd)
    # stride None (or, as torch reads it, an empty tuple) is the kernel size
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _tuple(stride, nd)
    p, d = _tuple(padding, nd), _tuple(dilation, nd)
    plan = None if None in (k, s, p, d) else (k, s, p, d)
    if plan is None:
        limits = (1,) * nd if k is None else k
    else:
        limits = [dd * (kk - 1) + 1 + 2 * pp + ss + 1 for kk, ss, pp, dd in zip(*plan)]
    probe_shape = _spatial_probe(x.shape, limits)
    probe = _probe(func, x, probe_shape)
    if plan is None:  # pragma: no cover - fastconv accepted what we could not read
        raise ValueError(f"fastconv.dask cannot plan kernel_size={kernel_size!r}, "
                         f"stride={stride!r}, padding={padding!r}")
    return_indices = isinstance(probe, tuple)  # fastconv checked the argument
    if return_indices:
        probe_vals = probe[0]
        dtypes = (probe[0].dtype, probe[1].dtype)
    else:
        probe_vals = probe
        dtypes = probe.dtype

    def n_out(n, kk, ss, pp, dd):  # fastconv's documented size rule (PyTorch's)
        num = n + 2 * pp - dd * (kk - 1) - 1
        if not ceil_mode:
            return num // ss + 1
        o = -(-num // ss) + 1
        return o - 1 if (o - 1) * ss >= n + pp else o

    expected = [n_out(n, *a) for n, *a in zip(probe_shape[-nd:], *plan)]
    if list(probe_vals.shape[-nd:]) != expected:  # pragma: no cover - the size rule changed
        raise RuntimeError(f"fastconv.dask: size rule mismatch, {probe_vals.shape}")

    x, unbatched = _unbatch(x, nd + 2)
    sizes = x.shape[-nd:]
    plans = [_pool_plan(c, pp, ss, dd * (kk - 1) + 1, n_out(n, kk, ss, pp, dd),
                        dd * (kk - 1) + 1 if nd == 3 else 0)
             for c, n, kk, ss, pp, dd in zip(x.chunks[2:], sizes, *plan)]
    task = functools.partial(_pool_task, func=func, threads=threads, shape=sizes,
                             return_indices=return_indices)
    token = tokenize(x.name, threads, *token_args)
    lead = [((i, c), (i, c)) for i in range(x.numblocks[0]) for c in range(x.numblocks[1])]
    y = _graph(x, lead, x.chunks[:2], plans, task, token, dtypes,
               outputs=2 if return_indices else 1)
    if unbatched:
        return tuple(a[0] for a in y) if return_indices else y[0]
    return y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None, chunks=None, threads=None):
    """2-D max pooling of a Dask array, as :func:`fastconv.max_pool2d`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, H, W) or (C, H, W). Batch and channel chunks map block for block; the spatial
        axes get halos (module docstring). The -inf padding is at the true image border.
    kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend
        As :func:`fastconv.max_pool2d`.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array, or a pair of them
        Lazy maxima, and with ``return_indices`` their flat positions ``h * W + w`` in the
        whole input plane (int64).

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    >>> fastconv.dask.max_pool2d(x, 3, stride=2, padding=1, chunks=(1, 3, 5)).compute()[0]
    array([[ 9., 11., 13., 15.],
           [25., 27., 29., 31.],
           [41., 43., 45., 47.],
           [57., 59., 61., 63.]], dtype=float32)
    """
    backend = _backend_arg(backend)
    func = functools.partial(fastconv.max_pool2d, kernel_size=kernel_size, stride=stride,
                             padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                             return_indices=return_indices, backend=backend)
    return _pool(x, func, kernel_size, stride, padding, dilation, ceil_mode, chunks, threads,
                 ("max_pool2d", kernel_size, stride, padding, dilation, ceil_mode,
                  return_indices, backend))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None, chunks=None,
               threads=None):
    """2-D average pooling of a Dask array, as :func:`fastconv.avg_pool2d`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, H, W) or (C, H, W). Batch and channel chunks map block for block; the spatial
        axes get halos (module docstring). The zero padding, and what ``count_include_pad``
        counts, are at the true image border.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, backend
        As :func:`fastconv.avg_pool2d`.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.ones((1, 4, 4), dtype=np.float32)
    >>> fastconv.dask.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False,
    ...                          chunks=(1, 3, 3)).compute()[0]
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    """
    backend = _backend_arg(backend)
    func = functools.partial(fastconv.avg_pool2d, kernel_size=kernel_size, stride=stride,
                             padding=padding, ceil_mode=ceil_mode,
                             count_include_pad=count_include_pad,
                             divisor_override=divisor_override, backend=backend)
    return _pool(x, func, kernel_size, stride, padding, 1, ceil_mode, chunks, threads,
                 ("avg_pool2d", kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override, backend))


# --------------------------------------------------------------------------------------------
# SciPy style
# --------------------------------------------------------------------------------------------
_BOUNDARY = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
             "symm": "symm", "symmetric": "symm"}


def _correlate2d(in1, in2, mode, boundary, fillvalue, backend, chunks, threads, flip):
    fn = fastconv.convolve2d if flip else fastconv.correlate2d
    in1 = _as_dask(in1, chunks, "in1")
    in2 = _in_memory(in2)
    threads = _threads_arg(threads)
    backend = _backend_arg(backend)
    call = functools.partial(fn, boundary=boundary, fillvalue=fillvalue, backend=backend)
    ok = isinstance(in2, np.ndarray) and in2.ndim == 2
    limits = [k + 1 for k in in2.shape] if ok else (1, 1)
    probe = _probe(functools.partial(call, in2=in2, mode=mode), in1,
                   _spatial_probe(in1.shape, limits))
    H, W = in1.shape
    kh, kw = in2.shape
    if mode == "valid" and not (H >= kh and W >= kw):
        # scipy swaps the inputs: in1 is no larger than the in-memory in2, so compute it whole
        token = tokenize("correlate2d-swap", in1.name, in2, boundary, fillvalue, backend, flip,
                         threads)
        one = in1.rechunk(-1)
        task = functools.partial(_whole, func=functools.partial(call, in2=in2, mode=mode),
                                 threads=threads)
        return one.map_blocks(task, chunks=tuple((n,) for n in probe.shape),
                              dtype=probe.dtype, name=f"fastconv-{token}",
                              meta=np.empty((0, 0), probe.dtype))
    if mode == "full":
        pairs = [(k - 1, k - 1) for k in (kh, kw)]
    elif mode == "same":  # as scipy (and fastconv): the extra pad goes after for correlate
        pairs = [(k // 2, (k - 1) // 2) if flip else ((k - 1) // 2, k // 2) for k in (kh, kw)]
    else:
        pairs = [(0, 0), (0, 0)]
    n_out = [n + sum(pr) - k + 1 for n, pr, k in zip((H, W), pairs, (kh, kw))]
    bmode = _BOUNDARY[boundary]
    plan_h = _halo_plan(in1.chunks[0], pairs[0][0], 1, kh, n_out[0], bmode)
    plan_w = _halo_plan(in1.chunks[1], pairs[1][0], 1, kw, n_out[1], bmode)
    dtype = probe.dtype
    fill = np.asarray(fillvalue).astype(dtype)
    func = functools.partial(fn, in2=in2, mode="valid", backend=backend)
    task = functools.partial(_halo_task, fill=fill, dtype=dtype, func=func, threads=threads)
    token = tokenize("correlate2d", in1.name, in2, mode, boundary, fillvalue, backend, flip,
                     threads)
    return _graph(in1, [((), ())], (), [plan_h, plan_w], task, token, dtype)


def _whole(block, *, func, threads):
    with _task_threads(threads):
        return func(block)


_2D_DOC = """
    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The large 2-D input; its chunks get halos (module docstring), and ``boundary`` is
        applied at its true border.
    in2 : array_like
        The small 2-D kernel, loaded into memory and shared by every task.
    mode, boundary, fillvalue, backend
        As :func:`fastconv.{name}`. In 'valid' mode with ``in2`` the larger (scipy swaps
        the inputs), ``in1`` is computed as one chunk.
    chunks : optional
        Chunks for ``in1``: rechunk a Dask array, or split an in-memory one (default
        "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array
"""


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None,
                chunks=None, threads=None):
    """2-D cross-correlation of a Dask array, as :func:`fastconv.correlate2d`.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> a = np.arange(30.).reshape(5, 6)
    >>> k = np.array([[1., 2.], [3., 4.]])
    >>> r = fastconv.dask.correlate2d(a, k, boundary="symm", chunks=(2, 4))
    >>> np.allclose(r.compute(), fastconv.correlate2d(a, k, boundary="symm"))
    True
    """
    return _correlate2d(in1, in2, mode, boundary, fillvalue, backend, chunks, threads, False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None,
               chunks=None, threads=None):
    """2-D convolution of a Dask array, as :func:`fastconv.convolve2d`.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> a = np.arange(30.).reshape(5, 6)
    >>> r = fastconv.dask.convolve2d(a, [[1., 2., 3.]], mode="same", boundary="wrap",
    ...                              chunks=(5, 2))
    >>> np.allclose(r.compute(), fastconv.convolve2d(a, [[1., 2., 3.]], mode="same",
    ...                                              boundary="wrap"))
    True
    """
    return _correlate2d(in1, in2, mode, boundary, fillvalue, backend, chunks, threads, True)


correlate2d.__doc__ = correlate2d.__doc__.format(doc=_2D_DOC.format(name="correlate2d"))
convolve2d.__doc__ = convolve2d.__doc__.format(doc=_2D_DOC.format(name="convolve2d"))


# --------------------------------------------------------------------------------------------
# 3-D and transposed (issue 17)
# --------------------------------------------------------------------------------------------
def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend=None, chunks=None, threads=None):
    """3-D cross-correlation of a Dask array, as :func:`fastconv.conv3d`.

    :func:`conv2d`'s plan on three spatial axes: each output block is one fastconv.conv3d
    call on its input chunk and the halo its windows reach (from as many chunks before it
    as they span), padded by ``padding_mode`` at the true volume border.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, D, H, W) or (C, D, H, W). Chunks along N map block for block; the channel
        axis is rechunked to one chunk if it is split; the spatial axes get halos (module
        docstring).
    weight, bias, stride, padding, dilation, groups, padding_mode, backend
        As :func:`fastconv.conv3d`; ``weight`` and ``bias`` are loaded into memory and
        shared by every task. ``padding_mode`` is applied at the true volume border.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default
        ``"auto"``).
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array
        Lazy; computes to ``fastconv.conv3d(x, weight, ...)``. Output chunks: N as ``x``'s,
        out_channels one chunk, spatial axes one block per input chunk (module docstring).

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.random.default_rng(0).random((2, 3, 10, 12, 9), dtype=np.float32)
    >>> w = np.ones((4, 3, 3, 3, 3), dtype=np.float32)
    >>> y = fastconv.dask.conv3d(x, w, stride=2, padding=1, padding_mode="replicate",
    ...                          chunks=(1, 3, 4, 5, 9))
    >>> y.shape, y.chunks[2:]
    ((2, 4, 5, 6, 5), ((2, 2, 1), (2, 3, 1), (5,)))
    >>> np.allclose(y.compute(), fastconv.conv3d(x, w, stride=2, padding=1,
    ...                                          padding_mode="replicate"), rtol=1e-5)
    True
    """
    return _conv(fastconv.conv3d, 3, x, weight, bias, stride, padding, dilation, groups,
                 padding_mode, backend, chunks, threads)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None, chunks=None, threads=None):
    """3-D max pooling of a Dask array, as :func:`fastconv.max_pool3d`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, D, H, W) or (C, D, H, W). Batch and channel chunks map block for block; the
        spatial axes get halos (module docstring). The -inf padding is at the true border.
    kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend
        As :func:`fastconv.max_pool3d`.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array, or a pair of them
        Lazy maxima, and with ``return_indices`` their flat positions ``(d * H + h) * W + w``
        in the whole input volume (int64), as torch's.

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.arange(4 * 4 * 4, dtype=np.float32).reshape(1, 4, 4, 4)
    >>> v, i = fastconv.dask.max_pool3d(x, 2, return_indices=True, chunks=(1, 3, 3, 4))
    >>> v.compute()[0, 1]
    array([[53., 55.],
           [61., 63.]], dtype=float32)
    >>> bool((i.compute() == v.compute()).all())  # x holds its own flat positions
    True
    """
    backend = _backend_arg(backend)
    func = functools.partial(fastconv.max_pool3d, kernel_size=kernel_size, stride=stride,
                             padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                             return_indices=return_indices, backend=backend)
    return _pool(x, func, kernel_size, stride, padding, dilation, ceil_mode, chunks, threads,
                 ("max_pool3d", kernel_size, stride, padding, dilation, ceil_mode,
                  return_indices, backend), nd=3)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None, chunks=None,
               threads=None):
    """3-D average pooling of a Dask array, as :func:`fastconv.avg_pool3d`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C, D, H, W) or (C, D, H, W). Batch and channel chunks map block for block; the
        spatial axes get halos (module docstring). The zero padding, and what
        ``count_include_pad`` counts, are at the true border.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, backend
        As :func:`fastconv.avg_pool3d`.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.arange(4 * 4 * 4, dtype=np.float32).reshape(1, 4, 4, 4)
    >>> y = fastconv.dask.avg_pool3d(x, 2, chunks=(1, 3, 3, 4))
    >>> y.compute()[0, 0]
    array([[10.5, 12.5],
           [18.5, 20.5]], dtype=float32)
    >>> z = fastconv.dask.avg_pool3d(x, 3, 2, padding=1, count_include_pad=False,
    ...                              chunks=(1, 1, 2, 3))
    >>> bool((z.compute() == fastconv.avg_pool3d(x, 3, 2, padding=1,
    ...                                          count_include_pad=False)).all())
    True
    """
    backend = _backend_arg(backend)
    func = functools.partial(fastconv.avg_pool3d, kernel_size=kernel_size, stride=stride,
                             padding=padding, ceil_mode=ceil_mode,
                             count_include_pad=count_include_pad,
                             divisor_override=divisor_override, backend=backend)
    return _pool(x, func, kernel_size, stride, padding, 1, ceil_mode, chunks, threads,
                 ("avg_pool3d", kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override, backend), nd=3)


def _transpose_plan(chunks, pad, stride, span, n_out):
    """Pieces of an axis of a transposed convolution, as a gather.

    Output position ``o`` sums the inputs ``i`` with ``i * stride - pad <= o <= i * stride -
    pad + span - 1``. Output block ``j`` starts where input chunk ``j``'s first input
    lands (``b * stride - pad``, clipped to the output), so it reads that chunk and the
    inputs before it whose windows still reach it: its halo lies in the chunks before it,
    as for the forward ops. The task computes the transposed convolution of its region
    unpadded and keeps the block's part of it (``skip``: the block's first position in the
    region's output, negative where the block starts before the region's first window);
    positions no input reaches are zero (plus bias). A block no input reaches reads one
    element and fills it with zero.
    """
    bounds = np.cumsum((0,) + tuple(chunks))
    size = int(bounds[-1])
    cuts = [0]
    for b in bounds[1:-1]:
        cuts.append(min(n_out, max(cuts[-1], int(b) * stride - pad)))
    cuts.append(n_out)
    pieces = []
    for o0, o1 in zip(cuts, cuts[1:]):
        if o1 <= o0:
            continue
        i0 = max(0, -(-(o0 + pad - span + 1) // stride))
        i1 = min(size, (o1 - 1 + pad) // stride + 1)
        if i1 > i0:
            reads, take = _reads_of(np.arange(i0, i1), bounds)
        else:  # a stride wider than the kernel leaves gaps; a block may fall in one
            i0 = min(i0, size - 1)
            reads, take = _reads_of(np.full(1, -1), bounds, i0)
        pieces.append(_Piece((int(o0), int(o1)), reads, take, int(o0 + pad - i0 * stride),
                             int(i0)))
    return pieces


def _transpose_task(parts, cut, *plans, dtype, func, bias, threads):
    """One output block of a transposed convolution: run fastconv on the region (no
    padding, no bias), keep the block's positions, add the bias."""
    region = _region(parts, cut, plans, 0, dtype)
    with _task_threads(threads):
        res = func(region)
    nd = len(plans)
    sizes = tuple(p.size for p in plans)
    src, dst = [], []
    for p, n in zip(plans, res.shape[-nd:]):
        lo, hi = max(p.skip, 0), min(p.skip + p.size, n)
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo - p.skip, max(lo, hi) - p.skip))
    if res.shape[-nd:] == sizes and all(p.skip == 0 for p in plans):
        out = res
    else:
        out = np.zeros(res.shape[:-nd] + sizes, res.dtype)
        out[(Ellipsis,) + tuple(dst)] = res[(Ellipsis,) + tuple(src)]
    if bias is not None:
        out += bias.astype(out.dtype, copy=False).reshape((-1,) + (1,) * nd)
    return _checked(out, sizes)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, chunks=None, threads=None):
    """2-D transposed convolution of a Dask array, as :func:`fastconv.conv_transpose2d`.

    Computed as a gather, not a scatter-add: output block ``j`` starts where input chunk
    ``j``'s first pixel lands (``b * stride - padding``) and reads that chunk and the strips
    of the chunks before it whose windows still reach the block; the task runs
    fastconv.conv_transpose2d on that region without padding or bias and keeps its part of
    the result. So every output value is one sum, computed once, and no block waits on its
    neighbours' outputs; ``padding`` and ``output_padding`` act at the true border only.

    Parameters
    ----------
    x : dask.array.Array or array_like
        (N, C_in, H, W) or (C_in, H, W). Chunks along N map block for block; the channel
        axis is rechunked to one chunk if it is split; the spatial axes get halos.
    weight, bias, stride, padding, output_padding, groups, dilation, backend
        As :func:`fastconv.conv_transpose2d`; ``weight`` (C_in, C_out // groups, kH, kW) and
        ``bias`` are loaded into memory and shared by every task.
    chunks : optional
        Chunks for ``x``: rechunk a Dask array, or split an in-memory one (default "auto").
    threads : int, optional
        fastconv threads per task; default 1 (one per Dask thread).

    Returns
    -------
    dask.array.Array
        Lazy; computes to ``fastconv.conv_transpose2d(x, weight, ...)``, up to the rounding
        of the bias added after the sum. Output chunks: N as ``x``'s, out_channels one chunk,
        spatial axes one block per input chunk (about ``stride`` times its size).

    Examples
    --------
    >>> import numpy as np, fastconv, fastconv.dask
    >>> x = np.random.default_rng(0).random((2, 3, 14, 11), dtype=np.float32)
    >>> w = np.ones((3, 4, 4, 4), dtype=np.float32)
    >>> y = fastconv.dask.conv_transpose2d(x, w, stride=2, padding=1, chunks=(1, 3, 5, 11))
    >>> y.shape, y.chunks[2:]
    ((2, 4, 28, 22), ((9, 10, 9), (22,)))
    >>> np.allclose(y.compute(), fastconv.conv_transpose2d(x, w, stride=2, padding=1),
    ...             rtol=1e-5)
    True
    """
    nd = 2
    x = _as_dask(x, chunks, "x")
    weight = _in_memory(weight)
    bias = _in_memory(bias)
    threads = _threads_arg(threads)
    backend = _backend_arg(backend)
    fn = fastconv.conv_transpose2d
    call = functools.partial(fn, weight=weight, groups=groups, dilation=dilation,
                             stride=stride, backend=backend)

    plan = None
    w_ok = isinstance(weight, np.ndarray) and weight.ndim == nd + 2
    st, dl = _tuple(stride, nd), _tuple(dilation, nd)
    pd, op = _tuple(padding, nd), _tuple(output_padding, nd)
    if w_ok and None not in (st, dl, pd, op) and min(st) >= 1:
        spans = [d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dl)]
        plan = (st, pd, op, spans)
    if plan is None:  # fastconv raises on the probe, or we cannot plan: probe it whole
        limits = x.shape[-nd:]
    else:  # a smaller input gives an output no larger: above 2 * padding, all sizes pass
        limits = [-(-2 * max(p, 0) // s) + 2 for s, p in zip(st, pd)]
    probe_shape = _spatial_probe(x.shape, limits, keep=(x.ndim - nd - 1,))
    probe = _probe(functools.partial(call, bias=bias, padding=padding,
                                     output_padding=output_padding), x, probe_shape)
    if plan is None:  # pragma: no cover - fastconv accepted what we could not read
        raise ValueError(f"fastconv.dask.conv_transpose2d cannot plan stride={stride!r}, "
                         f"padding={padding!r}, output_padding={output_padding!r}, "
                         f"dilation={dilation!r}")
    st, pd, op, spans = plan

    def n_out(n, s, p, o, sp):
        return (n - 1) * s - 2 * p + sp + o

    expected = [n_out(n, *a) for n, *a in zip(probe_shape[-nd:], st, pd, op, spans)]
    if list(probe.shape[-nd:]) != expected:  # pragma: no cover - the size rule changed
        raise RuntimeError(f"fastconv.dask.conv_transpose2d: size rule mismatch, "
                           f"{probe.shape}")
    x, unbatched = _unbatch(x, nd + 2)
    if x.numblocks[1] > 1:
        x = x.rechunk({1: -1})  # every output channel needs all the input channels
    sizes = [n_out(n, s, p, o, sp) for n, s, p, o, sp in zip(x.shape[2:], st, pd, op, spans)]
    if 0 in sizes:  # torch allows an empty output axis (padding eats it): nothing to compute
        y = da.zeros((x.shape[0], probe.shape[-nd - 1], *sizes), dtype=probe.dtype,
                     chunks=(x.chunks[0], -1) + (-1,) * nd)
        return y[0] if unbatched else y
    plans = [_transpose_plan(c, p, s, sp, n_out(n, s, p, o, sp))
             for c, n, s, p, o, sp in zip(x.chunks[2:], x.shape[2:], st, pd, op, spans)]
    func = functools.partial(call, bias=None, padding=0, output_padding=0)
    task = functools.partial(_transpose_task, dtype=probe.dtype, func=func, bias=bias,
                             threads=threads)
    token = tokenize("conv_transpose2d", x.name, weight, bias, stride, padding,
                     output_padding, groups, dilation, backend, threads)
    lead = [((i, 0), (i, 0)) for i in range(x.numblocks[0])]
    y = _graph(x, lead, (x.chunks[0], (probe.shape[-nd - 1],)), plans, task, token,
               probe.dtype)
    return y[0] if unbatched else y


# --------------------------------------------------------------------------------------------
# scipy.ndimage's filters
# --------------------------------------------------------------------------------------------
# ndimage's modes -> the padding rule of _source_index; 'constant' is not built explicitly
# (see _nd_plan)
_ND_PAD = {"reflect": "symm", "grid-mirror": "symm", "mirror": "reflect",
           "nearest": "replicate", "wrap": "wrap", "grid-wrap": "wrap",
           "constant": "constant", "grid-constant": "constant"}


def _nd_plan(chunks, before, after, mode):
    """Pieces of one axis of an ndimage filter (stride 1, output the input's size): block
    ``j`` holds the outputs whose windows (``before`` positions before them, ``after``
    after) end in chunk ``j``. ``skip`` is where the block starts in the filtered region.

    * Modes other than 'constant': the region is every position the block's windows cover,
      the border extended by ``mode`` from the chunks at the other side where needed, so
      the region's own border never reaches the block (``skip == before``).
    * 'constant': the region is clipped to the array; the filter pads it with ``cval``
      itself, at the true border. Its edges inside the array lie a whole halo away from the
      block. (Filling the region here would round ``cval`` to the input's dtype first.)
    """
    bounds = np.cumsum((0,) + tuple(chunks))
    size = int(bounds[-1])
    pieces = []
    for o0, o1 in _out_blocks(bounds, before, 1, before + after + 1, size):
        lo, hi = o0 - before, o1 + after
        if _ND_PAD[mode] == "constant" or before + after == 0:
            lo, hi = max(lo, 0), min(hi, size)
            src = np.arange(lo, hi)
        else:
            src = _source_index(np.arange(lo, hi), size, _ND_PAD[mode])
        reads, take = _reads_of(src, bounds)
        pieces.append(_Piece((int(o0), int(o1)), reads, take, int(o0 - lo), int(lo)))
    return pieces


def _per_axis(value, n):
    """A str or scalar argument repeated for ``n`` axes, or a sequence of ``n`` (fastconv
    has checked its length)."""
    if isinstance(value, str) or not np.iterable(value):
        return (value,) * n
    return tuple(value)


def _nd_axes(axes, ndim, axis):
    """The filtered axes (fastconv has checked them): ``axis`` for the 1-D forms, else
    ``axes`` (None: all)."""
    if axes is _ONE_D:
        axes = axis
    if axes is None:
        return tuple(range(ndim))
    return tuple(operator.index(a) % ndim for a in _per_axis(axes, 1 if np.isscalar(axes) else
                                                             len(axes)))


_ONE_D = object()  # the ``axes`` of a 1-D form: its ``axis`` is the one filtered axis


def _ndimage(name, input, halos, mode, kwargs, axes=_ONE_D, axis=-1, *, chunks, threads,
             backend, by_sorted_axes=False):
    """The dask array of ``fastconv.ndimage.<name>(input, **kwargs)``.

    ``halos(n)`` gives, for the ``n`` filtered axes, each one's halo: the positions a window
    may reach on either side of its output.
    """
    fn = getattr(fastconv.ndimage, name)
    x = _as_dask(input, chunks, "input")
    threads = _threads_arg(threads)
    backend = _backend_arg(backend)
    output = kwargs.get("output")
    if output is not None and not isinstance(output, (type, np.dtype, str)):
        raise TypeError(f"output must be None or a dtype for a Dask input (the result is a "
                        f"new dask array), got a {type(output).__name__}")
    if axes is not _ONE_D:
        kwargs = dict(kwargs, axes=axes)
    else:
        kwargs = dict(kwargs, axis=axis)
    call = functools.partial(fn, mode=mode, backend=backend, **kwargs)
    # fastconv validates every argument on a small array (raising here, before any graph)
    # and tells the result's dtype
    probe = call(np.zeros(tuple(min(s, 4) for s in x.shape), x.dtype))
    filtered = _nd_axes(axes, x.ndim, axis)
    widths = halos(len(filtered))
    modes = _per_axis(mode, len(filtered))
    halo = dict.fromkeys(range(x.ndim), (0, "constant"))
    # an array's axes (weights, footprint; median's box is one too) pair with the filtered
    # axes in increasing order, as scipy expands them; a size sequence, the mode sequence of
    # the separable filters and the origins pair with ``axes`` as given
    for a, h in zip(sorted(filtered) if by_sorted_axes else filtered, widths):
        halo[a] = (int(h), None)
    for a, m in zip(filtered, modes):
        halo[a] = (halo[a][0], m)
    if x.size == 0:
        return x.map_blocks(call, dtype=probe.dtype, meta=np.empty((0,) * x.ndim, probe.dtype))
    plans = [_nd_plan(c, halo[a][0], halo[a][0], halo[a][1]) for a, c in enumerate(x.chunks)]
    task = functools.partial(_pool_task, func=call, threads=threads, shape=None,
                             return_indices=False)
    token = tokenize(f"ndimage-{name}", x.name, mode, backend, threads,
                     sorted(kwargs.items(), key=operator.itemgetter(0)))
    return _graph(x, [((), ())], (), plans, task, token, probe.dtype)


def _window_halos(size, footprint=None):
    """The halos of a filter of ``size`` (or the footprint's or weights' shape): ``k - 1``
    on both sides, enough for every origin the filter accepts."""
    def halos(n):
        sizes = np.shape(footprint) if footprint is not None else \
            _per_axis(size, n)
        return tuple(int(k) - 1 for k in sizes)
    return halos


def _gaussian_halos(sigma, truncate, radius):
    """The kernel radius of each axis, as scipy computes it."""
    def halos(n):
        if radius is not None:
            return tuple(int(r) for r in _per_axis(radius, n))
        return tuple(int(float(truncate) * float(s) + 0.5)
                     for s in _per_axis(sigma, n))
    return halos


_ND_DOC = """
    As :func:`fastconv.ndimage.{name}` (and :func:`scipy.ndimage.{name}`): each block is
    filtered with the halo its windows need, the mode applied at the array's true border,
    so the result is the in-memory function's on every chunking.

    Besides that function's arguments: ``chunks`` rechunks a Dask input (or splits an
    in-memory one; default "auto"), and ``threads`` sets fastconv's threads per task
    (default 1, one per Dask thread). ``output`` may be a dtype, not an array: the result
    is a new lazy ``dask.array.Array``.
"""


def _weighted(name):
    """The Dask forms of ``fastconv.ndimage.<name>`` and ``<name>1d`` (correlate, convolve)."""
    def filt(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None,
             backend=None, chunks=None, threads=None):
        weights = _in_memory(weights)
        return _ndimage(name, input, _window_halos(None, weights), mode,
                        dict(weights=weights, output=output, cval=cval, origin=origin), axes,
                        chunks=chunks, threads=threads, backend=backend, by_sorted_axes=True)

    def filt1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
               backend=None, chunks=None, threads=None):
        weights = _in_memory(weights)
        return _ndimage(f"{name}1d", input, _window_halos(np.size(weights)), mode,
                        dict(weights=weights, output=output, cval=cval, origin=origin),
                        axis=axis, chunks=chunks, threads=threads, backend=backend)

    filt.__name__ = filt.__qualname__ = name
    filt1d.__name__ = filt1d.__qualname__ = f"{name}1d"
    return filt, filt1d


correlate, correlate1d = _weighted("correlate")
convolve, convolve1d = _weighted("convolve")


def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *,
                   axes=None, backend=None, chunks=None, threads=None):
    return _ndimage("uniform_filter", input, _window_halos(size), mode,
                    dict(size=size, output=output, cval=cval, origin=origin), axes,
                    chunks=chunks, threads=threads, backend=backend)


def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
                     backend=None, chunks=None, threads=None):
    return _ndimage("uniform_filter1d", input, _window_halos(size), mode,
                    dict(size=size, output=output, cval=cval, origin=origin), axis=axis,
                    chunks=chunks, threads=threads, backend=backend)


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, radius=None, axes=None, backend=None, chunks=None,
                    threads=None):
    return _ndimage("gaussian_filter", input, _gaussian_halos(sigma, truncate, radius), mode,
                    dict(sigma=sigma, order=order, output=output, cval=cval,
                         truncate=truncate, radius=radius), axes,
                    chunks=chunks, threads=threads, backend=backend)


def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0,
                      truncate=4.0, *, radius=None, backend=None, chunks=None, threads=None):
    return _ndimage("gaussian_filter1d", input, _gaussian_halos(sigma, truncate, radius),
                    mode, dict(sigma=sigma, order=order, output=output, cval=cval,
                               truncate=truncate, radius=radius), axis=axis,
                    chunks=chunks, threads=threads, backend=backend)


def _rank(name):
    def filt(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
             origin=0, *, axes=None, backend=None, chunks=None, threads=None):
        footprint = _in_memory(footprint)
        return _ndimage(name, input, _window_halos(size, footprint), mode,
                        dict(size=size, footprint=footprint, output=output, cval=cval,
                             origin=origin), axes,
                        chunks=chunks, threads=threads, backend=backend,
                        # a footprint with holes (an all-True one is a box: separable, its
                        # sizes paired with ``axes`` as given), or a median's box
                        by_sorted_axes=(footprint is not None and not np.all(footprint))
                        or name == "median_filter")

    def filt1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
               backend=None, chunks=None, threads=None):
        return _ndimage(f"{name}1d", input, _window_halos(size), mode,
                        dict(size=size, output=output, cval=cval, origin=origin), axis=axis,
                        chunks=chunks, threads=threads, backend=backend)

    filt.__name__ = filt.__qualname__ = name
    filt1d.__name__ = filt1d.__qualname__ = f"{name}1d"
    return filt, filt1d


def rank_filter(input, rank, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                origin=0, *, axes=None, backend=None, chunks=None, threads=None):
    footprint = _in_memory(footprint)
    return _ndimage("rank_filter", input, _window_halos(size, footprint), mode,
                    dict(rank=rank, size=size, footprint=footprint, output=output, cval=cval,
                         origin=origin), axes,
                    chunks=chunks, threads=threads, backend=backend, by_sorted_axes=True)


def percentile_filter(input, percentile, size=None, footprint=None, output=None,
                      mode="reflect", cval=0.0, origin=0, *, axes=None, backend=None,
                      chunks=None, threads=None):
    footprint = _in_memory(footprint)
    return _ndimage("percentile_filter", input, _window_halos(size, footprint), mode,
                    dict(percentile=percentile, size=size, footprint=footprint,
                         output=output, cval=cval, origin=origin), axes,
                    chunks=chunks, threads=threads, backend=backend, by_sorted_axes=True)


maximum_filter, maximum_filter1d = _rank("maximum_filter")
minimum_filter, minimum_filter1d = _rank("minimum_filter")
median_filter, _ = _rank("median_filter")
del _

# each function's summary, and its example's arguments besides the array
_ND_EXAMPLE = {
    "correlate": ("Multidimensional correlation", "np.ones((3, 3))"),
    "convolve": ("Multidimensional convolution", "np.ones((3, 3))"),
    "correlate1d": ("1-D correlation along ``axis``", "[1.0, 2.0, 1.0]"),
    "convolve1d": ("1-D convolution along ``axis``", "[1.0, 2.0, 1.0]"),
    "uniform_filter": ("Multidimensional uniform (box mean) filter", "size=5"),
    "uniform_filter1d": ("1-D uniform (box mean) filter along ``axis``", "size=5"),
    "gaussian_filter": ("Multidimensional Gaussian filter (or its derivatives)", "2.0"),
    "gaussian_filter1d": ("1-D Gaussian filter (or a derivative) along ``axis``", "2.0"),
    "maximum_filter": ("Multidimensional maximum filter", "size=3"),
    "minimum_filter": ("Multidimensional minimum filter", "size=3"),
    "maximum_filter1d": ("1-D maximum filter along ``axis``", "size=5"),
    "minimum_filter1d": ("1-D minimum filter along ``axis``", "size=5"),
    "median_filter": ("Multidimensional median filter", "size=3"),
    "rank_filter": ("Multidimensional rank filter", "1, size=3"),
    "percentile_filter": ("Multidimensional percentile filter", "25, size=3"),
}
_ND_EXAMPLE_DOC = """
    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv.ndimage, fastconv.dask
    >>> a = np.random.default_rng(0).random((40, 30))
    >>> lazy = fastconv.dask.{name}(da.from_array(a, chunks=16), {args}, mode="wrap")
    >>> lazy.numblocks
    (3, 2)
    >>> np.allclose(lazy.compute(), fastconv.ndimage.{name}(a, {args}, mode="wrap"))
    True
"""
for _name, (_summary, _args) in _ND_EXAMPLE.items():
    _f = globals()[_name]
    _f.__module__ = __name__
    _f.__doc__ = (f"{_summary} of a Dask array.\n" + _ND_DOC.format(name=_name)
                  + _ND_EXAMPLE_DOC.format(name=_name, args=_args))
del _name, _summary, _args, _f
