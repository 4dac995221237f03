"""The per-call fast path of conv1d/conv2d: one cached plan per (shapes, dtypes, options).

A training loop or a stream of small images calls the same layer with the same shapes over
and over. The full path validates and normalizes every argument
(:func:`fastconv._spec.conv_spec`), resolves the backend, asks the plan for an algorithm
and a thread count, and walks the postconditions and the Ctrl-C pieces
(:mod:`fastconv._dispatch`): about 10 us of Python around a kernel that takes 3 us on a
1x1x8x8 input.

Here a call whose key was planned before calls that kernel directly with the plan's
normalized arguments. The key holds the arrays' shapes and dtypes, every other argument,
the backend in force, the thread count, and two module settings the plan reads and tests
change (the thread grain, ``_threads.GRAIN_FLOPS``, and the Ctrl-C split,
``_chunks.SPLIT_SECONDS``); the planner's other constants are taken as fixed for the
process. The plan is made by the full path's own functions, after a call that went
through it, and only for calls where the full path does nothing but that kernel call:

- plain arguments only (ints, strs and tuples of ints: a bool never reaches a key, see
  :func:`fastconv._spec._plain`); ``numpy.ndarray`` inputs, exactly;
- x, weight (and bias) already of the result dtype, native byte order, C-contiguous and
  aligned (the full path would pass them on as they are: no copy, no padding copy), a
  non-empty batch and output (no postcondition acts), zero padding mode;
- a compiled backend, an algorithm that does not call BLAS (no BLAS thread hold to set),
  a call estimated below the Ctrl-C split (one piece), too few taps for the FFT layer path
  (whose choice reads the weight's values), and, for conv1d, a row the full path does not
  cut into segments;
- not in a forked child (:mod:`fastconv._threads`: fork safety).

A call whose arrays fail a check (not C-contiguous, another dtype, an ``out=`` that may
overlap an input) takes the full path, which validates it as always. Results are the
kernel's, bitwise the full path's. ``clear()`` empties the cache (a test that changes the
planner's rules).
"""

from __future__ import annotations

import numpy as np

from . import _chunks, _dispatch, _plan, _threads
from . import _spec as S

_CACHE: dict = {}
_CACHE_SIZE = 256


class Plan(tuple):
    """(fn, x_shape, w_shape, out_shape, result_shape, dtype, bias, stride, pad, dilation,
    groups, algo, nthreads): the kernel and its normalized arguments."""

    __slots__ = ()


NO_PLAN = ()  # a key whose calls can never be planned (false, as no Plan is)


def clear() -> None:
    _CACHE.clear()


def key(x, weight, bias, stride, padding, dilation, groups, padding_mode, backend, nd):
    """The cache key of a call, or None when its arguments are not all plain. Besides the
    arguments it holds what the plan's choices read: the backend in force, the thread count,
    the thread grain and the Ctrl-C split (module settings a test may change)."""
    if type(x) is not np.ndarray or type(weight) is not np.ndarray:
        return None
    if bias is None:
        bk = None
    elif type(bias) is np.ndarray:
        bk = (bias.shape, bias.dtype)
    else:
        return None
    plain = S._plain
    if not (plain(stride) and plain(padding) and plain(dilation) and plain(groups)
            and type(padding_mode) is str and (backend is None or type(backend) is str)):
        return None
    return (nd, x.shape, x.dtype, weight.shape, weight.dtype, bk, stride, padding, dilation,
            groups, padding_mode, _dispatch.get_backend() if backend is None else backend,
            _threads._num_threads, _threads.GRAIN_FLOPS, _chunks.SPLIT_SECONDS)


def _ready(a, dtype) -> bool:
    """Whether the full path would hand ``a`` to the kernel as it is: of the kernel's dtype,
    C-contiguous and aligned (``_spec.prepare``, ``numpy.ascontiguousarray``, then returns
    a view of it, never a copy)."""
    f = a.flags
    return a.dtype == dtype and f.c_contiguous and f.aligned


