"""Issue 16: the rules the kernels leave to dispatch live in one table,
``fastconv._postconditions.POSTCONDITIONS``, and each has its test here.

Each test checks its rule through ``fastconv._dispatch.run`` (or the public function that
calls it), then checks that the same check fails once the entry is removed from the table:
the entry, and nothing else, makes the rule hold. Where a real kernel would misbehave
without the rule (an empty batch, an index outside the plane), a spy kernel stands in for
it, so that the check without the entry fails instead of crashing.
"""

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch
from fastconv import _ndspec as ND
from fastconv import _spec as S
from fastconv import grad as G
from fastconv._postconditions import POSTCONDITIONS

from conftest import BACKENDS

COMPILED = [b for b in BACKENDS if b != "numpy"]


def _with_and_without(name, check, *args):
    """``check(monkeypatch, *args)`` passes, and fails once the entry ``name`` is gone from
    the table (each with a monkeypatch of its own, undone before returning)."""
    with pytest.MonkeyPatch.context() as m:
        check(m, *args)
    with pytest.MonkeyPatch.context() as m:
        m.delitem(POSTCONDITIONS, name)
        with pytest.raises(AssertionError):
            check(m, *args)


def _spy_kernels(monkeypatch):
    """Replace every kernel by one that records (op, args) and computes nothing."""
    calls = []

    def kernel(op, backend=None):
        name = _dispatch.resolve(backend, op)
        return name, lambda *args: calls.append((op, args))

    monkeypatch.setattr(_dispatch, "kernel", kernel)
    return calls


# --------------------------------------------------------------------------------------------
# the table itself
# --------------------------------------------------------------------------------------------
def test_issue16_postconditions_table_names_known_ops_and_its_tests():
    """Every entry applies to ops that dispatch knows, says why, and names a test of this
    file that exists."""
    assert set(POSTCONDITIONS) == {"empty_batch", "indices_outside_plane",
                                   "nonfinite_meets_padding"}
    for name, p in POSTCONDITIONS.items():
        assert p.ops and p.ops <= set(_dispatch._FAMILY), name
        assert callable(p.function) and p.reason, name
        path, test = p.test.split("::")
        assert path == "tests/test_postconditions.py" and test in globals(), p.test
        assert test == f"test_issue16_postcondition_{name}"
    assert POSTCONDITIONS["empty_batch"].ops == frozenset(_dispatch._FAMILY)


