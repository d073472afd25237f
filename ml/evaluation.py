"""Evaluation helpers for binary risk scores: ranking metrics, operating points, stability, plots.

Operating points treat tied scores as one group (a threshold cannot split a tie), which matters
for a rules engine whose score takes a handful of values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EPS = 1e-4


def _arrays(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=int)
    s = np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("both classes are needed (the labels hold only one)")
    return y, s


def roc_auc(y, score) -> float:
    from sklearn.metrics import roc_auc_score

    y, s = _arrays(y, score)
    return float(roc_auc_score(y, s))


def pr_auc(y, score) -> float:
    """Average precision (the area under the precision-recall curve, step-wise)."""
    from sklearn.metrics import average_precision_score

    y, s = _arrays(y, score)
    return float(average_precision_score(y, s))


def _operating_points(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, recall, fpr) for "flag if score >= t" at each distinct score."""
    y, s = _arrays(y, score)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    last_of_group = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    pos, neg = y.sum(), len(y) - y.sum()
    return s_sorted[last_of_group], tp[last_of_group] / pos, fp[last_of_group] / neg


def recall_at_fpr(y, score, max_fpr: float = 0.01) -> float:
    """The highest recall of a threshold whose false-positive rate is at most ``max_fpr``."""
    _, recall, fpr = _operating_points(y, score)
    ok = fpr <= max_fpr + 1e-12
    return float(recall[ok].max()) if ok.any() else 0.0


def fpr_at_recall(y, score, target_recall: float) -> float:
    """The lowest false-positive rate of a threshold reaching ``target_recall``."""
    _, recall, fpr = _operating_points(y, score)
    ok = recall >= target_recall - 1e-12
    return float(fpr[ok].min()) if ok.any() else 1.0


def threshold_for_recall(y, score, target_recall: float) -> float:
    """The highest threshold whose recall reaches ``target_recall``."""
    thr, recall, _ = _operating_points(y, score)
    ok = recall >= target_recall - 1e-12
    return float(thr[ok].max()) if ok.any() else float(thr.min())


def confusion_at(y, flagged) -> dict[str, float]:
    y = np.asarray(y, dtype=bool)
    f = np.asarray(flagged, dtype=bool)
    tp = int((y & f).sum())
    fp = int((~y & f).sum())
    tn = int((~y & ~f).sum())
    fn = int((y & ~f).sum())
    n = max(len(y), 1)
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "accuracy": (tp + tn) / n,
        "flagged_share": (tp + fp) / n,
    }


def compare_at_equal_recall(y, score_a, flagged_b) -> dict[str, float | None]:
    """A (a score) at B's recall (a fixed decision): each one's share of legitimate orders held."""
    b = confusion_at(y, flagged_b)
    a_fpr = fpr_at_recall(y, score_a, b["recall"])
    return {
        "recall": b["recall"],
        "a_fpr": a_fpr,
        "b_fpr": b["fpr"],
        "a_fewer_legit_intercepted": None if b["fpr"] == 0 else 1 - a_fpr / b["fpr"],
    }


# ------------------------------------------------------------------------------- stability


def _enc(v: float) -> float | str:
    return str(v) if math.isinf(v) else float(v)


def _dec(v) -> float:
    return float(v) if isinstance(v, str) else v


def psi_reference(values, bins: int = 10) -> dict:
    """Quantile bins of a reference sample (JSON-serialisable), missing values as a bin."""
    v = np.asarray(values, dtype=float)
    present = v[~np.isnan(v)]
    if len(present):
        inner = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner = np.array([])
    edges = np.r_[-np.inf, inner, np.inf]
    props = _proportions(v, edges)
    return {"edges": [_enc(e) for e in edges], "proportions": props}


def _proportions(v: np.ndarray, edges: np.ndarray) -> list[float]:
    n = max(len(v), 1)
    missing = np.isnan(v)
    present = v[~missing]
    # bins are (edge_i, edge_i+1]; the first one includes -inf
    idx = np.searchsorted(edges[1:-1], present, side="left")
    counts = np.bincount(idx, minlength=len(edges) - 1)
    return [float(c) / n for c in counts] + [float(missing.sum()) / n]


def psi(reference: dict, values) -> float:
    """Population stability index of ``values`` against a :func:`psi_reference`."""
    edges = np.array([_dec(e) for e in reference["edges"]], dtype=float)
    expected = np.array(reference["proportions"], dtype=float)
    actual = np.array(_proportions(np.asarray(values, dtype=float), edges))
    expected = np.clip(expected, EPS, None)
    actual = np.clip(actual, EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_level(value: float) -> str:
    if value < 0.1:
        return "stable"
    return "moderate" if value < 0.25 else "shifted"


# ---------------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, curves: dict[str, tuple]) -> Path:
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
    ax.set(xlabel="False-positive rate", ylabel="Recall (true-positive rate)", title="ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_pr(path: Path, curves: dict[str, tuple]) -> Path:
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, s) in curves.items():
        p, r, _ = precision_recall_curve(y, s)
        ax.step(r, p, where="post", label=f"{name} (AP {pr_auc(y, s):.3f})")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_calibration(path: Path, y, prob, bins: int = 10) -> Path:
    plt = _pyplot()
    y = np.asarray(y, dtype=float)
    p = np.asarray(prob, dtype=float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, max(len(edges) - 2, 0))
    mean_p = np.array([p[idx == i].mean() for i in np.unique(idx)])
    rate = np.array([y[idx == i].mean() for i in np.unique(idx)])
    counts = np.array([(idx == i).sum() for i in np.unique(idx)])
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(float(mean_p.max(initial=0)), float(rate.max(initial=0)), 1e-3) * 1.1
    ax.plot([0, top], [0, top], "--", color="grey", lw=0.8, label="perfectly calibrated")
    ax.plot(mean_p, rate, "o-", label="model")
    for x, yy, c in zip(mean_p, rate, counts, strict=True):
        ax.annotate(f"{c:,}", (x, yy), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="Predicted probability", ylabel="Observed fraud rate", title="Calibration")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_shap_summary(
    path: Path, contributions, values, feature_names: list[str], top: int = 20
) -> Path:
    """A beeswarm-like summary: per top feature, each order's contribution, coloured by value."""
    plt = _pyplot()
    c = np.asarray(contributions, dtype=float)
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    if len(c) > 2000:
        keep = rng.choice(len(c), 2000, replace=False)
        c, v = c[keep], v[keep]
    order = np.argsort(-np.abs(c).mean(axis=0))[:top]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(order) + 1.5))
    for row, j in enumerate(order[::-1]):
        col = v[:, j]
        ranks = np.full(len(col), np.nan)
        ok = ~np.isnan(col)
        if ok.any():
            ranks[ok] = np.argsort(np.argsort(col[ok])) / max(ok.sum() - 1, 1)
        jitter = rng.uniform(-0.3, 0.3, len(col))
        ax.scatter(c[~ok, j], row + jitter[~ok], s=4, color="lightgrey")
        ax.scatter(c[ok, j], row + jitter[ok], s=4, c=ranks[ok], cmap="coolwarm", vmin=0, vmax=1)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([feature_names[j] for j in order[::-1]], fontsize=7)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="SHAP contribution (log-odds)",
        title="What drives the risk score (blue low, red high value)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
