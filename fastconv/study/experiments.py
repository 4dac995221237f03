"""The study, section by section: costs, sparse connection, equivariance, invariance, data
efficiency. :func:`run` computes everything, prints the tables, and writes ``results.json``
and the plots."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import fastconv
from fastconv.analysis import compare_layers, conv_as_matrix

from . import data as D
from . import models as M
from . import report as R

__all__ = ["StudyConfig", "run"]


@dataclass
class StudyConfig:
    out: str = "fastconv-study"
    seed: int = 0
    quick: bool = False
    epochs: int | None = None  # full-data epochs; None: 4 with quick, else 20
    batch_size: int = 32
    lr: float = 2e-3
    backend: str | None = None
    mnist: str | None = None
    limit: int | None = None  # testing: at most about this many images
    fractions: tuple = (0.1, 0.25, 0.5, 1.0)
    max_shift: int = 4
    tolerance_points: float = 5.0  # accuracy drop (points) still called "invariant"
    progress: bool = True
    plots: bool = True
    seeds: int | None = None  # seeds seed, seed + 1, ...; None: 2 with quick, else 3
    canvas: int = 24  # the translated scenario's canvas (data efficiency)
    canvas_sizes: tuple | None = None  # the canvas curve; None: (16, 24) quick, else (16, 20, 24)
    extra: dict = field(default_factory=dict)

    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return 4 if self.quick else 20

    def resolved_seeds(self) -> list:
        n = self.seeds if self.seeds is not None else 2 if self.quick else 3
        return [self.seed + i for i in range(n)]

    def resolved_canvas_sizes(self) -> list:
        sizes = self.canvas_sizes if self.canvas_sizes is not None else \
            (16, self.canvas) if self.quick else (16, 20, self.canvas)
        return sorted(set(int(c) for c in sizes) | {int(self.canvas)})


def _print(*parts):
    print(*parts, flush=True)


def _section(title):
    _print("\n" + title + "\n" + "=" * len(title))


# --------------------------------------------------------------------------------------------
# 1. parameters and cost
# --------------------------------------------------------------------------------------------
def _costs(models, image_shape):
    out = {}
    for name, model in models.items():
        layers = M.layer_costs(model, image_shape)
        out[name] = {
            "description": M.DESCRIPTIONS[name],
            "layers": layers,
            "params": sum(r["params"] for r in layers),
            "macs": sum(r["macs"] for r in layers),
            "weight_bytes": sum(r["weight_bytes"] for r in layers),
            # the input and every layer's output, for one example
            "activation_bytes": int(np.prod(image_shape)) * 4 + sum(r["activation_bytes"]
                                                                    for r in layers),
        }
    return out


def _counterfactual(conv, image_shape):
    """compare_layers for a conv layer; plus its weights without biases."""
    pad = conv.padding if isinstance(conv.padding, int) else 0
    rows = compare_layers(image_shape, conv.out_channels, conv.kernel_size, conv.stride, pad)
    n_in = int(np.prod(image_shape))
    n_out = rows[2].output_bytes // 4
    weights = {"dense": n_in * n_out, "local": rows[1].params - n_out,
               "conv": rows[2].params - conv.out_channels}
    return [dict(r, weights=weights[r["layer"]]) for r in rows.to_dicts()]


def section_costs(models, image_shape):
    _section("1. Parameters and cost (per example, float32)")
    costs = _costs(models, image_shape)
    for name, c in costs.items():
        _print(R.table(c["layers"], ["layer", "output_shape", "params", "macs", "weight_bytes",
                                     "activation_bytes"], title=f"\n{name}: {c['description']}"))
    _print(R.table([dict(model=n, **{k: c[k] for k in ("params", "macs", "weight_bytes",
                                                      "activation_bytes")})
                    for n, c in costs.items()],
                   ["model", "params", "macs", "weight_bytes", "activation_bytes"],
                   title="\nper model"))
    conv = models["cnn"][0]
    cf = _counterfactual(conv, image_shape)
    example = _counterfactual(fastconv.nn.Conv2d(1, 6, 3), (1, 28, 28))
    cols = ["layer", "weights", "params", "macs", "weight_bytes", "output_bytes"]
    first = costs["cnn"]["layers"][0]["output_shape"]
    _print(R.table(cf, cols, title="\nThe layer that gives the first conv layer's output ("
                   + "x".join(map(str, image_shape)) + " -> " + "x".join(map(str, first))
                   + "), as dense, locally connected and conv:"))
    d, c = example[0], example[2]
    _print(R.table(example, cols, title="\nThe same for 1x28x28 -> 6x26x26 (MNIST size):"))
    _print(f"-> a dense layer needs {d['weights']:,} weights where the conv layer needs "
           f"{c['weights']:,} ({d['weights'] / c['weights']:,.0f}x); multiply-adds "
           f"{d['macs']:,} vs {c['macs']:,} ({d['macs'] / c['macs']:,.0f}x)")
    claims = [R.claim(
        "params", "A conv layer needs far fewer parameters than the dense layer that produces "
        "the same output",
        cf[2]["params"] < cf[0]["params"],
        f"{cf[2]['params']:,} vs {cf[0]['params']:,} parameters for this study's first conv "
        f"layer; {c['params']:,} vs {d['params']:,} at 28x28")]
    return costs, {"counterfactual": cf, "counterfactual_28x28": example}, claims


# --------------------------------------------------------------------------------------------
# 2. sparse connection and weight sharing
# --------------------------------------------------------------------------------------------
def section_sparse(conv, x, backend):
    _section("2. Sparse connection and weight sharing: the first conv layer as a matrix")
    w = conv.weight.data
    b = conv.bias.data
    Mx = conv_as_matrix(w, x.shape[1:], conv.stride, conv.padding)
    rows, cols = Mx.shape
    distinct = int(len(np.unique(Mx.data)))
    y = fastconv.conv2d(x, w, b, conv.stride, conv.padding, backend=backend)
    per_pixel = y.shape[2] * y.shape[3]
    ym = (Mx @ x.reshape(len(x), -1).T).T + np.repeat(b, per_pixel)
    err = float(np.max(np.abs(ym - y.reshape(len(x), -1))))
    scale = float(np.max(np.abs(y)))
    tol = 1e-5 * max(1.0, scale)
    csr_bytes = Mx.data.nbytes + Mx.indices.nbytes + Mx.indptr.nbytes
    res = {
        "shape": [int(rows), int(cols)],
        "nnz": int(Mx.nnz),
        "density": float(Mx.nnz / (rows * cols)),
        "distinct_values": distinct,
        "kernel_weights": int(w.size),
        "dense_bytes": int(rows * cols * w.itemsize),
        "csr_bytes": int(csr_bytes),
        "kernel_bytes": int(w.nbytes),
        "images_checked": int(len(x)),
        "max_abs_error": err,
        "tolerance": tol,
        "matches_conv2d": bool(err <= tol),
    }
    _print(R.table([dict(quantity=k, value=v) for k, v in res.items()], ["quantity", "value"]))
    _print(f"-> every output reads {w[0].size} of {cols} inputs "
           f"({res['density']:.2%} of the matrix is non-zero), and its {res['nnz']:,} "
           f"non-zeros take {distinct} distinct values for {w.size} kernel weights")
    claims = [
        R.claim("sparse", "The conv layer is a sparse matrix: each output depends on a "
                "kernel-sized window", res["nnz"] == rows * w[0].size
                if conv.padding == 0 else res["density"] < 0.5,
                f"{res['nnz']:,} non-zeros of {rows * cols:,} (density {res['density']:.4f})"),
        R.claim("sharing", "Weight sharing: the matrix's distinct values are the kernel weights",
                distinct == w.size,
                f"{distinct} distinct values, {w.size} kernel weights"),
        R.claim("matrix", "The explicit matrix times the flattened input equals conv2d",
                res["matches_conv2d"],
                f"max |M x + b - conv2d(x)| = {err:.2e} over {len(x)} test images "
                f"(tolerance {tol:.1e})"),
    ]
    return res, claims


# --------------------------------------------------------------------------------------------
# 3. equivariance
# --------------------------------------------------------------------------------------------
def _roll(a, dy, dx):
    return np.roll(a, (dy, dx), axis=(-2, -1))


def section_equivariance(conv, x, max_shift, backend):
    _section("3. Equivariance: conv(shift(x)) vs shift(conv(x)), shift = circular roll")
    w, b = conv.weight.data, conv.bias.data
    r = max(conv.kernel_size) // 2

    def conv_same(a, mode):
        return fastconv.conv2d(a, w, b, padding=r, padding_mode=mode, backend=backend)

    def defect(a, mode, dy, dx):
        return np.abs(conv_same(_roll(a, dy, dx), mode) - _roll(conv_same(a, mode), dy, dx))

    # "zero up to rounding": a few float32 ulps of the largest output
    scale = max(1.0, float(np.abs(conv_same(x, "zeros")).max()))
    tol = float(np.finfo(np.float32).eps) * 64 * scale
    H, W = x.shape[-2:]
    rows = []
    for mode in ("circular", "zeros", "reflect", "replicate"):
        for s in range(1, max_shift + 1):
            band = r + s
            border = np.zeros((H, W), bool)
            border[:band] = border[-band:] = True
            border[:, :band] = border[:, -band:] = True
            edge = np.zeros((H, W), bool)  # the pixels a padded window reaches
            edge[:r] = edge[-r:] = True
            edge[:, :r] = edge[:, -r:] = True
            inside_max = border_max = 0.0
            content_at_edge = False
            for uy, ux in D.DIRECTIONS:
                d = defect(x, mode, s * uy, s * ux)
                inside_max = max(inside_max, float(d[..., ~border].max()))
                border_max = max(border_max, float(d[..., border].max()))
                content_at_edge |= bool(_roll(x, s * uy, s * ux)[..., edge].any())
            rows.append({"padding_mode": mode, "shift": s, "max_inside": inside_max,
                         "max_border": border_max, "border_band": band,
                         "content_at_edge": content_at_edge})
    _print(R.table(rows, ["padding_mode", "shift", "max_inside", "max_border",
                          "content_at_edge"],
                   title=f"max |conv(roll(x)) - roll(conv(x))| over {len(x)} test digits and 8 "
                         f"directions; 'border' = within kernel radius + shift of an edge"))

    # for the plot: the digit whose zero-padding defect is largest, rolled down by max_shift
    d = defect(x, "zeros", max_shift, 0)
    k, c = np.unravel_index(int(np.argmax(d.max(axis=(2, 3)))), d.shape[:2])
    images = [("digit", x[k, 0]),
              (f"rolled down {max_shift} px", _roll(x[k, 0], max_shift, 0)),
              (f"zeros: |diff|, channel {c}", d[k, c]),
              (f"circular: |diff|, channel {c}",
               defect(x[k:k + 1], "circular", max_shift, 0)[0, c])]

    # the 1-D example
    x1 = np.array([[[0, 3, 2, 0, 0]]], np.float32)
    x2 = np.array([[[0, 0, 3, 2, 0]]], np.float32)
    k1 = np.array([[[1, -1]]], np.float32)
    y1 = fastconv.conv1d(x1, k1, backend=backend)[0, 0]
    y2 = fastconv.conv1d(x2, k1, backend=backend)[0, 0]
    shifted = bool(np.array_equal(y2[1:], y1[:-1]) and y2[0] == 0)
    ex = {"x": x1[0, 0].tolist(), "x_shifted": x2[0, 0].tolist(), "kernel": k1[0, 0].tolist(),
          "y": y1.tolist(), "y_shifted": y2.tolist(), "output_shifted_by_one": shifted}
    _print(f"\n1-D: conv1d({ex['x']}, {ex['kernel']}) = {ex['y']}; "
           f"conv1d({ex['x_shifted']}, ...) = {ex['y_shifted']} -> "
           f"{'the output moves by one too' if shifted else 'the output does NOT simply move'}")

    def worst(mode, key):
        return max(r[key] for r in rows if r["padding_mode"] == mode)

    zero_rows = [r for r in rows if r["padding_mode"] == "zeros"]
    broken = [r["shift"] for r in zero_rows if r["max_border"] > tol]
    at_edge = [r["shift"] for r in zero_rows if r["content_at_edge"]]
    circular_max = max(worst("circular", "max_inside"), worst("circular", "max_border"))
    claims = [
        R.claim("circular", "With circular padding, convolution is exactly equivariant to "
                "circular shifts", circular_max <= tol,
                f"max difference {circular_max:.2e} (rounding tolerance {tol:.1e})"),
        R.claim("zeros_inside", "With zero padding, equivariance holds away from the border",
                worst("zeros", "max_inside") <= tol,
                f"max difference inside {worst('zeros', 'max_inside'):.2e}"),
        R.claim("zeros_border", "With zero padding, equivariance breaks at the border",
                bool(broken),
                f"differences at the border for shifts {broken or 'none'} px (max "
                f"{worst('zeros', 'max_border'):.3g}); the rolled digits reach the "
                f"{r}-pixel edge band at shifts {at_edge or 'none'} px"),
        R.claim("conv1d", "Shifting [0,3,2,0,0] to [0,0,3,2,0] shifts conv1d's output",
                shifted, f"{ex['y']} -> {ex['y_shifted']}"),
    ]
    return {"conv1d_example": ex, "conv2d": rows, "tolerance": tol}, claims, images


# --------------------------------------------------------------------------------------------
# training (every seed), 4, 5 and 6
# --------------------------------------------------------------------------------------------
def _train_one(name, ds, x, y, cfg, steps, seed, bar):
    model = M.build(name, ds.image_shape, seed, cfg.backend)
    if bar is not None:
        bar.set_description(f"seed {seed} {name:>5} on {len(y)} {ds.name} images")
    losses = M.train(model, x, y, M.TrainConfig(steps, cfg.batch_size, cfg.lr, seed),
                     progress=None if bar is None else bar.update)
    return model, losses


def _train_fractions(ds, cfg, steps, seed, bar, fractions):
    """dense, cnn and lenet at every training-set fraction, for one seed; returns the runs
    and the models trained on the whole set."""
    runs, trained = [], {}
    for frac in fractions:
        idx = np.arange(len(ds.y_train)) if frac == 1 else \
            D.stratified_subset(ds.y_train, frac, seed)
        x, y = ds.x_train[idx], ds.y_train[idx]
        for name in M.MODELS:
            model, losses = _train_one(name, ds, x, y, cfg, steps, seed, bar)
            tr = M.accuracy(model, x, y)
            te = M.accuracy(model, ds.x_test, ds.y_test)
            runs.append({"model": name, "seed": int(seed), "fraction": float(frac),
                         "n_train": int(len(y)), "steps": int(steps), "train_accuracy": tr,
                         "test_accuracy": te, "gap": tr - te,
                         "losses": [round(v, 6) for v in losses]})
            if frac == 1:
                trained[name] = model
    return runs, trained


def _shift_curve(model, ds, max_shift):
    return [float(np.mean([M.accuracy(model, c, ds.y_test)
                           for c in D.shifted_copies(ds.x_test, s)]))
            for s in range(max_shift + 1)]


def _summary(runs, fractions, models):
    """Per model and fraction: train and test accuracy and gap, mean and sd over seeds."""
    rows = []
    for frac in fractions:
        for m in models:
            rs = [r for r in runs if r["model"] == m and r["fraction"] == float(frac)]
            row = {"model": m, "fraction": float(frac), "n_train": rs[0]["n_train"],
                   "seeds": len(rs)}
            for key, col in (("train_accuracy", "train"), ("test_accuracy", "test"),
                             ("gap", "gap")):
                row[col + "_mean"], row[col + "_sd"] = R.mean_sd([r[key] for r in rs])
            rows.append(row)
    return rows


def _per_seed(runs, model, frac, key):
    return [r[key] for r in sorted(runs, key=lambda r: r["seed"])
            if r["model"] == model and r["fraction"] == float(frac)]


def _efficiency_table(runs, fractions, params=None):
    rows = []
    for frac in fractions:
        for m in M.MODELS:
            row = {"model": m, "size": f"{frac:.0%}",
                   "n_train": _per_seed(runs, m, frac, "n_train")[0],
                   "train": R.pm(_per_seed(runs, m, frac, "train_accuracy")),
                   "test": R.pm(_per_seed(runs, m, frac, "test_accuracy")),
                   "gap_points": R.pm(_per_seed(runs, m, frac, "gap"))}
            if params is not None:
                row["params"] = params[m]
            rows.append(row)
    cols = ["model"] + (["params"] if params is not None else []) + \
        ["size", "n_train", "train", "test", "gap_points"]
    return R.table(rows, cols, title=f"accuracy (%, mean +- sd over the seeds) with "
                   f"{runs[0]['steps']} optimizer steps per run, whatever the training-set size")


def section_invariance(per_seed_acc, cfg, n_test):
    _section("4. Invariance: test accuracy vs shift of the test images")
    shifts = list(range(cfg.max_shift + 1))
    seeds = sorted(per_seed_acc)
    models = list(per_seed_acc[seeds[0]])
    curves = {m: np.array([per_seed_acc[s][m] for s in seeds]) for m in models}  # (seeds, shifts)
    acc = {m: [float(v) for v in c.mean(axis=0)] for m, c in curves.items()}
    acc_sd = {m: [float(v) for v in (c.std(axis=0, ddof=1) if len(seeds) > 1
                                     else np.zeros(len(shifts)))] for m, c in curves.items()}
    rows = [dict(model=m, **{f"{s} px": R.pm(curves[m][:, k]) for k, s in enumerate(shifts)})
            for m in models]
    _print(R.table(rows, ["model"] + [f"{s} px" for s in shifts],
                   title=f"accuracy (%), mean over the 8 directions; mean +- sd over "
                         f"{len(seeds)} seeds"))
    tol = cfg.tolerance_points
    chance = 1 / M.N_CLASSES
    findings = {m: R.invariance_finding(shifts, acc[m], tol, chance) for m in models}
    seed_findings = {m: [R.invariance_finding(shifts, list(curves[m][i]), tol, chance)
                         for i in range(len(seeds))] for m in models}
    for m, f in findings.items():
        reach = [g["max_invariant_shift"] for g in seed_findings[m]]
        _print(f"-> {m}: invariance (mean accuracy within {tol:g} points of unshifted) "
               f"{f['statement']}; per seed, it holds up to {reach} px")
    mean_shifted = {m: c[:, 1:].mean(axis=1) for m, c in curves.items()}  # per seed
    drop1 = {m: 100 * (c[:, 0] - c[:, 1]) for m, c in curves.items()}

    def reach(m):
        return [g["max_invariant_shift"] for g in seed_findings[m]]

    def mean_pct(m):
        return f"{100 * float(np.mean(mean_shifted[m])):.1f}%"

    last = shifts[-1]
    claims = [
        R.claim_over_seeds(
            "pool_small", "Max pooling makes the CNN invariant to small (1 px) shifts",
            [k >= 1 for k in reach("lenet")],
            f"LeNet: {R.pm(curves['lenet'][:, 0])}% -> {R.pm(curves['lenet'][:, 1])}% at 1 px "
            f"(tolerance {tol:g} points)"),
        R.claim_over_seeds(
            "pool_beyond", f"Max pooling's invariance extends beyond small shifts (to {last} px)",
            [g["verdict"] == "beyond" for g in seed_findings["lenet"]], findings["lenet"]["statement"]),
        R.claim("pool_vs_nopool", "The CNN with max pooling keeps more accuracy under shifts "
                "than the CNN without pooling",
                np.mean(mean_shifted["lenet"]) > np.mean(mean_shifted["cnn"]),
                f"mean accuracy over 1..{last} px: LeNet {mean_pct('lenet')}, CNN without "
                f"pooling {mean_pct('cnn')}; drop at 1 px {np.mean(drop1['lenet']):.1f} vs "
                f"{np.mean(drop1['cnn']):.1f} points",
                R.seed_margin(mean_shifted["lenet"], mean_shifted["cnn"], n_test)),
        R.claim("conv_vs_dense", "A CNN without pooling keeps more accuracy under shifts than "
                "the dense net", np.mean(mean_shifted["cnn"]) > np.mean(mean_shifted["dense"]),
                f"mean accuracy over 1..{last} px: CNN {mean_pct('cnn')}, dense "
                f"{mean_pct('dense')}",
                R.seed_margin(mean_shifted["cnn"], mean_shifted["dense"], n_test)),
    ]
    for m, what in (("lenet_blur", "Anti-aliased pooling (blur, then max pooling)"),
                    ("lenet_maxblur", "Zhang's MaxBlurPool (max pooling at stride 1, then a "
                                      "blur that subsamples)"),
                    ("gap", "A global-average-pooling head")):
        if m not in curves:
            continue
        claims += [
            R.claim(f"{m}_vs_lenet", f"{what} keeps more accuracy under shifts than plain "
                    f"max pooling (LeNet)",
                    np.mean(mean_shifted[m]) > np.mean(mean_shifted["lenet"]),
                    f"mean accuracy over 1..{last} px: {m} {mean_pct(m)}, LeNet "
                    f"{mean_pct('lenet')}; unshifted {R.pm(curves[m][:, 0])}% vs "
                    f"{R.pm(curves['lenet'][:, 0])}%",
                    R.seed_margin(mean_shifted[m], mean_shifted["lenet"], n_test)),
            R.claim_over_seeds(
                f"{m}_further", f"{what} holds invariance further than plain max pooling",
                [a > b for a, b in zip(reach(m), reach("lenet"))],
                f"largest shift within {tol:g} points, per seed: {m} {reach(m)} px, LeNet "
                f"{reach('lenet')} px; {m}: {findings[m]['statement']}"),
        ]
    return {"shifts": shifts, "seeds": seeds, "accuracy": acc, "accuracy_sd": acc_sd,
            "per_seed": {m: c.tolist() for m, c in curves.items()},
            "tolerance_points": float(tol), "findings": findings,
            "findings_per_seed": seed_findings,
            "mean_shifted_accuracy": {m: float(np.mean(v)) for m, v in mean_shifted.items()}}, \
        claims


def _efficiency_claims(runs, fractions, n_test, prefix, where):
    small = min(fractions)
    test_small = {m: _per_seed(runs, m, small, "test_accuracy") for m in M.MODELS}
    gap = {m: np.mean([_per_seed(runs, m, f, "gap") for f in fractions], axis=0)
           for m in M.MODELS}  # per seed, mean over the sizes
    weaker = np.minimum(test_small["cnn"], test_small["lenet"])
    worse_gap = np.maximum(gap["cnn"], gap["lenet"])
    text = {m: R.pm(v) for m, v in test_small.items()}
    return [
        R.claim(prefix + "data_efficiency", f"{where}CNNs learn from less data than the dense "
                f"net (test accuracy with {small:.0%} of the training set)",
                np.mean(weaker) > np.mean(test_small["dense"]),
                ", ".join(f"{m} {t}%" for m, t in text.items()) + "; the weaker CNN vs dense",
                R.seed_margin(weaker, test_small["dense"], n_test)),
        R.claim(prefix + "overfitting", f"{where}{'w' if where else 'W'}eight sharing reduces "
                "overfitting: the CNNs' "
                "train-test gap is smaller than the dense net's",
                np.mean(worse_gap) < np.mean(gap["dense"]),
                "mean gap over the sizes " + ", ".join(f"{m} {R.pm(g)} points"
                                                       for m, g in gap.items())
                + "; dense minus the larger CNN gap",
                R.seed_margin(gap["dense"], worse_gap, None)),
    ], test_small, gap


def section_data_efficiency(runs, cfg, n_test):
    _section("5. Overfitting and data efficiency")
    _print(_efficiency_table(runs, cfg.fractions))
    claims, test_small, gap = _efficiency_claims(runs, cfg.fractions, n_test, "", "")
    small = min(cfg.fractions)
    _print(f"-> with {small:.0%} of the data, test accuracy: " + ", ".join(
        f"{m} {R.pm(a)}%" for m, a in test_small.items()))
    _print("-> mean train-test gap over the sizes: " + ", ".join(
        f"{m} {R.pm(g)} points" for m, g in gap.items()))
    return {"fractions": [float(f) for f in cfg.fractions], "runs": runs,
            "summary": _summary(runs, cfg.fractions, M.MODELS),
            "mean_gap": {m: float(np.mean(g)) for m, g in gap.items()},
            "test_accuracy_smallest": {m: float(np.mean(a)) for m, a in test_small.items()}}, \
        claims


def section_translated(runs, curve, params, data_note, cfg, n_test):
    canvas = cfg.canvas
    _section(f"6. Translated digits: each 8x8 digit at a random position on {canvas}x{canvas}, "
             "in training and test")
    _print(data_note)
    _print(_efficiency_table(runs, cfg.fractions, params))
    claims, test_small, gap = _efficiency_claims(runs, cfg.fractions, n_test, "translated_",
                                                 "On translated digits, ")
    small = min(cfg.fractions)
    _print(f"-> with {small:.0%} of the data, test accuracy: " + ", ".join(
        f"{m} {R.pm(a)}%" for m, a in test_small.items()))
    _print("-> mean train-test gap over the sizes: " + ", ".join(
        f"{m} {R.pm(g)} points" for m, g in gap.items()))
    sizes = cfg.resolved_canvas_sizes()
    rows = [dict(model=m, params=", ".join(f"{params_c[m]:,}" for params_c in
                                           (curve["params"][c] for c in sizes)),
                 **{f"{c}x{c} (<= {c - 8} px)": R.pm(curve["per_seed"][m][k])
                    for k, c in enumerate(sizes)})
            for m in M.MODELS]
    _print(R.table(rows, ["model"] + [f"{c}x{c} (<= {c - 8} px)" for c in sizes] + ["params"],
                   title="\nThe canvas curve: test accuracy (%, mean +- sd over the seeds), "
                   "every training image, as the range of positions grows; parameters at each "
                   "canvas"))
    # per CNN: test accuracy and gap, averaged over the sizes per seed, against the dense net's
    mean_test = {m: np.mean([_per_seed(runs, m, f, "test_accuracy") for f in cfg.fractions],
                            axis=0) for m in M.MODELS}
    full = max(cfg.fractions)
    dense_full = float(np.mean(_per_seed(runs, "dense", full, "test_accuracy")))
    for m, label in (("cnn", "The CNN without pooling"), ("lenet", "The LeNet-style CNN")):
        match = [f for f in cfg.fractions
                 if np.mean(_per_seed(runs, m, f, "test_accuracy")) >= dense_full]
        reach = (f"; it matches the dense net's {100 * dense_full:.1f}% on {full:.0%} of the "
                 f"data with {min(match):.0%}" if match else
                 f"; it does not reach the dense net's {100 * dense_full:.1f}% on {full:.0%}")
        claims += [
            R.claim(f"translated_{m}_data", f"On translated digits, {label[0].lower()}"
                    f"{label[1:]} learns more from the same data than the dense net (test "
                    f"accuracy, mean over the training-set sizes)",
                    np.mean(mean_test[m]) > np.mean(mean_test["dense"]),
                    f"{m} {R.pm(mean_test[m])}%, dense {R.pm(mean_test['dense'])}% ({m}: "
                    f"{params[m]:,} parameters, dense {params['dense']:,})" + reach,
                    R.seed_margin(mean_test[m], mean_test["dense"], n_test)),
            R.claim(f"translated_{m}_gap", f"On translated digits, {label[0].lower()}"
                    f"{label[1:]} overfits less than the dense net (train-test gap, mean over "
                    f"the sizes)", np.mean(gap[m]) < np.mean(gap["dense"]),
                    f"{m} {R.pm(gap[m])} points, dense {R.pm(gap['dense'])} points; dense "
                    f"minus {m}", R.seed_margin(gap["dense"], gap[m], None)),
        ]
    tol = cfg.tolerance_points
    first, last = sizes[0], sizes[-1]
    drop = {m: 100 * (np.asarray(curve["per_seed"][m][0]) - np.asarray(curve["per_seed"][m][-1]))
            for m in M.MODELS}
    claims += [
        R.claim_over_seeds(
            "translated_large_shifts", f"A CNN with pooling trained on translated digits keeps "
            f"its accuracy as the range of positions grows ({first - 8} -> {last - 8} px)",
            [d <= tol for d in drop["lenet"]],
            f"LeNet {R.pm(curve['per_seed']['lenet'][0])}% on {first}x{first}, "
            f"{R.pm(curve['per_seed']['lenet'][-1])}% on {last}x{last} (tolerance {tol:g} "
            f"points); dense {R.pm(curve['per_seed']['dense'][0])}% -> "
            f"{R.pm(curve['per_seed']['dense'][-1])}%"),
        R.claim("translated_lenet_holds_better", f"As the canvas grows ({first}x{first} -> "
                f"{last}x{last}), the LeNet-style CNN loses less accuracy than the dense net",
                np.mean(drop["lenet"]) < np.mean(drop["dense"]),
                f"drop LeNet {np.mean(drop['lenet']):.1f} points, dense "
                f"{np.mean(drop['dense']):.1f}, CNN without pooling {np.mean(drop['cnn']):.1f}"
                f"; dense minus LeNet",
                R.seed_margin(np.asarray(drop["dense"]) / 100, np.asarray(drop["lenet"]) / 100,
                              None)),
        R.claim("translated_conv_vs_dense", f"On translated digits ({last}x{last}, every "
                "training image), both CNNs beat the dense net",
                np.mean(np.minimum(curve["per_seed"]["cnn"][-1], curve["per_seed"]["lenet"][-1]))
                > np.mean(curve["per_seed"]["dense"][-1]),
                f"dense {R.pm(curve['per_seed']['dense'][-1])}%, cnn "
                f"{R.pm(curve['per_seed']['cnn'][-1])}%, lenet "
                f"{R.pm(curve['per_seed']['lenet'][-1])}%; the weaker CNN vs dense",
                R.seed_margin(np.minimum(curve["per_seed"]["cnn"][-1],
                                         curve["per_seed"]["lenet"][-1]),
                              curve["per_seed"]["dense"][-1], n_test)),
    ]
    curve_out = {"mean": {m: [R.mean_sd(v)[0] for v in curve["per_seed"][m]] for m in M.MODELS},
                 "sd": {m: [R.mean_sd(v)[1] for v in curve["per_seed"][m]] for m in M.MODELS},
                 "per_seed": curve["per_seed"],
                 "params": {str(c): curve["params"][c] for c in sizes}}
    return {"canvas": int(canvas), "fractions": [float(f) for f in cfg.fractions],
            "params": params, "runs": runs, "summary": _summary(runs, cfg.fractions, M.MODELS),
            "mean_gap": {m: float(np.mean(g)) for m, g in gap.items()},
            "test_accuracy_smallest": {m: float(np.mean(a)) for m, a in test_small.items()},
            "canvas_sizes": sizes, "canvas_curve": curve_out}, claims


# --------------------------------------------------------------------------------------------
def _versions():
    import scipy

    out = {"fastconv": fastconv.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
           "python": platform.python_version()}
    try:
        import sklearn

        out["scikit-learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover - the digits need it
        pass
    return out


def run(cfg: StudyConfig) -> dict:
    """Run the whole study; print the tables; write ``results.json`` and the plots into
    ``cfg.out``; return the results.

    numpy's BLAS is held to fastconv's threads meanwhile (:func:`fastconv.nn.hold_blas`):
    the study's matrix products are small, each gets the threads its work keeps busy (one,
    mostly), and BLAS threads waiting between them do not compete with the conv kernels'.
    """
    with fastconv.nn.hold_blas():
        return _run(cfg)


def _load(cfg, seed):
    if cfg.mnist:
        return D.load_mnist(cfg.mnist, seed, *((2000, 500) if cfg.quick else (10000, 2000)),
                            limit=cfg.limit)
    return D.load_digits(seed, limit=cfg.limit)


def _steps(cfg, n_train):
    return max(1, cfg.resolved_epochs() * math.ceil(n_train / cfg.batch_size))


def _run(cfg):
    os.makedirs(cfg.out, exist_ok=True)
    t_start, c_start = time.perf_counter(), time.process_time()
    timings, cpu = {}, {}
    clock = [t_start, c_start]

    def lap(key):  # wall-clock and CPU seconds since the last lap, added to section key
        now, cnow = time.perf_counter(), time.process_time()
        timings[key] = timings.get(key, 0.0) + (now - clock[0])
        cpu[key] = cpu.get(key, 0.0) + (cnow - clock[1])
        clock[0], clock[1] = now, cnow

    backend = cfg.backend
    seeds = cfg.resolved_seeds()
    if not seeds:
        raise ValueError("seeds must be at least 1")
    sizes = cfg.resolved_canvas_sizes()
    if min(sizes) < 8:
        raise ValueError(f"canvas sizes must be at least 8 (the digits' size), got {sizes}")
    ds = _load(cfg, seeds[0])
    epochs = cfg.resolved_epochs()
    steps = _steps(cfg, len(ds.y_train))
    t_train = len(D.load_translated(seeds[0], cfg.canvas, limit=cfg.limit).y_train)
    t_steps = _steps(cfg, t_train)
    config = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "plots", "extra")}
    config.update(fractions=list(cfg.fractions), epochs=epochs, steps_per_run=steps,
                  seeds=len(seeds), canvas_sizes=sizes, translated_steps_per_run=t_steps,
                  optimizer=f"Adam(lr={cfg.lr:g})",
                  backend_resolved=fastconv.get_backend() if backend is None else backend)
    config["out"] = None  # the folder is not a result; keeps results.json comparable
    _print(f"fastconv study: {ds.note}")
    _print(f"{len(ds.y_train)} training / {len(ds.y_test)} test images; Adam lr {cfg.lr:g}, "
           f"batch {cfg.batch_size}, {epochs} epochs of the full set = {steps} steps per run, "
           f"seeds {seeds} (each seed: the split, the initial weights and the batches), "
           f"backend {config['backend_resolved']}")

    models = {n: M.build(n, ds.image_shape, seeds[0], backend) for n in M.INVARIANCE_MODELS}
    costs, counterfactual, claims = section_costs(models, ds.image_shape)
    lap("1. parameters and cost")

    extra = [m for m in M.INVARIANCE_MODELS if m not in M.MODELS]
    n_fr = len(cfg.fractions)
    total = len(seeds) * (steps * (len(M.MODELS) * n_fr + len(extra))
                          + t_steps * len(M.MODELS) * (n_fr + len(sizes) - 1))
    _print(f"\ntraining, per seed: {len(M.MODELS)} models x {n_fr} training-set sizes and "
           f"{', '.join(extra)} on the centred digits; {len(M.MODELS)} models x {n_fr} sizes "
           f"and x {len(sizes) - 1} more canvases on the translated digits "
           f"({len(seeds)} seeds, {total:,} steps) ...")
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True,
                   disable=None)  # None: off when stderr is not a terminal
    runs, t_runs, inv_acc, first = [], [], {}, None
    curve = {"per_seed": {m: [[] for _ in sizes] for m in M.MODELS},
             "params": {c: {} for c in sizes}}
    t_params, t_note, n_test_t = {}, "", 0
    try:
        for seed in seeds:
            ds = _load(cfg, seed)
            r, trained = _train_fractions(ds, cfg, steps, seed, bar, cfg.fractions)
            runs += r
            lap("5. data efficiency (training)")
            for name in extra:
                trained[name], _ = _train_one(name, ds, ds.x_train, ds.y_train, cfg, steps,
                                              seed, bar)
            lap("4. invariance (training " + ", ".join(extra) + ")")
            inv_acc[seed] = {m: _shift_curve(trained[m], ds, cfg.max_shift)
                             for m in M.INVARIANCE_MODELS}
            lap("4. invariance (evaluation)")
            if first is None:
                first = (trained, ds)
            for k, c in enumerate(sizes):
                tds = D.load_translated(seed, c, limit=cfg.limit)
                if c == cfg.canvas:
                    r, t_trained = _train_fractions(tds, cfg, t_steps, seed, bar,
                                                    cfg.fractions)
                    t_runs += r
                    t_note, n_test_t = tds.note, len(tds.y_test)
                    t_params = {m: int(t_trained[m].num_parameters()) for m in M.MODELS}
                else:
                    t_trained = {m: _train_one(m, tds, tds.x_train, tds.y_train, cfg, t_steps,
                                               seed, bar)[0] for m in M.MODELS}
                for m in M.MODELS:
                    curve["per_seed"][m][k].append(M.accuracy(t_trained[m], tds.x_test,
                                                              tds.y_test))
                    curve["params"][c][m] = int(t_trained[m].num_parameters())
                lap("6. translated digits")
    finally:
        if bar is not None:
            bar.close()

    trained, ds = first
    sparse, c = section_sparse(trained["cnn"][0], ds.x_test[:64], backend)
    claims += c
    lap("2. sparse connection")
    equiv, c, diff_images = section_equivariance(trained["lenet"][0], ds.x_test[:64],
                                                 cfg.max_shift, backend)
    claims += c
    lap("3. equivariance")
    inv, c = section_invariance(inv_acc, cfg, len(ds.y_test))
    claims += c
    eff, c = section_data_efficiency(runs, cfg, len(ds.y_test))
    claims += c
    translated, c = section_translated(t_runs, curve, t_params, t_note, cfg, n_test_t)
    translated["data"] = {"name": "translated digits", "canvas": int(cfg.canvas),
                          "n_train": int(t_runs[-1]["n_train"]), "n_test": int(n_test_t),
                          "steps": int(t_steps), "note": t_note}
    claims += c
    lap("tables and verdicts")

    _section("What the data says about each claim")
    _print("Comparisons are " + R.SEED_RULE + (". With one seed, two binomial standard "
           "errors over the test images decide instead." if len(seeds) == 1 else ".")
           + " Thresholds (invariance within the tolerance) must hold in every seed.")
    for cl in claims:
        tag = {"holds": "holds", "contradicted": "CONTRADICTED",
               "inconclusive": "inconclusive"}[cl["verdict"]]
        _print(f"[{tag}] {cl['claim']}\n    {cl['evidence']}")

    results = {
        "schema": R.SCHEMA_VERSION,
        "config": config,
        "versions": _versions(),
        "data": ds.summary(),
        "seeds": seeds,
        "models": costs,
        "costs": counterfactual,
        "sparse": sparse,
        "equivariance": equiv,
        "invariance": inv,
        "data_efficiency": eff,
        "translated": translated,
        "claims": claims,
        "plots": [],
        "timings": {},
    }
    if cfg.plots:
        results["plots"] = R.plot_all(results, cfg.out, diff_images)
    lap("plots")
    timings["total"] = time.perf_counter() - t_start
    cpu["total"] = time.process_time() - c_start
    results["timings"] = {k: {"wall_s": round(timings[k], 2), "cpu_s": round(cpu[k], 2)}
                          for k in sorted(timings)}
    _section("Time per section (seconds)")
    _print(R.table([dict(section=k, wall=f"{timings[k]:.1f}", cpu=f"{cpu[k]:.1f}")
                    for k in sorted(timings)], ["section", "wall", "cpu"],
                   title="wall clock, and this process's CPU time (on a busy machine the "
                         "wall clock includes waiting for a core; CPU time does not)"))
    path = os.path.join(cfg.out, "results.json")
    R.write_json(results, path)
    _print(f"\nwrote {path}" + "".join(f", {p}" for p in results["plots"]) + f" in {cfg.out}")
    return results
