"""A trained (or imported) encoder and its data, as stored in a run directory.

`sslaudit.load(RUN)` returns a `Run`: `.encoder` (an nn.Module from float32 inputs to the
backbone representation), `.preprocess` for raw table rows, `.dataset`, `.store`. `train_run`
and `import_run` create runs; every lens then writes under RUN/<lens>/ through `run.store`.
"""
from __future__ import annotations

import importlib
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .progress import info
from .store import MANIFEST, RunStore

WEIGHTS = "model.pt"
PROBE_ROWS = 65_536  # training rows (seeded subsample above this) for the evaluation probes


def data_config(spec: str, *, label=None, protected=(), exclude=(), categorical=None, test_fraction=0.2, seed=0, data_dir=None) -> dict:
    if str(spec).endswith((".csv", ".npz")):
        spec = str(Path(spec).resolve())
    return {
        "spec": str(spec), "label": label, "protected": list(protected), "exclude": list(exclude),
        "categorical": None if categorical is None else list(categorical), "test_fraction": test_fraction, "seed": seed,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
    }


def load_data(dcfg: dict, data_dir=None):
    from .data import load_dataset

    kw = {k: v for k, v in dcfg.items() if k not in ("spec", "data_dir")}
    return load_dataset(dcfg["spec"], data_dir=data_dir or dcfg.get("data_dir"), **kw)


class Run:
    def __init__(self, path: str | Path, *, data_dir: str | Path | None = None, device: str = "cpu"):
        self.store = RunStore(path)
        self.path = self.store.root
        self.device = device
        self._data_dir = data_dir
        if not self.store.stage_done("train"):
            raise UserError(f"{self.path} has no finished model (training was interrupted?); rerun the same `sslaudit train` command to resume")
        self.config = self.store.read_json("config.json")

    @property
    def objective(self) -> str:
        return self.config.get("train", {}).get("objective") or self.config.get("objective", "simclr")

    @cached_property
    def dataset(self):
        return load_data(self.config["data"], self._data_dir)

    @cached_property
    def method(self):
        from .models.methods import build_method

        if "external" in self.config:
            raise UserError(f"{self.path} holds an imported encoder: it has no training method; use run.encoder")
        m = build_method(self.objective, self.config["arch"], self.config["train"].get("params"))
        state = self.store.read_torch(WEIGHTS, map_location=self.device)
        m.load_state_dict(state)
        return m.to(self.device).eval()

    @cached_property
    def encoder(self) -> nn.Module:
        if "external" in self.config:
            enc = load_external_encoder(self.config["external"], self.store)
        else:
            enc = self.method.encoder
        enc = enc.to(self.device).eval()
        for p in enc.parameters():
            p.requires_grad_(True)
        return enc

    def preprocess(self, rows) -> np.ndarray:
        """Encode raw table rows (a pandas DataFrame) as the encoder's float32 inputs."""
        schema = self.dataset.schema
        if schema is None:
            raise UserError("preprocess applies to tabular runs; image inputs are float32 N×C×H×W in [0, 1]")
        return schema.transform(rows)

    def embeddings(self, split: str) -> np.ndarray:
        """Backbone representations of a split (cached in RUN/embeddings/)."""
        from .models.embed import embed

        rel = f"embeddings/{split}.npy"
        key = {"weights": self.store.manifest["artefacts"].get(WEIGHTS, {}).get("sha256") or self.config.get("external")}
        if self.store.stage_done(f"embeddings/{split}", key):
            return self.store.read_npy(rel)
        emb = embed(self.encoder, self.dataset.split(split).x, device=self.device)
        with self.store.lock():
            self.store.write_npy(rel, emb, stage=f"embeddings/{split}")
            self.store.mark_done(f"embeddings/{split}", key, [rel])
        return emb


def load(path: str | Path, *, data_dir: str | Path | None = None, device: str = "cpu") -> Run:
    """Open a run directory written by `sslaudit train` (or `sslaudit import`)."""
    return Run(path, data_dir=data_dir, device=device)


