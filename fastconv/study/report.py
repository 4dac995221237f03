"""Turning the study's numbers into tables, statements, plots and ``results.json``.

Every sentence the study prints about a claim is computed here from the measured numbers:
a claim is stated, tested against the data, and reported as holding or not, with the
numbers that decide it. Nothing is written in advance.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

__all__ = ["table", "claim", "margin", "seed_margin", "claim_over_seeds", "mean_sd", "pm",
           "invariance_finding", "write_json", "check_schema", "plot_all", "SCHEMA_VERSION"]

SCHEMA_VERSION = "fastconv-study/2"

# The keys results.json always has, and their types: check_schema() enforces them.
_SCHEMA = {
    "schema": str,
    "config": dict,
    "versions": dict,
    "data": dict,
    "models": dict,
    "costs": dict,
    "sparse": dict,
    "equivariance": dict,
    "invariance": dict,
    "data_efficiency": dict,
    "claims": list,
    "plots": list,
    "seeds": list,
    "translated": dict,
    "timings": dict,
}
_SUB = {
    "costs": {"counterfactual": list, "counterfactual_28x28": list},
    "sparse": {"shape": list, "nnz": int, "density": float, "distinct_values": int,
               "kernel_weights": int, "matches_conv2d": bool, "max_abs_error": float},
    "equivariance": {"conv1d_example": dict, "conv2d": list, "tolerance": float},
    "invariance": {"shifts": list, "accuracy": dict, "accuracy_sd": dict, "per_seed": dict,
                   "tolerance_points": float, "findings": dict},
    "data_efficiency": {"fractions": list, "runs": list, "summary": list},
    "translated": {"canvas": int, "data": dict, "params": dict, "fractions": list,
                   "runs": list, "summary": list, "canvas_sizes": list, "canvas_curve": dict},
}
_CLAIM = {"id": str, "claim": str, "holds": bool, "verdict": str, "evidence": str}
_RUN = {"model": str, "seed": int, "fraction": float, "n_train": int, "steps": int,
        "train_accuracy": float, "test_accuracy": float, "gap": float, "losses": list}


def check_schema(results) -> None:
    """Raise ValueError naming the first key of ``results`` that is missing or mistyped."""
    def need(obj, spec, where):
        for key, typ in spec.items():
            if key not in obj:
                raise ValueError(f"results.json: {where}{key} is missing")
            value = obj[key]
            ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
            if typ is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise ValueError(
                    f"results.json: {where}{key} should be {typ.__name__}, got "
                    f"{type(value).__name__}"
                )

    need(results, _SCHEMA, "")
    if results["schema"] != SCHEMA_VERSION:
        raise ValueError(f"results.json: schema is {results['schema']!r}, not {SCHEMA_VERSION!r}")
    for section, spec in _SUB.items():
        need(results[section], spec, section + ".")
    for i, c in enumerate(results["claims"]):
        need(c, _CLAIM, f"claims[{i}].")
    for section in ("data_efficiency", "translated"):
        for i, r in enumerate(results[section]["runs"]):
            need(r, _RUN, f"{section}.runs[{i}].")
    for name, m in results["models"].items():
        need(m, {"description": str, "layers": list, "params": int, "macs": int,
                 "weight_bytes": int, "activation_bytes": int}, f"models.{name}.")


def write_json(results, path) -> None:
    check_schema(results)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=False)
        f.write("\n")


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
def _fmt(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    if isinstance(v, (float, np.floating)):
        if v == 0:
            return "0"
        if abs(v) < 1e-3 or abs(v) >= 1e6:
            return f"{v:.2e}"
        return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"
    if isinstance(v, (list, tuple)):
        return "x".join(str(e) for e in v)
    return str(v)


def table(rows, columns, title=None) -> str:
    """A plain-text table of dicts ``rows`` over ``columns`` (first column left-aligned)."""
    cells = [list(columns)] + [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [] if title is None else [title]
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def claim(cid, text, holds, evidence, margin=None) -> dict:
    """A claim and what the data says. ``margin``, from :func:`margin`, marks a comparison
    of accuracies: one within its noise is 'inconclusive' whatever its sign."""
    verdict = "holds" if holds else "contradicted"
    out = {"id": cid, "claim": text, "holds": bool(holds), "evidence": evidence}
    if margin is not None:
        out.update(margin_points=margin["points"], noise_points=margin["noise_points"])
        if "rule" in margin:  # from seed_margin
            out.update(rule=margin["rule"], per_seed_points=margin["per_seed_points"])
            out["evidence"] += (f" (difference {margin['points']:+.1f} points, mean over "
                                f"{margin['n']} seeds, sd {margin['sd_points']:.1f}; two "
                                f"standard errors over seeds: {margin['noise_points']:.1f}; "
                                f"seeds agree in sign: {'yes' if margin['agree'] else 'no'})")
        else:
            out["evidence"] += (f" (difference {margin['points']:+.1f} points; two standard "
                                f"errors: {margin['noise_points']:.1f})")
        if not margin["significant"]:
            verdict = "inconclusive"
    out["verdict"] = verdict
    return out


def margin(a, b, n) -> dict:
    """Accuracy ``a`` minus accuracy ``b``, both measured on ``n`` test images, in points,
    with two binomial standard errors of the difference as its noise."""
    se = math.sqrt(max(a * (1 - a), 0) / n + max(b * (1 - b), 0) / n) if n else float("inf")
    d = 100 * (a - b)
    return {"points": round(d, 4), "noise_points": round(200 * se, 4),
            "significant": bool(abs(d) > 200 * se)}


def mean_sd(values):
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of ``values``."""
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pm(values, scale=100.0, digits=1):
    """``values``' mean +- sd (both times ``scale``) as text, e.g. '96.9 +- 0.4'."""
    m, s = mean_sd(values)
    return f"{scale * m:.{digits}f} +- {scale * s:.{digits}f}"


