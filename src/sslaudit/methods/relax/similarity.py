"""Similarity scores between representations: the score RELAX averages over masks."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ...errors import UserError


def cosine(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(h, g, dim=1, eps=1e-8)


def dot(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (h * g).sum(dim=1)


def neg_euclidean(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return -(h - g).norm(dim=1)


SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"cosine": cosine, "dot": dot, "neg_euclidean": neg_euclidean}


def similarity_function(spec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A name in SIMILARITIES, or a callable (h, h') → (n,) scores for row pairs."""
    if callable(spec):
        return spec
    if spec not in SIMILARITIES:
        raise UserError(f"unknown similarity {spec!r}: use one of {', '.join(SIMILARITIES)} or a callable (h, h') -> scores")
    return SIMILARITIES[spec]
