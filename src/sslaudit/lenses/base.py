"""The lens contract: what every lens (KREPES, influence, RELAX, Q-Score, SimVAE, and yours) is.

A lens is a class with
- `name` (its verb and its folder RUN/<name>/), `title` (the report's heading), `Config` (a
  dataclass whose fields carry help texts: the command-line options are generated from it);
- `applies(run) -> (bool, reason)`: used by the CLI (which refuses) and the audit (which skips);
- `compute(run, cfg, ctx) -> LensResult`: tables, documents, arrays and figures, never files —
  `run_lens` stores them; sub-stages that must survive an interruption use `ctx`/`run.store`;
- `describe(result)`: the lines the CLI prints; `audit_config(run, focus, quick)`: the
  configuration the audit uses; `section(collector)`: the report section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class LensResult:
    """Everything a lens computed, by kind; `run_lens` writes each as RUN/<lens>/<name>.<ext>."""

    tables: dict[str, Any] = field(default_factory=dict)  # name → DataFrame (.parquet)
    documents: dict[str, Any] = field(default_factory=dict)  # name → JSON-able dict (.json)
    arrays: dict[str, dict] = field(default_factory=dict)  # name → {key: ndarray} (.npz)
    figures: dict[str, bytes] = field(default_factory=dict)  # name → PNG bytes (.png)
    depends: list[str] = field(default_factory=list)  # files the lens stored through its own sub-stages (e.g. RELAX's maps): the results are reused only while these verify too

    def files(self) -> dict[str, tuple[str, Any]]:
        """{relative file name: (kind, value)} in a fixed order."""
        out = {}
        for kind, ext, items in (("table", "parquet", self.tables), ("document", "json", self.documents), ("arrays", "npz", self.arrays), ("figure", "png", self.figures)):
            for name, value in items.items():
                out[f"{name}.{ext}"] = (kind, value)
        return out


class Lens:
    """Base class of every lens; subclasses set `name`, `title`, `Config` and implement `compute`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Config: ClassVar[type] = None  # a dataclass (see lenses/config.py for the field metadata)
    uses_engine: ClassVar[bool] = False  # offers --engine/--address on the command line
    needs_parameter_gradients: ClassVar[bool] = False  # per-parameter gradients (torch.func, layer hooks): not through TorchScript

    def applies(self, run) -> tuple[bool, str | None]:
        """(True, None), or (False, the reason this lens does not apply to this run)."""
        if self.needs_parameter_gradients:
            return self.per_parameter_gradients(run)
        return True, None

    @staticmethod
    def per_parameter_gradients(run) -> tuple[bool, str | None]:
        """Whether the encoder's per-parameter gradients can be taken (torch.func and layer hooks),
        which KREPES's eNTK and influence's curvature need: a TorchScript encoder allows neither."""
        if (run.config.get("external") or {}).get("kind") == "torchscript":
            return False, (
                "a TorchScript encoder allows no per-parameter gradients (torch.func, layer hooks); re-import it as weights "
                "(--arch NAME --weights FILE, or sslaudit's own architecture) or as a torch.export program"
            )
        return True, None

    def skip_command(self, run) -> str | None:
        """A command that would work where the lens does not apply (shown beside the reason)."""
        return None

    def compute(self, run, cfg, ctx) -> LensResult:
        raise NotImplementedError

    def describe(self, result: LensResult, run) -> list[str]:
        """Lines the command line prints after the lens ran (or was reused)."""
        return [f"{self.title or self.name}: {len(result.files())} result file(s)"]

    def audit_config(self, run, *, focus: list[str], quick: bool):
        """(config, note) the audit runs this lens with; `focus` = split:index samples to examine."""
        return self.Config(), ""

    def section(self, collector):
        """The report section (report/blocks.Section) built from the stored results, or None."""
        from ..report.generic import generic_section

        return generic_section(collector, self)
