"""Issue 21: the study over seeds, the translated-digits scenario, the verdict rule over
seeds, results.json's new keys and the run's timings."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from fastconv.cli import main  # noqa: E402
from fastconv.study import data as D  # noqa: E402
from fastconv.study import report as R  # noqa: E402

TINY = ["--limit", "150", "--epochs", "1", "--no-progress", "--quick"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A tiny run with --seeds 1 and one with --seeds 3 (the latter's output kept)."""
    out = {}
    for n in (1, 3):
        folder = tmp_path_factory.mktemp(f"seeds{n}")
        assert main(["study", *TINY, "--seeds", str(n), "--out", str(folder)]) == 0
        with open(folder / "results.json") as f:
            out[n] = json.load(f)
    return out


# --------------------------------------------------------------------------------------------
# translated digits
# --------------------------------------------------------------------------------------------
def test_place_positions_seeded_and_inside():
    rng = np.random.default_rng(0)
    imgs = rng.random((200, 8, 8)).astype(np.float32) + 0.1  # no zero pixel
    a, pa = D.place(imgs, 24, 5)
    b, pb = D.place(imgs, 24, 5)
    _, pc = D.place(imgs, 24, 6)
    assert a.shape == (200, 1, 24, 24) and a.dtype == np.float32 and pa.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)
    assert pa.min() >= 0 and pa.max() <= 24 - 8
    # every position is used, near the corners too
    assert set(np.unique(pa[:, 0])) == set(range(17))
    for img, (t, l), src in zip(a, pa, imgs):
        np.testing.assert_array_equal(img[0, t:t + 8, l:l + 8], src)  # all of the digit
        assert img.sum() == pytest.approx(src.sum(), rel=1e-6)  # and nothing else
    with pytest.raises(ValueError, match="do not fit"):
        D.place(imgs, 7, 0)


def test_load_translated():
    ds = D.load_translated(seed=0, canvas=24)
    centred = D.load_digits(seed=0)
    assert ds.image_shape == (1, 24, 24)
    np.testing.assert_array_equal(ds.y_train, centred.y_train)  # the same split
    np.testing.assert_array_equal(ds.y_test, centred.y_test)
    for x, pos in ((ds.x_train, ds.pos_train), (ds.x_test, ds.pos_test)):
        assert len(pos) == len(x) and pos.min() >= 0 and pos.max() <= 16
        # the digit's pixels sum like the centred digit's: none fell off the canvas
        assert np.abs(ds.x_train.sum(axis=(1, 2, 3))
                      - centred.x_train.sum(axis=(1, 2, 3))).max() < 1e-3
    # positions vary (the scenario is translated), and differ between train and test
    assert len({tuple(p) for p in ds.pos_train}) > 200
    assert not np.array_equal(ds.pos_train[:50], ds.pos_test[:50])
    again = D.load_translated(seed=0, canvas=24)
    np.testing.assert_array_equal(again.pos_train, ds.pos_train)
    other = D.load_translated(seed=1, canvas=24)
    assert not np.array_equal(other.pos_train[:50], ds.pos_train[:50])


# --------------------------------------------------------------------------------------------
# verdicts over seeds
# --------------------------------------------------------------------------------------------
def test_seed_margin_rule():
    # a consistent difference well above its spread counts
    m = R.seed_margin([0.80, 0.82, 0.81], [0.70, 0.71, 0.69], None)
    assert m["significant"] and m["agree"] and m["n"] == 3
    assert m["points"] == pytest.approx(11.0)
    assert m["per_seed_points"] == pytest.approx([10.0, 11.0, 12.0])
    # seeds that disagree in sign never count, however large the mean
    m = R.seed_margin([0.9, 0.9, 0.6], [0.7, 0.7, 0.61], None)
    assert not m["agree"] and not m["significant"]
    # a small mean difference within two standard errors over seeds does not count
    m = R.seed_margin([0.80, 0.85, 0.81], [0.79, 0.80, 0.80], None)
    assert m["agree"] and not m["significant"]
    # the test set's binomial noise is a floor: seeds agreeing by chance on 50 images
    m = R.seed_margin([0.52, 0.52, 0.52], [0.50, 0.50, 0.50], 50)
    assert m["sd_points"] == 0 and not m["significant"]
    # one seed: the binomial margin over the test images, or no margin for non-accuracies
    assert R.seed_margin([0.9], [0.5], 1000)["significant"]
    assert R.seed_margin([0.9], [0.5], None) is None
    c = R.claim("x", "c", True, "e", R.seed_margin([0.8, 0.81], [0.7, 0.72], None))
    assert c["verdict"] == "holds" and "2 seeds" in c["evidence"] and "rule" in c


