"""scipy.ndimage's rank filters, multithreaded: :func:`maximum_filter`,
:func:`minimum_filter`, :func:`maximum_filter1d`, :func:`minimum_filter1d` and
:func:`median_filter`, :func:`rank_filter` and :func:`percentile_filter` (issue 18;
re-exported by :mod:`fastconv.ndimage`).

Signatures, defaults, modes, ``origin``, ``axes``, ``output=`` and results follow
scipy.ndimage. The result keeps the input's dtype (as scipy's); the values are order
statistics of the input, so they are computed in the input's own type (exact for every
integer type, where scipy's double arithmetic rounds int64 beyond 2**53), except that an
integer input with ``mode='constant'`` and a ``cval`` that is not a value of its type is
filtered in float64 and cast back, as scipy does.

Kernels. ``backend="cython"`` (the ``"auto"`` choice): a box (``size``, or an all-True
footprint) for max/min runs one 1-D pass per filtered axis with the border mode applied by
an index map (no padded copy): windows up to 8 wide as ``k - 1`` vector max/min ops per
output line, wider ones by van Herk / Gil-Werman (3 ops per output whatever the width). Any
other footprint, and the median, run on a padded copy: max/min fold the footprint's taps
into each output line with vector ops; the median is a vectorized selection network for 9
or 25 taps (3x3, 5x5 or any footprint of that count), else Wirth's selection per output.
``backend="numba"``: the footprint kernel for every case. ``backend="numpy"``: the reference
(:func:`fastconv.reference.rank_filter_nd`).

Unsorted ``axes``: as scipy, a separable max/min (``size`` or an all-True footprint) pairs
sizes, origins and modes with ``axes`` in the order given; another footprint, or a median, lays the footprint's
(or ``size``'s) axes on the filtered axes in increasing order, modes pairing with ``axes``
as given, origins too when fewer than all axes are filtered, else positionally. A 1-D median with a
footprint with holes honours the holes (scipy's 1-D rank path ignores them).

Ctrl-C: a long call runs in slabs of rows, a kernel call each (``_run_slabs``), so a SIGINT
raises KeyboardInterrupt between two; the result is the whole call's to the bit.

NaN: the kernels compare with ``>``/``<`` and do not define which of a window's values wins
when one is NaN; scipy's own NaN results also depend on its algorithm. Use NaN-free input
where it matters.
"""

from __future__ import annotations

import operator
import warnings

import numpy as np

from . import _ndspec
from ._threads import kernel_threads

__all__ = [
    "maximum_filter",
    "minimum_filter",
    "maximum_filter1d",
    "minimum_filter1d",
    "median_filter",
    "rank_filter",
    "percentile_filter",
]

