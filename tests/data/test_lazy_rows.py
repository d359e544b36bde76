"""KREPES and influence on an image folder read it block by block: never decoded whole, same results as the decoded array."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslaudit.data import load_dataset
from sslaudit.data.augment import make_augment
from sslaudit.data.image_folder import FolderImages
from sslaudit.methods.influence import InfluenceAnalyzer
from sslaudit.methods.krepes import Krepes
from sslaudit.methods.krepes.stages import fingerprint
from sslaudit.models.encoders import build_encoder, default_arch

from .fm_folder import write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lazy") / "images"
    write_folder(root, n_train=48, n_test=8, rgb=True)
    ds = load_dataset(str(root))
    torch.manual_seed(0)
    enc = build_encoder(default_arch("image", ds.input_shape)).eval()
    return ds, enc, make_augment(ds)


@pytest.fixture
def no_whole_decode(monkeypatch):
    """Decoding the whole folder (np.asarray of FolderImages) fails the test."""

    def refuse(self, dtype=None, copy=None):
        raise AssertionError(f"the whole folder ({len(self)} images) was decoded at once")

    monkeypatch.setattr(FolderImages, "__array__", refuse)


def test_fingerprint_of_a_folder_hashes_its_files_without_decoding(tmp_path, monkeypatch):
    write_folder(tmp_path / "images", n_train=12, n_test=4, rgb=True)
    x = load_dataset(str(tmp_path / "images")).train.x
    assert fingerprint(x) == fingerprint(load_dataset(str(tmp_path / "images")).train.x)  # stable across loads
    base = fingerprint(x)
    assert fingerprint(x.subset(np.arange(len(x)))) == base and fingerprint(x.subset(np.arange(10))) != base
    assert fingerprint(x.subset(np.arange(len(x))[::-1])) != base  # row order is part of the content
    monkeypatch.setattr(FolderImages, "decode", lambda self, rel: (_ for _ in ()).throw(AssertionError("decoded")))
    assert fingerprint(x) == base  # the files' bytes, never decoded
    path = x.root / x.paths[3]
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1  # one byte of the last chunk: a different file
    path.write_bytes(bytes(raw))
    assert fingerprint(x) != base


def test_krepes_on_a_folder_decodes_block_by_block_and_matches_the_array(folder, no_whole_decode):
    ds, enc, aug = folder
    opts = dict(landmarks=12, step_sample=24, ssl_batch_size=12, cg_max_iter=5, lambda_grid=(10.0, 100.0), block_size=16, seed=1)
    decoded, test = ds.train.x[np.arange(len(ds.train))], ds.test.x[np.arange(len(ds.test))]  # by rows: __array__ is refused here
    ref_k = Krepes(enc, **opts).fit(decoded, augment=aug)
    ref = ref_k.explain(test)
    k = Krepes(enc, **opts).fit(ds.train.x, augment=aug)
    got = k.explain(test)
    assert isinstance(k.train_x, FolderImages)
    assert np.array_equal(k.landmarks, ref_k.landmarks)
    assert np.array_equal(got.top, ref.top)
    np.testing.assert_allclose(got.top_scores, ref.top_scores, rtol=1e-6)


def test_influence_on_a_folder_decodes_block_by_block_and_matches_the_array(folder, no_whole_decode):
    ds, enc, aug = folder
    decoded = ds.train.x[np.arange(len(ds.train))]  # by rows: __array__ is refused here
    ref = InfluenceAnalyzer(enc, aug, "ekfac", draws=2, batch_size=16).fit(decoded)
    lazy = InfluenceAnalyzer(enc, aug, "ekfac", draws=2, batch_size=16).fit(ds.train.x)
    assert isinstance(lazy.x_train, FolderImages)
    try:
        np.testing.assert_allclose(lazy.self_influence(), ref.self_influence(), rtol=1e-5)
    finally:
        ref.close()
        lazy.close()
