"""What a user passes as inputs → the array-like rows the lenses read (`as_rows`).

Every lens names a sample by its position (`index`, `train_index`), so rows must keep a stable
order: row i is item i of a Dataset, or the i-th row a DataLoader yields. Hence:
- a numpy array, a tensor, a list or an array-like with `__array__` (e.g. `FolderImages`) is
  returned unchanged — the lenses treat it as before;
- a map-style torch `Dataset` (`__len__` and `__getitem__`) becomes `DatasetRows`, which indexes
  like an array and reads only the items asked for (its transform must be deterministic);
- a `DataLoader` or another iterable of batches is read once and concatenated (a torch
  `IterableDataset` yields single items, which are stacked); a loader that shuffles is refused.
An item (or batch) is the input itself, a tuple / list whose first element is the input (labels
and the rest are ignored) or a dict holding it under one of `INPUT_KEYS`. Rows from a Dataset or a
loader are float32 and checked like a loaded dataset's: one shape, numeric, finite.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, SubsetRandomSampler, WeightedRandomSampler

from ..errors import UserError

INPUT_KEYS = ("image", "pixel_values", "x", "input", "inputs", "img")
SHUFFLING_SAMPLERS = (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)


def is_lazy(rows) -> bool:
    """Rows that decode on demand (an image folder's `FolderImages`, a Dataset's `DatasetRows`), not an array in memory."""
    return not isinstance(rows, (np.ndarray, torch.Tensor, list, tuple)) and hasattr(rows, "__getitem__") and hasattr(rows, "__len__")


def float32_rows(data, name: str = "inputs"):
    """`as_rows(data)` as float32: arrays in memory as a numpy array, rows that decode on demand kept lazy."""
    rows = as_rows(data, name)
    return rows if is_lazy(rows) else np.asarray(rows, dtype=np.float32)


def as_rows(data, name: str = "inputs"):
    """`data` as rows indexed by position (see the module docstring); `name` is used in errors."""
    if isinstance(data, (np.ndarray, torch.Tensor, list, tuple)) or hasattr(data, "__array__"):
        return data
    if isinstance(data, DataLoader):
        check_order(data, name)
        batched = not (data.batch_size is None and data.batch_sampler is None)
        return concatenate(data, name, batched=batched)
    if isinstance(data, IterableDataset):
        return concatenate(data, name, batched=False)
    if isinstance(data, (str, bytes, dict)) or not (hasattr(data, "__iter__") or hasattr(data, "__getitem__")):
        raise UserError(f"{name} is a {type(data).__name__}: pass a numpy array, a tensor, a torch Dataset or a DataLoader")
    if hasattr(data, "__getitem__"):
        if not hasattr(data, "__len__"):
            raise UserError(f"{name} is a Dataset without __len__ ({type(data).__name__}): define __len__ so its rows can be indexed by position")
        return DatasetRows(data, name)
    return concatenate(data, name, batched=True)


class DatasetRows:
    """The inputs of a map-style Dataset as N×… float32 rows, read on demand; indexes like a numpy array.

    `rows[i]` → item i's input; `rows[a:b]`, `rows[index array]` → those inputs stacked;
    `np.asarray(rows)` reads every item. Item 0 is read twice at construction (shape and dtype, and
    a check that the Dataset's transform is deterministic); every row read is checked: one shape, finite.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, dataset, name: str = "inputs"):
        self.dataset, self.name = dataset, name
        n = len(dataset)
        if n == 0:
            raise UserError(f"{name} is an empty {type(dataset).__name__}: pass at least one item")
        first = item_input(dataset[0], name, "item 0")
        check_finite(first, name, "item 0")
        if not np.array_equal(first, item_input(dataset[0], name, "item 0")):
            raise UserError(f"{name}: item 0 differs between two reads, so the Dataset's transform is random: use a deterministic transform (no augmentation) so row i stays sample i")
        self.item_shape = first.shape
        self.n = n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.n if key < 0 else 0)
            if not 0 <= i < self.n:
                raise IndexError(f"index {int(key)} is out of bounds for {self.n} rows")
            return self.read([i])[0]
        if isinstance(key, slice):
            rows = np.arange(self.n)[key]
        else:
            rows = np.asarray(key.cpu() if torch.is_tensor(key) else key).reshape(-1)
            if rows.dtype == bool:
                if len(rows) != self.n:
                    raise IndexError(f"a boolean index of {len(rows)} entries for {self.n} rows")
                rows = np.nonzero(rows)[0]
            elif rows.size == 0:
                rows = rows.astype(np.int64)
            elif rows.dtype.kind not in "iu":
                raise IndexError(f"rows are indexed by integers, slices or booleans, not {rows.dtype}")
            else:
                rows = np.arange(self.n)[rows]  # numpy's bounds check and negative positions
        return self.read(rows)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def read(self, rows) -> np.ndarray:
        """The inputs of the items at positions `rows`, stacked (checked: one shape, finite)."""
        out = np.empty((len(rows), *self.item_shape), dtype=np.float32)
        for k, r in enumerate(rows):
            where = f"item {int(r)}"
            x = item_input(self.dataset[int(r)], self.name, where)
            if x.shape != self.item_shape:
                raise UserError(
                    f"{self.name} items have different shapes: item 0 is {shape_text(self.item_shape)} but {where} is {shape_text(x.shape)}: give them one shape in the Dataset's transform (e.g. a resize)"
                )
            out[k] = x
            check_finite(out[k], self.name, where)
        return out


