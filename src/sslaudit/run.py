"""A trained (or imported) encoder and its data, as stored in a run directory.

`sslaudit.load(RUN)` returns a `Run`: `.encoder` (an nn.Module from float32 inputs to the
backbone representation), `.preprocess` for raw table rows, `.dataset`, `.store`. `train_run`
and `import_run` create runs; every lens then writes under RUN/<lens>/ through `run.store`.

Weights are stored as safetensors (RUN/model.safetensors; runs of older versions hold
RUN/model.pt, read with weights_only=True). A run whose encoder was imported in a code-carrying
format (torch.export, TorchScript, a factory) opens only with `trust_code=True` (see trust.py).
"""

from __future__ import annotations

import io
import os
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .progress import info, warn
from .store import MANIFEST, ArtefactError, RunStore, folder_lock, is_debris
from .trust import CODE_KINDS, load_code_encoder, require_trust, torch_file_kind

WEIGHTS = "model.safetensors"  # the trained method's state dict (safetensors: data only)
LEGACY_WEIGHTS = "model.pt"  # runs written before safetensors (read with weights_only=True)
IMPORTED_WEIGHTS = "encoder/weights.safetensors"  # an imported encoder stored as weights of an sslaudit architecture
PROBE_ROWS = 65_536  # training rows (seeded subsample above this) for the evaluation probes


def data_config(spec: str, *, label=None, protected=(), exclude=(), categorical=None, test_fraction=0.2, seed=0, data_dir=None, image_size=None) -> dict:
    """The data section of a run's config: what `load_data` reloads (file and folder paths made absolute)."""
    from .data import DATASET_NAMES, FILE_EXTENSIONS

    if spec is not None and (str(spec).lower().endswith(FILE_EXTENSIONS) or (str(spec).strip().lower() not in DATASET_NAMES and Path(spec).expanduser().is_dir())):
        spec = str(Path(spec).expanduser().resolve())
    cfg = {
        "spec": str(spec),
        "label": label,
        "protected": list(protected),
        "exclude": list(exclude),
        "categorical": None if categorical is None else list(categorical),
        "test_fraction": test_fraction,
        "seed": seed,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
    }
    if image_size is not None:  # only then: the configs (and hashes) of other data stay as they were
        from .data.image_folder import parse_image_size

        cfg["image_size"] = list(parse_image_size(image_size))
    return cfg


def load_data(dcfg: dict, data_dir=None):
    from .data import load_dataset

    kw = {k: v for k, v in dcfg.items() if k not in ("spec", "data_dir")}
    ds = load_dataset(dcfg["spec"], data_dir=data_dir or dcfg.get("data_dir"), **kw)
    if ds.has_labels and len(np.unique(ds.train.y)) < 2:
        what = f"the label column {dcfg.get('label')!r} of {dcfg['spec']} holds" if dcfg.get("label") else f"the labels of {dcfg['spec']} hold"
        raise UserError(f"{what} a single class in the training split: the evaluation probes need at least two; choose another --label or leave it out")
    return ds