# --------------------------------------------------------------------------------------------
# the specs run() takes
# --------------------------------------------------------------------------------------------
def _specs(batch):
    """{op: spec} of a small call of every op, with ``batch`` images."""
    x, w = np.ones((batch, 2, 5, 5)), np.ones((4, 2, 3, 3))
    gy = np.ones((batch, 4, 5, 5))
    gp = np.ones((batch, 2, 2, 2))
    x3, w3 = np.ones((batch, 2, 4, 5, 5)), np.ones((4, 2, 3, 3, 3))
    gy3 = np.ones((batch, 4, 4, 5, 5))
    return {
        "conv2d": S.conv_spec(x, w, None, 1, 1, 1, 1, "zeros", 2),
        "max_pool2d": S.pool_spec(x, 2, None, 0, 1, False, 2, op="max_pool2d",
                                  return_indices=True),
        "avg_pool2d": S.pool_spec(x, 2, None, 0, 1, False, 2, op="avg_pool2d"),
        "locally_connected2d": S.local_spec(x, np.ones((3, 3, 4, 2, 3, 3)), None, 1, 0),
        "conv2d_input": S.conv_input_grad_spec(x.shape, w, gy, 1, 1, 1, 1, "zeros", 2),
        "conv2d_weight": S.conv_weight_grad_spec(x, w.shape, gy, 1, 1, 1, 1, "zeros", 2),
        "max_pool2d_backward": S.max_pool_grad_spec(gp, np.zeros(gp.shape, int), x.shape, 2),
        "avg_pool2d_backward": S.avg_pool_grad_spec(gp, x.shape, 2, None, 0, False, True),
        # ---- pool3d (issue 17) ----
        "max_pool3d": S.pool_spec(x[:, :, None], (1, 2, 2), None, 0, 1, False, 3,
                                  op="max_pool3d", return_indices=True),
        "avg_pool3d": S.pool_spec(x[:, :, None], (1, 2, 2), None, 0, 1, False, 3,
                                  op="avg_pool3d", divisor_override=3),
        "avg_pool3d_backward": S.avg_pool_grad_spec(gp[:, :, None], x[:, :, None].shape,
                                                    (1, 2, 2), None, 0, False, True, 3),
        "unfold": S.unfold_spec(x, 3, 1, 1, 2),
        "fold": S.fold_spec(np.ones((batch, 18, 9)), (5, 5), 3, 1, 1, 2),
        "max_unpool": S.unpool_spec(gp, np.zeros(gp.shape, int), 2, None, 0, None, 2),
        "max_unpool_backward": S.unpool_grad_spec(x, np.zeros(gp.shape, int), 2),
        # ---- adaptive pools (issue 17) ----
        "adaptive_avg_pool3d": S.adaptive_pool_spec(x, 3, 2, "adaptive_avg_pool3d"),
        "adaptive_max_pool3d": S.adaptive_pool_spec(x, (2, 3), 2, "adaptive_max_pool3d",
                                                    return_indices=True),
        "adaptive_avg_pool3d_backward": S.adaptive_avg_grad_spec(gp, x.shape, 2),
        # ---- conv3d (issue 17) ----
        "conv3d": S.conv_spec(x3, w3, None, 1, 1, 1, 1, "zeros", 3),
        "conv3d_input": S.conv_input_grad_spec(x3.shape, w3, gy3, 1, 1, 1, 1, "zeros", 3),
        "conv3d_weight": S.conv_weight_grad_spec(x3, w3.shape, gy3, 1, 1, 1, 1, "zeros", 3),
        # ---- ndimage (issue 18): no batch axis; ``batch`` is the length of the first one
        # (the 1-D passes' (outer, n, inner) view; the padded input's lines for the n-D one)
        "nd_correlate1d": ND.line_spec(np.ones((batch, 5, 3)), np.array([1.0, 2.0, 1.0]), 1,
                                       "constant", 0.5, 0),
        "nd_uniform1d": ND.line_spec(np.ones((batch, 5, 3)), 3, 1, "reflect", 0.0, 0),
        "nd_correlate": ND.correlate_spec(np.ones((batch + 2, 7)), np.ones((3, 3))),
        "nd_sepcorr": ND.sep_spec(np.ones((batch, 5, 3)), (np.array([1.0, 2.0, 1.0]),
                                                         "constant", 0),
                                  (np.array([1.0, -1.0]), "wrap", 0), 0.5),
        "nd_sepbox": ND.sep_spec(np.ones((batch, 5, 3)), (3, "constant", 0), (2, "mirror", -1),
                                 0.5),
    }


def _out(spec):
    return np.empty(spec.grad_shape if hasattr(spec, "grad_shape") else spec.out_shape,
                    spec.dtype)


def test_issue16_one_spec_kind_per_op_family():
    """Every op's spec is a NamedTuple naming its op and family, whose kernel_args(out)
    puts ``out`` where the reference kernel takes its output; run() gives the reference
    kernel's result."""
    import inspect

    from fastconv import reference

    specs = _specs(2)
    assert set(specs) == set(_dispatch._FAMILY)
    for op, spec in specs.items():
        assert isinstance(spec, tuple) and hasattr(type(spec), "_fields"), op  # NamedTuple
        assert spec.op == op and spec.family == _dispatch._FAMILY[op], op
        assert not spec.empty and _specs(0)[op].empty, op
        params = list(inspect.signature(getattr(reference, op)).parameters)[:-1]  # nthreads
        out = _out(spec)
        args = spec.kernel_args(out)
        assert len(args) == len(params), op
        assert [i for i, a in enumerate(args) if a is out] == \
            [params.index(n) for n in ("out", "gx", "gw") if n in params], op
        want = np.full_like(out, np.nan)
        getattr(reference, op)(*spec.kernel_args(want))
        got = np.full_like(out, np.nan)
        assert _dispatch.run(op, "numpy", spec, got) is got
        np.testing.assert_array_equal(got, want, err_msg=op)


