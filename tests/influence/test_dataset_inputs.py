"""InfluenceAnalyzer on a Dataset or a DataLoader: the self- and pairwise influence of the array path."""

import numpy as np

from sslaudit.data.inputs import DatasetRows
from sslaudit.methods.influence import InfluenceAnalyzer


def test_fit_and_scores_on_datasets_equal_the_array_path(digits_x, tiny_encoder, augment, input_forms):
    x, query = digits_x[:40], digits_x[40:45]
    ia = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", draws=2, batch_size=16).fit(x)
    ref_self, ref_query = ia.self_influence(), ia.self_influence(query)
    ref_raw, ref_norm = ia.pairwise(query)
    train_forms, query_forms = input_forms(x), input_forms(query)
    for form in train_forms:  # kronfluence fits the factors once more (on the loader's rows); the others reuse them
        factors = None if form.startswith("DataLoader") else ia.factor_arrays()
        got = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", draws=2, batch_size=16).fit(train_forms[form], factors=factors)
        assert np.array_equal(got.x_train, x), form
        np.testing.assert_array_equal(got.self_influence(), ref_self, err_msg=form)
        np.testing.assert_array_equal(got.self_influence(query_forms[form]), ref_query, err_msg=form)
        raw, norm = got.pairwise(query_forms[form])
        np.testing.assert_array_equal(raw, ref_raw, err_msg=form)
        np.testing.assert_array_equal(norm, ref_norm, err_msg=form)
    raw, _ = ia.pairwise(query_forms["TensorDataset"], x_train=train_forms["(image, label) items"])
    np.testing.assert_array_equal(raw, ref_raw)
    i, j = np.array([0, 3]), np.array([5, 1])
    np.testing.assert_array_equal(ia.pair_scores(i, j, x=train_forms["dict items"])[0], ia.pair_scores(i, j)[0])


def test_a_dataset_is_scored_block_by_block(digits_x, tiny_encoder, augment, input_forms, monkeypatch):
    from sslaudit.methods.influence import scores

    seen = []
    stream = scores.stream_scores

    def spy(*args, **kw):
        seen.append(type(args[4]))
        return stream(*args, **kw)

    ia = InfluenceAnalyzer(tiny_encoder, augment, "identity", draws=2, batch_size=16).fit(digits_x[:20])
    monkeypatch.setattr("sslaudit.methods.influence.analyzer.stream_scores", spy)
    ia.self_influence(input_forms(digits_x[20:30])["TensorDataset"])
    assert seen == [DatasetRows]  # not materialised before the block loop