def check_order(loader: DataLoader, name: str) -> None:
    """Refuse a DataLoader whose sampler draws rows in random order (the rows' positions would change)."""
    samplers = [loader.sampler, getattr(loader.batch_sampler, "sampler", None)]
    if any(isinstance(s, SHUFFLING_SAMPLERS) for s in samplers):
        raise UserError(f"{name} is a DataLoader that shuffles (a random sampler): pass shuffle=False or the Dataset itself, so that row i stays sample i")


def concatenate(batches, name: str, *, batched: bool) -> np.ndarray:
    """One pass over an iterable of batches (or of single items when not `batched`) → N×… float32 rows."""
    parts, shape, n = [], None, 0
    for b, item in enumerate(batches):
        where = f"batch {b}" if batched else f"item {b}"
        x = item_input(item, name, where)
        if batched and x.ndim == 0:
            raise UserError(f"{name}: {where} is a single number, not a batch of inputs: yield batches N×… (as a DataLoader does)")
        x = x if batched else x[None]
        if shape is None:
            shape = x.shape[1:]
        elif x.shape[1:] != shape:
            first = "batch 0" if batched else "item 0"
            raise UserError(
                f"{name} has inputs of different shapes: {first} has rows of {shape_text(shape)} but {where} {shape_text(x.shape[1:])}: give them one shape in the Dataset's transform (e.g. a resize)"
            )
        check_finite(x, name, where, first_row=n)
        parts.append(x)
        n += len(x)
    if n == 0:
        raise UserError(f"{name} is an empty {type(batches).__name__}: pass at least one input")
    return np.concatenate(parts)


def item_input(item, name: str, where: str) -> np.ndarray:
    """The input of one item or batch (itself, the first of a tuple / list, or a dict's input key) as float32."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise UserError(f"{name}: {where} is an empty {type(item).__name__}: return the input first, e.g. (image, label)")
        item = item[0]
        if isinstance(item, (int, float, np.number)):
            raise UserError(f"{name}: {where} is a tuple / list starting with a single number: return the input as one tensor or array, first in the tuple, e.g. (x, label)")
    elif isinstance(item, dict):
        key = next((k for k in INPUT_KEYS if k in item), None)
        if key is None:
            raise UserError(f"{name}: {where} is a dict with keys {sorted(map(str, item))[:8]} and none of {', '.join(INPUT_KEYS)}: put the input under one of those keys")
        item = item[key]
    if torch.is_tensor(item):
        item = item.detach().cpu()
        if not item.is_complex():
            return item.to(torch.float32).numpy()
        item = item.numpy()
    if type(item).__module__.startswith("PIL."):
        raise UserError(f"{name}: {where} is a PIL image: give the Dataset transform=torchvision.transforms.ToTensor() so it returns C×H×W tensors in [0, 1]")
    if not isinstance(item, (np.ndarray, np.number, int, float, bool, np.bool_)):
        raise UserError(f"{name}: {where} is a {type(item).__name__}: return the input as a tensor or array (alone, first in a tuple, or in a dict under {INPUT_KEYS[0]!r})")
    x = np.asarray(item)
    if x.dtype.kind not in "biuf":
        raise UserError(f"{name}: {where} has the non-numeric dtype {x.dtype}: return numbers (a float or integer tensor or array) as the input")
    with np.errstate(over="ignore"):  # beyond float32's range: inf, refused by check_finite
        return x.astype(np.float32, copy=False)


def check_finite(x: np.ndarray, name: str, where: str, first_row: int | None = None) -> None:
    if not np.isfinite(x).all():
        if first_row is None:
            raise UserError(f"{name}: {where} holds NaN or infinite values: remove or repair it")
        bad = int((~np.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())
        raise UserError(f"{name}: {where} holds NaN or infinite values in {bad} row(s) (rows from {first_row}): remove or repair them")


def shape_text(shape) -> str:
    return "×".join(str(int(s)) for s in shape) or "a single number"