# ---- creating runs -------------------------------------------------------------------------
def open_for_writing(out: str | Path, config: dict, force: bool) -> RunStore:
    """The store for a new run at `out`; refuses to overwrite a different run without force."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise UserError(f"--out {out} is a non-empty folder that is not an sslaudit run; choose an empty or new folder")
        existing = RunStore(out)
        same = existing.config == config
        if not same and not force:
            raise UserError(f"{out} holds a different run; pass --force to replace it or choose another --out")
        if not same:
            with existing.lock():
                for child in out.iterdir():
                    if child.name == ".lock":
                        continue
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    store = RunStore(out, create=True)
    return store


def image_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    mean = x.mean(axis=(0, 2, 3)).astype(float).tolist()
    std = np.maximum(x.std(axis=(0, 2, 3)), 1e-3).astype(float).tolist()
    return mean, std


def evaluate_run(run_store: RunStore, encoder: nn.Module, dataset, device: str, seed: int) -> dict:
    """Linear probe, k-NN and collapse metric of the encoder's representation."""
    from .evaluate.probes import collapse_std, knn_accuracy, linear_probe
    from .models.embed import embed

    from .seeding import numpy_rng

    n = len(dataset.train)
    rows = np.arange(n) if n <= PROBE_ROWS else np.sort(numpy_rng(seed, "probe-rows").choice(n, PROBE_ROWS, replace=False))
    tr = embed(encoder, dataset.train.x[rows], device=device)
    te = embed(encoder, dataset.test.x, device=device)
    metrics = {"collapse_std": collapse_std(tr), "embedding_dim": int(tr.shape[1]), "nonnegative": bool((tr >= 0).all()), "probe_train_rows": int(len(rows))}
    if dataset.has_labels:
        ytr = dataset.train.y[rows]
        metrics["linear_probe_accuracy"] = linear_probe(tr, ytr, te, dataset.test.y, seed=seed).accuracy
        metrics["knn_accuracy"] = knn_accuracy(tr, ytr, te, dataset.test.y)
    else:
        metrics["linear_probe_accuracy"] = metrics["knn_accuracy"] = None
    if metrics["collapse_std"] < 0.1:
        info(f"warning: the representation looks collapsed (collapse_std {metrics['collapse_std']:.3f}); try another --lr or objective")
    return metrics


def build_seeded_method(train_cfg):
    """The method with its initial weights drawn from a generator derived from the seed."""
    from .models.methods import build_method
    from .seeding import derive_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(train_cfg.seed, "init"))
        return build_method(train_cfg.objective, train_cfg.arch, train_cfg.params)


