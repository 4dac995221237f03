"""The study, section by section: costs, sparse connection, equivariance, invariance, data
efficiency. :func:`run` computes everything, prints the tables, and writes ``results.json``
and the plots."""

from __future__ import annotations

import math
import os
import platform
import sys
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
    extra: dict = field(default_factory=dict)

    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return 4 if self.quick else 20


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
# 4 and 5: training, invariance, data efficiency
# --------------------------------------------------------------------------------------------
def _train_all(ds, cfg, steps, progress_bar):
    runs, trained = [], {}
    for frac in cfg.fractions:
        idx = np.arange(len(ds.y_train)) if frac == 1 else \
            D.stratified_subset(ds.y_train, frac, cfg.seed)
        x, y = ds.x_train[idx], ds.y_train[idx]
        for name in M.MODELS:
            model = M.build(name, ds.image_shape, cfg.seed, cfg.backend)
            if progress_bar is not None:
                progress_bar.set_description(f"{name:>5} on {len(y)} images")
            losses = M.train(model, x, y,
                             M.TrainConfig(steps, cfg.batch_size, cfg.lr, cfg.seed),
                             progress=None if progress_bar is None else progress_bar.update)
            tr = M.accuracy(model, x, y)
            te = M.accuracy(model, ds.x_test, ds.y_test)
            runs.append({"model": name, "fraction": float(frac), "n_train": int(len(y)),
                         "steps": int(steps), "train_accuracy": tr, "test_accuracy": te,
                         "gap": tr - te, "losses": [round(v, 6) for v in losses]})
            if frac == 1:
                trained[name] = model
    return runs, trained


def section_invariance(trained, ds, cfg):
    _section("4. Invariance: test accuracy vs shift of the test images")
    shifts = list(range(cfg.max_shift + 1))
    acc = {}
    for name, model in trained.items():
        acc[name] = []
        for s in shifts:
            copies = D.shifted_copies(ds.x_test, s)
            acc[name].append(float(np.mean([M.accuracy(model, c, ds.y_test) for c in copies])))
    rows = [dict(model=n, **{f"{s} px": 100 * a for s, a in zip(shifts, acc[n])})
            for n in acc]
    _print(R.table(rows, ["model"] + [f"{s} px" for s in shifts],
                   title="accuracy (%), mean over the 8 directions"))
    tol = cfg.tolerance_points
    findings = {n: R.invariance_finding(shifts, acc[n], tol, 1 / M.N_CLASSES) for n in acc}
    for n, f in findings.items():
        _print(f"-> {n}: invariance (accuracy within {tol:g} points of unshifted) {f['statement']}")
    mean_shifted = {n: float(np.mean(a[1:])) for n, a in acc.items()}
    drop1 = {n: a[0] - a[1] for n, a in acc.items()}
    lenet = findings["lenet"]
    n = len(ds.y_test)
    claims = [
        R.claim("pool_small", "Max pooling makes the CNN invariant to small (1 px) shifts",
                lenet["max_invariant_shift"] >= 1,
                f"LeNet: {100 * acc['lenet'][0]:.1f}% -> {100 * acc['lenet'][1]:.1f}% at 1 px, "
                f"{100 * lenet['retained'][1]:.0f}% of its accuracy kept (tolerance "
                f"{tol:g} points)"),
        R.claim("pool_beyond", f"Max pooling's invariance extends beyond small shifts "
                f"(to {shifts[-1]} px)", lenet["verdict"] == "beyond", lenet["statement"]),
        R.claim("pool_vs_nopool", "The CNN with max pooling keeps more accuracy under shifts "
                "than the CNN without pooling", mean_shifted["lenet"] > mean_shifted["cnn"],
                f"mean accuracy over 1..{shifts[-1]} px: LeNet {100 * mean_shifted['lenet']:.1f}%, "
                f"CNN without pooling {100 * mean_shifted['cnn']:.1f}%; drop at 1 px "
                f"{100 * drop1['lenet']:.1f} vs {100 * drop1['cnn']:.1f} points",
                R.margin(mean_shifted["lenet"], mean_shifted["cnn"], n)),
        R.claim("conv_vs_dense", "A CNN without pooling keeps more accuracy under shifts than "
                "the dense net", mean_shifted["cnn"] > mean_shifted["dense"],
                f"mean accuracy over 1..{shifts[-1]} px: CNN {100 * mean_shifted['cnn']:.1f}%, "
                f"dense {100 * mean_shifted['dense']:.1f}%",
                R.margin(mean_shifted["cnn"], mean_shifted["dense"], n)),
    ]
    return {"shifts": shifts, "accuracy": acc, "tolerance_points": float(tol),
            "findings": findings, "mean_shifted_accuracy": mean_shifted}, claims