def test_issue16_run_refuses_the_spec_of_another_op():
    specs = _specs(1)
    spec = specs["conv2d_input"]
    with pytest.raises(ValueError, match="conv2d_weight.*conv2d_input"):
        _dispatch.run("conv2d_weight", "numpy", spec, _out(spec))
    with pytest.raises(ValueError, match="avg_pool2d.*max_pool2d"):
        _dispatch.run("avg_pool2d", "numpy", specs["max_pool2d"], _out(specs["max_pool2d"]))


# --------------------------------------------------------------------------------------------
# empty_batch
# --------------------------------------------------------------------------------------------
def _empty_calls():
    """(op, spec, out) of an empty call of every op, ``out`` filled with NaN."""
    specs = _specs(0)
    # and an empty pooled plane of a non-empty input: zeros of the input's shape
    specs["max_pool2d_backward"] = S.max_pool_grad_spec(
        np.ones((2, 3, 0, 0)), np.zeros((2, 3, 0, 0), int), (2, 3, 4, 4), 2)
    for op, spec in specs.items():
        yield op, spec, np.full_like(_out(spec), np.nan)
    # and an n-D correlation of a non-empty input whose every tap scipy skips (|w| <= eps):
    # zeros, a sum over no terms
    spec = ND.correlate_spec(np.ones((4, 7)), np.full((3, 3), 1e-17))
    yield "nd_correlate", spec, np.full(spec.out_shape, np.nan)