def train_run(data: dict, train_cfg, out: str | Path, *, force: bool = False, device: str = "cpu", arch: str | None = None, dataset=None, init: str | None = None, extra_loss=None, log=None) -> Path:
    """Train an encoder into a run directory (resuming an interrupted run with the same config).

    `log`: a models.history.TensorBoardLog that also receives the per-epoch history."""
    from .data.augment import make_augment
    from .models.encoders import default_arch
    from .models.methods import GENERATIVE
    from .models.trainer import train

    dataset = dataset if dataset is not None else load_data(data)
    if train_cfg.objective in GENERATIVE:
        train_cfg.params = {"seed": train_cfg.seed, **train_cfg.params}
    if not train_cfg.arch:
        a = default_arch(dataset.kind, dataset.input_shape, arch)
        if a["arch"] != "mlp":
            a["mean"], a["std"] = image_stats(dataset.train.x)
        train_cfg.arch = a
    config = {"data": data, "train": train_cfg.to_json(), "arch": train_cfg.arch, "init": init, "extra_loss": getattr(extra_loss, "config", None)}
    store = open_for_writing(out, config, force)
    with store.lock():
        if store.stage_done("train", config):
            info(f"{store.root} is already trained with this configuration; nothing to do")
            return store.root
        store.set_config(config)
        method = build_seeded_method(train_cfg)
        if init is not None:
            src = load(init, device=device)
            method.load_state_dict(src.method.state_dict())
        augment = make_augment(dataset, **train_cfg.augment)
        stats = train(method, dataset, train_cfg, store, augment=augment, device=device, extra_loss=extra_loss, log=log)
        store.write_torch(WEIGHTS, method.state_dict(), stage="train")
        metrics = evaluate_run(store, method.encoder, dataset, device, train_cfg.seed)
        metrics.update(stats)
        metrics.update({"objective": train_cfg.objective, "epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, "n_train": len(dataset.train), "n_test": len(dataset.test)})
        store.write_json("metrics.json", metrics, stage="train")
        store.write_json("config.json", config, stage="train")
        store.mark_done("train", config, ["config.json", WEIGHTS, "metrics.json"])
    if train_cfg.objective in GENERATIVE:
        from .methods.simvae import write_explanations

        write_explanations(load(store.root, device=device))
    return store.root


# ---- imported encoders ---------------------------------------------------------------------
def load_external_encoder(ext: dict, store: RunStore) -> nn.Module:
    """Rebuild a user's encoder: torch.export program, TorchScript, or factory + state dict."""
    import io

    kind = ext["kind"]
    data = store.read_bytes(ext["file"])
    if kind == "export":
        prog = torch.export.load(io.BytesIO(data))
        return ExportedEncoder(prog.module())
    if kind == "torchscript":
        return torch.jit.load(io.BytesIO(data), map_location="cpu")
    if kind == "factory":
        module = resolve_factory(ext["factory"])()
        state = store.read_torch(ext["file"])
        module.load_state_dict(state)
        return module
    raise UserError(f"unknown encoder kind {kind!r} in the run's config")


class ExportedEncoder(nn.Module):
    """A torch.export program as an ordinary module (exported graphs refuse `.eval()`).

    Exported programs are traced in one mode; `train()` here only records the flag, so lenses can
    call `.eval()` as on any encoder. Parameters stay visible for the kernel lenses.
    """

    def __init__(self, graph: nn.Module):
        super().__init__()
        self.graph = graph

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def forward(self, x):
        return self.graph(x)


def resolve_factory(spec: str):
    mod, sep, fn = spec.partition(":")
    if not sep or not mod or not fn:
        raise UserError(f"bad factory {spec!r}: write package.module:function")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot import the factory {spec!r} ({e}); check that the module is on PYTHONPATH") from None


def import_run(data: dict, encoder: str, weights: str | None, objective: str, out: str | Path, *, force: bool = False, device: str = "cpu", seed: int = 0) -> Path:
    """Create a run from a user's encoder (torch.export, TorchScript, or factory + state dict)."""
    from .store import sha256_file

    dataset = load_data(data)
    src = Path(encoder)
    if ":" in encoder and not src.exists():
        if weights is None:
            raise UserError("--encoder package.module:factory needs --weights STATE_DICT.pt")
        kind, file = "factory", Path(weights)
    else:
        if not src.is_file():
            raise UserError(f"--encoder {encoder}: no such file; give a .pt2 (torch.export) or TorchScript file, or package.module:factory")
        kind, file = ("export" if src.suffix == ".pt2" else "torchscript"), src
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    ext = {"kind": kind, "file": f"encoder/{file.name}", "factory": encoder if kind == "factory" else None, "sha256": sha256_file(file)}
    config = {"data": data, "external": ext, "objective": objective, "train": {"objective": objective, "seed": seed}}
    store = open_for_writing(out, config, force)
    with store.lock():
        store.write_bytes(ext["file"], file.read_bytes(), stage="train")
        try:
            enc = load_external_encoder(ext, store).to(device).eval()
            probe = torch.as_tensor(dataset.train.x[:2], dtype=torch.float32, device=device)
            with torch.no_grad():
                z = enc(probe)
        except UserError:
            raise
        except Exception as e:  # a foreign file: say what it is not
            raise UserError(f"cannot use {encoder} as an encoder for {data['spec']} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        if z.ndim != 2:
            raise UserError(f"the encoder returns shape {tuple(z.shape)} for a batch; it must return N×D embeddings")
        metrics = evaluate_run(store, enc, dataset, device, seed)
        metrics.update({"objective": objective, "imported": kind, "n_train": len(dataset.train), "n_test": len(dataset.test)})
        store.write_json("metrics.json", metrics, stage="train")
        store.write_json("config.json", config, stage="train")
        store.set_config(config)
        store.mark_done("train", config, ["config.json", ext["file"], "metrics.json"])
    return store.root
