"""as_rows: Datasets and DataLoaders give the array path's rows and results; bad inputs are one-line UserErrors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from sslaudit.data.image_folder import FolderImages
from sslaudit.data.inputs import DatasetRows, as_rows
from sslaudit.errors import UserError
from sslaudit.methods.qscore import QScore
from sslaudit.models.embed import embed


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return (load_digits().images[:200, None] / 16.0).astype(np.float32)


@pytest.fixture(scope="module")
def relu_encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU()).eval()


class Items(Dataset):
    """A Dataset over a list of items, counting the reads."""

    def __init__(self, items):
        self.items, self.reads = list(items), []

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.items[i]


class Streamed(IterableDataset):
    def __init__(self, x):
        self.x = x

    def __iter__(self):
        return iter(self.x)


def one_line_user_error(call, match: str) -> str:
    with pytest.raises(UserError, match=match) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


def test_arrays_tensors_and_array_likes_are_returned_unchanged(digits):
    t = torch.as_tensor(digits)
    folder = FolderImages(Path("/nowhere"), np.array(["a.png", "b.png"]), 1, (8, 8), resize=False)
    rows = as_rows(TensorDataset(t))
    for x in (digits, t, [[1.0, 2.0]], folder, rows):
        assert as_rows(x) is x


def test_every_form_gives_the_array_rows(digits, input_forms):
    for form, data in input_forms(digits).items():
        rows = as_rows(data, "x")
        assert np.array_equal(np.asarray(rows), digits), form
        assert rows.shape == digits.shape and np.asarray(rows).dtype == np.float32, form
    streamed = as_rows(Streamed(torch.as_tensor(digits[:9])))  # an IterableDataset yields single items
    unbatched = as_rows(DataLoader(TensorDataset(torch.as_tensor(digits[:9])), batch_size=None))
    assert np.array_equal(streamed, digits[:9]) and np.array_equal(unbatched, digits[:9])


def test_dataset_rows_index_like_an_array_and_read_only_those_items(digits):
    digits = digits[:20]
    items = Items(torch.as_tensor(digits))
    rows = as_rows(items)
    assert isinstance(rows, DatasetRows) and items.reads == [0, 0]  # shape, and the determinism check
    items.reads.clear()
    assert np.array_equal(rows[3:6], digits[3:6]) and items.reads == [3, 4, 5]
    assert np.array_equal(rows[np.array([7, 2])], digits[[7, 2]])
    assert np.array_equal(rows[torch.tensor([1, -1])], digits[[1, -1]])
    mask = np.zeros(20, bool)
    mask[[4, 9]] = True
    assert np.array_equal(rows[mask], digits[mask])
    assert np.array_equal(rows[-1], digits[-1]) and rows[0].shape == (1, 8, 8) and rows.ndim == 4
    assert rows[[]].shape == (0, 1, 8, 8) and rows[5:5].shape == (0, 1, 8, 8)
    for bad in (20, [3, 20], np.array([1.5]), np.ones(3, bool)):
        with pytest.raises(IndexError):
            rows[bad]


def test_embed_of_a_dataset_reads_it_batch_by_batch(digits, relu_encoder, input_forms):
    ref = embed(relu_encoder, digits, batch_size=64)
    for form, data in input_forms(digits).items():
        np.testing.assert_array_equal(embed(relu_encoder, data, batch_size=64), ref, err_msg=form)
    items = Items(torch.as_tensor(digits))
    batches = []
    shape_of = lambda m, inp, out: batches.append(inp[0].shape[0])  # noqa: E731
    hook = relu_encoder[0].register_forward_hook(shape_of)
    try:
        embed(relu_encoder, items, batch_size=64)
    finally:
        hook.remove()
    assert batches == [64, 64, 64, 8] and sorted(items.reads) == [0, 0, *range(200)]


def test_qscore_through_embed_equals_the_array_path(digits, relu_encoder, input_forms):
    train, test = digits[:150], digits[150:]
    ref = QScore().fit(embed(relu_encoder, train)).score(embed(relu_encoder, test))
    train_forms, test_forms = input_forms(train), input_forms(test)
    for form in train_forms:
        got = QScore().fit(embed(relu_encoder, train_forms[form])).score(embed(relu_encoder, test_forms[form]))
        np.testing.assert_array_equal(got.qscore, ref.qscore, err_msg=form)
        np.testing.assert_array_equal(got.qscore_v1, ref.qscore_v1, err_msg=form)


def test_a_shuffling_loader_is_refused(digits):
    ds = TensorDataset(torch.as_tensor(digits[:10]))
    msg = one_line_user_error(lambda: as_rows(DataLoader(ds, batch_size=4, shuffle=True), "train_x"), "shuffle=False")
    assert msg.startswith("train_x ") and "Dataset itself" in msg
    sampler = torch.utils.data.SubsetRandomSampler(range(10))
    one_line_user_error(lambda: as_rows(DataLoader(ds, batch_size=4, sampler=sampler)), "shuffle=False")
    batches = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(ds), 4, False)
    one_line_user_error(lambda: as_rows(DataLoader(ds, batch_sampler=batches)), "shuffle=False")


def test_empty_inputs_are_refused():
    empty = TensorDataset(torch.zeros(0, 3))
    one_line_user_error(lambda: as_rows(empty), "empty TensorDataset")
    one_line_user_error(lambda: as_rows(DataLoader(empty, batch_size=2)), "empty DataLoader")
    one_line_user_error(lambda: as_rows(Streamed([])), "empty Streamed")


def test_items_of_different_shapes_are_refused(relu_encoder):
    items = [torch.zeros(1, 8, 8)] * 3 + [torch.zeros(1, 9, 9)]
    rows = as_rows(Items(items))  # lazy: found when read
    msg = one_line_user_error(lambda: embed(relu_encoder, rows), "different shapes")
    assert "1×8×8" in msg and "item 3 is 1×9×9" in msg
    one_line_user_error(lambda: as_rows(DataLoader(Items(items), batch_size=1)), "batch 3 1×9×9")


def test_non_numeric_and_non_finite_inputs_are_refused(relu_encoder):
    one_line_user_error(lambda: as_rows(Items([np.array(["a", "b"])])), "non-numeric dtype <U1")
    one_line_user_error(lambda: as_rows(Items([np.ones(2, dtype=complex)])), "non-numeric dtype complex")
    bad = [torch.zeros(1, 8, 8) for _ in range(5)]
    bad[3] = bad[3].clone()
    bad[3][0, 2, 2] = float("nan")
    one_line_user_error(lambda: embed(relu_encoder, Items(bad)), "item 3 holds NaN or infinite values")
    one_line_user_error(lambda: as_rows(DataLoader(Items(bad), batch_size=2)), r"batch 1 holds NaN or infinite values in 1 row\(s\)")
    big = [np.full(3, 1e300)]  # finite as float64, infinite as the float32 the lenses use
    one_line_user_error(lambda: as_rows(Items(big)), "item 0 holds NaN or infinite")


def test_items_without_an_input_are_refused():
    msg = one_line_user_error(lambda: as_rows(Items([{"label": 1, "caption": "a"}])), "none of image, pixel_values, x, input")
    assert "['caption', 'label']" in msg
    one_line_user_error(lambda: as_rows(Items([(3.0, 1)])), "starting with a single number")
    one_line_user_error(lambda: as_rows(Items([()])), "empty tuple")
    one_line_user_error(lambda: as_rows(Items(["photo.png"])), "item 0 is a str")
    from PIL import Image

    one_line_user_error(lambda: as_rows(Items([Image.new("L", (8, 8))])), "ToTensor")


def test_a_random_transform_is_refused():
    class Noisy(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3)

    one_line_user_error(lambda: as_rows(Noisy(), "train_x"), "transform is random")


def test_unsupported_objects_are_refused():
    for obj, kind in (("photos/", "str"), (42, "int"), ({"x": np.zeros(3)}, "dict"), (None, "NoneType")):
        one_line_user_error(lambda: as_rows(obj, "test_x"), f"test_x is a {kind}: pass a numpy array, a tensor, a torch Dataset or a DataLoader")

    class NoLength(Dataset):
        def __getitem__(self, i):
            return torch.zeros(2)

    one_line_user_error(lambda: as_rows(NoLength()), "without __len__")