class Run:
    def __init__(self, path: str | Path, *, data_dir: str | Path | None = None, device: str = "cpu", trust_code: bool = False):
        self.store = RunStore(path)
        self.path = self.store.root
        self.device = device
        self.trust_code = bool(trust_code)
        self._data_dir = data_dir
        if not self.store.stage_done("train"):
            raise UserError(f"{self.path} has no finished model (training was interrupted?); rerun the same `sslaudit train` command to resume")
        self.config = self.store.read_json("config.json")
        if not isinstance(self.config, dict) or not isinstance(self.config.get("data"), dict):
            raise ArtefactError(f"{self.path / 'config.json'} is malformed (no data section); use a run written by sslaudit")
        ext = self.config.get("external")
        if ext is not None:
            if not isinstance(ext, dict) or not isinstance(ext.get("kind"), str) or not isinstance(ext.get("file"), str):
                raise ArtefactError(f"{self.path / 'config.json'} has a malformed 'external' encoder entry; use a run written by sslaudit")
            require_trust(ext["kind"], str(self.path / ext["file"]) if ext["kind"] != "factory" else f"{ext.get('factory')!r} named in {self.path / 'config.json'}", self.trust_code)

    @property
    def encoder_id(self) -> str:
        """The encoder's identity, which every lens stage keys on: a hash of its architecture (or
        imported format) and the checksum of its stored weights."""
        from .store import config_hash

        arts = self.store.manifest["artefacts"]
        ext = self.config.get("external") or {}
        weights = next((arts[rel]["sha256"] for rel in (WEIGHTS, LEGACY_WEIGHTS, ext.get("file")) if rel in arts), ext.get("sha256"))
        arch = self.config.get("arch") or ext.get("arch") or {"kind": ext.get("kind"), "factory": ext.get("factory")}
        return config_hash({"arch": arch, "weights": weights})

    @property
    def embedding_dim(self) -> int:
        """Width of the representation (as measured when the run was made)."""
        return int(self.store.read_json("metrics.json")["embedding_dim"])

    @property
    def objective(self) -> str:
        return self.config.get("train", {}).get("objective") or self.config.get("objective", "simclr")

    @cached_property
    def dataset(self):
        return load_data(self.config["data"], self._data_dir)

    @property
    def augment_spec(self) -> dict:
        """The augmentation the encoder was trained with, as stored (`train.augment`; {} = the dataset's default)."""
        return dict((self.config.get("train") or {}).get("augment") or {})

    @cached_property
    def augment(self):
        """That augmentation, built for this run's data: every lens that draws views uses it."""
        from .data.augment import make_augment

        return make_augment(self.dataset, self.augment_spec)

    @cached_property
    def method(self):
        from .models.methods import build_method

        if "external" in self.config:
            raise UserError(f"{self.path} holds an imported encoder: it has no training method; use run.encoder")
        m = build_method(self.objective, self.config["arch"], self.config["train"].get("params"))
        if WEIGHTS in self.store.manifest["artefacts"]:
            state = self.store.read_safetensors(WEIGHTS)
        else:
            state = self.store.read_torch(LEGACY_WEIGHTS, map_location=self.device)
        load_weights(m, state, self.path / WEIGHTS)
        return m.to(self.device).eval()

    @cached_property
    def encoder(self) -> nn.Module:
        if "external" in self.config:
            enc = load_external_encoder(self.config["external"], self.store, trust_code=self.trust_code)
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

    def stored_embeddings(self, split: str) -> Path | None:
        """The file of a split's backbone representations when this encoder's are already stored, else None."""
        if not self.store.stage_done(f"embeddings/{split}", {"encoder": self.encoder_id}):
            return None
        f = Path(self.store.root) / embeddings_file(split)
        return f if f.is_file() else None

    def embeddings(self, split: str) -> np.ndarray:
        """Backbone representations of a split (cached in RUN/embeddings/)."""
        from .models.embed import embed

        rel = embeddings_file(split)
        key = {"encoder": self.encoder_id}
        if self.stored_embeddings(split) is not None:
            return self.store.read_npy(rel)
        emb = embed(self.encoder, self.dataset.split(split).x, device=self.device)
        with self.store.lock():
            self.store.write_npy(rel, emb, stage=f"embeddings/{split}")
            self.store.mark_done(f"embeddings/{split}", key, [rel])
        return emb


def embeddings_file(split: str) -> str:
    """Where a run stores a split's backbone representations, relative to the run."""
    return f"embeddings/{split}.npy"


def load(path: str | Path, *, data_dir: str | Path | None = None, device: str = "cpu", trust_code: bool = False) -> Run:
    """Open a run directory written by `sslaudit train` (or `sslaudit import`).

    A run whose encoder is stored as code (torch.export, TorchScript, a factory) is refused
    unless `trust_code=True`: opening it runs that code. Runs of weights never need it.
    """
    return Run(path, data_dir=data_dir, device=device, trust_code=trust_code)


def load_weights(module: nn.Module, state: dict, where) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise ArtefactError(f"{where} does not fit the run's architecture ({str(e).splitlines()[0][:200]}); use a run written by sslaudit") from None


