"""The first screen of the report: one verdict card per lens, in plain words.

Each card says what the lens found, the one number that supports it and how far to trust it.
Cards read the lenses' summaries defensively: a missing key makes the card say what is missing,
and a lens that failed or was skipped gets a card with the reason and the command that reruns it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .blocks import Card, Text, fmt, pct

STRONG_DUPLICATE = 0.95  # duplicate score from which a pair is called a likely duplicate


def fidelity_verdict(fid: dict) -> Text:
    d, tau = fid.get("delta_accuracy"), fid.get("kendall_tau")
    if d is None or tau is None:
        return Text("The KREPES surrogate's fidelity could not be measured (no labels or too few samples).", tone="warn")
    mode = fid.get("mode", "step")
    desc = f"In {mode} mode the kernel surrogate's linear-probe accuracy differs from the network's by {float(d):+.3f} and it orders neighbours like the network with Kendall τ = {float(tau):.2f}."
    if abs(d) <= 0.01 and tau >= 0.8:
        return Text("The KREPES surrogate is faithful: " + desc + " Its representer landmarks can be read as explanations of the network.", tone="good")
    if abs(d) <= 0.03 and tau >= 0.6:
        return Text("The KREPES surrogate is partly faithful: " + desc + " Read its landmarks as strong hints, not proofs.", tone="warn")
    return Text("The KREPES surrogate is not faithful enough: " + desc + " Treat its landmarks with caution.", tone="bad")


def class_quality(scores: pd.DataFrame, dataset) -> pd.Series | None:
    """Median Q-Score of each class's test samples, lowest first (None without labels)."""
    if dataset is None or getattr(dataset.test, "y", None) is None:
        return None
    test = scores[scores["split"] == "test"]
    pos = {int(v): i for i, v in enumerate(dataset.test.index)}
    keep = [pos.get(int(i)) for i in test["index"]]
    ok = [p is not None for p in keep]
    if not any(ok):
        return None
    y = dataset.test.y[[p for p in keep if p is not None]]
    names = dataset.classes or []
    lab = [str(names[int(c)]) if 0 <= int(c) < len(names) else str(int(c)) for c in y]
    return test.loc[ok, "qscore"].groupby(np.asarray(lab)).median().sort_values()


def missing(doc: dict, keys: list[str]) -> list[str]:
    return [k for k in keys if doc.get(k) is None]


def _missing_card(lens: str, what: list[str], link: str) -> Card:
    return Card(
        lens,
        f"The lens ran, but its summary lacks {', '.join(what)}, so no verdict can be given.",
        trust="Rerun the lens with this version of sslaudit to refresh its summary.",
        tone="warn",
        link=link,
    )


