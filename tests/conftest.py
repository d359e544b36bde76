"""Test-wide settings: quiet progress, one torch thread per process, the data directory;
`input_forms`: the same rows as a Dataset or a DataLoader, for the lenses' input tests."""

import os

os.environ.setdefault("SSLAUDIT_QUIET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


class ImageLabelItems(Dataset):
    """Items (input, label), as torchvision datasets return them."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


class DictItems(Dataset):
    """Items {"pixel_values": input, "label": label}, as Hugging Face datasets return them."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"label": int(self.y[i]), "pixel_values": self.x[i]}


def forms_of(x) -> dict:
    """The rows of `x` (an array or tensor) as each non-array input the lenses accept."""
    t = torch.as_tensor(x)
    y = torch.arange(len(t)) % 3
    return {
        "TensorDataset": TensorDataset(t, y),
        "(image, label) items": ImageLabelItems(t, y),
        "dict items": DictItems(t, y),
        "DataLoader(batch_size=7)": DataLoader(TensorDataset(t, y), batch_size=7, shuffle=False),
    }


@pytest.fixture(scope="session")
def input_forms():
    """forms_of: x → {form name: the same rows as that Dataset / DataLoader}."""
    return forms_of