# ---- creating runs -------------------------------------------------------------------------
def open_for_writing(out: str | Path, config: dict, force: bool) -> RunStore:
    """The store for a new run at `out`; refuses to overwrite a different run without force.

    A folder sslaudit started but where nothing finished (killed at its first write, a rejected
    argument, a failed import) is taken back without --force: nothing computed is lost. Its lock
    file and temporary files alone never make a folder "not an sslaudit run". --force replaces
    any folder with an sslaudit manifest, even a damaged one; it never deletes a folder sslaudit
    did not make.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise UserError(f"--out {out} is a dangling symbolic link; choose another folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    if out.is_dir() and any(not is_debris(e) for e in os.scandir(out)):
        if not os.path.lexists(out / MANIFEST):
            raise UserError(f"--out {out} is a non-empty folder that is not an sslaudit run; choose an empty or new folder")
        try:
            existing = RunStore(out)
        except ArtefactError as e:
            if not force:
                raise UserError(f"{e} (or pass --force to replace the run at {out})") from None
            existing = None
        if existing is None or existing.config != config:
            if existing is not None and not force and not existing.started_only:
                raise UserError(f"{out} holds a different run; pass --force to replace it or choose another --out")
            if existing is not None and existing.started_only and not force:
                info(f"{out} holds an unfinished start of another run (no stage finished); starting over")
            with folder_lock(out):
                for child in os.scandir(out):
                    if child.name == ".lock":
                        continue
                    if child.is_dir(follow_symlinks=False):
                        shutil.rmtree(child.path)
                    else:
                        os.unlink(child.path)  # a link is removed, never followed
    return RunStore(out, create=True)


def image_stats(x) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of N×C×H×W images (an image folder's in one streaming pass)."""
    if hasattr(x, "channel_stats"):
        m, s = x.channel_stats()
    else:
        m, s = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    return np.asarray(m, dtype=float).tolist(), np.maximum(np.asarray(s, dtype=float), 1e-3).tolist()


def evaluate_run(run_store: RunStore, encoder: nn.Module, dataset, device: str, seed: int) -> dict:
    """Linear probe, k-NN and collapse metric of the encoder's representation."""
    from .evaluate.probes import collapse_std, knn_accuracy, linear_probe
    from .models.embed import embed

    from .seeding import numpy_rng

    n = len(dataset.train)
    rows = np.arange(n) if n <= PROBE_ROWS else np.sort(numpy_rng(seed, "probe-rows").choice(n, PROBE_ROWS, replace=False))
    tr = embed(encoder, dataset.train.take(rows).x, device=device)  # take: an image folder stays on disk
    te = embed(encoder, dataset.test.x, device=device)
    metrics = {"collapse_std": collapse_std(tr), "embedding_dim": int(tr.shape[1]), "nonnegative": bool((tr >= 0).all()), "probe_train_rows": int(len(rows))}
    if dataset.has_labels:
        ytr = dataset.train.y[rows]
        metrics["linear_probe_accuracy"] = linear_probe(tr, ytr, te, dataset.test.y, seed=seed).accuracy
        metrics["knn_accuracy"] = knn_accuracy(tr, ytr, te, dataset.test.y)
    else:
        metrics["linear_probe_accuracy"] = metrics["knn_accuracy"] = None
    if metrics["collapse_std"] < 0.1:
        warn(f"the representation looks collapsed (collapse_std {metrics['collapse_std']:.3f}); try another --lr or objective")
    return metrics


def build_seeded_method(train_cfg):
    """The method with its initial weights drawn from a generator derived from the seed."""
    from .models.methods import build_method
    from .seeding import derive_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(train_cfg.seed, "init"))
        return build_method(train_cfg.objective, train_cfg.arch, train_cfg.params)