SEED_RULE = ("paired by seed (same split, initial-weight seed and batches): a difference "
             "counts when its mean over the seeds exceeds two standard errors of the mean "
             "(sd over seeds / sqrt(seeds), but never less than the test set's own binomial "
             "noise of that mean) and every seed agrees in sign; otherwise it is "
             "inconclusive")


def seed_margin(a, b, n_test):
    """Accuracies (or gaps) ``a`` minus ``b``, one pair per seed, in points; its noise is
    two standard errors of the mean over the seeds, and it counts (``significant``) only if
    every seed agrees in sign too (:data:`SEED_RULE`). With one seed the spread over seeds is
    unknown: falls back on :func:`margin`'s binomial error over ``n_test`` test images (for
    accuracies; ``n_test=None`` for other quantities: then it returns None, and
    :func:`claim` judges by the sign alone, as with one run before seeds existed)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = 100 * (a - b)
    n = len(d)
    if n == 1:
        if not n_test:
            return None  # nothing to judge the noise by: the claim is judged by its sign
        m = margin(float(a[0]), float(b[0]), n_test)
        return dict(m, n=1, sd_points=0.0, agree=True, per_seed_points=[round(float(d[0]), 4)],
                    rule="one seed: two binomial standard errors over the test images")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if n_test:  # a few seeds can agree by chance: the test set's noise is a floor
        se = max(se, margin(float(a.mean()), float(b.mean()), n_test)["noise_points"]
                 / 2 / math.sqrt(n))
    agree = bool(np.all(d > 0) or np.all(d < 0))
    return {"points": round(mean, 4), "noise_points": round(2 * se, 4), "n": n,
            "sd_points": round(sd, 4), "agree": agree,
            "per_seed_points": [round(float(v), 4) for v in d],
            "significant": bool(abs(mean) > 2 * se and agree), "rule": SEED_RULE}


def claim_over_seeds(cid, text, per_seed, evidence) -> dict:
    """A claim judged in each seed: holds if it holds in every seed, contradicted if in none,
    inconclusive if the seeds disagree."""
    per_seed = [bool(v) for v in per_seed]
    verdict = "holds" if all(per_seed) else "contradicted" if not any(per_seed) else \
        "inconclusive"
    return {"id": cid, "claim": text, "holds": verdict == "holds", "verdict": verdict,
            "evidence": evidence + f" (holds in {sum(per_seed)} of {len(per_seed)} seeds)",
            "per_seed": per_seed, "rule": "holds in every seed / in none; otherwise "
                                          "inconclusive"}


def invariance_finding(shifts, acc, tolerance_points, chance=0.1):
    """How far a model's accuracy survives shifts: the largest shift ``k`` such that every
    shift up to ``k`` costs at most ``tolerance_points`` percentage points of the unshifted
    accuracy, and a sentence saying whether that reaches the largest shift tested.

    A model whose unshifted accuracy is below twice ``chance`` is called 'near chance':
    a model that guesses is trivially invariant, and that says nothing about pooling."""
    base = acc[0]
    drops = [100 * (base - a) for a in acc]
    k = 0
    for s, d in zip(shifts[1:], drops[1:]):
        if d > tolerance_points:
            break
        k = s
    largest = shifts[-1]
    if base < 2 * chance:
        k, verdict = 0, "near chance"
        text = (f"cannot be judged: unshifted accuracy {100 * base:.1f}% is near chance "
                f"({100 * chance:.0f}%)")
    elif k == largest:
        verdict = "beyond"
        text = (f"holds up to {largest} px, the largest shift tested (worst drop "
                f"{max(drops[1:]):.1f} points)")
    elif k == 0:
        verdict = "none"
        text = (f"does not hold even for 1 px: {100 * base:.1f}% -> {100 * acc[1]:.1f}% "
                f"({drops[1]:.1f} points)")
    else:
        verdict = "small shifts only"
        text = (f"holds for small shifts only: within {tolerance_points:g} points up to {k} px, "
                f"then {100 * acc[k + 1]:.1f}% at {k + 1} px and {100 * acc[-1]:.1f}% at "
                f"{largest} px (from {100 * base:.1f}% unshifted)")
    return {"max_invariant_shift": int(k), "verdict": verdict, "chance": chance,
            "drop_points": [round(d, 4) for d in drops],
            "retained": [round(a / base, 4) if base else 0.0 for a in acc], "statement": text}


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------
_COLORS = {"dense": "tab:gray", "cnn": "tab:blue", "lenet": "tab:red",
           "lenet_blur": "tab:orange", "lenet_maxblur": "tab:purple", "gap": "tab:green"}


def _efficiency_axes(a1, a2, summary, labels, title):
    """Test (solid) and train (dashed) accuracy, and the gap, against the training-set
    size, mean over seeds with +-1 sd error bars."""
    for m in labels:
        rs = sorted((r for r in summary if r["model"] == m), key=lambda r: r["n_train"])
        if not rs:
            continue
        n = [r["n_train"] for r in rs]
        c = _COLORS.get(m)
        a1.errorbar(n, [100 * r["test_mean"] for r in rs], [100 * r["test_sd"] for r in rs],
                    fmt="o-", color=c, capsize=3, label=f"{labels[m]} test")
        a1.errorbar(n, [100 * r["train_mean"] for r in rs], [100 * r["train_sd"] for r in rs],
                    fmt="o--", color=c, alpha=0.5, capsize=3, label=f"{labels[m]} train")
        a2.errorbar(n, [100 * r["gap_mean"] for r in rs], [100 * r["gap_sd"] for r in rs],
                    fmt="o-", color=c, capsize=3, label=labels[m])
    sizes = sorted({r["n_train"] for r in summary})
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(v) for v in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
    a1.set_ylabel("accuracy (%)")
    a1.set_title(f"{title}: train (dashed) and test accuracy", fontsize=9)
    a1.legend(fontsize=7)
    a2.set_ylabel("train - test accuracy (points)")
    a2.set_title(f"{title}: generalization gap", fontsize=9)
    a2.legend(fontsize=8)


def plot_all(results, out_dir, equivariance_images=None) -> list:
    """Write the PNG plots into ``out_dir`` (matplotlib, Agg); return their file names.
    Curves are means over the seeds, with +-1 standard deviation as bands or error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    labels = {m: results["models"][m]["description"].split(":")[0] for m in results["models"]}
    seeds = len(results["seeds"])

    inv = results["invariance"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, acc in inv["accuracy"].items():
        mean, sd = 100 * np.asarray(acc), 100 * np.asarray(inv["accuracy_sd"][m])
        ax.plot(inv["shifts"], mean, "o-", color=_COLORS.get(m), label=labels[m])
        ax.fill_between(inv["shifts"], mean - sd, mean + sd, color=_COLORS.get(m), alpha=0.15)
    ax.set_xlabel("shift of the test images (px, mean over 8 directions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(inv["shifts"])
    ax.set_title(f"Invariance to translation ({results['data']['name']}; mean +- sd over "
                 f"{seeds} seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "invariance.png"), dpi=110)
    plt.close(fig)
    names.append("invariance.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    eff_labels = {m: labels[m] for m in labels
                  if any(r["model"] == m for r in results["data_efficiency"]["summary"])}
    _efficiency_axes(a1, a2, results["data_efficiency"]["summary"], eff_labels,
                     f"centred ({seeds} seeds)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "data_efficiency.png"), dpi=110)
    plt.close(fig)
    names.append("data_efficiency.png")

    tr = results["translated"]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4))
    t_labels = {m: labels[m] for m in tr["params"]}
    _efficiency_axes(a1, a2, tr["summary"], t_labels,
                     f"translated, {tr['canvas']}x{tr['canvas']} ({seeds} seeds)")
    curve = tr["canvas_curve"]
    for m in curve["mean"]:
        mean, sd = 100 * np.asarray(curve["mean"][m]), 100 * np.asarray(curve["sd"][m])
        a3.errorbar(tr["canvas_sizes"], mean, sd, fmt="o-", color=_COLORS.get(m), capsize=3,
                    label=labels[m])
    a3.set_xticks(tr["canvas_sizes"], [f"{c}\n(<= {c - 8} px)" for c in tr["canvas_sizes"]])
    a3.set_xlabel("canvas (largest displacement of the digit)")
    a3.set_ylabel("test accuracy (%)")
    a3.set_title("translated, all training images: accuracy vs canvas", fontsize=9)
    a3.grid(alpha=0.3)
    a3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "translated.png"), dpi=110)
    plt.close(fig)
    names.append("translated.png")

    if equivariance_images is not None:
        panels = equivariance_images
        # one colour scale for the difference maps, so an all-zero map looks all-zero
        vmax = max([float(np.max(img)) for t, img in panels if "diff" in t] + [1e-12])
        fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
        for ax, (title, img) in zip(np.atleast_1d(axes), panels):
            diff = "diff" in title
            im = ax.imshow(img, cmap="magma" if diff else "gray",
                           vmin=0 if diff else None, vmax=vmax if diff else None)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if diff:
                fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "equivariance.png"), dpi=110)
        plt.close(fig)
        names.append("equivariance.png")
    return names