_TYPE_CODES = {np.dtype(t): i for i, t in enumerate(
    ("f4", "f8", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"))}
_BACKENDS = ("numpy", "cython", "numba")


def _backend(backend):
    from . import _dispatch

    name = _dispatch.get_backend() if backend is None else backend
    if not isinstance(name, str) or (name != "auto" and name not in _BACKENDS):
        raise ValueError(f"backend must be 'auto' or one of {_BACKENDS}, got {backend!r}")
    if name == "auto":
        for b in ("cython", "numba", "numpy"):
            if _kernels(b) is not None:
                return b
    if _kernels(name) is None:
        raise ValueError(f"backend {name!r} is not available")
    return name


def _kernels(name):
    try:
        if name == "cython":
            from . import _cy_rank
            return _cy_rank
        if name == "numba":
            from ._numba import rank
            return rank
    except ImportError:
        return None
    return True


class _Plan:
    pass


def _prepare(input, size, footprint, output, mode, cval, origin, axes, op, rank=None):
    x = np.asarray(input)
    if x.dtype.kind == "c":
        raise TypeError("input: complex type not supported")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"input: dtype {x.dtype} not supported")
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    p = _Plan()
    p.axes = _ndspec.axes(axes, x.ndim)
    nax = len(p.axes)
    if footprint is None:
        if size is None:
            raise _ndspec.ArgumentError("no footprint or filter size provided")
        sizes = _ndspec.sequence(size, nax, "size")
        try:
            sizes = tuple(int(s) for s in sizes)
        except (TypeError, ValueError):
            raise TypeError(f"size must be an int or a sequence of ints, got {size!r}") from None
        if any(s < 1 for s in sizes):
            raise ValueError(f"size must be >= 1 on every axis, got {size!r}")
        fp = None
    else:
        if size is not None:
            warnings.warn("ignoring size because footprint is set", UserWarning, stacklevel=3)
        fp = np.asarray(footprint, dtype=bool)
        if fp.ndim != nax:  # scipy's two messages: a box footprint of max/min is a size
            if op in ("max", "min") and fp.all():
                raise _ndspec.ArgumentError(
                    f"footprint: sequence argument must have length equal to input rank "
                    f"({fp.ndim} dimensions for {nax} axes)")
            raise _ndspec.ArgumentError(
                f"footprint.ndim ({fp.ndim}) must match len(axes) ({nax})")
        if fp.size and not fp.any():
            raise ValueError("footprint: an all-zero footprint is not supported")
        sizes = fp.shape
        if any(s < 1 for s in sizes):
            raise ValueError("footprint: every axis must have length >= 1")
        if fp.all():
            fp = None
    p.sizes = tuple(sizes)
    p.modes = _ndspec.modes(mode, nax)
    origin = _ndspec.sequence(origin, nax, "origin")
    if fp is not None or op in _RANKED:
        # scipy's footprint (and rank) filters lay the footprint's axes on the filtered
        # axes in increasing order; modes pair with ``axes`` as given (scipy's
        # _expand_mode), origins too when fewer than all axes are filtered, else with the
        # input's axes in order (its _expand_origin)
        order = sorted(range(nax), key=lambda i: p.axes[i])
        if nax < x.ndim:
            origin = tuple(origin[i] for i in order)
        p.modes = tuple(p.modes[i] for i in order)
        p.axes = tuple(sorted(p.axes))
    p.origins = _ndspec.origins(origin, p.sizes)
    # the window's number of values (taps)
    p.count = int(np.prod(p.sizes, dtype=np.int64)) if fp is None else int(fp.sum())
    if op in _RANKED:
        p.rank = _rank_in(op, rank, p.count)
        # rank 0 or count - 1: scipy runs its min/max filter (a box: the separable one)
        op = "min" if p.rank == 0 else "max" if p.rank == p.count - 1 else "rank"
    try:
        p.cval = float(cval)
    except (TypeError, ValueError):
        raise TypeError(f"cval must be a real number, got {cval!r}") from None
    if "constant" not in p.modes:
        p.cval = 0.0                          # unused
    p.fp = fp
    # no output: a new array of the input's dtype (scipy zero-fills it; every element is
    # written here, so empty)
    p.out = np.empty(x.shape, x.dtype) if output is None else _ndspec.output(output, x)
    # the computing dtype: the input's own, except as the module docstring says
    work = x.dtype
    if work.kind == "b":
        work = np.dtype(np.uint8)
    elif work.kind == "f" and work not in _TYPE_CODES:
        work = np.dtype(np.float64)           # float16, longdouble: as scipy, in double
    if (work.kind in "iu" and "constant" in p.modes
            and not (np.isfinite(p.cval) and p.cval == int(p.cval)
                     and np.iinfo(work).min <= p.cval <= np.iinfo(work).max)):
        if op in ("min", "max") and fp is None:
            work = np.dtype(np.float64)       # scipy's separable passes: double lines
        elif np.isfinite(p.cval):
            # scipy's footprint and rank filters cast cval to the input's type (a C cast)
            with np.errstate(invalid="ignore", over="ignore"):
                p.cval = float(np.array(np.trunc(p.cval)).astype(np.int64).astype(work))
        else:
            raise ValueError(f"cval: {cval!r} is not a value of the input's type {work}")
    p.x = x if work == x.dtype else x.astype(work)
    if p.x.dtype.kind == "b":
        p.x = p.x.view(np.uint8)
    p.work = p.x.dtype
    p.op = op
    return p


def _index_map(n, size, origin, mode):
    """Source index of each padded position of one axis (-1: cval), scipy's extension."""
    before = size // 2 + origin
    q = np.arange(n + size - 1, dtype=np.intp) - before
    if mode == "constant":
        return np.where((q >= 0) & (q < n), q, -1)
    if mode == "nearest":
        return np.clip(q, 0, n - 1)
    if mode == "wrap":
        return q % n
    if mode == "reflect":
        q = q % (2 * n)
        return np.where(q >= n, 2 * n - 1 - q, q)
    if mode == "mirror":
        if n == 1:
            return np.zeros_like(q)
        q = q % (2 * n - 2)
        return np.where(q >= n, 2 * n - 2 - q, q)
    raise ValueError(f"mode: {mode!r}")


def _pad(x, p):
    """x padded on the filtered axes (C-contiguous), through the index maps."""
    full_sizes = [1] * x.ndim
    for a, s in zip(p.axes, p.sizes):
        full_sizes[a] = s
    maps = [None] * x.ndim
    for a, s, o, m in zip(p.axes, p.sizes, p.origins, p.modes):
        if s > 1 or o != 0:
            maps[a] = _index_map(x.shape[a], s, o, m)
    shape = tuple(n + s - 1 for n, s in zip(x.shape, full_sizes))
    xp = np.empty(shape, dtype=x.dtype)
    cval = np.array(p.cval).astype(x.dtype) if x.dtype.kind == "f" else \
        np.array(int(p.cval), dtype=x.dtype)
    inner = tuple(slice(s // 2 + o, s // 2 + o + n) if mp is not None else slice(None)
                  for n, s, o, mp in zip(x.shape, full_sizes,
                                         _origins_full(x.ndim, p), maps))
    xp[inner] = x
    for a, mp in enumerate(maps):
        if mp is None:
            continue
        s = full_sizes[a]
        b = inner[a].start
        n = x.shape[a]
        for lo, hi in ((0, b), (b + n, n + s - 1)):
            if hi <= lo:
                continue
            src = mp[lo:hi]
            sl = [slice(None)] * x.ndim
            sl[a] = slice(lo, hi)
            if (src >= 0).all():
                xp[tuple(sl)] = np.take(xp, src + b, axis=a)
            else:
                xp[tuple(sl)] = cval
    return xp


def _origins_full(ndim, p):
    full = [0] * ndim
    for a, o in zip(p.axes, p.origins):
        full[a] = o
    return full


def _full_footprint(x, p):
    fp = np.ones(p.sizes, dtype=bool) if p.fp is None else p.fp
    shape = [1] * x.ndim
    for a, s in zip(p.axes, p.sizes):
        shape[a] = s
    # footprint axes in the order of the input's axes
    order = np.argsort(p.axes)
    fp = np.transpose(fp, order) if fp.ndim > 1 else fp
    return fp.reshape(shape)


# the ops given a rank among the window's values (the others: "min", "max")
_RANKED = ("median", "rank", "percentile")


def _rank_in(op, rank, count):
    """The 0-based rank in a window of ``count`` values that scipy's median, rank or
    percentile filter takes (``rank``: the rank, negative from the end, or the
    percentile)."""
    if op == "median":
        return count // 2
    if op == "percentile":
        try:
            pct = float(rank)
        except (TypeError, ValueError):
            raise TypeError(f"percentile must be a real number, got {rank!r}") from None
        if pct < 0.0:
            pct += 100.0
        if not 0.0 <= pct <= 100.0:
            raise _ndspec.ArgumentError(f"percentile must be in [-100, 100], got {rank!r}")
        r = count - 1 if pct == 100.0 else int(float(count) * pct / 100.0)
    else:
        if isinstance(rank, (bool, np.bool_)):
            raise TypeError(f"rank must be an integer, got {rank!r}")
        try:
            r = operator.index(rank)
        except TypeError:
            raise TypeError(f"rank must be an integer, got {rank!r}") from None
    if r < 0:
        r += count
    if not 0 <= r < count:
        raise _ndspec.ArgumentError(f"rank {rank!r} is not within the filter's footprint "
                                    f"of {count} values (-{count} to {count - 1})")
    return r


def _rank_of(p, count):
    return {"min": 0, "max": count - 1}.get(p.op, getattr(p, "rank", None))


def _run(p, backend):
    x = p.x
    out = p.out
    if x.size == 0:
        return out
    name = _backend(backend)
    if x.ndim == 0:
        return _ndspec.store(x, out)
    if x.shape[0] > 1 and _seconds(p, name) > SLAB_SECONDS:
        return _run_slabs(p, name)
    return _run_whole(p, name)


# ---- Ctrl-C: long calls in slabs ----
# A call estimated (_seconds) at more than SLAB_SECONDS runs as slabs of whole rows (along
# the first axis), one kernel call each, so a SIGINT raises KeyboardInterrupt between two of
# them (fastconv._chunks does the same for the other kernels). The estimate is coarse (the
# rank kernels' speeds differ 1000-fold between paths), so the slabs are sized by
# measuring: the first holds about FIRST_SLAB_TAPS taps, each next one the rows the slabs so
# far say take _chunks.PIECE_SECONDS. A slab reads the rows its windows cover, the first
# axis's border extended by its mode where the slab meets it, and its rows' results are
# those of the whole call: every result is one of the window's values, so the slabs' sizes
# (which depend on timing) cannot change a bit of it.
SLAB_SECONDS = 0.3
FIRST_SLAB_TAPS = 2_000_000

# window taps per second by kernel, about half what 2 threads of a loaded AMD EPYC (Zen 2)
# measured on 2048^2 float32 (boxes: per output and axis, the passes' cost whatever the
# width; "fold": min/max over a footprint; "network": the 9- and 25-value median networks;
# "select": any other rank)
_RATES = {"cython": {"box": 2.5e9, "fold": 5e9, "network": 3e9, "select": 0.04e9},
          "numba": {"box": 0.8e9, "fold": 0.8e9, "network": 0.03e9, "select": 0.03e9},
          "numpy": {"box": 0.008e9, "fold": 0.008e9, "network": 0.008e9, "select": 0.008e9}}


def _seconds(p, name):
    """The call's estimated seconds, from its shapes and kernel path."""
    count = p.count
    if p.op in ("min", "max"):
        box = p.fp is None and name == "cython"
        path, taps = ("box", int(sum(p.sizes))) if box else ("fold", count)
    else:
        network = count in (9, 25) and p.rank == count // 2
        path, taps = ("network" if network else "select"), count
    return p.x.size * taps / _RATES[name][path]


def _run_slabs(p, name):
    import copy
    import time

    from ._chunks import PIECE_SECONDS

    x, out = p.x, p.out
    if np.may_share_memory(out, x):  # the slabs read rows that earlier slabs have written
        x = x.copy()
    n = x.shape[0]
    size, origin, mode = 1, 0, "constant"
    if 0 in p.axes:
        i = p.axes.index(0)
        size, origin, mode = p.sizes[i], p.origins[i], p.modes[i]
    # padded position q of the first axis (q - before is its row) -> the row it copies
    rows_of = _index_map(n, size, origin, mode)
    before = size // 2 + origin
    cval = np.array(p.cval).astype(x.dtype) if x.dtype.kind == "f" else \
        np.array(int(p.cval), dtype=x.dtype)
    per_row = x[0].size * p.count
    step = max(1, FIRST_SLAB_TAPS // per_row)
    spent = done = 0
    r0 = 0
    while r0 < n:
        r1 = min(n, r0 + step)
        src = rows_of[r0:r1 + size - 1]
        if src[0] >= 0 and src[-1] - src[0] == len(src) - 1 and (np.diff(src) == 1).all():
            slab = x[src[0]:src[-1] + 1]  # rows inside the array: a view
        else:
            slab = np.take(x, np.where(src >= 0, src, 0), axis=0)
            if (src < 0).any():
                slab[src < 0] = cval
        q = copy.copy(p)
        q.x, q.out = slab, np.empty(slab.shape, x.dtype)
        t0 = time.perf_counter()
        res = _run_whole(q, name)
        spent += time.perf_counter() - t0
        done += r1 - r0
        _ndspec.store(res[before:before + r1 - r0], out[r0:r1])
        r0 = r1
        # back in the interpreter: a pending SIGINT raises KeyboardInterrupt here
        step = max(1, int(PIECE_SECONDS * done / max(spent, 1e-9)))
    return out


def _run_whole(p, name):
    x = p.x
    out = p.out
    if name == "cython" and p.fp is None and p.op in ("min", "max"):
        res = _cy_box(x, p, out)
        if res is out:
            return out
    elif name == "cython" and _last_two(x, p):
        return _cy_rank2d(x, p, out)
    else:
        fp = _full_footprint(x, p)
        count = int(fp.sum())
        rank = _rank_of(p, count)
        xp = _pad(x, p)
        if name == "numpy":
            from .reference import rank_filter_nd
            res = rank_filter_nd(xp, fp, rank)
        else:
            res = _footprint_kernel(name, x, xp, fp, rank, p.op)
    return _ndspec.store(res, out)


def _last_two(x, p):
    """Whether every axis the window extends along is one of the last two."""
    return all(a >= x.ndim - 2 or (s == 1 and o == 0)
               for a, s, o in zip(p.axes, p.sizes, p.origins))


def _cy_rank2d(x, p, out):
    """Footprint filters (and medians) over the last two axes on Cython, without a padded
    copy (:func:`fastconv._cy_rank.rank2d`)."""
    from . import _cy_rank

    x2 = np.ascontiguousarray(x if x.ndim >= 2 else x.reshape(1, -1))
    H, W = x2.shape[-2:]
    fp = _full_footprint(x, p)
    fp2 = fp.reshape(fp.shape[-2:]) if fp.ndim >= 2 else fp.reshape(1, -1)
    kh, kw = fp2.shape
    full = dict(zip(p.axes, zip(p.origins, p.modes)))
    oh, mh = full.get(x.ndim - 2, (0, "constant")) if x.ndim >= 2 else (0, "constant")
    ow, mw = full.get(x.ndim - 1, (0, "constant"))
    count = int(fp2.sum())
    rank = _rank_of(p, count)
    dy, dx = np.nonzero(fp2)
    off = np.ascontiguousarray((dy * (W + kw - 1) + dx).astype(np.intp))
    tc = _TYPE_CODES[x2.dtype]
    cval = (np.array(p.cval).astype(x2.dtype) if x2.dtype.kind == "f"
            else np.array(int(p.cval), dtype=x2.dtype)).reshape(1).view(np.uint8)
    direct = (out.dtype == x2.dtype and out.flags.c_contiguous
              and not np.may_share_memory(out, x))
    res = out if direct else np.empty(x2.shape, x2.dtype)
    _cy_rank.rank2d(tc, x2.reshape(-1).view(np.uint8), res.reshape(-1).view(np.uint8),
                    x2.size // (H * W), H, W, kh, kw, kh // 2 + oh, kw // 2 + ow,
                    _index_map(H, kh, oh, mh), _index_map(W, kw, ow, mw), cval, off, rank,
                    {"min": 0, "max": 1, "rank": 2}[p.op], bool(fp2.all()), kernel_threads())
    if direct:
        return out
    return _ndspec.store(res.reshape(x.shape), out)


def _footprint_kernel(name, x, xp, fp, rank, op):
    pstr = np.array(xp.strides, dtype=np.intp) // xp.itemsize
    off = (np.stack(np.nonzero(fp), axis=-1) @ pstr).astype(np.intp) if fp.ndim else \
        np.zeros(1, np.intp)
    off = np.ascontiguousarray(off)
    lead = x.shape[:-1]
    bases = np.zeros(lead, dtype=np.intp)
    for a, n in enumerate(lead):
        sh = [1] * len(lead)
        sh[a] = n
        bases = bases + (np.arange(n, dtype=np.intp) * pstr[a]).reshape(sh)
    bases = np.ascontiguousarray(bases.reshape(-1))
    res = np.empty(x.shape, dtype=x.dtype)
    opcode = {"min": 0, "max": 1, "rank": 2}[op]
    nth = kernel_threads()
    if name == "cython":
        from . import _cy_rank
        _cy_rank.footprint(_TYPE_CODES[x.dtype], xp.reshape(-1).view(np.uint8),
                           res.reshape(-1).view(np.uint8), bases, x.shape[-1], off, rank,
                           opcode, x.itemsize, nth)
    else:
        from ._numba import rank as nrank
        nrank.footprint(xp.reshape(-1), res.reshape(-1, x.shape[-1]), bases, off, rank,
                        opcode, nth)
    return res


def _cy_box(x, p, out):
    """The separable max/min on Cython: the last two axes fused when both are filtered
    (a column window up to DIRECT_K), one 1-D pass per other axis; the last pass writes into
    ``out`` when it can hold the result as is."""
    from . import _cy_rank

    tc = _TYPE_CODES[x.dtype]
    cval = (np.array(p.cval).astype(x.dtype) if x.dtype.kind == "f"
            else np.array(int(p.cval), dtype=x.dtype)).reshape(1).view(np.uint8)
    nth = kernel_threads()
    cur = np.ascontiguousarray(x)
    steps = [(a, s, o, m) for a, s, o, m in zip(p.axes, p.sizes, p.origins, p.modes)
             if s > 1 or o != 0]
    steps.sort(key=lambda t: -t[0])             # the contiguous axis first
    d = x.ndim
    if (len(steps) >= 2 and steps[0][0] == d - 1 and steps[1][0] == d - 2
            and steps[1][1] <= _cy_rank.DIRECT_K):
        steps = [("2d", steps[1], steps[0])] + steps[2:]
    if not steps:
        return cur
    direct = (out is not None and out.dtype == x.dtype and out.flags.c_contiguous
              and not np.may_share_memory(out, x))
    for k, step in enumerate(steps):
        last = k == len(steps) - 1
        dst = out if (last and direct) else np.empty(cur.shape, dtype=cur.dtype)
        flat_src = cur.reshape(-1).view(np.uint8)
        flat_dst = dst.reshape(-1).view(np.uint8)
        if step[0] == "2d":
            (_, sh, oh, mh), (_, sw, ow, mw) = step[1], step[2]
            H, W = cur.shape[-2], cur.shape[-1]
            _cy_rank.box2d(tc, flat_src, flat_dst, cur.size // (H * W), H, W, sh, sw,
                           sh // 2 + oh, sw // 2 + ow, _index_map(H, sh, oh, mh),
                           _index_map(W, sw, ow, mw), cval, p.op == "max", nth)
        else:
            a, s, o, m = step
            n = cur.shape[a]
            outer = int(np.prod(cur.shape[:a], dtype=np.int64))
            inner = int(np.prod(cur.shape[a + 1:], dtype=np.int64))
            _cy_rank.minmax_axis(tc, flat_src, flat_dst, outer, n, n, inner, s, s // 2 + o,
                                 _index_map(n, s, o, m), cval, p.op == "max", nth)
        cur = dst
    return cur


_DOC_COMMON = """
    mode : str or sequence of str, optional
        How the input is extended at its borders, per filtered axis: 'reflect' (default),
        'constant', 'nearest', 'mirror', 'wrap', or the aliases 'grid-mirror',
        'grid-constant', 'grid-wrap'.
    cval : scalar, optional
        The value beyond the border in mode 'constant'. Default 0.0.
    origin : int or sequence of int, optional
        Shifts the window, per filtered axis: in ``[-(size // 2), (size - 1) // 2]``.
    axes : int or tuple of int or None, optional
        The axes to filter (default: all).
    backend : {'auto', 'cython', 'numba', 'numpy'}, optional (keyword-only)
        The kernel (see :mod:`fastconv._ndrank`)."""


def maximum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None, backend=None):
    p = _prepare(input, size, footprint, output, mode, cval, origin, axes, "max")
    return _run(p, backend)


# (built from _DOC_COMMON: an expression, so set after the def, not a docstring literal)
maximum_filter.__doc__ = """A multidimensional maximum filter, as
    :func:`scipy.ndimage.maximum_filter`.

    Parameters
    ----------
    input : array_like
        Real input (integer, bool or floating).
    size : int or sequence of int, optional
        The box's shape over the filtered axes (when ``footprint`` is None).
    footprint : array of bool, optional
        The window's True entries, one axis per filtered axis (wins over ``size``).
    output : ndarray or dtype, optional
        Where to put the result, or its dtype (default: the input's).
    """ + _DOC_COMMON + """

    Returns
    -------
    ndarray
        The filtered array (``output`` when given as an array).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import maximum_filter
    >>> maximum_filter(np.array([1, 3, 2, 0, 0, 5]), size=3)
    array([3, 3, 3, 2, 5, 5])
    """


def minimum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None, backend=None):
    """A multidimensional minimum filter, as :func:`scipy.ndimage.minimum_filter`.

    Parameters are those of :func:`maximum_filter`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import minimum_filter
    >>> minimum_filter(np.array([[4, 1], [2, 3]]), size=2, mode="nearest")
    array([[4, 1],
           [2, 1]])
    """
    p = _prepare(input, size, footprint, output, mode, cval, origin, axes, "min")
    return _run(p, backend)


def _filter1d(input, size, axis, output, mode, cval, origin, op, backend):
    x = np.asarray(input)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be an int, got {size!r}") from None
    if size < 1:
        raise ValueError(f"size: incorrect filter size {size} (must be >= 1)")
    if x.ndim == 0:
        raise ValueError("input: a 0-d array has no axis to filter")
    try:
        ax = _ndspec.axes(axis, x.ndim)
    except ValueError:
        raise ValueError(f"axis {axis} is out of range for an input of {x.ndim} "
                         "dimensions") from None
    if len(ax) != 1:
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, got {mode!r}")
    p = _prepare(x, size, None, output, mode, cval, origin, ax, op)
    return _run(p, backend)


def maximum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                     *, backend=None):
    """A 1-D maximum filter along ``axis``, as :func:`scipy.ndimage.maximum_filter1d`
    (:func:`maximum_filter` with ``axes=axis``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import maximum_filter1d
    >>> maximum_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([8, 8, 8, 4, 9, 9, 9, 9])
    """
    return _filter1d(input, size, axis, output, mode, cval, origin, "max", backend)


def minimum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                     *, backend=None):
    """A 1-D minimum filter along ``axis``, as :func:`scipy.ndimage.minimum_filter1d`
    (:func:`minimum_filter` with ``axes=axis``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import minimum_filter1d
    >>> minimum_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([2, 0, 0, 0, 1, 1, 0, 0])
    """
    return _filter1d(input, size, axis, output, mode, cval, origin, "min", backend)