def test_claim_over_seeds():
    assert R.claim_over_seeds("a", "c", [True, True, True], "e")["verdict"] == "holds"
    assert R.claim_over_seeds("a", "c", [False, False], "e")["verdict"] == "contradicted"
    c = R.claim_over_seeds("a", "c", [True, False, True], "e")
    assert c["verdict"] == "inconclusive" and not c["holds"] and "2 of 3 seeds" in c["evidence"]


def test_mean_sd_and_pm():
    assert R.mean_sd([0.5]) == (0.5, 0.0)
    m, s = R.mean_sd([0.1, 0.2, 0.3])
    assert m == pytest.approx(0.2) and s == pytest.approx(0.1)
    assert R.pm([0.1, 0.2, 0.3]) == "20.0 +- 10.0"


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def test_seeds_option(tiny_runs):
    one, three = tiny_runs[1], tiny_runs[3]
    assert one["seeds"] == [0] and three["seeds"] == [0, 1, 2]
    assert three["config"]["seeds"] == 3
    for res, n in ((one, 1), (three, 3)):
        assert len(res["data_efficiency"]["runs"]) == 12 * n
        assert len(res["translated"]["runs"]) == 12 * n
        assert all(len(v) == n for v in res["invariance"]["per_seed"].values())
        assert all(r["seeds"] == n for r in res["data_efficiency"]["summary"])
    # the seeds' own numbers: seed 0 is the same run in both
    first = [r for r in three["data_efficiency"]["runs"] if r["seed"] == 0]
    assert first == one["data_efficiency"]["runs"]
    # tables are mean and sd over the seeds
    inv = three["invariance"]
    for m, per_seed in inv["per_seed"].items():
        a = np.array(per_seed)
        np.testing.assert_allclose(inv["accuracy"][m], a.mean(axis=0))
        np.testing.assert_allclose(inv["accuracy_sd"][m], a.std(axis=0, ddof=1))
    row = three["translated"]["summary"][0]
    rs = [r for r in three["translated"]["runs"]
          if r["model"] == row["model"] and r["fraction"] == row["fraction"]]
    assert row["test_mean"] == pytest.approx(np.mean([r["test_accuracy"] for r in rs]))
    assert row["test_sd"] == pytest.approx(np.std([r["test_accuracy"] for r in rs], ddof=1))


def test_results_keys_and_verdicts(tiny_runs):
    res = tiny_runs[3]
    R.check_schema(res)
    assert res["schema"] == "fastconv-study/2"
    tr = res["translated"]
    assert tr["canvas"] == 24 and tr["canvas_sizes"] == [16, 24]
    assert set(tr["params"]) == {"dense", "cnn", "lenet"}
    assert tr["params"]["dense"] == 24 * 24 * 100 + 100 + 1010
    assert {r["fraction"] for r in tr["runs"]} == {0.1, 0.25, 0.5, 1.0}
    assert len({r["steps"] for r in tr["runs"]}) == 1  # one step budget
    curve = tr["canvas_curve"]
    assert all(len(v) == 2 for v in curve["mean"].values())
    ids = {c["id"]: c for c in res["claims"]}
    for cid in ("lenet_blur_vs_lenet", "gap_vs_lenet", "lenet_blur_further", "gap_further",
                "lenet_maxblur_vs_lenet", "lenet_maxblur_further",
                "translated_data_efficiency", "translated_overfitting",
                "translated_large_shifts", "translated_conv_vs_dense"):
        assert cid in ids, cid
    for c in res["claims"]:
        assert c["verdict"] in ("holds", "contradicted", "inconclusive")
        if "per_seed_points" in c:  # a comparison judged over the seeds
            assert len(c["per_seed_points"]) == 3
            agree = all(v > 0 for v in c["per_seed_points"]) or \
                all(v < 0 for v in c["per_seed_points"])
            significant = agree and abs(c["margin_points"]) > c["noise_points"]
            assert (c["verdict"] == "inconclusive") == (not significant), c
    for key in ("translated", "seeds", "timings"):
        broken = dict(res)
        del broken[key]
        with pytest.raises(ValueError, match=key):
            R.check_schema(broken)
    with pytest.raises(ValueError, match="translated.canvas_curve"):
        R.check_schema({**res, "translated": {k: v for k, v in tr.items()
                                              if k != "canvas_curve"}})


def test_timings(tiny_runs):
    t = tiny_runs[3]["timings"]
    for key in ("1. parameters and cost", "2. sparse connection", "3. equivariance",
                "4. invariance (evaluation)", "5. data efficiency (training)",
                "6. translated digits", "plots", "total"):
        assert t[key]["wall_s"] >= 0 and t[key]["cpu_s"] >= 0, key
    parts = sum(v["cpu_s"] for k, v in t.items() if k != "total")
    assert parts == pytest.approx(t["total"]["cpu_s"], abs=0.1)
    # the tiny --quick run is quick: well under a minute of CPU
    assert t["total"]["cpu_s"] < 60