def run(plan, x, weight, bias, out):
    """The planned kernel call on these arrays, into ``out`` (None: a new array); the result
    as the public function returns it, or None when a check fails (the caller then takes
    the full path)."""
    (fn, xs, ws, os_, rs, dtype, b0, stride, pad, dilation, groups, algo, nt) = plan
    if _threads._fork["child"]:  # _threads.forked_child(), read inline on the hot path
        return None
    fx, fw = x.flags, weight.flags
    if not (fx.c_contiguous and fx.aligned and fw.c_contiguous and fw.aligned):
        return None
    if bias is None:
        b = b0
    else:
        fb = bias.flags
        if not (fb.c_contiguous and fb.aligned):
            return None
        b = bias
    if out is None:
        res = np.empty(os_, dtype)
    else:
        if type(out) is not np.ndarray or out.shape != rs or out.dtype != dtype:
            return None
        fo = out.flags
        if not (fo.c_contiguous and fo.writeable) or np.may_share_memory(out, x) \
                or np.may_share_memory(out, weight) \
                or (bias is not None and np.may_share_memory(out, bias)):
            return None  # the full path checks exactly, and raises for an overlap
        res = out.reshape(os_)
    if x.shape != xs:
        x = x.reshape(xs)
    if weight.shape != ws:
        weight = weight.reshape(ws)
    try:
        fn(x, weight, b, res, stride, pad, dilation, groups, algo, nt)
    except SystemError as exc:  # a SIGINT inside a Numba call
        _chunks._reraise_interrupt(exc)
        raise
    if out is not None:
        return out
    return res if os_ == rs else res.reshape(rs)


def remember(k, name, spec, res, x, weight, bias) -> None:
    """Plan the call ``k`` (:func:`key`) that the full path just ran whole (as one call of
    the conv2d kernel of backend ``name`` on ``spec``, into ``res``), if the module
    docstring's conditions hold. The plan takes its backend, thread count, grain and split
    from ``k``, never from the settings now (another thread may have changed them since
    the key was made). A key whose calls can never be planned is kept as :data:`NO_PLAN`,
    so that later calls neither try the plan nor plan again."""
    if _threads.forked_child():
        return
    (_, _, _, _, _, _, _, _, _, _, mode, backend, nthreads, grain, split) = k
    dtype = spec.dtype
    op = "conv2d"
    args = spec.kernel_args(res)
    if (name == "numpy" or mode != "zeros" or not dtype.isnative
            or k[2] != dtype or k[4] != dtype or (k[5] is not None and k[5][1] != dtype)
            or spec.weight.shape[-1] * spec.weight.shape[-2] >= _plan.FFT_MIN_TAPS
            or _plan.seconds(op, name, args) > split):
        _keep(k, NO_PLAN)
        return
    algo = _plan.algorithm(op, name, args)
    if _dispatch._calls_blas(name, op, algo):
        _keep(k, NO_PLAN)
        return
    # the call's own arrays: planned only from one the full path passed on as it was
    if spec.x.size == 0 or 0 in spec.out_shape or not (
            _ready(x, dtype) and _ready(weight, dtype) and (bias is None or _ready(bias, dtype))):
        return
    if _dispatch.resolve(backend) != name:
        return  # the default backend changed during the call: the kernel is another key's
    fn_name, fn = _dispatch.kernel(op, name)
    if fn_name != name or (name, op) not in _dispatch._first_call_s:
        return
    amount, _ = _plan.work(op, args)
    nt = _threads.threads_for(amount, grain, nthreads)
    # the plan's zeros for a call without bias (the kernels only read them; writeable, as
    # the full path's are: Numba types a read-only array apart, and would compile again)
    b0 = spec.bias if bias is None else None
    _keep(k, Plan((fn, spec.x.shape, spec.weight.shape, spec.out_shape, spec.result_shape,
                   dtype, b0, spec.stride, spec.pad, spec.dilation, spec.groups, algo, nt)))


def _keep(k, plan):
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[k] = plan
