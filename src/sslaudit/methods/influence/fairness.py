"""Self-influence per protected group: distributions, a test of difference and an effect size.

For each attribute every group is compared with the rest of the examples (for two groups: the
one with the other) by a two-sided Mann–Whitney U test, with Cliff's delta as the effect size
δ = P(X > Y) − P(X < Y) = 2U/(n₁n₂) − 1, which equals the rank-biserial correlation; p-values of
the one-vs-rest tests are Holm-adjusted, and with more than two groups a Kruskal–Wallis test
says whether any group differs. δ > 0: the group's examples are more self-influential
(more atypical to the encoder) than the others'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import UserError


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(U of a, two-sided Mann–Whitney p-value, Cliff's delta = rank-biserial correlation)."""
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    u = float(res.statistic)
    return u, float(res.pvalue), 2.0 * u / (len(a) * len(b)) - 1.0


def holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def _summary(v: np.ndarray) -> dict:
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)), "q10": float(np.quantile(v, 0.1)), "q90": float(np.quantile(v, 0.9))}


def group_comparison(scores: np.ndarray, labels, attribute: str, groups: list[str] | None = None) -> dict:
    """Compare self-influence across the groups of one attribute (labels: one value per score)."""
    scores = np.asarray(scores, dtype=np.float64)
    lab = pd.Series(labels).astype(str).str.strip().to_numpy()
    if len(lab) != len(scores):
        raise UserError(f"attribute {attribute!r} has {len(lab)} values for {len(scores)} scores: give one per example")
    present = sorted(set(lab.tolist()))
    wanted = present if groups is None else [str(g) for g in groups]
    empty = [g for g in wanted if not (lab == g).any()]
    if empty:
        raise UserError(f"protected group(s) {empty} of {attribute!r} have no examples among the {len(scores)} scored; groups present: {present}")
    if len(wanted) < 2:
        raise UserError(f"attribute {attribute!r} has a single group {wanted} among the scored examples: nothing to compare")
    out = {"attribute": attribute, "groups": {}, "tests": []}
    for g in wanted:
        out["groups"][g] = _summary(scores[lab == g])
    pairs = [(wanted[0], wanted[1])] if len(wanted) == 2 else [(g, None) for g in wanted]
    in_scope = np.isin(lab, wanted)
    for g, other in pairs:
        a = scores[lab == g]
        b = scores[(lab == other)] if other is not None else scores[in_scope & (lab != g)]
        u, p, d = cliffs_delta(a, b)
        out["tests"].append(
            {
                "group": g,
                "versus": other if other is not None else "rest",
                "n_group": int(len(a)),
                "n_versus": int(len(b)),
                "test": "mann-whitney-u (two-sided)",
                "u": u,
                "p_value": p,
                "cliffs_delta": d,
            }
        )
    if len(pairs) > 1:
        for t, padj in zip(out["tests"], holm([t["p_value"] for t in out["tests"]])):
            t["p_value_holm"] = padj
        from scipy.stats import kruskal

        kw = kruskal(*[scores[lab == g] for g in wanted])
        out["kruskal_wallis"] = {"h": float(kw.statistic), "p_value": float(kw.pvalue)}
    return out


def fairness_report(scores: np.ndarray, meta: pd.DataFrame | None, attributes: list[str]) -> dict:
    """Group comparisons for every protected attribute that `meta` holds."""
    if not attributes:
        return {"attributes": [], "note": "the dataset declares no protected attributes (tables only; e.g. adult: sex, race)"}
    if meta is None:
        raise UserError("fairness analysis needs the raw attributes of the training rows; this dataset has none")
    missing = [a for a in attributes if a not in meta.columns]
    if missing:
        raise UserError(f"protected attribute(s) {missing} are not columns of the data; columns: {list(meta.columns)}")
    return {"attributes": list(attributes), "by_attribute": {a: group_comparison(scores, meta[a].to_numpy(), a) for a in attributes}}
