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

__all__ = ["table", "claim", "margin", "invariance_finding", "write_json", "check_schema",
           "plot_all", "SCHEMA_VERSION"]

SCHEMA_VERSION = "fastconv-study/1"

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
}
_SUB = {
    "costs": {"counterfactual": list, "counterfactual_28x28": list},
    "sparse": {"shape": list, "nnz": int, "density": float, "distinct_values": int,
               "kernel_weights": int, "matches_conv2d": bool, "max_abs_error": float},
    "equivariance": {"conv1d_example": dict, "conv2d": list, "tolerance": float},
    "invariance": {"shifts": list, "accuracy": dict, "tolerance_points": float,
                   "findings": dict},
    "data_efficiency": {"fractions": list, "runs": list},
}
_CLAIM = {"id": str, "claim": str, "holds": bool, "verdict": str, "evidence": str}
_RUN = {"model": str, "fraction": float, "n_train": int, "steps": int, "train_accuracy": float,
        "test_accuracy": float, "gap": float, "losses": list}


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
    for i, r in enumerate(results["data_efficiency"]["runs"]):
        need(r, _RUN, f"data_efficiency.runs[{i}].")
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
_COLORS = {"dense": "tab:gray", "cnn": "tab:blue", "lenet": "tab:red"}


def plot_all(results, out_dir, equivariance_images=None) -> list:
    """Write the PNG plots into ``out_dir`` (matplotlib, Agg); return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    labels = {m: results["models"][m]["description"].split(":")[0] for m in results["models"]}

    inv = results["invariance"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, acc in inv["accuracy"].items():
        ax.plot(inv["shifts"], [100 * a for a in acc], "o-", color=_COLORS.get(m), label=labels[m])
    ax.set_xlabel("shift of the test images (px, mean over 8 directions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(inv["shifts"])
    ax.set_title(f"Invariance to translation ({results['data']['name']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "invariance.png"), dpi=110)
    plt.close(fig)
    names.append("invariance.png")

    runs = results["data_efficiency"]["runs"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for m in results["models"]:
        rs = sorted((r for r in runs if r["model"] == m), key=lambda r: r["n_train"])
        n = [r["n_train"] for r in rs]
        a1.plot(n, [100 * r["test_accuracy"] for r in rs], "o-", color=_COLORS.get(m),
                label=f"{labels[m]} test")
        a1.plot(n, [100 * r["train_accuracy"] for r in rs], "o--", color=_COLORS.get(m),
                alpha=0.5, label=f"{labels[m]} train")
        a2.plot(n, [100 * r["gap"] for r in rs], "o-", color=_COLORS.get(m), label=labels[m])
    sizes = sorted({r["n_train"] for r in runs})
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(v) for v in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
    a1.set_ylabel("accuracy (%)")
    a1.set_title("Train (dashed) and test accuracy")
    a1.legend(fontsize=7)
    a2.set_ylabel("train - test accuracy (points)")
    a2.set_title("Generalization gap")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "data_efficiency.png"), dpi=110)
    plt.close(fig)
    names.append("data_efficiency.png")

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
