"""The per-call fast path of conv1d/conv2d and of their input and weight gradients
(:mod:`fastconv.grad`; the section at the end): one cached plan per (shapes, dtypes,
options).

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

from . import _chunks, _dispatch, _plan, _postconditions, _threads, _tiling
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


# --------------------------------------------------------------------------------------------
# the gradients: fastconv.grad's conv1d/conv2d_input and conv1d/conv2d_weight
# --------------------------------------------------------------------------------------------
# The same cache and the same rules as the forward's, for the kernel call that the full path
# (fastconv.grad: spec, then fastconv._dispatch.run and its postconditions) makes as one
# call: a planned key runs that kernel on the caller's arrays directly, with the plan's
# algorithm and thread count, under the BLAS hold when that algorithm calls BLAS. About 27
# us of Python per call went to the spec and dispatch (AMD EPYC Zen 4), against 200 us for
# the kernels of lenet2's gradients. The weight gradient's postcondition (a non-finite
# grad_output meeting the zero padding, fastconv._postconditions) is planned only where
# every output's window reaches the input: then a finite result is the full path's, and a
# non-finite one sends the call to the full path, which decides.
class GradPlan(tuple):
    """(fn, kernel op, arr_shape, gy_shape, grad_shape, result_shape, dtype, stride, pad,
    dilation, groups, algo, nthreads, blas, check_finite): ``arr`` is the weight of an input
    gradient, the input of a weight gradient; ``kernel op`` "conv3d_weight" for Cython's
    weight gradient taken as a 3-D one (``_plan.conv2d_weight_as_3d``)."""

    __slots__ = ()


def grad_key(op, arr, size, grad_output, stride, padding, dilation, groups, padding_mode,
             backend, nd):
    """The cache key of a gradient call ``op`` ("conv2d_input": ``arr`` the weight, ``size``
    the input_size; "conv2d_weight": ``arr`` the input, ``size`` the weight_size), or None
    when its arguments are not all plain (:func:`key`). Besides :func:`key`'s settings it
    holds ``_tiling.LIMIT``, which decides whether a long row's call is tiled."""
    if type(arr) is not np.ndarray or type(grad_output) is not np.ndarray:
        return None
    plain = S._plain
    if not (plain(size) and plain(stride) and plain(padding) and plain(dilation)
            and plain(groups) and type(padding_mode) is str
            and (backend is None or type(backend) is str)):
        return None
    return (op, nd, size, arr.shape, arr.dtype, grad_output.shape, grad_output.dtype, stride,
            padding, dilation, groups, padding_mode,
            _dispatch.get_backend() if backend is None else backend,
            _threads._num_threads, _threads.GRAIN_FLOPS, _chunks.SPLIT_SECONDS, _tiling.LIMIT)


def grad_run(plan, arr, grad_output):
    """The planned gradient kernel call on these arrays: the result as the public function
    returns it, or None when a check fails (the caller then takes the full path)."""
    (fn, kop, as_, gs, grad_shape, rs, dtype, stride, pad, dilation, groups, algo, nt, blas,
     check_finite) = plan
    if _threads._fork["child"]:
        return None
    fa, fg = arr.flags, grad_output.flags
    if not (fa.c_contiguous and fa.aligned and fg.c_contiguous and fg.aligned):
        return None
    res = np.empty(grad_shape, dtype)
    a = arr if arr.shape == as_ else arr.reshape(as_)
    g = grad_output if grad_output.shape == gs else grad_output.reshape(gs)
    if kop == "conv2d_input":
        args = (g, a, res, stride, pad, dilation, groups)
    elif kop == "conv2d_weight":
        args = (a, g, res, stride, pad, dilation, groups)
    else:  # Cython's weight gradient on a depth of 1 (fastconv.grad._run_conv_grad)
        args = (a[:, :, None], g[:, :, None], res[:, :, None], (1,) + stride, (0,) + pad,
                (1,) + dilation, groups)
    try:
        if algo is None:
            fn(*args, nt)
        elif blas:
            with _threads.blas_single_threaded():
                fn(*args, algo, nt)
        else:
            fn(*args, algo, nt)
    except SystemError as exc:  # a SIGINT inside a Numba call
        _chunks._reraise_interrupt(exc)
        raise
    if check_finite and not np.isfinite(res).all():
        return None  # the full path decides whether it met the padding
    return res if grad_shape == rs else res.reshape(rs)


def grad_remember(k, name, spec, res, arr, grad_output, kop, kargs) -> None:
    """Plan the gradient call ``k`` (:func:`grad_key`) that the full path just ran whole,
    as the one kernel call ``kop`` on ``kargs`` (None: not one call, e.g. tiled along a
    long row), into ``res``, if the module docstring's conditions hold (:func:`remember`)."""
    if _threads.forked_child():
        return
    op, mode, backend, nthreads, grain, split = k[0], k[11], k[12], k[13], k[14], k[15]
    dtype = spec.dtype
    if (name == "numpy" or mode != "zeros" or not dtype.isnative or k[4] != dtype
            or k[6] != dtype or kop is None or _plan.seconds(kop, name, kargs) > split):
        _keep(k, NO_PLAN)
        return
    check_finite = False
    if op == "conv2d_weight" and any(p for p in spec.pad):
        geo = spec.geo
        if any(_postconditions._tapless(size, out, kk, s, d, pair[0]).size for
               size, out, kk, s, d, pair in
               zip(spec.x.shape[2:], geo.out_shape[2:], geo.w_shape[2:], geo.stride,
                   geo.dilation, geo.pairs)):
            _keep(k, NO_PLAN)  # some windows miss the input: the full path scans for them
            return
        check_finite = True
    # the call's own arrays, passed on as they were (no copy, no explicit padding)
    mine = spec.weight if op == "conv2d_input" else spec.x
    if spec.empty or res.size == 0 or not (
            _ready(arr, dtype) and _ready(grad_output, dtype)
            and mine.ctypes.data == arr.ctypes.data
            and spec.grad_output.ctypes.data == grad_output.ctypes.data):
        return
    if _dispatch.resolve(backend, op) != name:
        return
    fn_name, fn = _dispatch.kernel(kop, name)
    if fn_name != name or (name, kop) not in _dispatch._first_call_s:
        return
    amount, _ = _plan.work(kop, kargs)
    nt = _threads.threads_for(amount, grain, nthreads)
    algo = _plan.algorithm(kop, name, kargs)
    blas = algo is not None and _dispatch._calls_blas(name, kop, algo, kargs)
    _keep(k, GradPlan((fn, kop, mine.shape, spec.grad_output.shape, res.shape,
                       spec.result_shape, dtype, spec.stride, spec.pad, spec.dilation,
                       spec.groups, algo, nt, blas, check_finite)))
