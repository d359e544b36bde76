"""Test-wide settings: quiet progress, one torch thread per process, the data directory."""

import os

os.environ.setdefault("SSLAUDIT_QUIET", "1")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
