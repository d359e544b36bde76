"""Krepes.fit / explain on a Dataset or a DataLoader: the landmarks and scores of the array path."""

import numpy as np

from sslaudit.methods.krepes import Krepes

FAST = dict(landmarks=12, step_sample=32, ssl_batch_size=16, cg_max_iter=5, lambda_grid=(10.0, 100.0), seed=1)


def test_fit_and_explain_on_datasets_equal_the_array_path(tiny, input_forms):
    enc, x, aug = tiny
    train, test = x[:32], x[32:]
    ref_k = Krepes(enc, **FAST).fit(train, augment=aug)
    ref = ref_k.explain(test)
    train_forms, test_forms = input_forms(train), input_forms(test)
    for form in train_forms:
        k = Krepes(enc, **FAST).fit(train_forms[form], augment=aug)
        got = k.explain(test_forms[form])
        assert np.array_equal(k.landmarks, ref_k.landmarks), form
        assert np.array_equal(got.top, ref.top) and np.array_equal(got.top_signs, ref.top_signs), form
        np.testing.assert_array_equal(got.top_scores, ref.top_scores, err_msg=form)
    fit_mode = Krepes(enc, mode="fit", **FAST).fit(train_forms["dict items"]).explain(test_forms["DataLoader(batch_size=7)"])
    fit_ref = Krepes(enc, mode="fit", **FAST).fit(train).explain(test)
    np.testing.assert_array_equal(fit_mode.top_scores, fit_ref.top_scores)
