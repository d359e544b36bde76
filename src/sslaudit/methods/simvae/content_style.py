"""Content vs style: what a frozen representation keeps about the class and about nuisances.

Works for any encoder (SimVAE's posterior mean, a SimCLR or VICReg backbone, an imported model),
so one table compares them. Content = the class label of clean inputs; style = a known nuisance
applied to clean inputs (see `nuisance.py`), whose bin a probe must predict. For each task:
a linear probe (logistic regression) and a 1-hidden-layer MLP probe on standardised features,
and a k-NN classifier; each with its hyper-parameter chosen on a validation part of the
training subset — the test subset is used once, for the reported accuracy. Content also gets a
Gaussian-mixture clustering (ARI, NMI against the classes), the paper's unsupervised metric.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from ...errors import UserError
from ...models.embed import embed
from ...parsing import number, number_list
from ...seeding import numpy_rng
from .nuisance import DEFAULT_TASKS, NUISANCES, apply_nuisance, check_tasks, draw_values, parse_tasks


@dataclass
class ContentStyleConfig:
    """Settings of the content/style evaluation (saved beside its results)."""

    tasks: list[str] | None = field(
        default=None, metadata={"parse": parse_tasks, "help": "Style tasks, comma-separated, from rotation,scale,brightness,hflip,vflip, or 'none' [default: all for images, none for tables]."}
    )
    n_train: int = field(
        default=5000, metadata={"parse": number(int, "--n-train", "5000", minimum=20), "help": "Probe-training samples (seeded subsample of the train split; a share is held out for model selection)."}
    )
    n_test: int = field(default=2000, metadata={"parse": number(int, "--n-test", "2000", minimum=20), "help": "Evaluation samples (seeded subsample of the test split)."})
    val_fraction: float = field(
        default=0.2,
        metadata={"parse": number(float, "--val-fraction", "0.2", minimum=0.05, maximum=0.5), "help": "Share of the probe-training samples used to choose each probe's regularisation and k."},
    )
    linear_c: tuple[float, ...] = field(
        default=(0.01, 0.1, 1.0, 10.0), metadata={"parse": number_list("--linear-c", "0.01,0.1,1,10", lo=0, open_lo=True), "help": "Inverse L2 strengths tried for the linear probe."}
    )
    mlp_hidden: int = field(default=128, metadata={"parse": number(int, "--mlp-hidden", "128", minimum=1), "help": "Hidden units of the 1-hidden-layer MLP probe."})
    mlp_alpha: tuple[float, ...] = field(default=(0.1, 1.0, 10.0), metadata={"parse": number_list("--mlp-alpha", "0.1,1,10", lo=0, open_lo=True), "help": "L2 strengths tried for the MLP probe."})
    mlp_max_iter: int = field(default=200, metadata={"parse": number(int, "--mlp-max-iter", "200", minimum=1), "help": "L-BFGS iterations of the MLP probe (full batch)."})
    knn_k: tuple[int, ...] = field(default=(5, 10, 20), metadata={"parse": lambda t: tuple(int(v) for v in number_list("--knn-k", "5,10,20", lo=1)(t)), "help": "Neighbours tried for the k-NN probe."})
    gmm: bool = field(default=True, metadata={"flag": "--no-gmm", "help": "Skip the Gaussian-mixture clustering (ARI/NMI) of the content representation."})
    gmm_max_dim: int = field(default=32, metadata={"parse": number(int, "--gmm-max-dim", "32", minimum=1), "help": "PCA dimension before the GMM (full covariances)."})
    seed: int = 0
    batch_size: int = field(default=512, metadata={"parse": number(int, "--batch-size", "512", minimum=1), "help": "Inputs per forward pass when embedding the probe sets."})

    def resolved(self, kind: str) -> "ContentStyleConfig":
        tasks = (list(DEFAULT_TASKS) if kind == "image" else []) if self.tasks is None else check_tasks(self.tasks, kind)
        for name in ("n_train", "n_test"):
            if getattr(self, name) < 20:
                raise UserError(f"{name}={getattr(self, name)} is too small for a probe: use at least 20 (e.g. 5000)")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise UserError(f"val_fraction={self.val_fraction} must lie in [0.05, 0.5] (e.g. 0.2)")
        return ContentStyleConfig(**{**asdict(self), "tasks": tasks})


@dataclass
class ContentStyleResult:
    table: pd.DataFrame  # one row per task: accuracies of each probe and the chosen settings
    config: dict

    def accuracy(self, task: str, probe: str = "linear") -> float:
        return float(self.table.set_index("task").loc[task, probe])


def subsample(n_total: int, n: int, seed: int, key: str) -> np.ndarray:
    return np.sort(numpy_rng(seed, "content-style", key).permutation(n_total)[: min(n, n_total)])


def task_data(task: str, x: np.ndarray, y: np.ndarray, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of a task: clean inputs and classes (content) or transformed inputs and bins."""
    if task == "content":
        return x, y
    values = draw_values(task, len(x), numpy_rng(seed, "content-style", task, split))
    xt = apply_nuisance(task, torch.from_numpy(x), torch.from_numpy(values).float()).numpy()
    return xt, NUISANCES[task].labels(values)


