"""Relax.attribute on a Dataset or a DataLoader: the maps of the array path with the same seed."""

import torch


def test_maps_of_datasets_equal_the_array_path(tiny_conv, images, input_forms):
    from sslaudit.methods.relax import Relax

    rx = Relax(tiny_conv, batch_size=37, mask_batch=40)
    ref = rx.attribute(images, n_masks=120, seed=4)
    for form, data in input_forms(images).items():
        got = rx.attribute(data, n_masks=120, seed=4)
        assert torch.equal(got.importance, ref.importance) and torch.equal(got.uncertainty, ref.uncertainty), form
        assert torch.equal(got.u_relax, ref.u_relax), form
