"""The settings every lens shares, resolved once per command: seed, device, memory budget,
engine, progress, trust. A lens receives the context and never rebuilds any of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError


def resolve_device(name: str) -> str:
    """cpu, cuda, cuda:N, or auto (CUDA when present) → a device that exists here."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown --device {name!r}: use cpu, cuda, cuda:N or auto")
    return name


@dataclass
class Context:
    """Shared settings of one command. `with Context(...) as ctx:` closes the engine at the end."""

    seed: int = 0
    device: str = "cpu"
    max_memory: int | None = None  # bytes; None: no budget
    engine: str = "local"  # local, or ray (block tasks on a running Ray cluster)
    address: str | None = None  # the Ray head's HOST:PORT
    quiet: bool = False
    trust_code: bool = False
    data_dir: str | None = None
    _backend: Any = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls, *, seed: int = 0, device: str = "cpu", max_memory=None, engine: str = "local", address: str | None = None, quiet: bool = False, trust_code: bool = False, data_dir=None
    ) -> "Context":
        """A context from user-given values, each checked with a one-line error."""
        from ..compute.memory import parse_size

        if not 0 <= int(seed) < 2**32:
            raise UserError(f"--seed {seed}: a seed is a whole number from 0 to 4294967295")
        if engine not in ("local", "ray"):
            raise UserError(f"unknown --engine {engine!r}: use local or ray")
        if engine == "local" and address:
            raise UserError("--address is only used with --engine ray")
        budget = None if max_memory is None else parse_size(max_memory)
        return cls(
            seed=int(seed),
            device=resolve_device(device),
            max_memory=budget,
            engine=engine,
            address=address,
            quiet=quiet,
            trust_code=bool(trust_code),
            data_dir=None if data_dir is None else str(data_dir),
        )

    # ---- the block engine, started once ----------------------------------------------------
    @property
    def backend(self):
        """The block-execution engine (started on first use, shared by every lens of the command)."""
        if self._backend is None:
            from ..engine import get_engine

            self._backend = get_engine(self.engine, self.address)
            self._backend.__enter__()
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.__exit__(None, None, None)
            self._backend = None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- memory -----------------------------------------------------------------------------
    def require_memory(self, nbytes: float, what: str, hint: str) -> None:
        """Refuse, before the work starts, an array that the memory budget cannot hold."""
        if self.max_memory is not None and nbytes > self.max_memory:
            from ..compute.memory import format_size

            raise UserError(f"{what} needs about {format_size(nbytes)}, more than --max-memory {format_size(self.max_memory)}; {hint}")

    # ---- runs -------------------------------------------------------------------------------
    def open(self, path):
        """The run at `path`, opened with this context's device, data folder and trust."""
        from ..run import load

        return load(path, data_dir=self.data_dir, device=self.device, trust_code=self.trust_code)

    def to_json(self) -> dict:
        """What the context contributes to results (stored beside each lens's config)."""
        return {"seed": self.seed, "device": self.device, "max_memory": self.max_memory, "engine": self.engine}
