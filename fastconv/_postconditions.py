"""The semantic rules that the kernels do not honour themselves, in one table.

The kernels (:mod:`fastconv.reference`, ``fastconv._cy_*``, :mod:`fastconv._numba`) trust
their input and compute one thing fast. A few results must hold that some of them do not
give on their own; each such rule is one entry of :data:`POSTCONDITIONS`, applied by
:func:`fastconv._dispatch.run` around every kernel call of the ops it names (the whole
call: pieces cut by :mod:`fastconv._chunks`, and grad.py's long-row tiles, run below it),
and tested by its own test in ``tests/test_postconditions.py``.

An entry's ``function(op, backend, spec, out, compute)`` computes ``out`` from ``spec``
with ``compute(op, backend, spec, out)`` (the kernel, or the next entry's function) and
makes the rule hold: it may skip the kernel, hand it a corrected spec, or run it again.
``backend`` is the resolved backend name.

The entries (each function's docstring says more):

* ``empty_batch`` (every op): an empty call runs no kernel and gives zeros. The kernels'
  block arithmetic is not written for N == 0 (Cython's pools divided by zero). The
  ndimage kernels (``nd_*``) have no batch axis: their call is empty when the output has
  no element (an input with any zero-length axis, which scipy accepts), or, for
  ``nd_correlate``, when every tap is one scipy skips (a sum over no terms).
* ``indices_outside_plane`` (``max_pool2d_backward``): an index outside the input plane
  adds nothing. The kernels scatter through the indices unchecked.
* ``nonfinite_meets_padding`` (``conv2d_weight``): a non-finite ``grad_output`` value
  that meets the zero padding gives NaN (inf * 0), as in torch and the reference. The
  compiled direct loops skip the padding taps.

Moving a rule into the kernels would mean the same change in three backends' loops (and
a cost in their inner loops); here each is a few lines run once per call.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np

from . import _spec as S

__all__ = ["Postcondition", "POSTCONDITIONS", "apply"]

ALL_OPS = frozenset({"conv2d", "max_pool2d", "avg_pool2d", "locally_connected2d",
                     "max_pool3d",
                     "avg_pool3d",
                     "avg_pool3d_backward",
                     "adaptive_avg_pool3d", "adaptive_max_pool3d",
                     "adaptive_avg_pool3d_backward",
                     "conv2d_input", "conv2d_weight", "max_pool2d_backward",
                     "avg_pool2d_backward",
                     "unfold",
                     "fold",
                     "max_unpool",
                     "max_unpool_backward",
                     "conv3d",
                     "conv3d_input",
                     "conv3d_weight",
                     # ndimage (issue 18): empty means no output element (see _empty_batch)
                     "nd_correlate1d", "nd_uniform1d", "nd_correlate", "nd_sepcorr",
                     "nd_sepbox",
                     })


class Postcondition(NamedTuple):
    """One rule: the ops it applies to, the function that makes it hold (see the module
    docstring), why it lives here, and the test that fails without it."""

    ops: frozenset
    function: Callable
    reason: str
    test: str


# --------------------------------------------------------------------------------------------
# empty_batch
# --------------------------------------------------------------------------------------------
def _empty_batch(op, backend, spec, out, compute):
    """An empty call (an empty batch, N == 0: the one empty dimension validation lets
    through, as in torch; or an empty max-pool ``grad_output``) runs no kernel, and its
    output is zeros: empty, or a sum over no terms (the weight gradient; the input gradient
    of a max-pool whose pooled plane is empty).

    The ndimage kernels have no batch axis, and scipy accepts an input with any
    zero-length axis: their call is empty when the output (of the input's shape) has no
    element, and nd_correlate's also when no tap is left (scipy skips the weights with
    ``|w| <= eps``): zeros, a sum over no terms."""
    if spec.empty:
        out[...] = 0
        return
    compute(op, backend, spec, out)


# --------------------------------------------------------------------------------------------
# indices_outside_plane
# --------------------------------------------------------------------------------------------
def _indices_outside_plane(op, backend, spec, out, compute):
    """An index outside the input plane adds nothing. max_pool2d returns one (as torch
    does) for a window that sees only padding (a dilated window whose taps straddle the
    input), whose output does not depend on the input. The kernels, which index unchecked,
    get an in-plane index and a zero there (copies, never the caller's arrays)."""
    idx = spec.indices
    plane = out.shape[2] * out.shape[3]
    if idx.size and (idx.min() < 0 or idx.max() >= plane):
        outside = (idx < 0) | (idx >= plane)
        spec = spec._replace(indices=np.where(outside, 0, idx),
                             grad_output=np.where(outside, 0, spec.grad_output))
    compute(op, backend, spec, out)


# --------------------------------------------------------------------------------------------
# nonfinite_meets_padding
# --------------------------------------------------------------------------------------------
def _nonfinite_meets_padding(op, backend, spec, out, compute):
    """inf * 0 is NaN where a non-finite ``grad_output`` value meets the zero padding.

    The compiled direct loops skip the taps that fall in the zero padding, so an inf or NaN
    of grad_output never meets a padding zero there; in torch and the reference it does.
    When it may have (:func:`_meets_padding`, conservative), the call is run again on the
    input with its zeros made explicit."""
    compute(op, backend, spec, out)
    geo = spec.geo
    if (backend != "numpy" and geo.padding_mode == "zeros" and any(b or a for b, a in geo.pairs)
            and _meets_padding(spec, out)):
        S.check_alloc(S.padded_shape(geo), spec.dtype.itemsize, "the padded input")
        xp = np.pad(spec.x, ((0, 0), (0, 0)) + tuple(geo.pairs))
        compute(op, backend, spec._replace(x=xp, pad=(0, 0)), out)


def _meets_padding(spec, gw) -> bool:
    """Whether a non-finite grad_output value may meet the zero padding (conservative).

    A non-finite value that meets any input value makes its taps of ``gw`` non-finite, so a
    finite ``gw`` (checked first: it is small) rules it out, except at the outputs whose
    window has no tap inside the input at all (on one axis every tap falls in the padding,
    or, dilated, on both sides of the input); only those outputs of grad_output are
    scanned."""
    if not np.isfinite(gw).all():
        return True
    geo, g = spec.geo, spec.grad_output
    empty = [_tapless(size, out, k, s, d, pair[0]) for size, out, k, s, d, pair in
             zip(spec.x.shape[2:], geo.out_shape[2:], geo.w_shape[2:], geo.stride,
                 geo.dilation, geo.pairs)]
    return bool((empty[0].size and not np.isfinite(g[:, :, empty[0], :]).all())
                or (empty[1].size and not np.isfinite(g[:, :, :, empty[1]]).all()))


def _tapless(size, out, k, stride, dilation, before):
    """The outputs i (sorted int64) whose taps along one axis all miss the input's ``size``
    positions.

    Output i's taps are ``i * stride - before + j * dilation``, j < k: the first one at or
    past 0 is tap ``j0 = ceil((before - i * stride) / dilation)`` (0 if none is negative),
    and the window misses the input when there is no such tap or it lies past the end.
    Only the windows that do not lie inside the input (a few at each edge, as many as the
    padding allows) are looked at: nothing the length of a long row is allocated
    (issue 15)."""
    span = dilation * (k - 1) + 1
    lo = min(out, -(-before // stride))  # windows [lo, hi) lie inside: never tapless
    hi = max(lo, min(out, (size - span + before) // stride + 1))
    if lo + out - hi <= 64:
        # a few edge windows (the usual case: a padding of a tap or two), in plain Python:
        # numpy's arrays took 15 us a call, a fifth of a small weight gradient's
        miss = []
        for i in (*range(lo), *range(hi, out)):
            start = i * stride - before
            j0 = max(0, -(start // dilation))
            if j0 >= k or start + j0 * dilation >= size:
                miss.append(i)
        return np.array(miss, dtype=np.int64)
    edge = np.concatenate([np.arange(lo), np.arange(hi, out)]).astype(np.int64)
    start = edge * stride - before
    j0 = np.maximum(0, -(start // dilation))
    return edge[(j0 >= k) | (start + j0 * dilation >= size)]


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
_TESTS = "tests/test_postconditions.py::"


class _Table(dict):
    """A dict that forgets :func:`apply`'s per-op lists whenever an entry is set or
    deleted (a test removes one with ``monkeypatch.delitem``)."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        _BY_OP.clear()

    def __delitem__(self, key):
        super().__delitem__(key)
        _BY_OP.clear()


_BY_OP: dict = {}  # op -> the functions of its entries, in the table's order

POSTCONDITIONS = _Table({
    "empty_batch": Postcondition(
        ALL_OPS, _empty_batch,
        "the kernels' block arithmetic is not written for an empty batch (for ndimage, "
        "which has no batch axis: an empty output, or no tap left)",
        _TESTS + "test_issue16_postcondition_empty_batch"),
    "indices_outside_plane": Postcondition(
        frozenset({"max_pool2d_backward"}), _indices_outside_plane,
        "the kernels scatter through the indices unchecked",
        _TESTS + "test_issue16_postcondition_indices_outside_plane"),
    "nonfinite_meets_padding": Postcondition(
        frozenset({"conv2d_weight"}), _nonfinite_meets_padding,
        "the compiled direct loops skip the taps in the zero padding",
        _TESTS + "test_issue16_postcondition_nonfinite_meets_padding"),
})


def apply(op, backend, spec, out, compute):
    """``compute(op, backend, spec, out)`` under the entries of :data:`POSTCONDITIONS`
    that name ``op``, in the table's order (the first one outermost)."""
    fns = _BY_OP.get(op)
    if fns is None:
        fns = _BY_OP[op] = tuple(p.function for p in POSTCONDITIONS.values() if op in p.ops)
    if len(fns) == 1:  # most ops: the empty-batch rule only
        fns[0](op, backend, spec, out, compute)
    else:
        _chain(fns, op, backend, spec, out, compute)


def _chain(fns, op, backend, spec, out, compute):
    if len(fns) > 1:
        fns[0](op, backend, spec, out, functools.partial(_rest, fns[1:], compute))
    elif fns:
        fns[0](op, backend, spec, out, compute)
    else:
        compute(op, backend, spec, out)


def _rest(fns, compute, op, backend, spec, out):
    _chain(fns, op, backend, spec, out, compute)
