"""SimVAE lens: content-vs-style evaluation of any run, and explanation views of generative runs.

- `ContentStyle(encoder, ContentStyleConfig(...)).evaluate(dataset)`: linear / MLP / k-NN probes
  of the class (content) and of known nuisances (style), plus GMM clustering.
- `write_explanations(run)`: reconstructions, latent traversals along the content and style
  directions, and decoded view means z̄, as PNG figures under RUN/simvae/figures/.
The model itself (SimVAE, VAE, β-VAE objectives) lives in `sslaudit.models.simvae`.
"""

from .content_style import ContentStyle, ContentStyleConfig, ContentStyleResult
from .nuisance import DEFAULT_TASKS, NUISANCES, apply_nuisance

__all__ = ["DEFAULT_TASKS", "NUISANCES", "ContentStyle", "ContentStyleConfig", "ContentStyleResult", "apply_nuisance", "write_explanations"]


def write_explanations(run, **kw):
    """See `sslaudit.methods.simvae.views.write_explanations`."""
    from .views import write_explanations as _write

    return _write(run, **kw)