def section_data_efficiency(runs, cfg, n_test):
    _section("5. Overfitting and data efficiency")
    rows = [dict(r, train=100 * r["train_accuracy"], test=100 * r["test_accuracy"],
                 gap_points=100 * r["gap"], size=f"{r['fraction']:.0%}") for r in runs]
    _print(R.table(rows, ["model", "size", "n_train", "train", "test", "gap_points"],
                   title=f"accuracy (%) with {runs[0]['steps']} optimizer steps per run, "
                         "whatever the training-set size"))
    by = {(r["model"], r["fraction"]): r for r in runs}
    small = min(cfg.fractions)
    test_small = {m: by[(m, small)]["test_accuracy"] for m in M.MODELS}
    gap = {m: float(np.mean([by[(m, f)]["gap"] for f in cfg.fractions])) for m in M.MODELS}
    best_small = max(test_small, key=test_small.get)
    _print(f"-> with {small:.0%} of the data, test accuracy: " + ", ".join(
        f"{m} {100 * a:.1f}%" for m, a in test_small.items()) + f"; best: {best_small}")
    _print("-> mean train-test gap over the sizes: " + ", ".join(
        f"{m} {100 * g:.1f} points" for m, g in gap.items()))
    claims = [
        R.claim("data_efficiency", f"CNNs learn from less data than the dense net (test "
                f"accuracy with {small:.0%} of the training set)",
                min(test_small["cnn"], test_small["lenet"]) > test_small["dense"],
                ", ".join(f"{m} {100 * a:.1f}%" for m, a in test_small.items())
                + "; the weaker CNN vs dense",
                R.margin(min(test_small["cnn"], test_small["lenet"]), test_small["dense"],
                         n_test)),
        R.claim("overfitting", "Weight sharing reduces overfitting: the CNNs' train-test gap "
                "is smaller than the dense net's", max(gap["cnn"], gap["lenet"]) < gap["dense"],
                "mean gap " + ", ".join(f"{m} {100 * g:.1f} points" for m, g in gap.items())),
    ]
    return {"fractions": [float(f) for f in cfg.fractions], "runs": runs,
            "mean_gap": gap, "test_accuracy_smallest": test_small}, claims


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


def _run(cfg):
    os.makedirs(cfg.out, exist_ok=True)
    backend = cfg.backend
    if cfg.mnist:
        ds = D.load_mnist(cfg.mnist, cfg.seed, *((2000, 500) if cfg.quick else (10000, 2000)),
                          limit=cfg.limit)
    else:
        ds = D.load_digits(cfg.seed, limit=cfg.limit)
    epochs = cfg.resolved_epochs()
    steps = max(1, epochs * math.ceil(len(ds.y_train) / cfg.batch_size))
    config = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "plots", "extra")}
    config.update(fractions=list(cfg.fractions), epochs=epochs, steps_per_run=steps,
                  optimizer=f"Adam(lr={cfg.lr:g})",
                  backend_resolved=fastconv.get_backend() if backend is None else backend)
    config["out"] = None  # the folder is not a result; keeps results.json comparable
    _print(f"fastconv study: {ds.note}")
    _print(f"{len(ds.y_train)} training / {len(ds.y_test)} test images; Adam lr {cfg.lr:g}, "
           f"batch {cfg.batch_size}, {epochs} epochs of the full set = {steps} steps per run, "
           f"seed {cfg.seed}, backend {config['backend_resolved']}")

    models = {n: M.build(n, ds.image_shape, cfg.seed, backend) for n in M.MODELS}
    costs, counterfactual, claims = section_costs(models, ds.image_shape)

    _print(f"\ntraining {len(M.MODELS)} models x {len(cfg.fractions)} training-set sizes ...")
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps * len(M.MODELS) * len(cfg.fractions), unit="step",
                   file=sys.stderr, dynamic_ncols=True,
                   disable=None)  # None: off when stderr is not a terminal
    try:
        runs, trained = _train_all(ds, cfg, steps, bar)
    finally:
        if bar is not None:
            bar.close()

    sparse, c = section_sparse(trained["cnn"][0], ds.x_test[:64], backend)
    claims += c
    equiv, c, diff_images = section_equivariance(trained["lenet"][0], ds.x_test[:64],
                                                 cfg.max_shift, backend)
    claims += c
    inv, c = section_invariance(trained, ds, cfg)
    claims += c
    eff, c = section_data_efficiency(runs, cfg, len(ds.y_test))
    claims += c

    _section("What the data says about each claim")
    for cl in claims:
        tag = {"holds": "holds", "contradicted": "CONTRADICTED",
               "inconclusive": "inconclusive"}[cl["verdict"]]
        _print(f"[{tag}] {cl['claim']}\n    {cl['evidence']}")

    results = {
        "schema": R.SCHEMA_VERSION,
        "config": config,
        "versions": _versions(),
        "data": ds.summary(),
        "models": costs,
        "costs": counterfactual,
        "sparse": sparse,
        "equivariance": equiv,
        "invariance": inv,
        "data_efficiency": eff,
        "claims": claims,
        "plots": [],
    }
    if cfg.plots:
        results["plots"] = R.plot_all(results, cfg.out, diff_images)
    path = os.path.join(cfg.out, "results.json")
    R.write_json(results, path)
    _print(f"\nwrote {path}" + "".join(f", {p}" for p in results["plots"]) + f" in {cfg.out}")
    return results
