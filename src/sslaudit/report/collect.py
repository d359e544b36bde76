"""Read what the lenses wrote into a run and turn it into report sections. Never recomputes.

Every artefact is read through the run store, so a truncated or altered file is reported in its
section instead of being shown. Every summary is read defensively: a key a lens did not write
(an older run, another version of the lens) leaves a sentence saying what is missing, never a
crash. Figures come first in each section; tables are folded below them.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from ..store import RunStore
from .blocks import Figure, Gallery, Section, Table, Text, Tile, fmt, pct
from .figures import alignment_figure, bars, heatmap, training_curves
from .images import data_uri
from .samples import SampleView

HISTORY = "train/history.parquet"

# captions in words for the figures the lenses write (by file name)
CAPTIONS = {
    "qscore/histogram.png": "Q-Score of the test samples the linear probe classifies correctly (green) and wrongly (red). The less the two overlap, the better Q-Score predicts errors without labels.",
    "qscore/features.png": "Activation rate of every embedding feature; features in the shaded band fire for few samples and strongly, which makes them discriminative.",
    "qscore/saliency.png": "Which input regions drive each discriminative feature (feature saliency).",
    "qscore/compression.png": "Linear-probe accuracy when only a fraction of the features is kept, discriminative ones first, against random features.",
    "simvae/figures/reconstructions.png": "Test inputs (top) and what the generative model reconstructs from their latent mean (bottom): what it keeps and what it blurs away.",
    "simvae/figures/traversals.png": "Moving along a latent direction (−3 … +3): what changes is what that direction encodes (content or style).",
    "simvae/figures/latent_importance.png": "Which latent dimensions carry content (the class) and which carry style (augmentations).",
    "simvae/figures/view_means.png": "Augmented views of an input, the decoding of each view's latent, and of their average: the average keeps the content and drops the style.",
}

LENS_TITLES = {
    "train": "The encoder",
    "krepes": "Representer landmarks (KREPES)",
    "influence": "Label-free influence",
    "relax": "Attribution maps (RELAX)",
    "qscore": "Representation quality (Q-Score)",
    "simvae": "Generative view (SimVAE)",
}


def anchor(lens: str, split: str, index: int) -> str:
    return f"{lens}-{split}-{int(index)}"


def humanise(key: str) -> str:
    """internal_field_name → 'internal field name'."""
    return str(key).replace("_", " ").strip()


def _table(df, columns: list[str] | None = None, limit: int = 30, caption: str = "", names: dict | None = None) -> Table:
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    rows = [[fmt(v) for v in r] for r in df[cols].head(limit).itertuples(index=False, name=None)]
    more = f" (first {limit} of {len(df)} rows)" if len(df) > limit else ""
    names = names or {}
    return Table([names.get(c, humanise(c)) for c in cols], rows, caption + more)


def json_blocks(doc, caption: str) -> list:
    """Any JSON summary as tables a person can read: scalars as name/value rows, lists of records as
    their own tables; never a printed Python dict."""
    scalars, out = [], []

    def walk(obj, prefix):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix} · {humanise(k)}" if prefix else humanise(k))
        elif isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
            out.append(_table(pd.DataFrame(obj), caption=f"{caption}: {prefix}"))
        elif isinstance(obj, list):
            scalars.append([prefix, ", ".join(str(fmt(x)) for x in obj[:12]) + (" …" if len(obj) > 12 else "")])
        else:
            scalars.append([prefix or "value", fmt(obj)])

    walk(doc, "")
    return ([Table(["", ""], scalars[:40], caption)] if scalars else []) + out


class Collector:
    def __init__(self, store: RunStore, dataset, metrics: dict, config: dict, status: dict):
        self.store = store
        self.view = SampleView(dataset) if dataset is not None else None
        self.ds = dataset
        self.metrics = metrics or {}
        self.config = config or {}
        self.status = status or {}
        self._cache: dict = {}

    # ---- reading ----------------------------------------------------------------------------
    def has(self, rel: str) -> bool:
        return rel in self.store.manifest["artefacts"]

    def json(self, rel: str) -> dict:
        """A JSON artefact ({} when absent or not an object)."""
        if rel not in self._cache:
            doc = self.store.read_json(rel) if self.has(rel) else {}
            self._cache[rel] = doc if isinstance(doc, dict) else {}
        return self._cache[rel]

    def parquet(self, rel: str):
        if rel not in self._cache:
            self._cache[rel] = self.store.read_parquet(rel) if self.has(rel) else None
        return self._cache[rel]

    def files(self, prefix: str) -> list[str]:
        return sorted(a for a in self.store.manifest["artefacts"] if a.startswith(prefix))

    def lens_status(self, lens: str) -> dict:
        return (self.status.get("lenses", {}) or {}).get(lens) or {}

    def safe(self, sid: str, title: str, build: Callable[[Section], None], lead: str = "") -> Section:
        sec = Section(sid, title, note=self.lens_status(sid).get("note") or "", lead=lead)
        try:
            build(sec)
        except UserError as e:
            sec.blocks.append(Text(f"This section could not be shown: {e}", tone="bad"))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:  # a lens wrote something this report does not know
            sec.blocks.append(
                Text(f"Part of this section could not be shown: the stored results lack or mistype {e!s} (written by another version of the lens?). Rerun the lens to refresh them.", tone="bad")
            )
        if not sec.blocks:
            sec.blocks.append(Text("The lens ran but stored nothing this report can show.", tone="warn"))
        return sec

    def focus_indices(self) -> list[int]:
        """The lowest-Q-Score test samples (the audit asks KREPES and RELAX for exactly these)."""
        foc = (self.status.get("focus") or {}).get("test", [])
        return [int(i) for i in foc]

    def label_of(self, split: str, index: int) -> str | None:
        return self.view.label(split, index) if self.view is not None else None

    def krepes_has(self, index: int) -> bool:
        lm = self.parquet("krepes/landmarks.parquet")
        return lm is not None and int(index) in set(int(t) for t in _tested(lm))

    def relax_has(self, index: int) -> bool:
        return self.has(f"relax/test-{int(index)}.png")

    # ---- the encoder --------------------------------------------------------------------
    def summary(self) -> Section:
        def build(sec):
            m, c = self.metrics, self.config
            data, train, arch = c.get("data", {}) or {}, c.get("train", {}) or {}, c.get("arch") or {}
            hist = self.parquet(HISTORY)
            if hist is not None and len(hist) and "loss" in hist:
                sec.blocks.append(
                    Figure(
                        training_curves(hist),
                        f"Training: the SSL loss per epoch (blue){' and the k-NN accuracy of a small probe (' + str(min(m.get('n_test') or 0, 500)) + ' fixed test samples, red) at a few epochs' if 'knn_accuracy' in hist else ''}. A loss that still falls at the last epoch means more epochs would help.",
                        alt="training curves",
                    )
                )
            elif c.get("external"):
                sec.blocks.append(Text("This encoder was imported, so the run has no training history."))
            else:
                sec.blocks.append(Text("No training history is stored in this run (it was trained before sslaudit recorded one; retrain to get the curves).", tone="warn"))
            rows = [
                ["data", data.get("spec", "?")],
                ["training / test samples", f"{m.get('n_train', '?')} / {m.get('n_test', '?')}"],
                ["objective", train.get("objective") or c.get("objective") or "?"],
                ["encoder", arch.get("arch", (c.get("external") or {}).get("kind", "?"))],
                ["epochs", train.get("epochs", "?")],
                ["linear-probe accuracy", pct(m.get("linear_probe_accuracy")) if m.get("linear_probe_accuracy") is not None else "no labels"],
                ["k-NN accuracy", pct(m.get("knn_accuracy")) if m.get("knn_accuracy") is not None else "no labels"],
                ["collapse check", fmt(m.get("collapse_std"))],
                ["training time", f"{float(m['train_seconds']):.0f} s" if m.get("train_seconds") else "n/a"],
            ]
            sec.blocks.append(Table(["", ""], rows, "The run", folded=False))
            if hist is not None and len(hist):
                sec.blocks.append(
                    _table(
                        hist,
                        caption="Training history per epoch (RUN/train/history.parquet)",
                        limit=100,
                        names={"knn_accuracy": "k-NN accuracy", "collapse_std": "collapse check", "lr": "learning rate", "loss": "training loss"},
                    )
                )

        return self.safe("summary", LENS_TITLES["train"], build, lead="What was trained on what, and how well its embeddings separate the classes.")

    # ---- KREPES -------------------------------------------------------------------------
    def krepes(self) -> Section | None:
        if not self.files("krepes/"):
            return None

        def build(sec):
            from .findings import fidelity_verdict

            fid = self.json("krepes/fidelity.json")
            if fid:
                sec.blocks.append(fidelity_verdict(fid))
            lm = self.parquet("krepes/landmarks.parquet")
            if lm is not None:
                tests = list(dict.fromkeys(int(t) for t in _tested(lm)))
                focus = [t for t in self.focus_indices() if t in tests] or tests[:4]
                for t in focus[: 6 if self.view.is_image else 3]:
                    sec.blocks.append(self.landmark_gallery(lm, t))
            an = self.parquet("krepes/anchoring.parquet")
            if an is not None and len(an):
                sec.blocks.extend(self.anchoring_figures(an))
            ag = self.parquet("krepes/alignment_gap.parquet")
            if ag is not None and len(ag):
                sec.blocks.append(
                    Figure(
                        alignment_figure(ag),
                        "Feature Alignment Gap: how much more often a test point and its landmarks share a feature than chance (0 = chance, 1 = always), with bootstrap 95% intervals. The features at the top are the ones the representation groups samples by.",
                        alt="Feature Alignment Gap per feature",
                    )
                )
            nm = self.parquet("krepes/landmark_norms.parquet")
            if nm is not None and len(nm):
                top = nm.sort_values("norm", ascending=False).head(10)
                big = float(top["norm"].max()) or 1.0
                if not self.view.is_image:
                    sec.blocks.append(
                        self.view.rows_table(
                            [([f"{100 * float(r.norm) / big:.0f}%"], "train", int(r.index)) for r in top.head(6).itertuples()],
                            ["coefficient (of the largest)"],
                            "Training rows that shape the most representations (largest landmark coefficients ‖ΔÃ_l‖)",
                        )
                    )
                else:
                    sec.blocks.append(
                        Gallery(
                            "Training samples that shape the most representations",
                            [
                                self.view.tile("train", int(r.index), f"train:{int(r.index)} · coefficient {100 * float(r.norm) / big:.0f}% of the largest", tip="landmark norm")
                                for r in top.itertuples()
                            ],
                            caption="The landmarks with the largest coefficients ‖ΔÃ_l‖: every explanation draws on these most.",
                        )
                    )
            # tables, folded
            if fid:
                sec.blocks.append(self.fidelity_table(fid))
            if ag is not None and len(ag):
                sec.blocks.append(
                    _table(
                        ag.sort_values("gap_normalised", ascending=False),
                        ["feature", "gap_normalised", "ci_low_normalised", "ci_high_normalised", "gap", "chance_agreement"],
                        caption="Feature Alignment Gap per feature",
                        names={"gap_normalised": "gap (normalised)", "ci_low_normalised": "95% low", "ci_high_normalised": "95% high", "gap": "gap (raw)", "chance_agreement": "chance agreement"},
                    )
                )
            if an is not None and len(an):
                sec.blocks.append(
                    _table(
                        an,
                        limit=200,
                        caption="Group anchoring: P(group of the strongest landmark | group of the test point) beside the group's base rate",
                        names={"probability": "P(landmark group | test group)", "base_rate": "base rate", "n_test": "test points"},
                    )
                )
            if self.has("krepes/concepts.parquet"):
                sec.blocks.append(_table(self.store.read_parquet("krepes/concepts.parquet"), limit=30, caption="Concept-conditioned influence scores"))

        return self.safe("krepes", LENS_TITLES["krepes"], build, lead="Which unlabeled training samples shaped the representation of an input, and whether that explanation can be trusted.")

    def landmark_gallery(self, lm, t: int):
        sub = lm[(lm["split"] == "test") & (lm["index"] == t)].sort_values("rank").head(8)
        lab = self.label_of("test", t)
        if not self.view.is_image:  # table rows: one row per sample, the test point first
            top = float(sub["score"].abs().max()) if len(sub) else 1.0
            items = [(["test point", "", ""], "test", t)] + [
                ([f"#{int(r.rank)}", sign_word(r.sign), f"{100 * abs(float(r.score)) / (top or 1.0):.0f}%"], "train", int(r.train_index)) for r in sub.head(6).itertuples()
            ]
            return self.view.rows_table(
                items,
                ["rank", "effect", "influence score"],
                f"What shaped test:{t}"
                + (f" (label {lab})" if lab is not None else "")
                + ": the test point (first row) and its strongest landmarks, which attract or repel its representation (% of the strongest). Shaded: the same value as the test point.",
                compare_first=True,
            )
        tiles = [
            self.view.tile(
                "test", t, f"test point test:{t}", anchor=anchor("krepes", "test", t), link=f"#{anchor('relax', 'test', t)}" if self.relax_has(t) else "", link_text="its RELAX map", tone="focus"
            )
        ]
        top = float(sub["score"].abs().max()) if len(sub) else 1.0
        same = 0
        for r in sub.itertuples():
            word = sign_word(r.sign)
            tone = "good" if word == "attracts" else "bad"
            if lab is not None and self.label_of("train", int(r.train_index)) == lab:
                same += 1
            tiles.append(
                self.view.tile("train", int(r.train_index), f"#{int(r.rank)} train:{int(r.train_index)} · {word} · {100 * abs(float(r.score)) / (top or 1.0):.0f}%", tone=tone, tip="influence score")
            )
        share = f" {same} of the {len(sub)} strongest landmarks have its label {lab}." if lab is not None and len(sub) else ""
        return Gallery(
            f"What shaped test:{t}" + (f" (label {lab})" if lab is not None else ""),
            tiles,
            caption=f"The test point (blue frame) and its strongest landmarks: green = attracts its representation, red = repels; % = influence score relative to the strongest.{share}",
        )

    def anchoring_figures(self, an) -> list:
        out = []
        for attr, sub in an.groupby("attribute", sort=False):
            rows = list(dict.fromkeys(sub["test_group"].astype(str)))
            cols = list(dict.fromkeys(sub["landmark_group"].astype(str)))
            if len(rows) > 25 or len(cols) > 25:
                out.append(Text(f"Group anchoring by {attr}: {len(rows)} groups are too many for a heatmap; see the table below."))
                continue
            m = np.full((len(rows), len(cols)), np.nan)
            for r in sub.itertuples():
                m[rows.index(str(r.test_group)), cols.index(str(r.landmark_group))] = float(r.probability)
            diag = [m[i, cols.index(g)] for i, g in enumerate(rows) if g in cols]
            what = "class" if attr == "label" else str(attr)
            summary = f" On average {pct(np.nanmean(diag), 0)} of test points have a strongest landmark of their own {what}." if diag else ""
            out.append(
                Figure(
                    heatmap(m, rows, cols, xlabel=f"{what} of the strongest landmark", ylabel=f"{what} of the test point", cbar="share of test points"),
                    f"Group anchoring by {what}: each row is a {what} of test points, each cell the share whose strongest landmark has the column's {what}.{summary}",
                    alt=f"group anchoring heatmap by {what}",
                )
            )
        return out

    def fidelity_table(self, fid: dict) -> Table:
        names = [
            ("mode", "mode"),
            ("delta_accuracy", "Δ accuracy"),
            ("kendall_tau", "Kendall τ"),
            ("kendall_tau_centred_network", "Kendall τ (centred)"),
            ("kendall_tau_ceiling", "Kendall τ ceiling"),
            ("kendall_tau_raw", "Kendall τ (raw)"),
            ("precision_at_1", "precision@1"),
            ("precision_at_1_baseline", "cosine baseline"),
            ("confidence_drop_top", "confidence drop, top-10 removed"),
            ("confidence_drop_random", "confidence drop, 10 random removed"),
            ("n_distinct_top1", "distinct top-1 landmarks"),
            ("network_accuracy", "network probe accuracy"),
            ("surrogate_accuracy", "surrogate probe accuracy"),
            ("lambda_multiple", "λ"),
            ("lambda_chosen_by", "λ chosen by"),
            ("loss_before", "SSL loss before the step"),
            ("loss_after", "SSL loss after the step"),
            ("n_landmarks", "landmarks (m)"),
            ("rank", "Nyström rank"),
            ("kernel", "kernel"),
            ("selection", "landmark selection"),
            ("n_step_samples", "training samples in the step"),
        ]
        rows = [[label, fmt(fid.get(k))] for k, label in names if k in fid and not isinstance(fid.get(k), (dict, list))]
        if fid.get("linearised", "backbone") != "backbone":
            rows.append(["linearised output", "projector∘backbone (--linearise projector): landmarks explain the projector's output"])
        kp = fid.get("kernel_parameters") or {}
        if isinstance(kp, dict) and kp.get("spec", "all") != "all":
            rows.append(["eNTK parameters", f"{kp.get('spec')}: {fmt(kp.get('n_parameters'))} of {fmt(kp.get('n_parameters_total'))}"])
        if fid.get("layer_projection_dim"):
            rows.append(["per-layer gradient projection", f"{fid['layer_projection_dim']}×{fid['layer_projection_dim']} per layer"])
        kf = fid.get("kernel_fidelity")
        if isinstance(kf, dict) and "relative_frobenius_error" in kf:
            top = kf.get("top")
            rows.append(["kernel error against the full eNTK", f"{fmt(kf['relative_frobenius_error'])} (relative, on {kf.get('sample')} samples)"])
            rows.append(["landmark agreement with the full eNTK", f"{fmt(kf.get(f'top{top}_landmark_agreement'))} (top-{top})"])
        return Table(["diagnostic", "value"], rows, "Fidelity of the kernel surrogate (labels used only here)")

    # ---- influence ----------------------------------------------------------------------
    def influence(self) -> Section | None:
        if not self.files("influence/"):
            return None

        def build(sec):
            summ = self.json("influence/summary.json")
            d = self.parquet("influence/duplicates.parquet")
            if d is not None and len(d) and not self.view.is_image:
                items = []
                for r in d.head(5).itertuples():
                    items += [([f"pair {len(items) // 2 + 1}", f"{float(r.score):.3f}"], "train", int(r.i)), ([f"pair {len(items) // 2 + 1}", ""], "train", int(r.j))]
                sec.blocks.append(
                    self.view.rows_table(
                        items, ["pair", "duplicate score"], "Pairs the encoder treats most alike (possible duplicates): a duplicate score near 1 means the encoder treats them as one example"
                    )
                )
            elif d is not None and len(d):
                tiles = []
                for r in d.head(8).itertuples():
                    tiles.append(self.view.tile("train", int(r.i), f"train:{int(r.i)}", tone="pair-a"))
                    tiles.append(self.view.tile("train", int(r.j), f"≈ train:{int(r.j)} · duplicate score {fmt(float(r.score), 2)}", tone="pair-b", tip="duplicate score"))
                sec.blocks.append(
                    Gallery(
                        "Pairs the encoder treats most alike (possible duplicates)",
                        tiles,
                        caption="Each pair: two training samples whose influence on the encoder points the same way; a duplicate score near 1 means the encoder treats them as one example.",
                    )
                )
            s = self.parquet("influence/self_influence.parquet")
            if s is not None and len(s) and not self.view.is_image:
                s = s.sort_values("rank").head(8)
                sec.blocks.append(
                    self.view.rows_table(
                        [([f"#{int(r.rank)}"], str(r.split), int(r.index)) for r in s.itertuples()],
                        ["rank"],
                        "The most atypical training rows (highest self-influence): rows the encoder cannot predict from the rest — outliers, rare combinations, corrupted data",
                    )
                )
            elif s is not None and len(s):
                s = s.sort_values("rank").head(12)
                sec.blocks.append(
                    Gallery(
                        "The most atypical training samples (highest self-influence)",
                        [self.view.tile(str(r.split), int(r.index), f"#{int(r.rank)} {r.split}:{int(r.index)}", tip="self-influence") for r in s.itertuples()],
                        caption="Samples the encoder cannot predict from the rest: outliers, rare styles, corrupted or unusual data. Worth a look before trusting the training set.",
                    )
                )
            if self.has("influence/fairness.json"):
                sec.blocks.extend(fairness_blocks(self.json("influence/fairness.json")))
            if self.has("influence/removal.json"):
                sec.blocks.extend(json_blocks(self.json("influence/removal.json"), "Removal experiment: retrain without the top, bottom or random share and probe"))
            if summ:
                n_scored, n_train = summ.get("n_scored"), summ.get("n_train")
                rows = [
                    ["training samples scored", f"{n_scored} of {n_train}" if n_scored is not None else "?"],
                    ["curvature", summ.get("strategy_used", "?")],
                    ["duplicate pairs kept", summ.get("pairs", "?")],
                    ["parameters", summ.get("parameters", "?")],
                ]
                chk = summ.get("duplicate_check")
                if isinstance(chk, dict):
                    rows += [[f"duplicate search check · {humanise(k)}", fmt(v)] for k, v in chk.items() if not isinstance(v, (dict, list))]
                sec.blocks.append(Table(["", ""], rows, "How influence was computed"))
            if d is not None and len(d):
                sec.blocks.append(_table(d, ["index", "train_index", "score"], caption="Duplicate pairs", names={"index": "train index", "train_index": "train index", "score": "duplicate score"}))

        return self.safe("influence", LENS_TITLES["influence"], build, lead="Which training samples the encoder depends on: near-duplicates, outliers, and differences between groups.")

    # ---- RELAX --------------------------------------------------------------------------
    def relax(self) -> Section | None:
        if not self.files("relax/"):
            return None

        def build(sec):
            ev = self.json("relax/evaluation.json")
            sc = ev.get("sanity_check")
            if isinstance(sc, dict) and sc and sc.get("passed") is None:
                sec.blocks.append(
                    Text(
                        f"Sanity check: maps of a randomised encoder correlate with the trained encoder's at Spearman {fmt(sc.get('spearman_mean'), 2)} — not decided: its threshold needs at least 3 inputs; attribute more with `sslaudit relax RUN --index …`.",
                        tone="warn",
                    )
                )
            elif isinstance(sc, dict) and sc:
                sec.blocks.append(
                    Text(
                        f"Sanity check: maps of a randomised encoder correlate with the trained encoder's at Spearman {fmt(sc.get('spearman_mean'), 2)} — {'passed: the maps depend on what the encoder learned' if sc.get('passed') else 'failed: the maps mostly reflect the input, not what the encoder learned'}.",
                        tone="good" if sc.get("passed") else "warn",
                    )
                )
            else:
                sec.blocks.append(
                    Text(
                        "The sanity check (maps of a randomised encoder) was not run, so these maps could show the input rather than what the encoder learned; `sslaudit relax RUN --index …` runs it.",
                        tone="warn",
                    )
                )
            pngs = [p for p in self.files("relax/") if re.fullmatch(r"relax/(train|test)-\d+\.png", p)]
            tiles = []
            for p in pngs[:12]:
                split, idx = p[len("relax/") : -4].split("-")
                lab = self.label_of(split, int(idx))
                tiles.append(
                    Tile(
                        data_uri(self.store.read_bytes(p)),
                        f"{split}:{idx}"
                        + (f" · label {lab}" if lab is not None else "")
                        + " — the input; where the representation looks (importance); how unsure that is (uncertainty); the importance where it is sure (U-RELAX)",
                        anchor=anchor("relax", split, int(idx)),
                        link=f"#{anchor('krepes', split, int(idx))}" if self.krepes_has(int(idx)) and split == "test" else "",
                        link_text="its landmarks",
                        tone="wide",
                        tip="RELAX importance",
                    )
                )
            if tiles:
                sec.blocks.append(
                    Gallery(
                        "Where the representation looks, and how sure the map is",
                        tiles,
                        caption="Bright in the importance panel: hiding these pixels changes the representation most. Bright in the uncertainty panel: the map is unsure there.",
                    )
                )
            maps = ev.get("maps") if isinstance(ev.get("maps"), dict) else {}
            if maps:
                cols = ["deletion_auc", "insertion_auc", "complexity", "sparseness"]
                sec.blocks.append(
                    Table(
                        ["map", "deletion AUC", "insertion AUC", "complexity", "sparseness"],
                        [
                            [{"relax": "RELAX", "u_relax": "U-RELAX", "saliency": "gradient saliency", "random": "random map"}.get(name, humanise(name))]
                            + [fmt(m.get(c)) if isinstance(m, dict) else "?" for c in cols]
                            for name, m in maps.items()
                        ],
                        "How faithful the maps are, against gradient saliency and a random map (deletion: lower is better; insertion: higher is better)",
                    )
                )

        return self.safe("relax", LENS_TITLES["relax"], build, lead="Which parts of an image the representation depends on, and how certain that map is.")

    # ---- Q-Score ------------------------------------------------------------------------
    def qscore(self) -> Section | None:
        if not self.files("qscore/"):
            return None

        def build(sec):
            from .findings import class_quality

            ev = self.json("qscore/evaluation.json")
            if self.has("qscore/histogram.png"):
                sec.blocks.append(Figure(data_uri(self.store.read_bytes("qscore/histogram.png")), CAPTIONS["qscore/histogram.png"], alt="Q-Score by correct and misclassified"))
            sc = self.parquet("qscore/scores.parquet")
            if sc is not None and len(sc):
                cq = class_quality(sc, self.ds)
                if cq is not None and len(cq) > 1:
                    worst = min(3, len(cq) - 1)
                    sec.blocks.append(
                        Figure(
                            bars([str(c) for c in cq.index], cq.tolist(), xlabel="median Q-Score of the class's test samples", highlight=worst),
                            f"Median Q-Score per class, lowest first (red: the {worst} worst-represented classes).",
                            alt="Q-Score per class",
                        )
                    )
                low = sc[sc["split"] == "test"].sort_values("qscore").head(12)
                if not self.view.is_image:
                    sec.blocks.append(
                        self.view.rows_table(
                            [([fmt(float(r.qscore), 2)], "test", int(r.index)) for r in low.head(8).itertuples()],
                            ["Q-Score"],
                            "The worst-represented test rows (lowest Q-Score): likely to be misclassified downstream",
                        )
                    )
                    low = low.iloc[:0]
                tiles = []
                for r in low.itertuples():
                    t = int(r.index)
                    link, text = (
                        (f"#{anchor('krepes', 'test', t)}", "its landmarks") if self.krepes_has(t) else ((f"#{anchor('relax', 'test', t)}", "its RELAX map") if self.relax_has(t) else ("", ""))
                    )
                    tiles.append(self.view.tile("test", t, f"test:{t} · Q-Score {fmt(float(r.qscore), 2)}", anchor=anchor("qscore", "test", t), link=link, link_text=text, tip="Q-Score"))
                if tiles:
                    sec.blocks.append(
                        Gallery(
                            "The worst-represented test samples (lowest Q-Score)",
                            tiles,
                            caption="Likely to be misclassified downstream; each links to the training samples that shaped it and to where the encoder looks.",
                        )
                    )
            for p in ("qscore/features.png", "qscore/saliency.png", "qscore/compression.png"):
                if self.has(p):
                    sec.blocks.append(Figure(data_uri(self.store.read_bytes(p)), CAPTIONS[p], alt=CAPTIONS[p]))
            for p in self.files("qscore/"):
                if p.endswith(".png") and p not in CAPTIONS:
                    sec.blocks.append(Figure(data_uri(self.store.read_bytes(p)), f"Q-Score figure: {humanise(p.split('/')[-1][:-4])}.", alt=humanise(p)))
            if ev:
                rows = [["Q-Score", fmt(ev.get("auprc")), fmt(ev.get("auroc"))]]
                rows += [[humanise(k), fmt(v.get("auprc")), fmt(v.get("auroc"))] for k, v in (ev.get("baselines") or {}).items() if isinstance(v, dict)]
                rows.append(["prevalence (a random score)", fmt(ev.get("prevalence")), "0.5"])
                sec.blocks.append(Table(["score", "AUPRC", "AUROC"], rows, "Does the score tell correctly from wrongly classified test samples (linear probe; labels used only here)?"))
                if ev.get("epsilon") is not None:
                    sec.blocks.append(Text(f"ε = {ev.get('epsilon')} chosen without labels; {pct(ev.get('empty_share') or 0)} of samples have no discriminative feature that fires strongly."))
            cj = self.json("qscore/compression.json")
            if isinstance(cj.get("curve"), list) and cj["curve"]:
                sec.blocks.append(
                    _table(
                        pd.DataFrame(cj["curve"]),
                        ["fraction_kept", "n_kept", "kept_is_discriminative", "accuracy", "random_accuracy"],
                        caption="Compression: linear-probe accuracy keeping only some features"
                        + (f"; {pct(cj.get('droppable_fraction'), 0)} of the features can be dropped within one point of accuracy" if cj.get("droppable_fraction") is not None else ""),
                        names={
                            "fraction_kept": "share of features kept",
                            "n_kept": "features kept",
                            "kept_is_discriminative": "exactly the discriminative ones",
                            "accuracy": "accuracy",
                            "random_accuracy": "accuracy, random features",
                        },
                    )
                )

        return self.safe("qscore", LENS_TITLES["qscore"], build, lead="Which samples are represented poorly (and so likely misclassified downstream), found without labels.")

    # ---- SimVAE -------------------------------------------------------------------------
    def simvae(self) -> Section | None:
        if not self.files("simvae/"):
            return None

        def build(sec):
            for p in self.files("simvae/"):
                if p.endswith(".png"):
                    sec.blocks.append(Figure(data_uri(self.store.read_bytes(p)), CAPTIONS.get(p, f"SimVAE figure: {humanise(p.split('/')[-1][:-4])}."), alt=humanise(p)))
            for p in self.files("simvae/"):
                if p.endswith("content_style.json"):
                    doc = self.json(p)
                    rows = pd.DataFrame(doc.get("rows", []))
                    if len(rows):
                        sec.blocks.append(_table(rows, caption=f"Content vs style: linear probes and clustering of the {doc.get('objective', '')} representation, per factor"))
                elif p.endswith("latent_directions.json"):
                    sec.blocks.append(directions_table(self.json(p)))
                elif p.endswith(".json") and not p.endswith("config.json"):
                    sec.blocks.extend(json_blocks(self.json(p), humanise(p.split("/")[-1][:-5])))

        return self.safe("simvae", LENS_TITLES["simvae"], build, lead="What a generative model with the same SSL structure keeps: content (the class) versus style (the augmentations).")


def fairness_blocks(doc: dict) -> list:
    """Self-influence by protected group: one table of group summaries and one of tests per attribute."""
    if not doc.get("attributes"):
        return [Text(f"Self-influence by group: {doc.get('note', 'no protected attributes declared')}.")]
    out = []
    for attr, res in (doc.get("by_attribute") or {}).items():
        groups = [[g, v.get("n"), fmt(v.get("mean")), fmt(v.get("median")), fmt(v.get("q10")), fmt(v.get("q90"))] for g, v in (res.get("groups") or {}).items()]
        out.append(Table(["group", "n", "mean", "median", "10th pct", "90th pct"], groups, f"Self-influence by {attr}: higher means the encoder finds these samples harder to fit from the rest."))
        tests = [[t.get("group"), t.get("versus"), fmt(t.get("cliffs_delta")), fmt(t.get("p_value")), fmt(t.get("p_value_holm", t.get("p_value")))] for t in res.get("tests", [])]
        kw = res.get("kruskal_wallis")
        note = f" Kruskal–Wallis H = {fmt(kw.get('h'))}, p = {fmt(kw.get('p_value'))}." if isinstance(kw, dict) else ""
        out.append(Table(["group", "versus", "Cliff's δ", "p (Mann–Whitney U)", "p (Holm)"], tests, f"Tests of {attr} (Cliff's δ > 0: the group is more self-influential).{note}"))
    return out


def directions_table(doc: dict) -> Table:
    """The latent dimensions that carry each factor, with the factor's probe accuracy."""
    acc = doc.get("probe_accuracy", {})
    acc = acc if isinstance(acc, dict) else dict(zip(doc.get("tasks", []), acc if isinstance(acc, list) else []))
    rows = [[t, fmt(acc.get(t)), ", ".join(str(d) for d in dims)] for t, dims in (doc.get("top_dims") or {}).items()]
    return Table(["factor", "linear-probe accuracy from the latent", "most important latent dimensions"], rows, "Latent directions per factor (the traversal figures move along these).")


def sign_word(sign) -> str:
    s = str(sign).lower()
    return "attracts" if s in ("1", "1.0", "+", "+1", "attract", "attractive", "attracting", "attracts") else "repels"


def _tested(landmarks) -> list[int]:
    """The test indices a KREPES landmarks table explains, in table order."""
    return landmarks.loc[landmarks["split"] == "test", "index"].tolist()
