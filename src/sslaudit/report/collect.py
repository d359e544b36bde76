"""Read what the lenses wrote into a run and turn it into report sections. Never recomputes.

Every artefact is read through the run store, so a truncated or altered file is reported in its
section instead of being shown.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from ..store import RunStore
from .blocks import Figure, Gallery, Section, Table, Text, Tile, fmt
from .images import data_uri, figure_uri, plt
from .samples import SampleView


def anchor(lens: str, split: str, index: int) -> str:
    return f"{lens}-{split}-{int(index)}"


def _table(df, columns: list[str] | None = None, limit: int = 30, caption: str = "") -> Table:
    cols = columns or list(df.columns)
    cols = [c for c in cols if c in df.columns]
    rows = [[fmt(v) for v in r] for r in df[cols].head(limit).itertuples(index=False, name=None)]
    return Table([str(c) for c in cols], rows, caption)


class Collector:
    def __init__(self, store: RunStore, dataset, metrics: dict, config: dict, status: dict):
        self.store = store
        self.view = SampleView(dataset) if dataset is not None else None
        self.ds = dataset
        self.metrics = metrics
        self.config = config
        self.status = status  # RUN/audit/status.json: lens -> {state, reason, note}

    def has(self, rel: str) -> bool:
        return rel in self.store.manifest["artefacts"]

    def safe(self, sid: str, title: str, build: Callable[[Section], None]) -> Section:
        sec = Section(sid, title, note=(self.status.get("lenses", {}).get(sid) or {}).get("note") or "")
        try:
            build(sec)
        except UserError as e:
            sec.blocks = [Text(f"This section could not be shown: {e}", tone="bad")]
        return sec

    def files(self, prefix: str) -> list[str]:
        return sorted(a for a in self.store.manifest["artefacts"] if a.startswith(prefix))

    # ---- summary ------------------------------------------------------------------------
    def summary(self) -> Section:
        def build(sec):
            m, c = self.metrics, self.config
            data = c.get("data", {})
            train = c.get("train", {})
            arch = c.get("arch") or {}
            rows = [
                ["data", data.get("spec")],
                ["training / test samples", f"{m.get('n_train')} / {m.get('n_test')}"],
                ["objective", train.get("objective") or c.get("objective")],
                ["encoder", arch.get("arch", (c.get("external") or {}).get("kind", "?"))],
                ["epochs", train.get("epochs")],
                ["linear-probe accuracy", fmt(m.get("linear_probe_accuracy"))],
                ["k-NN accuracy", fmt(m.get("knn_accuracy"))],
                ["collapse check (std of normalised embeddings × √d)", fmt(m.get("collapse_std"))],
            ]
            sec.blocks.append(Table(["", ""], rows))
            if self.has("krepes/fidelity.json"):
                sec.blocks.append(fidelity_verdict(self.store.read_json("krepes/fidelity.json")))
        return self.safe("summary", "Summary", build)

    # ---- KREPES -------------------------------------------------------------------------
    def krepes(self) -> Section | None:
        if not self.files("krepes/"):
            return None

        def build(sec):
            if self.has("krepes/fidelity.json"):
                fid = self.store.read_json("krepes/fidelity.json")
                sec.blocks.append(fidelity_verdict(fid))
                keys = ["mode", "delta_accuracy", "kendall_tau", "precision_at_1", "precision_at_1_baseline", "confidence_drop_top", "confidence_drop_random", "class_coverage", "loss_before", "loss_after", "lambda", "n_landmarks", "rank", "kernel", "selection", "n_distinct_top1"]
                sec.blocks.append(Table(["diagnostic", "value"], [[k, fmt(fid.get(k))] for k in keys if k in fid], "Fidelity of the kernel surrogate (labels used only here)."))
            if self.has("krepes/landmarks.parquet"):
                lm = self.store.read_parquet("krepes/landmarks.parquet")
                tests = list(dict.fromkeys(lm["test_index"].tolist()))
                focus = [t for t in self.focus_indices() if t in tests] or tests[:6]
                for t in focus[:8]:
                    sub = lm[lm["test_index"] == t].sort_values("rank").head(8)
                    tiles = [self.view.tile("test", t, f"test:{t}", anchor=anchor("krepes", "test", t), link=f"#{anchor('relax', 'test', t)}" if self.relax_has(t) else "", link_text="RELAX map", tone="focus")]
                    for r in sub.itertuples():
                        tone = "good" if str(r.sign).startswith("attr") or r.sign in (1, "+", "+1") else "bad"
                        tiles.append(self.view.tile("train", int(r.landmark_index), f"#{int(r.rank)} train:{int(r.landmark_index)} · {sign_word(r.sign)} · IS {fmt(r.score, 3)}", tone=tone))
                    sec.blocks.append(Gallery(f"Representer landmarks of test:{t}", tiles, anchor=""))
            if self.has("krepes/landmark_norms.parquet"):
                nm = self.store.read_parquet("krepes/landmark_norms.parquet").sort_values("norm", ascending=False).head(12)
                sec.blocks.append(Gallery("Landmarks with the largest coefficients ‖ΔÃ_l‖", [self.view.tile("train", int(r.landmark_index), f"train:{int(r.landmark_index)} · ‖ΔÃ‖ {fmt(r.norm, 3)}") for r in nm.itertuples()]))
            if self.has("krepes/alignment_gap.parquet"):
                ag = self.store.read_parquet("krepes/alignment_gap.parquet")
                sec.blocks.append(Figure(alignment_figure(ag), "Feature Alignment Gap per feature with bootstrap 95% CIs (normalised: 0 = chance agreement, 1 = perfect).", alt="alignment gap"))
                sec.blocks.append(_table(ag.sort_values("gap_normalised", ascending=False), ["feature", "gap", "gap_normalised", "ci_low", "ci_high"]))
            if self.has("krepes/anchoring.parquet"):
                an = self.store.read_parquet("krepes/anchoring.parquet")
                sec.blocks.append(_table(an, limit=60, caption="Group anchoring: P(group of the top-1 landmark | group of the test point) beside the group's base rate."))
            if self.has("krepes/concepts.parquet"):
                sec.blocks.append(_table(self.store.read_parquet("krepes/concepts.parquet"), limit=30, caption="Concept-conditioned influence scores."))
        return self.safe("krepes", "Representer landmarks (KREPES)", build)

    # ---- influence ----------------------------------------------------------------------
    def influence(self) -> Section | None:
        if not self.files("influence/"):
            return None

        def build(sec):
            if self.has("influence/duplicates.parquet"):
                d = self.store.read_parquet("influence/duplicates.parquet").head(8)
                tiles = []
                for r in d.itertuples():
                    tiles.append(self.view.tile("train", int(r.i), f"train:{int(r.i)}"))
                    tiles.append(self.view.tile("train", int(r.j), f"≈ train:{int(r.j)} · score {fmt(r.score, 3)}"))
                sec.blocks.append(Gallery("Most likely duplicate pairs (normalised pairwise influence)", tiles))
            if self.has("influence/self_influence.parquet"):
                s = self.store.read_parquet("influence/self_influence.parquet").sort_values("rank").head(12)
                sec.blocks.append(Gallery("Highest self-influence: outliers and atypical examples", [self.view.tile(str(r.split), int(r.index), f"{r.split}:{int(r.index)} · rank {int(r.rank)}") for r in s.itertuples()]))
            if self.has("influence/fairness.json"):
                sec.blocks.extend(fairness_blocks(self.store.read_json("influence/fairness.json")))
            if self.has("influence/removal.json"):
                r = self.store.read_json("influence/removal.json")
                sec.blocks.append(Table(["", ""], [[str(k), fmt(v) if not isinstance(v, (dict, list)) else _short(v)] for k, v in flatten(r).items()][:40], "Removal experiment."))
        return self.safe("influence", "Label-free influence", build)

    # ---- RELAX --------------------------------------------------------------------------
    def relax_has(self, index: int) -> bool:
        return self.has(f"relax/test-{int(index)}.png")

    def relax(self) -> Section | None:
        if not self.files("relax/"):
            return None

        def build(sec):
            pngs = [p for p in self.files("relax/") if p.endswith(".png") and re.fullmatch(r"relax/(train|test)-\d+\.png", p)]
            tiles = []
            for p in pngs[:16]:
                split, idx = p[len("relax/") : -4].split("-")
                tiles.append(Tile(data_uri(self.store.read_bytes(p)), f"{split}:{idx} — input, importance, uncertainty, U-RELAX", anchor=anchor("relax", split, int(idx)), link=f"#{anchor('krepes', split, int(idx))}" if self.has("krepes/landmarks.parquet") else "", link_text="its landmarks", tone="wide"))
            sec.blocks.append(Gallery("RELAX maps with uncertainty", tiles))
            if self.has("relax/evaluation.json"):
                ev = self.store.read_json("relax/evaluation.json")
                maps = ev.get("maps", {})
                cols = ["deletion_auc", "insertion_auc", "complexity", "sparseness"]
                sec.blocks.append(Table(["map", "deletion AUC (lower is better)", "insertion AUC (higher is better)", "complexity", "sparseness"], [[name] + [fmt(m.get(c)) for c in cols] for name, m in maps.items()], "How faithful the maps are, against gradient saliency and a random map."))
                sc = ev.get("sanity_check")
                if sc:
                    sec.blocks.append(Text(f"Sanity check: maps of a randomised encoder correlate with the trained encoder's at Spearman {fmt(sc.get('spearman_mean'), 3)} — {'passed: the maps depend on what the encoder learned' if sc.get('passed') else 'failed: the maps mostly reflect the input, not what the encoder learned'}.", tone="good" if sc.get("passed") else "warn"))
        return self.safe("relax", "Attribution maps (RELAX, U-RELAX)", build)

    # ---- Q-Score ------------------------------------------------------------------------
    def focus_indices(self) -> list[int]:
        """The lowest-Q-Score test samples (the audit asks KREPES and RELAX for exactly these)."""
        foc = self.status.get("focus", {}).get("test", [])
        return [int(i) for i in foc]

    def qscore(self) -> Section | None:
        if not self.files("qscore/"):
            return None

        def build(sec):
            if self.has("qscore/evaluation.json"):
                ev = self.store.read_json("qscore/evaluation.json")
                rows = [["Q-Score", fmt(ev.get("auprc")), fmt(ev.get("auroc"))]]
                rows += [[str(k).replace("_", " "), fmt(v.get("auprc")), fmt(v.get("auroc"))] for k, v in (ev.get("baselines") or {}).items() if isinstance(v, dict)]
                rows.append(["prevalence (a random score)", fmt(ev.get("prevalence")), "0.5"])
                sec.blocks.append(Table(["score", "AUPRC", "AUROC"], rows, "Does the score separate correctly from wrongly classified samples (linear probe; labels used only here)?"))
                sec.blocks.append(Text(f"ε = {ev.get('epsilon')} chosen without labels; {fmt(100 * float(ev.get('empty_share') or 0), 3)}% of samples have no discriminative highly-activating feature."))
            if self.has("qscore/scores.parquet"):
                sc = self.store.read_parquet("qscore/scores.parquet")
                p = plt()
                fig, ax = p.subplots(figsize=(5, 2.6))
                for split in ("train", "test"):
                    v = sc.loc[sc["split"] == split, "qscore"].to_numpy()
                    if len(v):
                        ax.hist(v, bins=40, alpha=0.6, label=split)
                ax.set_xlabel("Q-Score")
                ax.set_ylabel("samples")
                ax.legend()
                sec.blocks.append(Figure(figure_uri(fig), "Distribution of Q-Scores.", alt="Q-Score histogram"))
                low = sc[sc["split"] == "test"].sort_values("qscore").head(12)
                tiles = []
                for r in low.itertuples():
                    t = int(r.index)
                    links = []
                    tiles.append(self.view.tile("test", t, f"test:{t} · Q {fmt(r.qscore, 3)}", anchor=anchor("qscore", "test", t), link=f"#{anchor('krepes', 'test', t)}" if self.krepes_has(t) else (f"#{anchor('relax', 'test', t)}" if self.relax_has(t) else ""), link_text="landmarks" if self.krepes_has(t) else "RELAX map"))
                sec.blocks.append(Gallery("Lowest-quality test samples (linked to their landmarks and RELAX maps)", tiles))
            for p in self.files("qscore/"):
                if p.endswith(".png"):
                    sec.blocks.append(Figure(data_uri(self.store.read_bytes(p)), p.split("/")[-1][:-4].replace("_", " "), alt=p))
            if self.has("qscore/features.parquet"):
                ft = self.store.read_parquet("qscore/features.parquet")
                if "discriminative" in ft:
                    sec.blocks.append(Text(f"{int(ft['discriminative'].sum())} of {len(ft)} features are discriminative."))
            if self.has("qscore/compression.json"):
                cj = self.store.read_json("qscore/compression.json")
                sec.blocks.append(Table(["", ""], [[str(k), fmt(v) if not isinstance(v, (dict, list)) else _short(v)] for k, v in flatten(cj).items()][:20], "Compression: linear-probe accuracy keeping only some features."))
        return self.safe("qscore", "Representation quality (Q-Score)", build)

    def krepes_has(self, index: int) -> bool:
        if not hasattr(self, "_krepes_tests"):
            self._krepes_tests = set()
            if self.has("krepes/landmarks.parquet"):
                self._krepes_tests = set(int(t) for t in self.store.read_parquet("krepes/landmarks.parquet")["test_index"].unique())
        return int(index) in self._krepes_tests

    # ---- SimVAE -------------------------------------------------------------------------
    def simvae(self) -> Section | None:
        if not self.files("simvae/"):
            return None

        def build(sec):
            for p in self.files("simvae/"):
                if p.endswith(".png"):
                    sec.blocks.append(Figure(data_uri(self.store.read_bytes(p)), p.split("/")[-1][:-4].replace("_", " "), alt=p))
                elif p.endswith("content_style.json"):
                    doc = self.store.read_json(p)
                    rows = pd.DataFrame(doc.get("rows", []))
                    sec.blocks.append(_table(rows, caption=f"Content vs style: linear probes and clustering of the {doc.get('objective', '')} representation, per factor."))
                elif p.endswith("latent_directions.json"):
                    sec.blocks.append(directions_table(self.store.read_json(p)))
                elif p.endswith(".json"):
                    sec.blocks.append(Table(["", ""], [[str(k), fmt(v) if not isinstance(v, (dict, list)) else _short(v)] for k, v in flatten(self.store.read_json(p)).items()][:40], p.split("/")[-1]))
        return self.safe("simvae", "Generative view (SimVAE)", build)


def fairness_blocks(doc: dict) -> list:
    """Self-influence by protected group: one table of group summaries and one of tests per attribute."""
    if not doc.get("attributes"):
        return [Text(f"Self-influence by group: {doc.get('note', 'no protected attributes declared')}.")]
    out = []
    for attr, res in doc.get("by_attribute", {}).items():
        groups = [[g, v.get("n"), fmt(v.get("mean")), fmt(v.get("median")), fmt(v.get("q10")), fmt(v.get("q90"))] for g, v in res.get("groups", {}).items()]
        out.append(Table(["group", "n", "mean", "median", "10th pct", "90th pct"], groups, f"Self-influence by {attr}: higher means the encoder finds these samples harder to fit from the rest."))
        tests = [[t.get("group"), t.get("versus"), fmt(t.get("cliffs_delta")), fmt(t.get("p_value")), fmt(t.get("p_value_holm", t.get("p_value")))] for t in res.get("tests", [])]
        kw = res.get("kruskal_wallis")
        note = f" Kruskal–Wallis H = {fmt(kw['h'])}, p = {fmt(kw['p_value'])}." if kw else ""
        out.append(Table(["group", "versus", "Cliff's δ (> 0: higher)", "p (Mann–Whitney U)", "p (Holm)"], tests, f"Tests of {attr}.{note}"))
    return out


def directions_table(doc: dict) -> Table:
    """The latent dimensions that carry each factor, with the factor's probe accuracy."""
    acc = doc.get("probe_accuracy", {})
    acc = acc if isinstance(acc, dict) else dict(zip(doc.get("tasks", []), acc if isinstance(acc, list) else []))
    rows = [[t, fmt(acc.get(t)), ", ".join(str(d) for d in dims)] for t, dims in doc.get("top_dims", {}).items()]
    return Table(["factor", "linear-probe accuracy from the latent", "most important latent dimensions"], rows, "Latent directions per factor (the traversal figures move along these).")