def select(make, grid, xtr, ytr, xva, yva):
    """The model of `grid` with the best validation accuracy (ties: the earlier one)."""
    best = None
    for v in grid:
        m = make(v).fit(xtr, ytr)
        acc = float((m.predict(xva) == yva).mean())
        if best is None or acc > best[0]:
            best = (acc, v, m)
    return best


def probe_task(task: str, *, encoder, train_x, train_y, test_x, test_y, config: dict, device: str) -> dict:
    """Accuracies of the linear, MLP and k-NN probes for one task (one engine item)."""
    from sklearn.exceptions import ConvergenceWarning

    c = config
    xtr, ytr = task_data(task, train_x, train_y, c["seed"], "train")
    xte, yte = task_data(task, test_x, test_y, c["seed"], "test")
    etr = embed(encoder, xtr, c["batch_size"], device).astype(np.float64)
    ete = embed(encoder, xte, c["batch_size"], device).astype(np.float64)
    with warnings.catch_warnings():  # probes that stop at max_iter are still valid, just reported
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _probe_task(task, etr, ytr, ete, yte, c)


def _probe_task(task, etr, ytr, ete, yte, c) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    n_val = max(int(round(c["val_fraction"] * len(etr))), 1)
    perm = numpy_rng(c["seed"], "content-style", "val", task).permutation(len(etr))
    va, tr = perm[:n_val], perm[n_val:]
    scaler = StandardScaler().fit(etr[tr])
    ftr, fva, fte = scaler.transform(etr[tr]), scaler.transform(etr[va]), scaler.transform(ete)
    seed = int(c["seed"])
    lin = select(lambda C: LogisticRegression(C=C, max_iter=2000, random_state=seed), c["linear_c"], ftr, ytr[tr], fva, ytr[va])
    mlp = select(
        lambda a: MLPClassifier((c["mlp_hidden"],), alpha=a, solver="lbfgs", max_iter=c["mlp_max_iter"], random_state=seed),
        c["mlp_alpha"],
        ftr,
        ytr[tr],
        fva,
        ytr[va],
    )
    knn = select(lambda k: KNeighborsClassifier(min(k, len(tr))), c["knn_k"], ftr, ytr[tr], fva, ytr[va])
    _, counts = np.unique(yte, return_counts=True)
    row = {
        "task": task,
        "kind": "content" if task == "content" else "style",
        "n_classes": int(len(np.unique(ytr))),
        "chance": float(counts.max() / counts.sum()),
        "linear": float((lin[2].predict(fte) == yte).mean()),
        "mlp": float((mlp[2].predict(fte) == yte).mean()),
        "knn": float((knn[2].predict(fte) == yte).mean()),
        "linear_val": lin[0],
        "mlp_val": mlp[0],
        "knn_val": knn[0],
        "linear_c": float(lin[1]),
        "mlp_alpha": float(mlp[1]),
        "knn_k": int(knn[1]),
        "gmm_ari": None,
        "gmm_nmi": None,
        "dim": int(etr.shape[1]),
    }
    if task == "content" and c["gmm"]:
        row["gmm_ari"], row["gmm_nmi"] = gmm_scores(np.concatenate([ftr, fva]), fte, yte, int(len(np.unique(ytr))), c["gmm_max_dim"], seed)
    return row


def gmm_scores(train_f: np.ndarray, test_f: np.ndarray, test_y: np.ndarray, k: int, max_dim: int, seed: int) -> tuple[float, float]:
    """Fit a k-component full-covariance GMM on (PCA-reduced) train features; ARI, NMI on test."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.mixture import GaussianMixture

    if train_f.shape[1] > max_dim:
        pca = PCA(max_dim, random_state=seed).fit(train_f)
        train_f, test_f = pca.transform(train_f), pca.transform(test_f)
    gmm = GaussianMixture(k, covariance_type="full", n_init=3, reg_covar=1e-4, random_state=seed).fit(train_f)
    pred = gmm.predict(test_f)
    return float(adjusted_rand_score(test_y, pred)), float(normalized_mutual_info_score(test_y, pred))


class ContentStyle:
    """`ContentStyle(encoder, config).evaluate(dataset)` → a `ContentStyleResult` table."""

    def __init__(self, encoder: torch.nn.Module, config: ContentStyleConfig | None = None, *, device: str = "cpu", engine=None):
        self.encoder = encoder
        self.config = config or ContentStyleConfig()
        self.device = device
        self.engine = engine

    def evaluate(self, dataset) -> ContentStyleResult:
        from ...engine import get_engine

        if not dataset.has_labels:
            raise UserError(f"{dataset.name} has no class labels: the content task needs them (give --label for a CSV)")
        cfg = self.config.resolved(dataset.kind)
        tr = subsample(len(dataset.train), cfg.n_train, cfg.seed, "train")
        te = subsample(len(dataset.test), cfg.n_test, cfg.seed, "test")
        shared = {
            "encoder": self.encoder,
            "train_x": dataset.train.x[tr],
            "train_y": np.asarray(dataset.train.y)[tr],
            "test_x": dataset.test.x[te],
            "test_y": np.asarray(dataset.test.y)[te],
            "config": asdict(cfg),
            "device": self.device,
        }
        engine = self.engine or get_engine("local")
        rows = list(engine.map(probe_task, ["content", *cfg.tasks], shared=shared, desc="content/style probes"))
        return ContentStyleResult(pd.DataFrame(rows), asdict(cfg))