def median_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                  origin=0, *, axes=None, backend=None):
    """A multidimensional median filter, as :func:`scipy.ndimage.median_filter`: each
    output is the window's value of rank ``count // 2`` (``count`` the window's number of
    taps; the upper median when it is even).

    Parameters are those of :func:`maximum_filter`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import median_filter
    >>> median_filter(np.array([1, 9, 2, 8, 3, 7]), size=3)
    array([1, 2, 8, 3, 7, 7])
    """
    p = _prepare(input, size, footprint, output, mode, cval, origin, axes, "median")
    return _run(p, backend)


def rank_filter(input, rank, size=None, footprint=None, output=None, mode="reflect",
                cval=0.0, origin=0, *, axes=None, backend=None):
    """A multidimensional rank filter, as :func:`scipy.ndimage.rank_filter`: each output
    is the window's value of rank ``rank`` (0 the smallest; negative counts from the
    largest, -1 the largest). Rank 0 and the last are the minimum and maximum filters.

    Parameters
    ----------
    input : array_like
        Real input (integer, bool or floating).
    rank : int
        The rank, in ``[-count, count - 1]`` for a window of ``count`` values (else a
        ValueError, also a RuntimeError as scipy raises).

    The other parameters are those of :func:`maximum_filter`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import rank_filter
    >>> rank_filter(np.array([5, 1, 4, 2, 3]), 1, size=3)
    array([5, 4, 2, 3, 3])
    """
    p = _prepare(input, size, footprint, output, mode, cval, origin, axes, "rank", rank)
    return _run(p, backend)


def percentile_filter(input, percentile, size=None, footprint=None, output=None,
                      mode="reflect", cval=0.0, origin=0, *, axes=None, backend=None):
    """A multidimensional percentile filter, as :func:`scipy.ndimage.percentile_filter`:
    the rank filter of rank ``int(count * percentile / 100)`` (``count - 1`` at 100; a
    negative percentile counts from 100).

    Parameters
    ----------
    input : array_like
        Real input (integer, bool or floating).
    percentile : float
        In ``[-100, 100]``.

    The other parameters are those of :func:`maximum_filter`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._ndrank import percentile_filter
    >>> percentile_filter(np.array([5, 1, 4, 2, 3]), 50, size=3)
    array([5, 4, 2, 3, 3])
    """
    p = _prepare(input, size, footprint, output, mode, cval, origin, axes, "percentile",
                 percentile)
    return _run(p, backend)