def train_run(
    data: dict,
    train_cfg,
    out: str | Path,
    *,
    force: bool = False,
    device: str = "cpu",
    arch: str | None = None,
    cifar_stem: bool = False,
    dataset=None,
    init: str | None = None,
    extra_loss=None,
    log=None,
) -> Path:
    """Train an encoder into a run directory (resuming an interrupted run with the same config).

    `arch`: auto, mlp, convnet, resnet, or a torchvision / `timm:` builder name (`cifar_stem`:
    solo-learn's CIFAR stem for a torchvision ResNet); `log`: a models.history.TensorBoardLog
    that also receives the per-epoch history."""
    from .data.augment import make_augment, read_augment_spec
    from .models.encoders import default_arch
    from .models.methods import GENERATIVE
    from .models.trainer import train

    dataset = dataset if dataset is not None else load_data(data)
    if train_cfg.objective in GENERATIVE:
        train_cfg.params = {"seed": train_cfg.seed, **train_cfg.params}
    if not train_cfg.arch:
        a = default_arch(dataset.kind, dataset.input_shape, arch, cifar_stem=cifar_stem)
        if a["arch"] != "mlp":
            a["mean"], a["std"] = image_stats(dataset.train.x)
        train_cfg.arch = a
    train_cfg.augment = read_augment_spec(train_cfg.augment)  # a preset name or a file becomes the spec itself
    augment = make_augment(dataset, train_cfg.augment)  # a bad option fails before anything is written
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
        stats = train(method, dataset, train_cfg, store, augment=augment, device=device, extra_loss=extra_loss, log=log)
        store.write_safetensors(WEIGHTS, method.state_dict(), stage="train")
        metrics = evaluate_run(store, method.encoder, dataset, device, train_cfg.seed)
        metrics.update(stats)
        metrics.update({"objective": train_cfg.objective, "epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, "n_train": len(dataset.train), "n_test": len(dataset.test)})
        store.write_json("metrics.json", metrics, stage="train")
        store.write_json("config.json", config, stage="train")
        store.mark_done("train", config, ["config.json", WEIGHTS, "metrics.json"])
    return store.root


# ---- imported encoders ---------------------------------------------------------------------
def load_external_encoder(ext: dict, store: RunStore, *, trust_code: bool = False) -> nn.Module:
    """Rebuild an imported encoder: weights of an sslaudit architecture (no trust needed), or a
    torch.export program, TorchScript or factory + state dict (only with trust_code)."""
    from .models.encoders import build_encoder

    kind = ext["kind"]
    if kind == "weights":
        enc = build_encoder(ext["arch"])
        load_weights(enc, store.read_safetensors(ext["file"]), store.root / ext["file"])
        return enc
    where = str(store.root / ext["file"]) if kind != "factory" else f"{ext.get('factory')!r} named in {store.root / 'config.json'}"
    require_trust(kind, where, trust_code)
    if kind == "factory":
        state = read_state_dict(store.read_bytes(ext["file"]), store.root / ext["file"])
        return load_code_encoder(kind, b"", factory=ext["factory"], state=state, trust_code=trust_code, file=where, prefix=ext.get("prefix"))
    return load_code_encoder(kind, store.read_bytes(ext["file"]), factory=None, state=None, trust_code=trust_code, file=where)


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


PICKLED_MODEL_HINT = (
    "it looks like a whole pickled model (torch.save(model)), which cannot be opened without running its code: "
    "save its weights instead with torch.save(model.state_dict(), 'weights.pt') and import that file"
)


def read_checkpoint(data: bytes, where):
    """A torch.save / Lightning .ckpt object read with weights_only=True, or a safetensors file: data, never code."""
    import pickle

    from .store import parse_safetensors

    if torch_file_kind(data) == "unknown":
        return parse_safetensors(data, where)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "GLOBAL" in msg or "global" in msg:
            raise UserError(f"{where} was refused (weights_only=True): {PICKLED_MODEL_HINT}") from None
        raise UserError(f"{where} holds more than weights and was refused (weights_only=True): {msg.splitlines()[0]}") from None
    except Exception as e:  # a foreign or damaged file: say what it is not
        raise UserError(f"{where} is not a checkpoint torch can read ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def read_state_dict(data: bytes, where) -> dict:
    """A state dict from safetensors bytes or a torch.save file (weights_only=True): data, never code."""
    import pickle

    from .store import parse_safetensors

    if torch_file_kind(data) == "unknown":
        return parse_safetensors(data, where)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{where} holds more than weights and was refused (weights_only=True): {str(e).splitlines()[0]}") from None
    except Exception as e:  # a foreign or damaged file: say what it is not
        raise UserError(f"{where} is not a state dict ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{where} is not a state dict (a mapping of names to tensors)")
    return state


def classify_encoder(encoder: str, weights: str | None) -> tuple[str, Path]:
    """(kind, file) of `--encoder`/`--weights`, judged from the file's contents, never by running it."""
    src = Path(encoder)
    if ":" in encoder and not src.exists():
        if weights is None:
            raise UserError("--encoder package.module:factory needs --weights STATE_DICT (.safetensors or .pt)")
        file = Path(weights)
        if not file.is_file():
            raise UserError(f"--weights {weights}: no such file")
        return "factory", file
    if not src.is_file():
        raise UserError(f"--encoder {encoder}: no such file; give a .safetensors state dict of an sslaudit architecture, a .pt2 (torch.export) or TorchScript file, or package.module:factory")
    if weights is not None:
        raise UserError("--weights goes with --encoder package.module:factory; a file given as --encoder holds its own weights")
    head = src.read_bytes()
    kind = torch_file_kind(head)
    if kind == "unknown" and src.suffix == ".pt2":
        return "export", src
    if kind == "unknown" and not looks_like_safetensors(head):
        raise UserError(f"cannot use {encoder} as an encoder: it is neither a safetensors or torch.save state dict, a TorchScript file nor a torch.export program")
    return ("weights" if kind in ("unknown", "state_dict") else kind), src


def looks_like_safetensors(data: bytes) -> bool:
    """safetensors = 8-byte little-endian header length, then that many bytes of JSON."""
    if len(data) < 10:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def infer_arch(state: dict, input_shape) -> dict | None:
    """The sslaudit architecture whose encoder has exactly these tensor names and shapes, if any."""
    from .models.encoders import build_encoder

    shape = list(input_shape)
    cands = []
    w = [k for k in state if k.startswith("trunk.net.") and k.endswith(".weight")]
    if w and all(state[k].ndim == 2 for k in w):
        cands.append({"arch": "mlp", "input_shape": shape, "hidden": [int(state[k].shape[0]) for k in sorted(w, key=lambda k: int(k.split(".")[2]))]})
    if "normalize.mean" in state and len(shape) == 3:
        mean = state["normalize.mean"].reshape(-1).tolist()
        std = state["normalize.std"].reshape(-1).tolist() if "normalize.std" in state else None
        convs = sorted((k for k in w if state[k].ndim == 4), key=lambda k: int(k.split(".")[2]))
        if convs:
            cands.append({"arch": "convnet", "input_shape": shape, "widths": [int(state[k].shape[0]) for k in convs], "mean": mean, "std": std})
        blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("trunk.blocks.")})
        if blocks and all(f"trunk.blocks.{b}.conv1.weight" in state for b in blocks):
            cands.append({"arch": "resnet", "input_shape": shape, "widths": [int(state[f"trunk.blocks.{b}.conv1.weight"].shape[0]) for b in blocks], "mean": mean, "std": std})
    for arch in cands:
        try:
            ref = build_encoder(arch).state_dict()
        except Exception:  # a candidate that cannot be built (e.g. shapes that do not chain)
            continue
        if ref.keys() == state.keys() and all(ref[k].shape == state[k].shape for k in ref):
            return arch
    return None


def as_known_architecture(enc: nn.Module, dataset, device: str) -> tuple[dict, dict] | None:
    """(arch, state) if `enc` is one of sslaudit's architectures (same tensors, same outputs on
    training rows), so the run can store weights instead of code."""
    from .models.encoders import build_encoder

    try:
        inner = enc.graph if isinstance(enc, ExportedEncoder) else enc
        state = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    except Exception:  # an exported graph or script module without a usable state dict
        return None
    arch = infer_arch(state, dataset.input_shape)
    if arch is None:
        return None
    native = build_encoder(arch)
    native.load_state_dict(state)
    native = native.to(device).eval()
    x = torch.as_tensor(dataset.train.x[:64], dtype=torch.float32, device=device)
    with torch.no_grad():
        a, b = native(x), enc(x)
    if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
        return None
    return arch, state


def import_run(
    data: dict,
    encoder: str | None,
    weights: str | None,
    objective: str,
    out: str | Path,
    *,
    force: bool = False,
    device: str = "cpu",
    seed: int = 0,
    trust_code: bool = False,
    arch: str | None = None,
    prefix: str | None = None,
    cifar_stem: bool = False,
    output: str | None = None,
    mean=None,
    std=None,
    augment=None,
) -> Path:
    """Create a run from a user's encoder (`augment`: the spec it was trained with, see data.augment).

    Weights of an sslaudit architecture (.safetensors, or a torch.save state dict read with
    weights_only=True) need no trust. A torch.export program, TorchScript file or
    package.module:factory runs code and needs `trust_code`; if it turns out to be one of
    sslaudit's architectures it is converted once into weights, so the run needs no trust later.
    """
    from .models.encoders import build_encoder
    from .store import sha256_file

    if arch is not None:
        return import_zoo_run(
            data, arch, weights, objective, out, force=force, device=device, seed=seed, prefix=prefix, cifar_stem=cifar_stem, output=output, mean=mean, std=std, encoder=encoder, augment=augment
        )
    if cifar_stem or output is not None or mean is not None or std is not None:
        raise UserError("--cifar-stem, --output, --mean and --std go with --arch NAME (a torchvision or timm:NAME builder)")
    if prefix and (encoder is None or ":" not in str(encoder) or Path(str(encoder)).exists()):
        raise UserError("--prefix goes with --arch NAME or with a factory (--encoder package.module:factory --weights FILE)")
    if encoder is None:
        raise UserError("give --encoder FILE|package.module:factory, or --arch NAME --weights FILE")
    kind, file = classify_encoder(encoder, weights)
    require_trust(kind, str(file) if kind != "factory" else encoder, trust_code)
    dataset = load_data(data)
    raw = file.read_bytes()
    try:
        if kind == "weights":
            state = read_state_dict(raw, file)
            arch = infer_arch(state, dataset.input_shape)
            if arch is None:
                raise UserError(
                    f"{file} holds weights of no sslaudit architecture for inputs of shape {tuple(dataset.input_shape)} "
                    f"(mlp, convnet, resnet); import your own module as package.module:factory with --trust-code"
                )
            enc = build_encoder(arch)
            enc.load_state_dict(state)
        elif kind == "factory":
            enc = load_code_encoder(kind, b"", factory=encoder, state=read_state_dict(raw, file), trust_code=trust_code, file=encoder, prefix=prefix)
        else:
            enc = load_code_encoder(kind, raw, factory=None, state=None, trust_code=trust_code, file=str(file))
        enc = enc.to(device).eval()
        with torch.no_grad():  # two batch sizes: an export traced at a fixed one fails here, not half-way through the import
            if len(dataset.train) > 1:
                enc(torch.as_tensor(dataset.train.x[:1], dtype=torch.float32, device=device))
            z = enc(torch.as_tensor(dataset.train.x[:3], dtype=torch.float32, device=device))
    except UserError:
        raise
    except AssertionError as e:
        if kind == "export" and "Guard failed" in str(e):
            raise UserError(
                f"{encoder} was exported for one batch size only ({str(e).splitlines()[0][:120]}); export it with a dynamic batch: "
                "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))"
            ) from None
        raise UserError(f"cannot use {encoder} as an encoder for {data['spec']} (AssertionError: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    except Exception as e:  # a foreign file: say what it is not
        raise UserError(f"cannot use {encoder} as an encoder for {data['spec']} ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise UserError(f"the encoder returns {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__} for a batch; it must return N×D embeddings")
    converted_from = None
    if kind in CODE_KINDS:
        known = as_known_architecture(enc, dataset, device)
        if known is not None:
            (arch, state), converted_from, kind = known, kind, "weights"
            info(f"{encoder} is sslaudit's {arch['arch']} architecture: stored as weights (the run needs no --trust-code)")
    if kind == "torchscript":
        info("a TorchScript encoder allows no per-parameter gradients: KREPES and influence will not apply to this run (Q-Score, RELAX, SimVAE will)")
    if kind == "weights":
        ext = {"kind": "weights", "arch": arch, "file": IMPORTED_WEIGHTS, "factory": None, "source": file.name, "converted_from": converted_from, "sha256": sha256_file(file)}
    else:
        ext = {"kind": kind, "file": f"encoder/{file.name}", "factory": encoder if kind == "factory" else None, "prefix": prefix, "sha256": sha256_file(file)}
    config = {"data": data, "external": ext, "objective": objective, "train": {"objective": objective, "seed": seed, **imported_augment(dataset, augment)}}
    store = open_for_writing(out, config, force)
    with store.lock():
        store.set_config(config)
        if kind == "weights":
            store.write_safetensors(ext["file"], state, stage="train")
        else:
            store.write_bytes(ext["file"], raw, stage="train")
        metrics = evaluate_run(store, enc, dataset, device, seed)
        metrics.update({"objective": objective, "imported": ext.get("converted_from") or kind, "n_train": len(dataset.train), "n_test": len(dataset.test)})
        store.write_json("metrics.json", metrics, stage="train")
        store.write_json("config.json", config, stage="train")
        store.mark_done("train", config, ["config.json", ext["file"], "metrics.json"])
    return store.root


def parse_stats(text, what: str, channels: int) -> list[float]:
    """--mean/--std: comma-separated floats, one per channel (or one for all)."""
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{what} {text!r}: give comma-separated numbers, e.g. 0.485,0.456,0.406") from None
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels and not (channels == 1 and len(vals) == 3):
        raise UserError(f"--{what} {text!r} has {len(vals)} values but the images have {channels} channel(s)")
    if what == "std" and min(vals) <= 0:
        raise UserError(f"--std {text!r}: standard deviations must be positive")
    return vals


def imported_augment(dataset, augment) -> dict:
    """{"augment": spec} for an imported run's config ({} for the dataset's default), checked against the data."""
    from .data.augment import make_augment, read_augment_spec

    spec = read_augment_spec(augment)
    make_augment(dataset, spec)  # a bad option fails before anything is written
    return {"augment": spec} if spec else {}


def import_zoo_run(
    data: dict, name: str, weights: str | None, objective: str, out, *, force=False, device="cpu", seed=0, prefix=None, cifar_stem=False, output=None, mean=None, std=None, encoder=None, augment=None
) -> Path:
    """A run from a torchvision/timm architecture by name plus a checkpoint's weights (data: no trust needed).

    Reads plain state dicts, Lightning/solo-learn `.ckpt` files (their `state_dict`) and lightly's
    checkpoints with weights_only=True; `prefix` (e.g. 'backbone.') is stripped and head tensors
    dropped; mean/std (the normalisation the encoder was trained with) are stored in the run.
    """
    from .models.encoders import build_encoder
    from .models.zoo import fit_state, parse_output
    from .store import sha256_file

    if encoder is not None:
        raise UserError("--arch NAME takes its weights from --weights FILE; drop --encoder")
    if weights is None:
        raise UserError(f"--arch {name} needs --weights FILE (a state dict, a Lightning/solo-learn .ckpt or a lightly checkpoint)")
    file = Path(weights)
    if not file.is_file():
        raise UserError(f"--weights {weights}: no such file")
    if mean is None or std is None:
        raise UserError(
            "--arch needs --mean and --std: the per-channel normalisation your encoder was trained with "
            "(e.g. ImageNet's --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225); it is stored in the run, never guessed"
        )
    dataset = load_data(data)
    if dataset.kind != "image":
        raise UserError(f"--arch {name} builds an image encoder but {data['spec']} is a table")
    c = int(dataset.input_shape[0])
    arch = {
        "arch": "zoo",
        "name": str(name),
        "cifar_stem": bool(cifar_stem),
        "input_shape": list(dataset.input_shape),
        "mean": parse_stats(mean, "mean", c),
        "std": parse_stats(std, "std", c),
        "output": parse_output(output),
    }
    from .models.zoo import checkpoint_state

    raw = file.read_bytes()
    state = checkpoint_state(read_checkpoint(raw, file), file)
    enc = build_encoder(arch)
    state = fit_state(enc.backbone, state, prefix, file)
    enc.backbone.load_state_dict(state)
    enc = enc.to(device).eval()
    probe = torch.as_tensor(np.asarray(dataset.train.x[:2]), dtype=torch.float32, device=device)
    try:
        with torch.no_grad():
            z = enc(probe)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{name} cannot encode the images of {data['spec']} (shape {tuple(dataset.input_shape)}): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise UserError(f"the encoder returns {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__} for a batch; it must return N×D embeddings (choose a part with --output KEY|INDEX)")
    full = {k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}
    ext = {"kind": "weights", "arch": arch, "file": IMPORTED_WEIGHTS, "factory": None, "source": file.name, "prefix": prefix, "converted_from": None, "sha256": sha256_file(file)}
    config = {"data": data, "external": ext, "objective": objective, "train": {"objective": objective, "seed": seed, **imported_augment(dataset, augment)}}
    store = open_for_writing(out, config, force)
    with store.lock():
        store.set_config(config)
        store.write_safetensors(ext["file"], full, stage="train")
        metrics = evaluate_run(store, enc, dataset, device, seed)
        metrics.update({"objective": objective, "imported": f"{name} weights", "n_train": len(dataset.train), "n_test": len(dataset.test)})
        store.write_json("metrics.json", metrics, stage="train")
        store.write_json("config.json", config, stage="train")
        store.mark_done("train", config, ["config.json", ext["file"], "metrics.json"])
    return store.root
