"""Per-sample kernel factors: what a block of inputs must keep to form eNTK blocks with any other.

The eNTK k(x, x′) = ⟨∇θ g(x), ∇θ g(x′)⟩ is a sum over parameter groups. Two kinds of terms:

- `OuterTerm` (a Linear layer applied once to a 2-D input): ∇W = δ aᵀ and ∇b = δ, so the
  layer's share is (δ·δ′)(a·a′ + 1) — two small matrix products per block pair instead of an
  inner product over the out×in weight gradient.
- `DenseTerm`: explicit (possibly projected) per-sample gradients G, share G·G′ (Conv2d,
  BatchNorm, the general torch.func path).

For trNTK the output axis is folded into δ / G (n × (d·q)), since Σ_o (δ_o·δ′_o)(a·a′+1) =
(vec δ · vec δ′)(a·a′+1). Products may run in float32; they are always summed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class OuterTerm:
    """A Linear layer: δ (n × q) backpropagated signal, a (n × p) input or None if W is frozen."""

    delta: torch.Tensor
    act: torch.Tensor | None
    bias: bool

    def gram(self, other: "OuterTerm") -> torch.Tensor:
        dd = (self.delta @ other.delta.T).double()
        if self.act is None:
            return dd
        aa = (self.act @ other.act.T).double()
        if self.bias:
            aa += 1.0
        return aa.mul_(dd)  # in place: one n_a × n_b temporary per product

    def sq_norms(self) -> torch.Tensor:
        dd = self.delta.double().pow(2).sum(1)
        if self.act is None:
            return dd
        aa = self.act.double().pow(2).sum(1)
        return dd * (aa + 1.0) if self.bias else dd * aa

    def take(self, idx: torch.Tensor) -> "OuterTerm":
        return OuterTerm(self.delta[idx], None if self.act is None else self.act[idx], self.bias)

    @staticmethod
    def cat(terms: list["OuterTerm"]) -> "OuterTerm":
        act = None if terms[0].act is None else torch.cat([t.act for t in terms])
        return OuterTerm(torch.cat([t.delta for t in terms]), act, terms[0].bias)

    def to(self, device) -> "OuterTerm":
        return OuterTerm(self.delta.to(device), None if self.act is None else self.act.to(device), self.bias)

    @property
    def width(self) -> int:
        return self.delta.shape[1] + (0 if self.act is None else self.act.shape[1])


@dataclass
class DenseTerm:
    """Explicit per-sample gradients (n × q), possibly randomly projected."""

    grad: torch.Tensor
    chunk: int = 1 << 15  # columns per product, bounds the float64 copies of a wide G

    def gram(self, other: "DenseTerm") -> torch.Tensor:
        q = self.grad.shape[1]
        if self.grad.dtype == torch.float64 or q <= self.chunk:
            return (self.grad @ other.grad.T).double()
        out = None
        for s in range(0, q, self.chunk):  # float32 products, float64 sum over column chunks
            part = (self.grad[:, s : s + self.chunk] @ other.grad[:, s : s + self.chunk].T).double()
            out = part if out is None else out + part
        return out

    def sq_norms(self) -> torch.Tensor:
        """Σ_q G², in float64 over column chunks (a float64 copy of a wide float32 G would be 2× its size)."""
        out = torch.zeros(self.grad.shape[0], dtype=torch.float64, device=self.grad.device)
        for s in range(0, self.grad.shape[1], self.chunk):
            out += self.grad[:, s : s + self.chunk].double().pow(2).sum(1)
        return out

    def take(self, idx: torch.Tensor) -> "DenseTerm":
        return DenseTerm(self.grad[idx], self.chunk)

    @staticmethod
    def cat(terms: list["DenseTerm"]) -> "DenseTerm":
        return DenseTerm(torch.cat([t.grad for t in terms]), terms[0].chunk)

    def to(self, device) -> "DenseTerm":
        return DenseTerm(self.grad.to(device), self.chunk)

    @property
    def width(self) -> int:
        return self.grad.shape[1]


@dataclass
class KernelFactors:
    """Per-sample quantities of a block of inputs, enough to form kernel blocks with any other block.

    `diag` is the raw k(x, x) of each sample (float64); `signature` identifies the kernel that
    made the factors (blocks from different kernels cannot be combined).
    """

    n: int
    diag: torch.Tensor
    terms: list = field(default_factory=list)
    signature: str = ""

    def raw_gram(self, other: "KernelFactors") -> torch.Tensor:
        if self.signature != other.signature or len(self.terms) != len(other.terms):
            raise ValueError(f"kernel factors from different kernels: {self.signature!r} vs {other.signature!r}")
        out = torch.zeros(self.n, other.n, dtype=torch.float64, device=self.diag.device)
        for ta, tb in zip(self.terms, other.terms):
            out.add_(ta.gram(tb))
        return out

    def take(self, idx) -> "KernelFactors":
        """The factors of a subset of samples (positions within this block)."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.diag.device)
        return KernelFactors(int(idx.numel()), self.diag[idx], [t.take(idx) for t in self.terms], self.signature)

    @staticmethod
    def cat(parts: list["KernelFactors"]) -> "KernelFactors":
        """Stack the factors of consecutive blocks."""
        if not parts:
            raise ValueError("no kernel factors to concatenate")
        terms = [type(ts[0]).cat(list(ts)) for ts in zip(*[p.terms for p in parts])]
        return KernelFactors(sum(p.n for p in parts), torch.cat([p.diag for p in parts]), terms, parts[0].signature)

    @staticmethod
    def assemble(parts, n: int) -> "KernelFactors":
        """Stack consecutive blocks as they arrive into preallocated tensors (no list of parts plus a
        concatenated copy: at 45 MB a row for a ResNet-18 that would double the landmark factors)."""
        import dataclasses

        out, filled = None, 0
        for p in parts:
            if out is None:
                terms = [
                    dataclasses.replace(
                        t,
                        **{
                            f.name: torch.empty((n,) + tuple(getattr(t, f.name).shape[1:]), dtype=getattr(t, f.name).dtype)
                            for f in dataclasses.fields(t)
                            if isinstance(getattr(t, f.name), torch.Tensor)
                        },
                    )
                    for t in p.terms
                ]
                out = KernelFactors(n, torch.empty(n, dtype=p.diag.dtype), terms, p.signature)
            out.diag[filled : filled + p.n] = p.diag
            for ta, tb in zip(out.terms, p.terms):
                for f in dataclasses.fields(ta):
                    v = getattr(tb, f.name)
                    if isinstance(v, torch.Tensor):
                        getattr(ta, f.name)[filled : filled + p.n] = v
            filled += p.n
            del p
        if out is None or filled != n:
            raise ValueError(f"kernel factors of {filled} rows assembled, {n} expected")
        return out

    def to(self, device) -> "KernelFactors":
        return KernelFactors(self.n, self.diag.to(device), [t.to(device) for t in self.terms], self.signature)

    @property
    def width(self) -> int:
        """Numbers stored per sample (the cost of a kernel entry is about 2× this in FLOPs)."""
        return sum(t.width for t in self.terms)

    @property
    def nbytes(self) -> int:
        total = self.diag.numel() * 8
        for t in self.terms:
            for v in vars(t).values():
                if isinstance(v, torch.Tensor):
                    total += v.numel() * v.element_size()
        return total