def _check_empty_batch(monkeypatch, backend):
    calls = _spy_kernels(monkeypatch)
    for op, spec, out in _empty_calls():
        assert spec.empty, op
        assert _dispatch.run(op, backend, spec, out) is out
        assert not calls, f"{op}: a kernel ran on an empty call"
        assert not np.isnan(out).any() and not out.any(), op
    # and the kernels do run on a call that is not empty
    spec = S.conv_spec(np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3)), None, 1, 1, 1, 1,
                       "zeros", 2)
    _dispatch.run("conv2d", backend, spec, np.empty(spec.out_shape))
    assert [op for op, _ in calls] == ["conv2d"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_issue16_postcondition_empty_batch(backend):
    """An empty call runs no kernel, and its output is zeros: the weight gradient of an
    empty batch, the input gradient of an empty pooled plane, an n-D ndimage correlation
    whose every tap is skipped, and empty outputs."""
    _with_and_without("empty_batch", _check_empty_batch, backend)
    # through the public functions, with the real kernels
    gw = G.conv2d_weight(np.ones((0, 2, 5, 5)), (6, 1, 3, 3), np.ones((0, 6, 3, 3)),
                         groups=2, backend=backend)
    np.testing.assert_array_equal(gw, np.zeros((6, 1, 3, 3)))
    got = G.max_pool2d(np.ones((2, 3, 0, 0)), np.zeros((2, 3, 0, 0), int), (2, 3, 4, 4),
                       backend=backend)
    np.testing.assert_array_equal(got, np.zeros((2, 3, 4, 4)))
    # ndimage: an input with a zero-length axis, and a correlation whose taps are all
    # skipped (scipy's |w| <= eps), with infinities that 0 * inf would turn into NaN
    for f in (fastconv.ndimage.correlate1d, fastconv.ndimage.convolve1d):
        got = f(np.ones((3, 0, 4)), [1.0, 2.0, 1.0], axis=1, backend=backend)
        assert got.shape == (3, 0, 4)
    got = fastconv.ndimage.uniform_filter(np.ones((0, 6)), 3, backend=backend)
    assert got.shape == (0, 6)
    got = fastconv.ndimage.correlate(np.full((4, 5), np.inf), np.full((3, 3), 1e-17),
                                     backend=backend)
    np.testing.assert_array_equal(got, np.zeros((4, 5)))


# --------------------------------------------------------------------------------------------
# indices_outside_plane
# --------------------------------------------------------------------------------------------
def _outside_case(rng):
    g = rng.standard_normal((2, 3, 2, 2))
    idx = rng.integers(0, 16, size=g.shape)
    idx[0, 0, 0, 0], idx[0, 1, 1, 1], idx[1, 2, 0, 1] = -1, 16, 10**12
    return g, idx


def _check_indices_outside_plane(monkeypatch, backend, rng):
    g, idx = _outside_case(rng)
    g_before, idx_before = g.copy(), idx.copy()
    spec = S.max_pool_grad_spec(g, idx, (2, 3, 4, 4), 2)
    with monkeypatch.context() as m:
        calls = _spy_kernels(m)
        _dispatch.run("max_pool2d_backward", backend, spec, np.empty((2, 3, 4, 4)))
    (op, (gy, ix, gx, _nthreads)), = calls
    outside = (idx < 0) | (idx >= 16)
    assert ((ix >= 0) & (ix < 16)).all(), "the kernel got an index outside the plane"
    np.testing.assert_array_equal(ix[~outside], idx[~outside])
    np.testing.assert_array_equal(gy, np.where(outside, 0, g))
    np.testing.assert_array_equal(g, g_before)  # copies, never the caller's arrays
    np.testing.assert_array_equal(idx, idx_before)
    # the real kernel, through the public function: an index outside adds nothing
    got = G.max_pool2d(g, idx, (2, 3, 4, 4), backend=backend)
    want = np.zeros(2 * 3 * 16)
    planes = np.arange(6).reshape(2, 3, 1, 1) * 16
    np.add.at(want, (idx + planes)[~outside], g[~outside])
    np.testing.assert_array_equal(got, want.reshape(2, 3, 4, 4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_issue16_postcondition_indices_outside_plane(backend, rng):
    """max_pool2d's gradient ignores an index outside the input plane (the forward gives
    one for a window that sees only padding): the kernels, which index unchecked, never
    see one."""
    _with_and_without("indices_outside_plane", _check_indices_outside_plane, backend, rng)


# --------------------------------------------------------------------------------------------
# nonfinite_meets_padding
# --------------------------------------------------------------------------------------------
# (weight shape, arguments, grad_output position): the compiled kernels run their direct
# loops on these small single-channel shapes
_NONFINITE_CASES = [
    ((1, 1, 3, 3), dict(padding=1), (0, 0)),  # a window that meets input and padding
    ((1, 1, 3, 3), dict(padding=(3, 2), stride=2), (0, 0)),  # a window wholly in padding
    ((1, 1, 2, 2), dict(padding=1, dilation=6), (0, 0)),  # taps on both sides, none inside
]


def _check_nonfinite_meets_padding(monkeypatch, backend, rng):
    x = rng.standard_normal((1, 1, 5, 5))
    for (w_shape, kw, pos), value in zip(_NONFINITE_CASES, (np.inf, np.nan, -np.inf)):
        y = fastconv.conv2d(x, np.ones(w_shape), backend="numpy", **kw)
        g = rng.standard_normal(y.shape)
        g[(0, 0) + pos] = value
        with np.errstate(invalid="ignore"):
            ref = G.conv2d_weight(x, w_shape, g, backend="numpy", **kw)
            got = G.conv2d_weight(x, w_shape, g, backend=backend, **kw)
        assert np.isnan(ref).any(), kw  # the case means something
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=str(kw))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref), err_msg=str(kw))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", COMPILED)
def test_issue16_postcondition_nonfinite_meets_padding(backend, rng):
    """A non-finite grad_output value that meets the zero padding makes those taps of the
    weight gradient NaN (inf * 0), as in torch and the reference, on the compiled backends
    whose direct loops skip the padding taps."""
    _with_and_without("nonfinite_meets_padding", _check_nonfinite_meets_padding, backend,
                      rng)


def test_issue16_postconditions_apply_in_table_order(monkeypatch):
    """The entries that name an op wrap its kernel call in the table's order, the first
    one outermost."""
    seen = []
    for name in POSTCONDITIONS:
        p = POSTCONDITIONS[name]

        def traced(op, backend, spec, out, compute, _f=p.function, _n=name):
            seen.append(_n)
            _f(op, backend, spec, out, compute)

        monkeypatch.setitem(POSTCONDITIONS, name, p._replace(function=traced))
    spec = S.max_pool_grad_spec(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), int),
                                (1, 1, 2, 2), 2)
    out = _dispatch.run("max_pool2d_backward", "numpy", spec, np.empty((1, 1, 2, 2)))
    assert seen == ["empty_batch", "indices_outside_plane"]
    np.testing.assert_array_equal(out, [[[[1, 0], [0, 0]]]])
    seen.clear()
    fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), backend="numpy")
    assert seen == ["empty_batch"]
