"""fastconv study: the CLI on a tiny subset, the IDX loader, results.json, reproducibility."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from fastconv.cli import main  # noqa: E402
from fastconv.study import data as D  # noqa: E402
from fastconv.study import report as R  # noqa: E402

TINY = ["--quick", "--limit", "150", "--epochs", "1", "--no-progress"]


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["study", *TINY, "--out", str(out), *extra]) == 0
    with open(out / "results.json") as f:
        return out, json.load(f)


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------
def _idx_bytes(arr, code):
    arr = np.asarray(arr)
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_idx(path, arr, code=0x08, gz=False):
    raw = _idx_bytes(arr, code)
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("arr, code", [
    (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([-3, 0, 7], dtype=np.int8), 0x09),
    (np.array([[1, -2], [300, -400]], dtype=np.int16), 0x0B),
    (np.array([70000, -5], dtype=np.int32), 0x0C),
    (np.array([1.5, -2.25], dtype=np.float32), 0x0D),
    (np.array([[np.pi]], dtype=np.float64), 0x0E),
])
def test_read_idx_round_trip(tmp_path, arr, code, gz):
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    _write_idx(path, arr, code, gz)
    got = D.read_idx(path)
    assert got.shape == arr.shape and got.dtype == arr.dtype
    np.testing.assert_array_equal(got, arr)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(np.zeros((4, 2), np.uint8), 0x08)[:-1])
    with pytest.raises(ValueError, match="data bytes"):
        D.read_idx(short)


def _fake_mnist(folder, n_train=60, n_test=30, gz=True, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(y):  # a class-dependent bar, plus noise
            x[i, 6 + c:10 + c, 8:20] = 200
            x[i] += rng.integers(0, 40, (28, 28), dtype=np.uint8)
        sep = "." if dotted else "-"
        suffix = ".gz" if gz else ""
        _write_idx(folder / f"{part}-images{sep}idx3-ubyte{suffix}", x, 0x08, gz)
        _write_idx(folder / f"{part}-labels{sep}idx1-ubyte{suffix}", y.astype(np.uint8), 0x08, gz)
    return folder


@pytest.mark.parametrize("gz, dotted", [(True, False), (False, True)])
def test_load_mnist(tmp_path, gz, dotted):
    folder = _fake_mnist(tmp_path / "mnist", gz=gz, dotted=dotted)
    ds = D.load_mnist(folder, seed=0, max_train=40, max_test=20)
    assert ds.x_train.shape == (40, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    assert np.bincount(ds.y_train).tolist() == [4] * 10  # stratified


def test_load_mnist_missing_file(tmp_path):
    folder = _fake_mnist(tmp_path / "mnist")
    os.remove(folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        D.load_mnist(folder)


# --------------------------------------------------------------------------------------------
# data geometry
# --------------------------------------------------------------------------------------------
def test_digits_on_canvas():
    ds = D.load_digits(seed=0)
    assert ds.image_shape == (1, 16, 16)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() <= 1
    # centred: the 4-pixel margin is empty
    assert not ds.x_train[..., :4, :].any() and not ds.x_train[..., 12:, :].any()
    assert not ds.x_train[..., :4].any() and not ds.x_train[..., 12:].any()
    other = D.load_digits(seed=1)
    assert not np.array_equal(ds.y_test, other.y_test)


def test_shift_and_copies():
    img = np.zeros((1, 16, 16), np.float32)
    img[0, 4:12, 4:12] = np.arange(64).reshape(8, 8)
    for dy, dx in [(4, 0), (-4, 0), (3, -2), (-4, 4)]:
        moved = D.shift(img, dy, dx)
        np.testing.assert_array_equal(moved[0, 4 + dy:12 + dy, 4 + dx:12 + dx], img[0, 4:12, 4:12])
        assert moved.sum() == img.sum()  # nothing leaves the canvas up to 4 px
    assert not D.shift(img, 0, 16).any()
    copies = D.shifted_copies(np.stack([img, img]), 2)
    assert copies.shape == (8, 2, 1, 16, 16)
    assert D.shifted_copies(img, 0).shape == (1, 1, 16, 16)


def test_stratified_subsets_are_nested():
    y = np.repeat(np.arange(10), 30)
    small, large = D.stratified_subset(y, 0.1, 3), D.stratified_subset(y, 0.5, 3)
    assert np.bincount(y[small]).tolist() == [3] * 10
    assert set(small) <= set(large)


# --------------------------------------------------------------------------------------------
# statements come from the data
# --------------------------------------------------------------------------------------------
def test_invariance_finding_is_computed():
    shifts = [0, 1, 2, 3, 4]
    f = R.invariance_finding(shifts, [0.9, 0.89, 0.87, 0.6, 0.3], 5)
    assert f["verdict"] == "small shifts only" and f["max_invariant_shift"] == 2
    assert "2 px" in f["statement"]
    f = R.invariance_finding(shifts, [0.9, 0.9, 0.89, 0.88, 0.87], 5)
    assert f["verdict"] == "beyond" and f["max_invariant_shift"] == 4
    f = R.invariance_finding(shifts, [0.9, 0.5, 0.3, 0.2, 0.1], 5)
    assert f["verdict"] == "none" and f["max_invariant_shift"] == 0
    f = R.invariance_finding(shifts, [0.1] * 5, 5, chance=0.1)
    assert f["verdict"] == "near chance"


def test_margin_and_claim_verdicts():
    assert R.claim("x", "c", True, "e")["verdict"] == "holds"
    assert R.claim("x", "c", False, "e")["verdict"] == "contradicted"
    m = R.margin(0.51, 0.50, 100)
    assert not m["significant"]
    assert R.claim("x", "c", True, "e", m)["verdict"] == "inconclusive"
    assert R.margin(0.9, 0.5, 1000)["significant"]


# --------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------
def test_study_cli_schema_and_outputs(tmp_path, capsys):
    import fastconv

    threads = fastconv.get_num_threads()
    out, res = _run(tmp_path, "a")
    assert fastconv.get_num_threads() == threads  # --threads is restored afterwards
    R.check_schema(res)
    text = capsys.readouterr().out
    for heading in ("1. Parameters and cost", "2. Sparse connection", "3. Equivariance",
                    "4. Invariance", "5. Overfitting", "6. Translated digits",
                    "What the data says", "Time per section"):
        assert heading in text
    assert "3,179,904" in text  # the 28x28 -> 6x26x26 dense counterfactual
    for png in res["plots"]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(res["plots"]) == {"invariance.png", "data_efficiency.png", "equivariance.png",
                                 "translated.png"}
    assert set(res["models"]) == {"dense", "cnn", "lenet", "lenet_blur", "lenet_maxblur",
                                  "gap"}
    assert res["seeds"] == [0, 1]  # --quick: two seeds
    assert res["sparse"]["distinct_values"] == res["sparse"]["kernel_weights"] == 54
    assert res["sparse"]["matches_conv2d"]
    assert res["invariance"]["shifts"] == [0, 1, 2, 3, 4]
    assert all(len(a) == 5 for a in res["invariance"]["accuracy"].values())
    assert set(res["invariance"]["accuracy"]) == set(res["models"])
    runs = res["data_efficiency"]["runs"]
    assert len(runs) == 2 * 12 and len({r["steps"] for r in runs}) == 1
    assert {r["seed"] for r in runs} == {0, 1}
    assert {r["fraction"] for r in runs} == {0.1, 0.25, 0.5, 1.0}
    ex = res["equivariance"]["conv1d_example"]
    assert ex["y_shifted"][1:] == ex["y"][:-1]
    circ = [r for r in res["equivariance"]["conv2d"] if r["padding_mode"] == "circular"]
    assert max(r["max_inside"] for r in circ) == max(r["max_border"] for r in circ) == 0
    # a claim's verdict agrees with its numbers
    by = {c["id"]: c for c in res["claims"]}
    acc = res["invariance"]["accuracy"]
    assert by["pool_vs_nopool"]["holds"] == (np.mean(acc["lenet"][1:]) > np.mean(acc["cnn"][1:]))
    with pytest.raises(ValueError, match="sparse"):
        R.check_schema({**res, "sparse": {}})


def test_study_same_seed_same_numbers(tmp_path):
    a_dir, a = _run(tmp_path, "a", "--seed", "3")
    b_dir, b = _run(tmp_path, "b", "--seed", "3")
    _, c = _run(tmp_path, "c", "--seed", "4")
    # same seed: the same results.json but for the timings; another seed: other numbers
    assert a["timings"]["total"]["cpu_s"] > 0
    a["timings"] = b["timings"] = None
    assert json.dumps(a) == json.dumps(b)
    assert a["data_efficiency"]["runs"] != c["data_efficiency"]["runs"]


def test_study_cli_mnist(tmp_path):
    folder = _fake_mnist(tmp_path / "mnist", n_train=80, n_test=40)
    out, res = _run(tmp_path, "m", "--mnist", str(folder))
    assert res["data"]["name"] == "mnist" and res["data"]["image_shape"] == [1, 28, 28]
    cf = res["costs"]["counterfactual"]
    assert cf[0]["weights"] == 28 * 28 * 6 * 26 * 26 == 3_179_904 and cf[2]["weights"] == 54


def test_study_cli_errors(tmp_path, capsys):
    assert main(["study", "--mnist", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["study", "--backend", "nonesuch", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["study", "--epochs", "0"])


def test_python_m_fastconv_study_help():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-m", "fastconv", "study", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--mnist" in proc.stdout and "--quick" in proc.stdout
    assert "--limit" not in proc.stdout  # the testing option stays hidden
