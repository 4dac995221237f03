"""FFT and overlap-save convolution (issue 19): ``fftconvolve``, ``oaconvolve``, the
direct-or-FFT choice and the FFT path's error bound.

The transforms are scipy.fft's (pocketfft), real-input (``rfftn``) for real data and
complex (``fftn``) for complex data, with ``workers=`` set to fastconv's thread count
(:func:`fastconv.get_num_threads`) and lengths from ``scipy.fft.next_fast_len``. float32
data is transformed in single precision (scipy.fft keeps float32 -> complex64).

One engine serves every caller: :func:`_conv_window` computes a window of the full linear
convolution along the last ``d`` axes by **overlap-save**. The output window is cut into
blocks of ``B`` samples per axis; each block reads ``L = B + k - 1`` samples of the
zero-extended input, is transformed at the fast length ``L``, multiplied by the kernel's
spectrum (computed once, at length ``L``) and transformed back; its last ``B`` samples per
axis are exact linear-convolution outputs (no wrap-around). The blocks are transformed a
chunk at a time (a few MiB), so the work stays in cache and the extra memory stays bounded,
and each chunk's transform runs on ``workers`` threads. A single block covering the whole
output is the plain whole-array FFT convolution; :func:`_plan_blocks` picks ``L`` per axis
by a cost model (``L*log2(L)`` transform work per useful output ``B``), so long signals
with short kernels get small cache-sized blocks and kernels close to the signal's size get
one block; in 2-D and up the axes are then weighed together so that the tasks share evenly
over two threads (:func:`_joint_plan`).

Ctrl-C: the chunks are tasks of a shared counter (:func:`_run_tasks`), and a transform,
product or copy larger than ``_CUT_FROM`` elements runs in slabs (:func:`_transform`,
:func:`_slabs`); a KeyboardInterrupt lands between two of them, and the other threads stop
at their next slab.

The direct-or-FFT choice (:func:`choose_method`) compares the direct path's
multiply-accumulates at fastconv's measured direct rate with this engine's transform work
at its measured rate; the calibration is in ``docs/guide/fft.md``.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
import scipy.fft as _sfft

__all__ = ["fftconvolve", "oaconvolve", "choose_method", "error_bound", "FFT_EPS_FACTOR"]

_MODES = ("full", "same", "valid")

# Bytes of block data transformed per call (input blocks; the spectra are about as large).
_CHUNK_BYTES = 1 << 20
# Bytes of a 2-D conv layer task's filter spectra summed, inverse transformed and copied out
# at a time. Measured (2 threads, Zen 4, same-process A/B): 1x1x1024x1024 -> 8 filters
# 31x31, float32 40 -> 32 ms, float64 58 -> 39 ms against all filters at once; 2x3x256x256
# -> 16 filters 31x31 29 -> 26 ms, 47 -> 40 ms.
_FILTER_BYTES = 1 << 20


_POOLS = {}


def _pool(n):
    """A cached thread pool of ``n`` threads (pocketfft and numpy release the GIL). A
    forked child does not inherit the parent's threads: it makes its own pool."""
    import os
    key = (n, os.getpid())
    pool = _POOLS.get(key)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor
        pool = _POOLS[key] = ThreadPoolExecutor(n, thread_name_prefix="fastconv-fft")
    return pool


class _Cancelled(Exception):
    """Raised in a pool thread's task once another thread has failed (or been interrupted):
    the task stops at its next piece. Never reaches the caller."""


def _run_tasks(fn, items, workers):
    """``fn(item, stop)`` for every item, on the calling thread and ``workers - 1`` pool
    threads that take items from a shared counter. The caller returns when every item is
    done, without waiting for a helper that has not started yet (on a loaded machine a
    thread may not get a core for a whole time slice: the others take its share).

    Ctrl-C. Python runs signal handlers on the calling thread only, between two bytecodes:
    a KeyboardInterrupt there, while it runs an item or waits, is re-raised once the pool
    threads have left their items. ``stop()`` tells an item that an error (or the
    interrupt) has ended the call: the engine's tasks check it between their transform
    pieces (:func:`_transform`) and raise :class:`_Cancelled`, so no thread keeps
    computing a result nobody will read."""
    import threading
    n = len(items)
    lock = threading.Lock()
    state = {"next": 0, "done": 0}
    finished = threading.Event()
    errors = []

    def stop():
        return bool(errors)

    def worker():
        while True:
            taken = False
            try:
                with lock:
                    i = state["next"]
                    if i >= n or errors:
                        return
                    taken = True  # before the count: an interrupt between the two
                    state["next"] = i + 1  # overcounts done, never leaves it short
                fn(items[i], stop)
            except BaseException as e:  # re-raised on the calling thread
                errors.append(e)
            finally:
                if taken:
                    with lock:
                        state["done"] += 1
                        if state["done"] >= n or errors:
                            finished.set()

    pool = _pool(workers - 1)
    for _ in range(min(workers - 1, n - 1)):
        pool.submit(worker)
    try:
        worker()
        with lock:
            if state["done"] >= n:
                finished.set()
        while not finished.wait(0.05):
            with lock:  # every item taken and done (or an error): nothing left to wait for
                if state["done"] >= n or (errors and state["done"] >= state["next"]):
                    break
    except BaseException as e:  # Ctrl-C while waiting: stop the pool threads' items
        errors.append(e)
        _drain(lock, state, 1.0)
        raise
    if errors:
        _drain(lock, state, 1.0)
        raise next((e for e in errors if not isinstance(e, _Cancelled)), errors[0])


def _drain(lock, state, limit):
    """Wait (up to ``limit`` seconds) until the items taken so far are done: after an error
    the pool threads stop at their next piece, and the caller returns only then, so that
    nothing writes into the result once the error has reached the caller. Interrupted
    again, it stops waiting."""
    import time
    end = time.monotonic() + limit
    try:
        while time.monotonic() < end:
            with lock:
                if state["done"] >= state["next"]:
                    return
            time.sleep(0.002)
    except BaseException:  # a second Ctrl-C: give up waiting
        pass


