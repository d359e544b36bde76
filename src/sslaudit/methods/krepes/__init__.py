"""KREPES: representer landmarks of a frozen SSL encoder via an eNTK kernel model (see docs/krepes.md).

from sslaudit.methods.krepes import Krepes
result = Krepes(encoder, objective="simclr").fit(train_x, augment=aug).explain(test_x)
"""

from .explainer import EXACT_MAX, MODES, Krepes, KrepesConfig
from .kernel_model import KernelModel
from .result import KrepesResult

__all__ = ["EXACT_MAX", "MODES", "KernelModel", "Krepes", "KrepesConfig", "KrepesResult"]
