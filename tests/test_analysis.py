"""fastconv.analysis and locally_connected2d: the matrix of a conv layer, and what it costs."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.analysis import compare_layers, conv_as_matrix

LOCAL_BACKENDS = list(fastconv.backends())


@st.composite
def conv_geometry(draw):
    groups = draw(st.integers(1, 3))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    return dict(C=C, H=H, W=W, K=K, groups=groups, kernel=(kh, kw), stride=(sh, sw),
                dilation=(dh, dw), padding=(ph, pw))


@settings(max_examples=60, deadline=None)
@given(conv_geometry(), st.integers(0, 2**32 - 1))
def test_conv_as_matrix_equals_conv2d(g, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((g["K"], g["C"] // g["groups"]) + g["kernel"])
    x = rng.standard_normal((g["C"], g["H"], g["W"]))
    kw = dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
              groups=g["groups"])
    y = fastconv.conv2d(x[None], w, **kw).ravel()
    M = conv_as_matrix(w, x.shape, **kw)
    D = conv_as_matrix(w, x.shape, format="dense", **kw)
    np.testing.assert_allclose(M @ x.ravel(), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(D, M.toarray())
    assert M.shape == (y.size, x.size)
    # every stored entry is a connection of the layer, and shares one of the kernel's weights
    assert set(np.unique(M.data)) <= set(np.unique(w))


def test_conv_as_matrix_counts_by_hand():
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # 9 distinct weights
    M = conv_as_matrix(w, (1, 5, 5))
    assert M.shape == (9, 25)
    assert M.nnz == 9 * 9  # 3x3 outputs, each sees 9 inputs
    assert len(np.unique(M.data)) == 9
    Mp = conv_as_matrix(w, (1, 5, 5), padding=1)
    # 5x5 outputs; the 16 border outputs lose inputs to the padding: corners see 4, edges 6
    assert Mp.nnz == 9 * 9 + 12 * 6 + 4 * 4
    assert conv_as_matrix(w, (1, 5, 5), padding="same").nnz == Mp.nnz


def test_conv_as_matrix_float32_and_errors():
    w = np.ones((2, 1, 3, 3), np.float32)
    assert conv_as_matrix(w, (1, 6, 6)).dtype == np.float32
    with pytest.raises(ValueError, match="max_bytes"):
        conv_as_matrix(w, (1, 6, 6), format="dense", max_bytes=100)
    with pytest.raises(ValueError, match="format"):
        conv_as_matrix(w, (1, 6, 6), format="coo")
    with pytest.raises(ValueError, match="input_shape"):
        conv_as_matrix(w, (1, 6))
    with pytest.raises(ValueError, match="groups"):
        conv_as_matrix(w, (3, 6, 6), groups=2)


def test_compare_layers_by_hand():
    t = compare_layers((1, 28, 28), 6, 3)
    dense, local, conv = t
    n_in, n_out = 28 * 28, 6 * 26 * 26
    assert [r.layer for r in t] == ["dense", "local", "conv"]
    assert dense.params == n_in * n_out + n_out  # 3,179,904 weights + biases
    assert n_in * n_out == 3_179_904
    assert local.params == n_out * 9 + n_out
    assert conv.params == 6 * 9 + 6
    assert conv.macs == local.macs == n_out * 9
    assert dense.macs == n_in * n_out
    assert all(r.flops == 2 * r.macs for r in t)
    assert conv.weight_bytes == 60 * 4 and conv.input_bytes == n_in * 4
    assert conv.output_bytes == n_out * 4
    assert conv.workspace_bytes == 9 * 26 * 26 * 4
    t64 = compare_layers((3, 8, 8), 4, (3, 1), stride=2, padding=1, dtype="float64")
    assert t64[2].params == 4 * 3 * 3 * 1 + 4
    assert t64[2].weight_bytes == t64[2].params * 8
    rows = json.loads(t.to_json())
    assert rows[2]["params"] == 60 and set(rows[0]) == set(t.COLUMNS)
    text = str(t)
    assert "dense" in text and "3,183,960" in text


def test_compare_layers_matches_torch_parameter_count():
    torch = pytest.importorskip("torch")
    for (C, H, W), K, k, s, p in [((1, 28, 28), 6, 3, 1, 0), ((3, 32, 32), 16, 5, 2, 2)]:
        layer = torch.nn.Conv2d(C, K, k, s, p)
        n = sum(q.numel() for q in layer.parameters())
        assert compare_layers((C, H, W), K, k, s, p)[2].params == n
        dense = torch.nn.Linear(C * H * W, K * ((H + 2 * p - k) // s + 1) ** 2)
        assert compare_layers((C, H, W), K, k, s, p)[0].params == sum(
            q.numel() for q in dense.parameters())


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_locally_connected_with_shared_weights_is_conv(backend, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = fastconv.conv2d(x, w, b, stride=(1, 2), padding=1, backend="numpy")
    wl = np.broadcast_to(w, y.shape[2:] + w.shape)
    got = fastconv.locally_connected2d(x, wl, b, stride=(1, 2), padding=1, backend=backend)
    assert got.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_locally_connected_against_reference(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 6))  # unbatched
    w = rng.standard_normal((5, 3, 2, 3, 3, 2))
    b = rng.standard_normal((2, 5, 3))
    ref = fastconv.locally_connected2d(x, w, b, stride=(1, 2), padding=(1, 0), backend="numpy")
    got = fastconv.locally_connected2d(x, w, b, stride=(1, 2), padding=(1, 0), backend=backend)
    assert got.shape == (2, 5, 3)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # by hand: output (k, oh, ow) is the window times its own filter
    xp = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    k, oh, ow = 1, 2, 1
    win = xp[:, oh : oh + 3, 2 * ow : 2 * ow + 2]
    assert np.isclose(got[k, oh, ow], (win * w[oh, ow, k]).sum() + b[k, oh, ow])


def test_locally_connected_errors():
    x = np.ones((1, 2, 5, 5))
    with pytest.raises(ValueError, match="weight"):
        fastconv.locally_connected2d(x, np.ones((3, 3, 1, 2, 3)))
    with pytest.raises(ValueError, match="weight"):
        fastconv.locally_connected2d(x, np.ones((2, 2, 1, 2, 3, 3)))  # output is 3x3
    with pytest.raises(ValueError, match="bias"):
        fastconv.locally_connected2d(x, np.ones((3, 3, 1, 2, 3, 3)), bias=np.ones(2))
    with pytest.raises(ValueError, match="backend"):
        fastconv.locally_connected2d(x, np.ones((3, 3, 1, 2, 3, 3)), backend="nope")