class Findings:
    """Builds the cards from a report Collector (which reads the run)."""

    def __init__(self, col):
        self.col = col

    def cards(self) -> list[Card]:
        out = []
        for name, build in [
            ("The encoder", self.encoder),
            ("KREPES", self.krepes),
            ("What it groups by", self.alignment),
            ("Influence", self.influence),
            ("Groups", self.fairness),
            ("RELAX", self.relax),
            ("Q-Score", self.qscore),
            ("Worst-represented classes", self.classes),
            ("SimVAE", self.simvae),
        ]:
            try:
                card = build()
            except Exception as e:  # noqa: BLE001 — a card must never take the report down
                card = Card(name, f"This finding could not be summarised ({type(e).__name__}: {e}).", tone="warn")
            if card is not None:
                out.append(card)
        return out

    def not_run(self, lens: str, title: str, link: str) -> Card | None:
        """The card of a lens that was skipped or failed, or None when it ran (or was never asked for)."""
        st = self.col.lens_status(lens)
        state = st.get("state")
        if state in ("skipped", "failed"):
            cmd = st.get("command") or rerun_command(lens, self.col.store.root, st)
            verdict = f"Not run: {st.get('reason', 'no reason recorded')}." if state == "skipped" else f"Failed: {st.get('reason', 'no reason recorded')}."
            return Card(title, verdict, tone="skipped" if state == "skipped" else "bad", command=cmd, link="#skipped")
        if not self.col.files(f"{lens}/"):
            cmd = rerun_command(lens, self.col.store.root, st)
            if lens == "relax" and self.col.ds is not None:
                cmd += " --tabular-groups" if self.col.ds.kind != "image" else f" --index test:{int(self.col.ds.test.index[0])}"
            return Card(title, "Not run on this run yet.", tone="skipped", command=cmd)
        return None

    # ---- the cards ------------------------------------------------------------------------
    def encoder(self) -> Card:
        m = self.col.metrics
        acc, knn, cs = m.get("linear_probe_accuracy"), m.get("knn_accuracy"), m.get("collapse_std")
        hist = self.col.parquet("train/history.parquet")
        curve = ""
        if hist is not None and len(hist) >= 3 and "loss" in hist:
            last = hist["loss"].to_numpy()[-3:]
            curve = " The loss was still falling at the end: more epochs would likely help." if last[-1] < last[0] - 0.01 * abs(last[0]) else " The loss had levelled off by the last epoch."
        if cs is not None and float(cs) < 0.1:
            return Card(
                "The encoder",
                "The representation has collapsed: nearly every input maps to the same point, so no lens can say much.",
                fmt(cs, 3),
                "collapse check",
                "Retrain with another learning rate or objective.",
                "bad",
                "#summary",
            )
        if acc is None:
            return Card(
                "The encoder",
                "No labels, so how well the embeddings separate classes is not measured." + curve,
                fmt(cs, 2) if cs is not None else "",
                "collapse check" if cs is not None else "",
                "The lenses below do not need labels.",
                "",
                "#summary",
            )
        a = float(acc)
        word = "well" if a >= 0.9 else ("moderately" if a >= 0.75 else "poorly")
        tone = "good" if a >= 0.9 else ("warn" if a >= 0.75 else "bad")
        trust = (
            f"A linear probe on {m.get('n_test', '?')} held-out samples (labels used only here); k-NN agrees at {pct(knn)}."
            if knn is not None
            else "A linear probe on held-out samples (labels used only here)."
        )
        return Card("The encoder", f"Its embeddings separate the classes {word}." + curve, pct(acc), "linear-probe accuracy", trust, tone, "#summary")

    def krepes(self) -> Card | None:
        nr = self.not_run("krepes", "KREPES", "#krepes")
        if nr is not None:
            return nr
        fid = self.col.json("krepes/fidelity.json")
        lack = missing(fid, ["kendall_tau", "delta_accuracy"])
        if lack:
            return _missing_card("KREPES", lack, "#krepes")
        tau, d = float(fid["kendall_tau"]), float(fid["delta_accuracy"])
        lm = self.col.parquet("krepes/landmarks.parquet")
        n_tests = int(lm.loc[lm["split"] == "test", "index"].nunique()) if lm is not None else None
        distinct = fid.get("n_distinct_top1")
        hub = fid.get("hub_warning")
        if not hub and distinct is not None and n_tests and n_tests >= 20 and distinct / n_tests < 0.2:
            hub = f"only {distinct} training samples are the strongest landmark of {n_tests} test points ('hubs' that explain everything alike)"
        t = fidelity_verdict(fid).tone
        verdict = {
            "good": "Its landmarks are faithful: the training samples shown for an input are the ones that shaped it.",
            "warn": "Its landmarks are partly faithful: read them as strong hints, not proof.",
            "bad": "Its landmarks are not faithful to the network: treat them with caution.",
        }[t]
        trust = f"Δ accuracy {d:+.3f}"
        if fid.get("precision_at_1") is not None and fid.get("precision_at_1_baseline") is not None:
            trust += f"; the strongest landmark shares the test point's label {pct(fid['precision_at_1'], 0)} of the time (cosine neighbours {pct(fid['precision_at_1_baseline'], 0)})"
        if hub:
            trust += f". Hub warning: {hub if isinstance(hub, str) else 'a few landmarks explain most test points'}"
            t = "bad" if t == "bad" else "warn"
        return Card("KREPES", verdict, f"τ = {tau:.2f}", "Kendall τ", trust + ".", t, "#krepes")

    def alignment(self) -> Card | None:
        ag = self.col.parquet("krepes/alignment_gap.parquet")
        if ag is None or not len(ag) or "gap_normalised" not in ag:
            return None
        ag = ag.dropna(subset=["gap_normalised"]).sort_values("gap_normalised", ascending=False)
        if not len(ag):
            return None
        top = ag.head(2)
        bottom = ag.tail(2).iloc[::-1]
        names = " and ".join(f"{r.feature} ({fmt(float(r.gap_normalised), 2)})" for r in top.itertuples())
        low = " and ".join(f"{r.feature} ({fmt(float(r.gap_normalised), 2)})" for r in bottom.itertuples())
        sep = ""
        if {"ci_low_normalised", "ci_high_normalised"} <= set(ag.columns) and len(ag) >= 2:
            sep = (
                " The first two's 95% intervals lie above the last two's."
                if float(top["ci_low_normalised"].min()) > float(bottom["ci_high_normalised"].max())
                else " The intervals overlap: the ranking is not certain."
            )
        return Card(
            "What it groups by",
            f"The representation groups samples most by {names}, least by {low}.",
            fmt(float(top.iloc[0].gap_normalised), 2),
            "Feature Alignment Gap",
            "Label-free; as trustworthy as the KREPES landmarks it is computed from." + sep,
            "warn" if len(top) else "",
            "#krepes",
        )

    def influence(self) -> Card | None:
        nr = self.not_run("influence", "Influence", "#influence")
        if nr is not None:
            return nr
        d = self.col.parquet("influence/duplicates.parquet")
        s = self.col.parquet("influence/self_influence.parquet")
        summ = self.col.json("influence/summary.json")
        if d is None and s is None:
            return _missing_card("Influence", ["duplicates.parquet", "self_influence.parquet"], "#influence")
        verdict, number, label, tone, trust = "", "", "", "good", ""
        if d is not None and len(d) and "score" in d:
            strong = int((d["score"] >= STRONG_DUPLICATE).sum())
            best = d.sort_values("score", ascending=False).iloc[0]
            if strong:
                verdict, tone = f"{strong} of the {len(d)} most alike pairs score ≥ {STRONG_DUPLICATE}: the encoder treats each as one example (exact or near-duplicates).", "warn"
            else:
                verdict = "No near-duplicates in the training data; the most atypical samples are shown below."
            number, label = fmt(float(best.score), 2), "duplicate score"
            trust = f"Most alike pair: train:{int(best.i)} ≈ train:{int(best.j)}. "
        else:
            verdict = "The most atypical training samples are shown below."
        if s is not None and len(s):
            top = s.sort_values("rank").head(3)
            trust += "Most atypical: " + ", ".join(f"{r.split}:{int(r.index)}" for r in top.itertuples()) + ". "
        n_scored, n_train = summ.get("n_scored"), summ.get("n_train")
        trust += f"Scored on {n_scored:,} of {n_train:,} training samples" if isinstance(n_scored, int) and isinstance(n_train, int) and n_scored < n_train else "Every training sample scored"
        trust += "; exact copies are found reliably, augmented near-copies are not."
        return Card("Influence", verdict, number, label, trust, tone, "#influence")

    def fairness(self) -> Card | None:
        doc = self.col.json("influence/fairness.json")
        if not doc.get("attributes"):
            return None
        tests = []
        for attr, res in (doc.get("by_attribute") or {}).items():
            for t in res.get("tests", []) or []:
                if t.get("cliffs_delta") is not None:
                    tests.append((attr, t))
        if not tests:
            return _missing_card("Groups", ["cliffs_delta"], "#influence")

        def p_of(t):
            p = t.get("p_value_holm", t.get("p_value"))
            return float(p) if p is not None else 1.0

        significant = [(a, t) for a, t in tests if p_of(t) < 0.05]
        if not significant:
            a, t = max(tests, key=lambda at: abs(float(at[1]["cliffs_delta"])))
            return Card(
                "Groups",
                f"No group differs significantly in self-influence ({', '.join(dict.fromkeys(a for a, _ in tests))}).",
                f"δ = {float(t['cliffs_delta']):+.2f}",
                "Cliff's δ",
                f"The largest difference ({t.get('group')} vs {t.get('versus')} by {a}) has Holm-corrected p = {fmt(p_of(t), 2)}; small groups need more scored samples.",
                "good",
                "#influence",
            )
        attr, t = max(significant, key=lambda at: abs(float(at[1]["cliffs_delta"])))
        dlt = float(t["cliffs_delta"])
        word = "more" if dlt > 0 else "less"
        size = "a large" if abs(dlt) >= 0.47 else ("a medium" if abs(dlt) >= 0.33 else ("a small" if abs(dlt) >= 0.147 else "a negligible"))
        return Card(
            "Groups",
            f"By {attr}, {t.get('group')} is {word} self-influential than {t.get('versus')}: {size} difference.",
            f"δ = {dlt:+.2f}",
            "Cliff's δ",
            f"The encoder finds these samples {'harder' if dlt > 0 else 'easier'} to fit from the rest. Mann–Whitney p = {fmt(p_of(t), 2)} (Holm-corrected); {len(significant)} of {len(tests)} group comparisons are significant.",
            "warn" if abs(dlt) >= 0.147 else "good",
            "#influence",
        )

    def relax(self) -> Card | None:
        nr = self.not_run("relax", "RELAX", "#relax")
        if nr is not None:
            return nr
        ev = self.col.json("relax/evaluation.json")
        maps = ev.get("maps") if isinstance(ev.get("maps"), dict) else {}
        r, rnd = maps.get("relax") or {}, maps.get("random") or {}
        if r.get("insertion_auc") is None:
            return _missing_card("RELAX", ["maps.relax.insertion_auc"], "#relax")
        ins, ins_r = float(r["insertion_auc"]), rnd.get("insertion_auc")
        better = ins_r is not None and ins > float(ins_r) + 0.005
        verdict = "The maps find the pixels the representation depends on." if better else "The maps are no better than random at finding the pixels that matter."
        sc = ev.get("sanity_check")
        if isinstance(sc, dict) and sc:
            word = "not decided (too few inputs)" if sc.get("passed") is None else ("passed" if sc.get("passed") else "failed")
            trust = f"Sanity check {word} (randomised encoder's maps correlate at {fmt(sc.get('spearman_mean'), 2)})."
            tone = "good" if better and sc.get("passed") else "warn"
        else:
            trust, tone = "Sanity check not run (the maps could reflect the input more than the encoder).", "warn"
        if ins_r is not None:
            trust = (
                f"Inserting the pixels it ranks first restores the representation faster than a random order ({fmt(float(ins_r), 3)}). " + trust
                if better
                else f"A random order scores {fmt(float(ins_r), 3)}. " + trust
            )
        return Card("RELAX", verdict, fmt(ins, 3), "insertion AUC", trust, tone, "#relax")

    def qscore(self) -> Card | None:
        nr = self.not_run("qscore", "Q-Score", "#qscore")
        if nr is not None:
            return nr
        ev = self.col.json("qscore/evaluation.json")
        if ev.get("auroc") is None:
            sc = self.col.parquet("qscore/scores.parquet")
            if sc is not None:
                return Card(
                    "Q-Score", "Every sample has a label-free quality score; without labels it cannot be checked against errors.", "", "", "See the lowest-scoring samples below.", "", "#qscore"
                )
            return _missing_card("Q-Score", ["auroc"], "#qscore")
        auroc, auprc, prev = float(ev["auroc"]), ev.get("auprc"), ev.get("prevalence")
        if auroc >= 0.7:
            verdict, tone = "Q-Score finds the poorly represented samples: low scores mark likely errors.", "good"
        elif auroc >= 0.55:
            verdict, tone = "Q-Score is only a weak hint of which samples are poorly represented.", "warn"
        else:
            verdict, tone = "Q-Score does not tell well from poorly represented samples here: do not filter data by it.", "bad"
        best = max(((k, v.get("auroc")) for k, v in (ev.get("baselines") or {}).items() if isinstance(v, dict) and v.get("auroc") is not None), key=lambda kv: kv[1], default=None)
        trust = f"AUPRC {fmt(auprc, 3)} against {fmt(prev, 3)} for a random score." if auprc is not None and prev is not None else ""
        if best is not None:
            trust += f" The {best[0].replace('_', ' ')} baseline reaches AUROC {fmt(float(best[1]), 2)}" + (" — better than Q-Score here." if float(best[1]) > auroc else ".")
        return Card("Q-Score", verdict, fmt(auroc, 2), "AUROC", trust.strip(), tone, "#qscore")

    def classes(self) -> Card | None:
        sc = self.col.parquet("qscore/scores.parquet")
        if sc is None:
            return None
        cq = class_quality(sc, self.col.ds)
        if cq is None or len(cq) < 2:
            return None
        worst = list(cq.index[: min(3, len(cq) - 1)])
        ev = self.col.json("qscore/evaluation.json")
        auroc = ev.get("auroc")
        overall = float(sc.loc[sc["split"] == "test", "qscore"].median())
        names = ", ".join(str(w) for w in worst[:-1]) + f" and {worst[-1]}" if len(worst) > 1 else str(worst[0])
        verdict = f"Classes {names} are represented least clearly." if len(worst) > 1 else f"Class {names} is represented less clearly than the rest."
        trust = f"Median Q-Score of class {worst[0]}'s test samples, against {fmt(overall, 2)} over all test samples."
        if auroc is not None:
            trust += f" Only as telling as Q-Score itself (AUROC {fmt(float(auroc), 2)})."
        return Card("Worst-represented classes", verdict, fmt(float(cq.iloc[0]), 2), "Q-Score", trust, "", "#qscore")

    def simvae(self) -> Card | None:
        nr = self.not_run("simvae", "SimVAE", "#simvae")
        if nr is not None:
            return nr
        figs = [p for p in self.col.files("simvae/") if p.endswith(".png")]
        return Card(
            "SimVAE",
            f"The generative view is below: {len(figs)} figure(s) of what the model keeps (content) and what it drops (style).",
            "",
            "",
            "Read the reconstructions and traversals for what each latent direction encodes.",
            "",
            "#simvae",
        )


def rerun_command(lens: str, root, status: dict) -> str:
    """The command that (re)runs a lens on this run."""
    args = [a for a in ((status.get("key") or {}).get("args") or []) if isinstance(a, str)]
    quoted = " ".join(a if a and all(ch.isalnum() or ch in "-_.:,=/" for ch in a) else repr(a) for a in args)
    if lens == "simvae":
        return "sslaudit audit --data DATA --objective simvae --out RUN-simvae  (the generative view needs a SimVAE model)"
    if lens == "relax" and "table" in str(status.get("reason", "")):
        return f"sslaudit relax {root} --tabular-groups"
    return f"sslaudit {lens} {root}" + (f" {quoted}" if quoted else "")


def collect_cards(col) -> list[Card]:
    return Findings(col).cards()
