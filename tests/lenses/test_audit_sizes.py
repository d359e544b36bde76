"""The audit sizes the gradient lenses to the encoder: above compute.plan.BIG_BACKBONE parameters KREPES
uses the per-layer projection and influence the last stage on a subsample, each said in the note."""

from types import SimpleNamespace

import numpy as np
from torch import nn

from sslaudit import lenses
from sslaudit.compute.plan import BIG_BACKBONE, parameter_count


def fake_run(n_params: int, n_train: int = 9_000, n_test: int = 1_000):
    width = max(1, n_params // 1000)
    encoder = nn.Sequential(nn.Linear(1000, width, bias=False))
    dataset = SimpleNamespace(train=np.zeros(n_train), test=np.zeros(n_test), kind="image")
    return SimpleNamespace(encoder=encoder, dataset=dataset)


def test_a_big_backbone_gets_the_projection_and_the_last_stage():
    run = fake_run(3_000_000)
    assert parameter_count(run.encoder) > BIG_BACKBONE
    k, note = lenses.get("krepes").audit_config(run, focus=[], quick=False)
    assert k.krepes.layer_projection_dim == 16 and "3,000,000 parameters" in note and "projection k = 16" in note
    assert (k.krepes.step_sample, k.krepes.heldout_sample) == (2_048, 1_024) and "2,048 of the 9,000" in note
    k, note = lenses.get("krepes").audit_config(fake_run(3_000_000, n_train=1_500), focus=[], quick=False)
    assert k.krepes.step_sample == 131_072 and "subsample" not in note
    k, note = lenses.get("krepes").audit_config(fake_run(3_000_000, n_train=50_000), focus=[], quick=False)
    assert k.krepes.step_sample == 2_048 and note.count("Gauss–Newton step") == 1
    i, note = lenses.get("influence").audit_config(run, focus=[], quick=False)
    assert i.influence.modules == "last-stage" and i.subsample == 1_000 and "last stage" in note and "1,000 of the 9,000" in note
    small_data = fake_run(3_000_000, n_train=500)
    i, note = lenses.get("influence").audit_config(small_data, focus=[], quick=False)
    assert i.subsample is None and "subsample" not in note


def test_a_small_encoder_keeps_the_defaults():
    run = fake_run(100_000)
    k, _ = lenses.get("krepes").audit_config(run, focus=[], quick=False)
    assert k.krepes.layer_projection_dim is None and k.krepes.step_sample == 131_072
    k, note = lenses.get("krepes").audit_config(fake_run(100_000, n_train=50_000), focus=[], quick=False)
    assert k.krepes.step_sample == 8_192 and "8,192 of the 50,000" in note
    i, note = lenses.get("influence").audit_config(run, focus=[], quick=False)
    assert i.influence.modules is None and i.subsample is None and note == ""