def sign_word(sign) -> str:
    s = str(sign).lower()
    return "attracts" if s in ("1", "+", "+1", "attract", "attractive", "attracting") else "repels"


def fidelity_verdict(fid: dict) -> Text:
    d, tau = fid.get("delta_accuracy"), fid.get("kendall_tau")
    if d is None or tau is None:
        return Text("The KREPES surrogate's fidelity could not be measured (no labels or too few samples).", tone="warn")
    mode = fid.get("mode", "step")
    desc = f"In {mode} mode the kernel surrogate's linear-probe accuracy differs from the network's by {d:+.3f} and it orders neighbours like the network with Kendall τ = {tau:.2f}."
    if abs(d) <= 0.01 and tau >= 0.8:
        return Text("The KREPES surrogate is faithful: " + desc + " Its representer landmarks can be read as explanations of the network.", tone="good")
    if abs(d) <= 0.03 and tau >= 0.6:
        return Text("The KREPES surrogate is partly faithful: " + desc + " Read its landmarks as strong hints, not proofs.", tone="warn")
    return Text("The KREPES surrogate is not faithful enough: " + desc + " Treat its landmarks with caution.", tone="bad")


def alignment_figure(ag) -> str:
    p = plt()
    ag = ag.sort_values("gap_normalised")
    fig, ax = p.subplots(figsize=(6, 0.32 * len(ag) + 1))
    y = np.arange(len(ag))
    ax.barh(y, ag["gap"], color="#4c78a8", label="gap")
    if {"ci_low", "ci_high"} <= set(ag.columns):
        ax.errorbar(ag["gap"], y, xerr=[ag["gap"] - ag["ci_low"], ag["ci_high"] - ag["gap"]], fmt="none", ecolor="black", capsize=2)
    ax.scatter(ag["gap_normalised"], y, color="#e45756", zorder=3, label="normalised")
    ax.set_yticks(y, [str(f) for f in ag["feature"]])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Feature Alignment Gap")
    ax.legend(loc="lower right")
    return figure_uri(fig)


def flatten(obj, prefix: str = "") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    else:
        out[prefix or "value"] = obj
    return out


def _short(v) -> str:
    s = str(v if not isinstance(v, list) else [fmt(x) for x in v[:12]] + (["…"] if len(v) > 12 else []))
    return s[:300]