# --------------------------------------------------------------------------------------------
# transforms cut into pieces (Ctrl-C)
# --------------------------------------------------------------------------------------------
# Elements per piece of a cut transform, and the size from which a transform is cut: a
# transform of 2^20 complex128 elements takes about 20-40 ms on one core of the Zen 2 the
# engine was calibrated on.
_CUT_ELEMS = 1 << 20
_CUT_FROM = 1 << 22


def _slabs(shape, stop=None, axis=None, cut=None):
    """Index tuples of slabs that tile an array of ``shape``, about ``_CUT_ELEMS`` elements
    each, along axis ``cut`` (by default the longest axis other than ``axis``, the one a
    transform runs along). The caller's work on one slab is one numpy or scipy.fft call;
    between two, a KeyboardInterrupt can land, and ``stop()`` true ends the work
    (:class:`_Cancelled`)."""
    nd = len(shape)
    if cut is None:
        axis = None if axis is None else axis % nd
        cut = max((a for a in range(nd) if a != axis), key=lambda a: shape[a])
    cut %= nd
    n = shape[cut]
    size = int(np.prod(shape, dtype=np.int64))
    per = max(1, _CUT_ELEMS * n // max(1, size))
    lead = (slice(None),) * cut
    for i in range(0, n, per):
        if stop is not None and stop():
            raise _Cancelled()
        yield lead + (slice(i, i + per),)


def _transform(a, Ls, real, inverse, workers, stop=None, keep=None):
    """The d-dimensional transform over the last ``len(Ls)`` axes at lengths ``Ls``: rfftn /
    irfftn for real data, fftn / ifftn for complex (scipy.fft, ``workers`` threads).
    ``a`` is zero-extended to ``Ls`` (forward only: the inverse gets whole spectra).

    ``keep`` (the real inverse in 2-D and up): a slice per axis, the only samples wanted.
    The complex transforms along the other axes then run whole, but the last axis's real
    transforms (each still of length ``Ls[-1]``) only on the kept lines of the other axes
    (the engine keeps ``B`` of ``L = B + k - 1`` per axis: that many fewer c2r
    transforms), and the result is cut to the kept window. Unnormalized
    (``norm="forward"``): the caller scales it by ``1 / prod(Ls)``, after, as irfftn's
    last pass does (whole or in slabs: irfftn's bits).

    Small transforms are one scipy.fft call. From ``_CUT_FROM`` elements on they are taken
    one axis at a time, each axis in slabs of the others (:func:`_slabs`): the same
    transform (an n-D DFT is its 1-D DFTs along each axis in turn), in pieces between
    which Ctrl-C can land. Only a 1-D transform that long stays one call (it has no other
    axis to cut along)."""
    d = len(Ls)
    caxes = tuple(range(-d, 0))
    size = max(a.size, int(np.prod(Ls, dtype=np.int64)))
    uncut = d == 1 and int(np.prod(a.shape[:-1], dtype=np.int64)) == 1  # no other axis
    prune = inverse and real and d >= 2 and keep is not None
    if uncut or size < _CUT_FROM:
        if prune:
            a = _sfft.ifftn(a, axes=caxes[:-1], workers=workers, overwrite_x=True,
                            norm="forward")
            a = a[(Ellipsis,) + tuple(keep[:-1]) + (slice(None),)]
            y = _sfft.irfft(a, Ls[-1], axis=-1, workers=workers, norm="forward")
            return y[..., keep[-1]]
        if inverse:
            fn = _sfft.irfftn if real else _sfft.ifftn
            return fn(a, Ls, axes=caxes, workers=workers, overwrite_x=True)
        fn = _sfft.rfftn if real else _sfft.fftn
        return fn(a, Ls, axes=caxes, workers=workers)
    lead = a.shape[:-d]
    if not inverse:
        ctype = np.result_type(a.dtype, np.complex64)
        F = Ls[-1] // 2 + 1 if real else Ls[-1]
        # zeros: the rows past a's extent on the other axes are the zero extension
        out = np.zeros(lead + tuple(Ls[:-1]) + (F,), ctype)
        last = _sfft.rfft if real else _sfft.fft
        sub = out[(Ellipsis,) + tuple(slice(0, m) for m in a.shape[-d:-1]) + (slice(None),)]
        for sl in _slabs(a.shape, stop, axis=-1):
            sub[sl] = last(a[sl], Ls[-1], axis=-1, workers=workers)
        for ax in range(-2, -d - 1, -1):
            for sl in _slabs(out.shape, stop, axis=ax):
                out[sl] = _sfft.fft(out[sl], axis=ax, workers=workers, overwrite_x=True)
        return out
    norm = "forward" if prune else "backward"
    for ax in range(-d, -1):  # in place: ``a`` is the engine's own spectrum
        for sl in _slabs(a.shape, stop, axis=ax):
            a[sl] = _sfft.ifft(a[sl], axis=ax, workers=workers, overwrite_x=True, norm=norm)
    if prune:  # the last axis's real transforms on the kept lines only
        a = a[(Ellipsis,) + tuple(keep[:-1]) + (slice(None),)]
        out = np.empty(lead + a.shape[-d:-1] + (Ls[-1],), np.empty(0, a.dtype).real.dtype)
        for sl in _slabs(a.shape, stop, axis=-1):
            out[sl] = _sfft.irfft(a[sl], Ls[-1], axis=-1, workers=workers, norm=norm)
        return out[..., keep[-1]]
    if real:
        out = np.empty(lead + tuple(Ls), np.empty(0, a.dtype).real.dtype)
        last = _sfft.irfft
    else:
        out = a
        last = _sfft.ifft
    for sl in _slabs(a.shape, stop, axis=-1):
        out[sl] = last(a[sl], Ls[-1], axis=-1, workers=workers, overwrite_x=True)
    return out


def _kernel_spectrum(h, Ls, real, workers):
    """:func:`_transform` of a kernel ``h`` zero-extended to ``Ls`` (forward), without
    transforming the zeros: in 2-D and up a kernel is much smaller than a block, so each
    axis's 1-D transforms run only where the data is not yet all zeros (the kernel's own
    extent along the axes still to transform). The axes in pocketfft's order (real: the
    last one, then the others from the first; complex: from the first), so the same
    transforms of the same lines: bitwise the whole transform's result. A kernel with
    leading axes (a layer's filters) is split along the first of them between
    ``workers`` threads, one transform each; a single kernel is one thread's. Only below
    ``_CUT_FROM`` elements: each part is one call that Ctrl-C cannot stop. Measured, 8
    filters 31x31 to 288 x 288, float32, AMD EPYC Zen 4: 3.3 ms whole (2 threads), 1.5 ms
    without the zeros on one thread (pocketfft's own two threads were slower on transforms
    this small)."""
    d = len(Ls)
    ks = h.shape[-d:]
    lead = h.shape[:-d]
    if (d == 1 or 2 * math.prod(ks[:-1]) > math.prod(Ls[:-1])
            or math.prod(lead) * math.prod(Ls) >= _CUT_FROM):
        # a large one is :func:`_transform`'s, in slabs between which Ctrl-C can land (its
        # last axis's transforms, too, run on the kernel's own rows only)
        return _transform(h, Ls, real, False, workers)
    ctype = np.result_type(h.dtype, np.complex64)
    F = Ls[-1] // 2 + 1 if real else Ls[-1]
    out = np.zeros(lead + tuple(Ls[:-1]) + (F,), ctype)
    order = list(range(d - 1)) if real else list(range(d))

    def part(sl, stop=None):
        o = out[sl]
        if real:  # the last axis's real transforms, on the kernel's rows
            o[(Ellipsis,) + tuple(slice(0, k) for k in ks[:-1]) + (slice(None),)] = (
                _sfft.rfft(h[sl], Ls[-1], axis=-1, workers=1))
        else:
            o[(Ellipsis,) + tuple(slice(0, k) for k in ks)] = h[sl]
        done = {d - 1} if real else set()
        for i in order:
            region = tuple(slice(None) if a in done or a == i else slice(0, ks[a])
                           for a in range(d))
            sub = o[(Ellipsis,) + region]
            sub[...] = _sfft.fft(sub, axis=i - d, workers=1, overwrite_x=True)
            done.add(i)

    n = lead[0] if lead else 1
    if n < 2 or workers < 2:
        part((Ellipsis,))
    else:
        per = -(-n // workers)
        _run_tasks(part, [(slice(i, i + per),) for i in range(0, n, per)], workers)
    return out


def _workers():
    from ._threads import get_num_threads
    return max(1, int(get_num_threads()))


# --------------------------------------------------------------------------------------------
# block plan
# --------------------------------------------------------------------------------------------
def _fast(n, real):
    return _sfft.next_fast_len(int(n), real)


def _pen(L, d=1):
    """Relative per-sample cost of a transform length: 2^a and 3*2^a lengths are the
    fastest in pocketfft; other 5-smooth lengths cost about 10% more (measured). On 2-D
    and higher blocks, each factor 5 past the first costs about 5% more again (fwd +
    inverse real transforms of L x L blocks, one thread, Zen 2, ns per sample: 576 6.3,
    768 6.2, 800 = 2^5 5^2 6.5, 750 = 2 3 5^3 7.3 in float32; 11.1, 11.4, 12.1, 12.9 in
    float64)."""
    v5 = 0
    while L % 5 == 0:
        L //= 5
        v5 += 1
    while L % 2 == 0:
        L //= 2
    pen = 1.0 if (L in (1, 3) and v5 == 0) else 1.1
    return pen * (1.0 + 0.05 * max(0, v5 - 1)) if d >= 2 else pen


@functools.lru_cache(maxsize=4096)
def _axis_scan(out_len, k, real, d=1):
    """((cost, L, B), ...) along one axis, for each block count ``nb`` tried (stepped
    geometrically, in that order): the block ``B = ceil(n/nb)``, the transform the next
    fast length ``L >= B + k - 1``, the modelled transform work ``nb * L * (log2(L) + 10) *
    pen(L)``. On 2-D and higher, blocks longer than 1024 per axis (past the L2 cache) cost
    1.6x per sample (measured), so they are taken only when they win anyway; in 1-D,
    lengths past 16384 cost 15% more per doubling (measured per-sample costs in
    docs/guide/fft.md)."""
    scan = []
    nb = 1
    while True:
        B = -(-out_len // nb)
        L = _fast(B + k - 1, real)
        cost = nb * L * (math.log2(max(L, 2)) + 10.0) * _pen(L, d)
        if d >= 2 and L > 1024:
            cost *= 1.6
        elif L > 16384:
            cost *= 1.0 + 0.15 * math.log2(L / 16384)
        scan.append((cost, L, min(L - k + 1, out_len)))
        if B <= k or nb >= out_len:
            break
        nb = max(nb + 1, int(nb * 1.08))
    return tuple(scan)


@functools.lru_cache(maxsize=4096)  # a scan of ~100 lengths: auto asks on every call
def _axis_plan(out_len, k, real, d=1):
    """(L, B): transform length and useful block length along one axis, the cheapest of
    :func:`_axis_scan` (the first of those within 1% of each other)."""
    best = None
    for c in _axis_scan(out_len, k, real, d):
        if best is None or c[0] < best[0] * 0.99:
            best = c
    return best[1], best[2]


def _task_ranges(nbs, Ls, itemsize, batch=1, fan=1):
    """The engine's tasks: ranges ((r0, r1), (c0, c1)) of blocks along the first one or two
    block axes, about ``_CHUNK_BYTES`` of input blocks each (at least one block).
    ``batch``: the leading (broadcast) items of the input; ``fan``: the filters per input
    channel of a conv layer (its tasks hold their spectra too)."""
    one = batch * int(np.prod(nbs[2:], dtype=np.int64)) * int(np.prod(Ls)) * itemsize * fan
    per = max(1, _CHUNK_BYTES // max(one, 1))  # blocks (of the first two axes) per task
    n1 = nbs[1] if len(nbs) >= 2 else 1
    if per >= n1:
        return [((r, min(nbs[0], r + per // n1)), (0, n1))
                for r in range(0, nbs[0], max(1, per // n1))]
    return [((r, r + 1), (c, min(n1, c + per))) for r in range(nbs[0])
            for c in range(0, n1, per)]


def _balance(ntasks):
    """The cost factor of ``ntasks`` tasks shared by two threads (the model's setting; the
    plan never depends on the thread count): an odd count leaves one thread a task more
    (9 blocks of a 2048^2 window: 5 and 4), a single task runs on pocketfft's own threads
    (about 1.25x its time on two)."""
    if ntasks == 1:
        return 1.25
    if ntasks < 16 and ntasks % 2:
        return (ntasks + 1) / ntasks
    return 1.0


@functools.lru_cache(maxsize=4096)
def _joint_plan(out_lens, ks, real, itemsize, batch):
    """The 2-D and higher plan of :func:`_conv_window`: each axis's own plan
    (:func:`_axis_plan`) unless lengths within 12% of its cost on some axes make tasks
    that two threads share better (:func:`_balance`). Measured on a 2048^2 'same' window
    with a 63x63 kernel, 2 threads, Zen 2: 576 (16 blocks) in place of 750 (9 blocks),
    float32 23.8 -> 18.9 ms, float64 50.3 -> 41.2 ms (that case's 750 is also dearer by
    :func:`_pen`'s factors 5)."""
    import itertools
    axes = []
    for n, k in zip(out_lens, ks):
        first = _axis_plan(n, k, real, len(out_lens))
        scan = _axis_scan(n, k, real, len(out_lens))
        c0 = next(c for c in scan if c[1:] == first)[0]
        near = sorted({c for c in scan if c[0] <= 1.12 * c0 and c[1:] != first})[:3]
        axes.append([(c0,) + first] + near)
    best = None
    for combo in itertools.product(*axes):
        cost = 1.0
        for c, _, _ in combo:
            cost *= c
        nbs = tuple(-(-n // B) for n, (_, _, B) in zip(out_lens, combo))
        cost *= _balance(len(_task_ranges(nbs, tuple(L for _, L, _ in combo), itemsize,
                                          batch)))
        if best is None or cost < best[0] * 0.99:  # ties: the axes' own plans (first)
            best = (cost, [(L, B) for _, L, B in combo])
    return best[1]


def _plan_blocks(out_lens, ks, real, itemsize=None, batch=1):
    """[(L, B)] per axis. In 1-D, and for conv layers (``itemsize`` None: their own model,
    ``_LAYER_FFT_RATE``), the cheapest plan per axis (:func:`_axis_plan`); in 2-D and
    higher, the joint plan (:func:`_joint_plan`)."""
    d = len(out_lens)
    if d == 1 or itemsize is None:
        return [_axis_plan(n, k, real, d) for n, k in zip(out_lens, ks)]
    return _joint_plan(tuple(out_lens), tuple(ks), real, itemsize, batch)


def fft_seconds(out_lens, ks, real, itemsize, rates=None, batch=1):
    """Modelled seconds of :func:`_conv_window` for an output window of ``out_lens`` with a
    kernel of ``ks`` (per batch item): its transform work at the 2-thread rates of
    ``_FFT_RATE`` (``_FFT_RATE_1D`` in 1-D), at half those rates when the blocks make one
    task (2-D and up) or, in 1-D, below ``_FFT_PARALLEL_WORK`` (too few blocks to share:
    one thread transforms them). ``rates`` ({(real, itemsize): rate}) replaces both, with
    no halving. ``itemsize`` is the real dtype's; the plan is the engine's for ``batch``
    items of the computing dtype."""
    work_item = itemsize * (1 if real else 2)  # the engine's x.itemsize
    plan = _plan_blocks(out_lens, ks, real, None if rates is not None else work_item, batch)
    nblocks = 1
    per_block = 1
    logs = 0.0
    for (L, B), n in zip(plan, out_lens):
        nblocks *= -(-n // B)
        per_block *= L
        logs += math.log2(L)
    # forward + inverse transform of every block, the product, gather and scatter
    work = nblocks * per_block * (logs + 6.0)
    if rates is not None:
        return work / rates[(real, itemsize)]
    if len(out_lens) == 1:
        rate = _FFT_RATE_1D[(real, itemsize)]
        one_task = work < _FFT_PARALLEL_WORK
    else:
        rate = _FFT_RATE[(real, itemsize)]
        nbs = tuple(-(-n // B) for (_, B), n in zip(plan, out_lens))
        one_task = len(_task_ranges(nbs, tuple(L for L, _ in plan), work_item, batch)) == 1
    return work / (rate / 2 if one_task else rate)


# Transform work (samples * (log2 + 6)) per second, 2 threads, wall clock, measured on a
# quiet AMD EPYC (Zen 2) with tools/fft_calibrate.py (docs/guide/fft.md): 2-D and up, and
# 1-D. Keys: (real input, itemsize of the real dtype). With one task (in 1-D: below
# _FFT_PARALLEL_WORK) the engine has too few blocks for two threads and runs at about half
# these rates.
_FFT_RATE = {
    (True, 4): 3.5e9,
    (True, 8): 2.4e9,
    (False, 4): 1.75e9,
    (False, 8): 1.2e9,
}
_FFT_RATE_1D = {
    (True, 4): 2.8e9,
    (True, 8): 2.2e9,
    (False, 4): 1.4e9,
    (False, 8): 1.1e9,
}
_FFT_PARALLEL_WORK = 4e6
# Direct path multiply-accumulates per second, 2 threads: fastconv's 2-D kernels (conv2d's
# direct kernel, kernels of 15x15 and up: 50-65e9 float32, 23-38e9 float64 measured on the
# grid), and the 1-D one (fc_row, 127 taps and up).
_DIRECT_RATE = {4: 50e9, 8: 25e9}
_DIRECT_RATE_1D = {4: 34e9, 8: 22e9}
_DIRECT_OVERHEAD = 40e-6  # seconds: a direct call's fixed cost
_FFT_OVERHEAD = 150e-6


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
def _blocks(x, starts, ks, Bs, Ls, spans, stop=None):
    """Blocks ``spans[i] = (a0, a1)`` (block indices along conv axis i, the last
    ``len(spans)`` axes of ``x``) of the zero-extended input, as a read-only strided view
    (..., a1 - a0 .., L_1..L_d) of a fresh buffer that holds just their extent (a task's:
    it stays in cache, and the input is never copied whole). Block j along axis i reads
    ``xpad[starts[i] + j*B_i :][:L_i]``, where ``xpad[p] = x[p - (k_i - 1)]``, zero
    outside ``x``."""
    d = len(spans)
    lead = x.shape[:-d]
    ext = tuple((a1 - a0 - 1) * B + L for (a0, a1), B, L in zip(spans, Bs, Ls))
    buf = np.empty(lead + ext, x.dtype)
    src, dst = [], []
    for (a0, _), st, k, B, e, n in zip(spans, starts, ks, Bs, ext, x.shape[-d:]):
        p0 = st + a0 * B - (k - 1)  # the x index of the buffer's first sample
        lo, hi = max(0, p0), min(n, p0 + e)
        src.append(slice(lo, hi))
        dst.append(slice(lo - p0, max(lo, hi) - p0))
    # zeros where x does not reach (only the margins: inner blocks are all x)
    for i, (sl, e) in enumerate(zip(dst, ext)):
        after = (slice(None),) * (d - i - 1)  # the conv axes after axis i
        if sl.start > 0:
            buf[(Ellipsis, slice(0, sl.start)) + after] = 0
        if sl.stop < e:
            buf[(Ellipsis, slice(sl.stop, e)) + after] = 0
    bd, xs = buf[(Ellipsis,) + tuple(dst)], x[(Ellipsis,) + tuple(src)]
    if bd.size:
        for sl in _slabs(bd.shape, stop, cut=-d):
            bd[sl] = xs[sl]
    st = buf.strides[-d:]
    return np.lib.stride_tricks.as_strided(
        buf, lead + tuple(a1 - a0 for a0, a1 in spans) + tuple(Ls),
        buf.strides[:-d] + tuple(s * B for s, B in zip(st, Bs)) + st, writeable=False)


def _put_blocks(dst, rows, B):
    """``dst[..., r, q] = rows[..., r, q // B, q % B]`` for the columns q of ``dst`` (its
    last axis, at most ``rows``' blocks times B long): one copy through a view of ``dst``
    whose last axis is split into blocks, the last block's columns apart when clipped."""
    W = dst.shape[-1]
    full = W // B
    s = dst.strides[-1]
    if full:
        view = np.lib.stride_tricks.as_strided(
            dst, dst.shape[:-1] + (full, B), dst.strides[:-1] + (s * B, s))
        view[...] = rows[..., :full, :]
    if W > full * B:
        dst[..., full * B:] = rows[..., full, :W - full * B]


def _conv_window(x, h, d, starts, lens, out_dtype, reduce=False, out=None):
    """A window of the full linear convolution of ``x`` with ``h`` along their last ``d``
    axes (the leading axes broadcast). ``starts[i]``, ``lens[i]``: the window along conv
    axis i in full-output coordinates (0 <= start, start + len <= n + k - 1).

    ``x`` and ``h`` are already of the computing dtype (float32/64 or complex64/128).
    ``out``, if given, receives the result (any layout; else a new array is returned).

    With ``reduce``, ``x`` is (N, C, *spatial) and ``h`` (K, C, *spatial), and the result
    (N, K, *lens) sums the C channels' convolutions (conv layers: each input block's
    transform is shared by the K filters, the sum over C is taken on the spectra)."""
    cplx = out_dtype.kind == "c"
    real = not cplx
    workers = _workers()
    ks = h.shape[-d:]
    ns = x.shape[-d:]
    bx, bh = x.shape[:-d], h.shape[:-d]
    if reduce:
        C = x.shape[1]
        batch = (x.shape[0], h.shape[0])
    else:
        batch = np.broadcast_shapes(bx, bh)
    if out is None:
        out = np.empty(batch + tuple(lens), out_dtype)
    if out.size == 0:
        return out
    nbx = int(np.prod(bx, dtype=np.int64)) if bx else 1
    fan = max(1, -(-h.shape[0] // x.shape[1])) if reduce else 1
    plan = _plan_blocks(lens, ks, real, None if reduce else x.itemsize, nbx)
    Ls = tuple(p[0] for p in plan)
    Bs = tuple(p[1] for p in plan)
    nbs = tuple(-(-n // B) for n, B in zip(lens, Bs))
    # the kernel's spectrum at the block length, once
    H = _kernel_spectrum(h, Ls, real, workers)
    # the real inverse in 2-D and up transforms only the kept lines, unnormalized
    # (_transform's keep); its kept samples take the 1 / prod(Ls) after (as irfftn's do:
    # scaling the spectra before would take tiny values into subnormals)
    prune = real and d >= 2
    scale = np.empty(0, out_dtype).real.dtype.type(1.0 / math.prod(Ls))
    # zero-extended input: xpad[i] = x[i - (k - 1)] on each conv axis; block j reads
    # xpad[start + j*B : start + j*B + L]. Nothing of x in the window: zeros.
    for n, k, st, nb, B, L in zip(ns, ks, starts, nbs, Bs, Ls):
        if min(n, st + (nb - 1) * B + L - (k - 1)) <= max(0, st - (k - 1)):
            out[...] = 0
            return out
    nbat = len(batch)
    # H broadcast against the blocks: batch dims, then d block dims of size 1
    Hb = H.reshape(bh + (1,) * d + H.shape[-d:])
    if reduce:
        Hr = Hb[None]  # (1, K, C, 1.., F..)
    olead = (slice(None),) * nbat
    keep = tuple(slice(k - 1, k - 1 + B) for k, B in zip(ks, Bs))
    perm = list(range(nbat))
    for i in range(d):
        perm += [nbat + i, nbat + d + i]
    ranges = _task_ranges(nbs, Ls, x.itemsize, nbx, fan)
    parallel = len(ranges) >= 2 and workers > 1
    tw = 1 if parallel else workers

    def task(rc, stop=None):
        (r0, r1), (c0, c1) = rc
        spans = ((r0, r1), (c0, c1))[:d] + tuple((0, nb) for nb in nbs[2:])
        blocks = _blocks(x, starts, ks, Bs, Ls, spans, stop)
        spec = _transform(blocks, Ls, real, False, tw, stop)
        if reduce:
            # 2-D: a few filters at a time, so that their spectral sums, inverse transforms
            # and copies out stay in cache (all K filters' spectra at once would not). 1-D
            # tasks hold many short blocks, copied out one block at a time: all filters in
            # one go (measured: chunks there cost more in copies than they save)
            per = spec[:, :1].nbytes
            kc = max(1, _FILTER_BYTES // max(1, per)) if d >= 2 else h.shape[0]
            for k0 in range(0, h.shape[0], kc):
                k1 = min(h.shape[0], k0 + kc)
                acc = spec[:, 0:1] * Hr[:, k0:k1, 0]
                for c in range(1, C):
                    acc += spec[:, c:c + 1] * Hr[:, k0:k1, c]
                emit(acc, out[:, k0:k1], (batch[0], k1 - k0), rc, stop)
            return
        if spec.shape[:nbat] == batch:  # in slabs along the first transform axis
            for sl in _slabs(spec.shape, stop, cut=-d):
                sl = (Ellipsis, sl[-1]) + (slice(None),) * (d - 1)
                spec[sl] *= Hb[sl]
        else:  # the kernel's batch axes broadcast the input's: a larger result
            spec = spec * Hb
        emit(spec, out, batch, rc, stop)

    def emit(spec, dest, bshape, rc, stop):
        """The inverse transform of a task's block spectra ``spec`` (``bshape`` leading
        axes), its blocks' kept samples into ``dest`` (the output, or its filters')."""
        (r0, r1), (c0, c1) = rc
        if prune:
            y = _transform(spec, Ls, real, True, tw, stop, keep)
            y *= scale
        else:
            y = _transform(spec, Ls, real, True, tw, stop)[(Ellipsis,) + keep]
        # y: (..., r, c, nb_3.., B_1..B_d)
        # interleave block and sample axes: (..., r, B_1, c, B_2, nb_3, B_3...), a view
        cnt = (r1 - r0, c1 - c0)[:d] + nbs[2:]
        yt = y.transpose(perm)
        osel = []
        for ax, (a0, a1) in enumerate(((r0, r1), (c0, c1))[:d]):
            osel.append(slice(a0 * Bs[ax], min(lens[ax], a1 * Bs[ax])))
        rest = tuple(slice(0, n) for n in lens[len(osel):])
        od = dest[olead + tuple(osel) + rest]
        # into the output a slab of rows at a time (each a copy of its rows' blocks, about
        # _CUT_ELEMS elements: a Ctrl-C lands between two), never the task's whole output
        nrow = od.shape[nbat]
        widths = tuple(c * B for c, B in zip(cnt[1:], Bs[1:]))
        clip = tuple(slice(0, n) for n in od.shape[nbat + 1:])
        step = max(1, _CUT_ELEMS * max(1, nrow) // max(1, od.size))
        for j in range(cnt[0]):
            for s0 in range(0, Bs[0], step):
                a = j * Bs[0] + s0
                b = min(a + step, (j + 1) * Bs[0], nrow)
                if a >= b:
                    break
                if stop is not None and stop():
                    raise _Cancelled()
                rows = yt[olead + (j, slice(s0, s0 + b - a))]
                dst = od[olead + (slice(a, b),)]
                if d == 2:  # block by block: one strided copy, no reshaped copy of rows
                    _put_blocks(dst, rows, Bs[1])
                else:
                    dst[...] = rows.reshape(bshape + (b - a,) + widths)[
                        olead + (slice(None),) + clip]

    if parallel:
        _run_tasks(task, ranges, workers)
    else:
        for rc in ranges:
            task(rc)
    return out


# --------------------------------------------------------------------------------------------
# scipy.signal's fftconvolve / oaconvolve
# --------------------------------------------------------------------------------------------
def _compute_dtype(a, b):
    def up(dt):
        if dt.kind in "biu":
            return np.dtype(np.float64)
        if dt.kind == "f" and dt.itemsize < 4:
            return np.dtype(np.float32)
        if dt.kind == "f" and dt.itemsize > 8:
            return np.dtype(np.float64)
        if dt.kind == "c" and dt.itemsize > 16:
            return np.dtype(np.complex128)
        if dt.kind not in "fc":
            raise TypeError(f"unsupported dtype {dt} for an FFT convolution")
        return dt
    return np.result_type(up(a.dtype), up(b.dtype))


def _axes(in1, in2, axes, mode):
    """scipy's _init_freq_conv_axes: normalised axes (length-1 axes dropped) and the
    possibly swapped inputs."""
    nd = in1.ndim
    noaxes = axes is None
    if axes is None:
        ax = list(range(nd))
    else:
        ax = np.atleast_1d(axes)
        if ax.ndim != 1 or (ax.size and ax.dtype.kind not in "iu"):
            raise ValueError("axes must be an integer or a sequence of integers")
        ax = [operator.index(a) for a in ax.tolist()]
        if not ax:
            raise ValueError("when provided, axes cannot be empty")
        for a in ax:
            if a < -nd or a >= nd:
                raise ValueError(f"axes exceeds dimensionality of input: {a}")
        ax = [a % nd for a in ax]
        if len(set(ax)) != len(ax):
            raise ValueError("all axes must be unique")
    del noaxes
    s1, s2 = in1.shape, in2.shape
    ax = [a for a in ax if s1[a] != 1 and s2[a] != 1]
    if not all(s1[a] == s2[a] or s1[a] == 1 or s2[a] == 1
               for a in range(nd) if a not in ax):
        raise ValueError(f"incompatible shapes for in1 and in2: {s1} and {s2}")
    if mode == "valid" and s1:
        ok1 = all(s1[i] >= s2[i] for i in ax)
        ok2 = all(s2[i] >= s1[i] for i in ax)
        if not (ok1 or ok2):
            raise ValueError("For 'valid' mode, one must be at least "
                             "as large as the other in every dimension")
        if not ok1:
            in1, in2 = in2, in1
    return in1, in2, ax


def _check_mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    return mode


def _nd_conv(in1, in2, mode, axes):
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    mode = _check_mode(mode)
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.size == 0 or in2.size == 0:
        return np.asarray([])
    dtype = _compute_dtype(in1, in2)
    in1, in2, ax = _axes(in1, in2, axes, mode)
    s1, s2 = in1.shape, in2.shape
    if not ax:
        ret = in1 * in2  # as scipy: no transform, the inputs' own product dtype
    else:
        d = len(ax)
        x = np.moveaxis(in1, ax, range(-d, 0)).astype(dtype, copy=False)
        h = np.moveaxis(in2, ax, range(-d, 0)).astype(dtype, copy=False)
        starts, lens = [], []
        for a in ax:
            n, k = s1[a], s2[a]
            full_n = n + k - 1
            if mode == "full":
                s, ln = 0, full_n
            elif mode == "same":
                s, ln = (full_n - n) // 2, n
            else:
                ln = n - k + 1
                s = (full_n - ln) // 2
            starts.append(s)
            lens.append(ln)
        y = _conv_window(x, h, d, starts, lens, dtype)
        ret = np.moveaxis(y, range(-d, 0), ax)
    if mode == "same":  # scipy's 'same' crops the broadcast axes to in1's size too
        ret = ret[tuple(slice((ret.shape[i] - s1[i]) // 2, (ret.shape[i] - s1[i]) // 2 + s1[i])
                        if i not in ax else slice(None) for i in range(ret.ndim))]
    return np.ascontiguousarray(ret)


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays using FFTs, as ``scipy.signal.fftconvolve``.

    Multithreaded (``workers=`` :func:`fastconv.get_num_threads`), with transform lengths
    from ``scipy.fft.next_fast_len``, real-input transforms for real data and float32 kept
    in single precision. Long inputs are convolved block by block (overlap-save), with the
    block length chosen by a cost model, so a whole-array transform is only one of the
    plans; the result is the same up to float rounding (see :func:`error_bound`).

    Parameters
    ----------
    in1, in2 : array_like
        Inputs with the same number of dimensions; along the non-convolved axes their
        sizes are equal or 1 (broadcast).
    mode : {'full', 'valid', 'same'}, default 'full'
        As scipy: the full convolution, the part not depending on the zero padding (one
        input must be at least as large as the other along every convolved axis), or the
        size of ``in1`` centred on the full output.
    axes : int or sequence of ints, optional
        The axes to convolve over; all by default.

    Returns
    -------
    ndarray
        scipy's result and dtype: float32 for float32 inputs, float64 for integer ones,
        complex for complex ones.

    Raises
    ------
    ValueError
        For a bad mode, mismatched dimensions, incompatible shapes or bad axes.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._fft import fftconvolve
    >>> np.round(fftconvolve([1., 2., 3.], [0., 1., 0.5]), 12)
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> fftconvolve(np.ones((4, 4), np.float32), np.ones((3, 3), np.float32), "valid")
    array([[9., 9.],
           [9., 9.]], dtype=float32)
    """
    return _nd_conv(in1, in2, mode, axes)


def oaconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays by overlap-add, as ``scipy.signal.oaconvolve``.

    The same engine as :func:`fftconvolve` (block-wise overlap-save with cost-model block
    lengths; a kernel close to the input's size gets one block), so the two give the same
    results up to float rounding. Parameters, returns and errors as :func:`fftconvolve`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._fft import oaconvolve
    >>> np.round(oaconvolve(np.arange(6.), [1., 1.], mode="same"), 12)
    array([0., 1., 3., 5., 7., 9.])
    """
    return _nd_conv(in1, in2, mode, axes)


# --------------------------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------------------------
FFT_EPS_FACTOR = 2.0
"""Constant ``c`` of :func:`error_bound`: ``|fft - exact| <= c * eps * log2(L) * sum|x|*sum|w|``
per output, with ``L`` the transform size. The worst measured case (one-hot inputs, where
``sum|x|*sum|w|`` is as small as the outputs allow) sits near ``0.1 * eps * log2(L)``; random
data sits orders of magnitude lower (docs/guide/fft.md)."""


def error_bound(in1, in2, axes=None, dtype=None):
    """Bound on the FFT path's absolute error per output, relative to ``sum|x| * sum|w|``.

    The FFT path's error on each output is at most
    ``error_bound(...) * sum(|in1|) * sum(|in2|)`` (sums over the convolved axes), where
    ``error_bound = FFT_EPS_FACTOR * eps(dtype) * log2(L)`` and ``L`` is the product of the
    transform lengths (at most ``prod(n + k - 1)`` rounded up to a fast length). It is the
    classical ``O(eps log L)`` bound of FFT convolution (a transform's error relative to the
    data's 2-norm, times the product's norms, bounded by the 1-norms).

    Parameters
    ----------
    in1, in2 : array_like or shape tuples
        The inputs (or their shapes).
    axes : sequence of ints, optional
        The convolved axes; all by default.
    dtype : dtype, optional
        The computing dtype; by default the FFT path's for the inputs (float64 for shapes).

    Returns
    -------
    float

    Examples
    --------
    >>> from fastconv._fft import error_bound
    >>> error_bound((1000,), (101,), dtype="float32") < 1e-4
    True
    """
    s1 = in1 if isinstance(in1, tuple) else np.shape(in1)
    s2 = in2 if isinstance(in2, tuple) else np.shape(in2)
    if dtype is None:
        if isinstance(in1, tuple) or isinstance(in2, tuple):
            dtype = np.float64
        else:
            dtype = _compute_dtype(np.asarray(in1), np.asarray(in2))
    dt = np.dtype(dtype)
    eps = np.finfo(dt).eps
    ax = range(len(s1)) if axes is None else axes
    L = 1
    for a in ax:
        L *= _fast(s1[a] + s2[a] - 1, dt.kind != "c")
    return float(FFT_EPS_FACTOR * eps * max(1.0, math.log2(max(L, 2))))


# --------------------------------------------------------------------------------------------
# the direct-or-FFT choice
# --------------------------------------------------------------------------------------------
def _kinds(*arrs):
    return [np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype for a in arrs]


def direct_seconds(out_size, kernel_size, itemsize, cplx=False, ndim=2):
    """Modelled seconds of fastconv's direct path: ``out_size * kernel_size`` MACs (at the
    1-D kernel's rate for ``ndim`` 1)."""
    macs = float(out_size) * float(kernel_size) * (4 if cplx else 1)
    rate = (_DIRECT_RATE_1D if ndim == 1 else _DIRECT_RATE)[itemsize]
    return _DIRECT_OVERHEAD + macs / rate


def choose_method(in1, in2, mode="full", axes=None):
    """``"direct"`` or ``"fft"``: the faster of fastconv's two paths for these shapes.

    Decided from the shapes and dtypes only (no trial run): integer and bool inputs take
    the direct path (exact results, as ``scipy.signal.choose_conv_method``); otherwise the
    direct path's multiply-accumulates at its measured rate are compared with the FFT
    engine's modelled transform work at its measured rate (calibration in
    ``docs/guide/fft.md``).

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, as for :func:`fftconvolve`.
    mode : {'full', 'valid', 'same'}, default 'full'
    axes : int or sequence of ints, optional

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._fft import choose_method
    >>> choose_method(np.ones(10**6), np.ones(3))
    'direct'
    >>> choose_method(np.ones(10**6), np.ones(1001))
    'fft'
    >>> choose_method(np.ones(10**6, int), np.ones(1001, int))
    'direct'
    """
    a = in1 if hasattr(in1, "dtype") and hasattr(in1, "shape") else np.asarray(in1)
    b = in2 if hasattr(in2, "dtype") and hasattr(in2, "shape") else np.asarray(in2)
    mode = _check_mode(mode)
    if a.dtype.kind in "biu" or b.dtype.kind in "biu" or a.dtype.kind not in "fc" \
            or b.dtype.kind not in "fc":
        return "direct"
    if a.ndim != b.ndim or a.ndim == 0 or a.size == 0 or b.size == 0:
        return "direct"
    try:
        a, b, ax = _axes(a, b, axes, mode)
    except ValueError:
        return "direct"
    if not ax:
        return "direct"
    dt = _compute_dtype(a, b)
    cplx = dt.kind == "c"
    item = dt.itemsize // (2 if cplx else 1)
    lens, ks = [], []
    for i in ax:
        n, k = a.shape[i], b.shape[i]
        lens.append(n + k - 1 if mode == "full" else n if mode == "same" else n - k + 1)
        ks.append(k)
    batch = 1
    for i in range(a.ndim):
        if i not in ax:
            batch *= max(a.shape[i], b.shape[i])
    out = batch * math.prod(lens)
    kern = math.prod(ks)
    t_direct = direct_seconds(out, kern, item, cplx, len(ks))
    t_fft = _FFT_OVERHEAD + batch * fft_seconds(lens, ks, not cplx, item, batch=batch)
    return "fft" if t_fft < t_direct else "direct"


def choose_shapes(out_shape, kshape, dtype, batch=1):
    """:func:`choose_method`'s decision from the output window's shape, the kernel's shape
    and the (float) computing dtype: ``"direct"`` or ``"fft"``."""
    dt = np.dtype(dtype)
    if dt.kind not in "fc":
        return "direct"
    cplx = dt.kind == "c"
    item = dt.itemsize // (2 if cplx else 1)
    lens = [int(n) for n in out_shape]
    ks = [int(k) for k in kshape]
    if min(lens) <= 0 or math.prod(ks) <= 1:
        return "direct"
    t_direct = direct_seconds(batch * math.prod(lens), math.prod(ks), item, cplx, len(ks))
    t_fft = _FFT_OVERHEAD + batch * fft_seconds(lens, ks, not cplx, item, batch=batch)
    return "fft" if t_fft < t_direct else "direct"


# --------------------------------------------------------------------------------------------
# conv1d / conv2d layers: many filters share each input plane's transforms
# --------------------------------------------------------------------------------------------
_SPECTRAL_MAC_RATE = {4: 1.5e9, 8: 1.0e9}  # complex multiply-adds per second (numpy, measured)
# transform work per second of the conv layers' plan (_plan.conv2d_fft against MAC_RATE;
# calibrated on their own, docs/guide/fft.md)
_LAYER_FFT_RATE = {(True, 4): 1.6e9, (True, 8): 1.1e9}
_LAYER_FFT_OVERHEAD = 60e-6


def conv_layer_seconds(x_shape, w_shape, out_shape, groups, itemsize):
    """Modelled seconds of :func:`conv_layer` (stride 1): per image, the input planes'
    forward and the output planes' inverse block transforms, and the spectral sums over
    channels."""
    N, C = x_shape[0], x_shape[1]
    K, Cg = w_shape[0], w_shape[1]
    lens = [n for n in out_shape[2:] if True]
    ks = list(w_shape[2:])
    if lens and ks and ks[0] == 1 and lens[0] == 1:  # 1-D as (1, L)
        lens, ks = lens[1:], ks[1:]
    plan = _plan_blocks(lens, ks, True)
    spectral = 1
    for (L, B), n in zip(plan, lens):
        spectral *= -(-n // B) * L
    # one direction of one plane, at the rates the layers' plan was calibrated with
    half = fft_seconds(lens, ks, True, itemsize, _LAYER_FFT_RATE) / 2
    return (_LAYER_FFT_OVERHEAD + N * (C + K) * half
            + N * K * Cg * spectral / 2 / _SPECTRAL_MAC_RATE[itemsize])


def conv_layer(x, w, pad, dilation, groups, out):
    """Stride-1 cross-correlation of a (N, C, H, W) input (implicit zero padding ``pad`` =
    (top, left)) with (K, C/groups, kh, kw) filters into ``out`` (N, K, Ho, Wo), by the FFT
    engine with the channel sum taken on the spectra: one transform per input block and
    channel, shared by every filter. ``dilation`` spreads the taps (zeros between them)."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    dh, dw = dilation
    if (dh, dw) != (1, 1):
        wd = np.zeros((K, Cg, (kh - 1) * dh + 1, (kw - 1) * dw + 1), w.dtype)
        wd[:, :, ::dh, ::dw] = w
        w = wd
        kh, kw = w.shape[2:]
    Ho, Wo = out.shape[2:]
    h = w[:, :, ::-1, ::-1]
    Kg = K // groups
    one_d = kh == 1 and H == 1 and Ho == 1
    for g in range(groups):
        xg = x[:, g * Cg:(g + 1) * Cg]
        hg = h[g * Kg:(g + 1) * Kg]
        if one_d:
            _conv_window(xg[:, :, 0], hg[:, :, 0], 1, [kw - 1 - pad[1]], [Wo], out.dtype,
                         reduce=True, out=out[:, g * Kg:(g + 1) * Kg, 0])
        else:
            _conv_window(xg, hg, 2, [kh - 1 - pad[0], kw - 1 - pad[1]], [Ho, Wo],
                         out.dtype, reduce=True, out=out[:, g * Kg:(g + 1) * Kg])
    return out
