"""The contrastive attract/repel sign against autograd and finite differences of d cos/dε (issue #18, item 5)."""

import numpy as np
import pytest
import torch

from sslaudit.errors import UserError
from sslaudit.methods.krepes.fidelity import sign_fidelity
from sslaudit.methods.krepes.scores import influence_scores, sign_alignment


def _problem(t=4, m=6, r=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t, m)), rng.normal(size=(m, r)), rng.normal(size=(t, r)), rng.normal(size=(m, r))


def _dcos_autograd(k, w, f, fl):
    """d/dε cos(f_t + ε k_tl w_l, f_l) at ε = 0 for every (t, l), by autograd."""
    out = np.zeros(k.shape)
    for t in range(k.shape[0]):
        for j in range(k.shape[1]):
            eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
            ft = torch.as_tensor(f[t]) + eps * float(k[t, j]) * torch.as_tensor(w[j])
            c = torch.nn.functional.cosine_similarity(ft, torch.as_tensor(fl[j]), dim=0)
            (g,) = torch.autograd.grad(c, eps)
            out[t, j] = float(g)
    return out


def test_contrastive_sign_is_the_sign_of_dcos_by_autograd():
    for seed in range(3):
        k, w, f, fl = _problem(seed=seed)
        ref = _dcos_autograd(k, w, f, fl)
        align = sign_alignment(k, w, f, fl, "contrastive")
        scale = np.linalg.norm(f, axis=1)[:, None]  # the alignment is ‖f_t‖·d cos/dε
        assert np.allclose(align / scale, ref, rtol=1e-10, atol=1e-12)  # the value, not only its sign
        _, sign = influence_scores(k, w, f, fl, "contrastive")
        assert np.array_equal(sign, np.where(ref > 0, 1, -1))


def test_contrastive_sign_by_finite_differences():
    k, w, f, fl = _problem(t=2, m=3, r=4, seed=5)
    eps = 1e-6

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    fd = np.array([[(cos(f[t] + eps * k[t, j] * w[j], fl[j]) - cos(f[t] - eps * k[t, j] * w[j], fl[j])) / (2 * eps) for j in range(3)] for t in range(2)])
    _, sign = influence_scores(k, w, f, fl, "contrastive")
    assert np.array_equal(sign, np.where(fd > 0, 1, -1))


def test_the_two_signs_differ_where_they_should():
    # the contribution lengthens f_t (radial: attractive) but turns it away from the landmark (contrastive: repulsive)
    f = np.array([[1.0, 0.0]])
    fl = np.array([[0.0, 1.0]])
    w = np.array([[1.0, -0.5]])
    k = np.array([[1.0]])
    assert influence_scores(k, w, f, fl, "radial")[1].tolist() == [[1]]
    assert influence_scores(k, w, f, fl, "contrastive")[1].tolist() == [[-1]]
    # a contribution along f_t alone changes no cosine: 0 counts as repulsive
    assert influence_scores(k, np.array([[2.0, 0.0]]), f, fl, "contrastive")[1].tolist() == [[-1]]
    # a test point whose embedding is parallel to the landmark's (e.g. the landmark itself): d cos = 0 exactly, repulsive
    assert influence_scores(k, w, 3.0 * fl, fl, "contrastive")[1].tolist() == [[-1]]
    assert sign_alignment(k, w, fl * (1 + 1e-15), fl, "contrastive").tolist() == [[0.0]]
    with pytest.raises(UserError):
        influence_scores(k, w, f, None, "contrastive")
    with pytest.raises(UserError):
        influence_scores(k, w, f, fl, "sideways")


def test_sign_fidelity_by_hand():
    # two landmarks of label 0 and 1; the contrastive sign calls the same-label one attractive
    f = np.array([[1.0, 0.0]])
    fl = np.array([[1.0, 1.0], [-1.0, 1.0]])
    w = np.array([[0.0, 1.0], [0.0, 1.0]])  # both push f_t up: towards landmark 0 (cos rises), towards landmark 1 too
    k = np.array([[1.0, 0.5]])
    out = sign_fidelity(k, w, f, fl, np.array([0, 1]), np.array([0]), "contrastive", n=1)
    assert out["precision_at_1_attract"] == 1.0 and out["attract_share"] == 1.0
    w2 = np.array([[0.0, 1.0], [0.0, -1.0]])  # landmark 1 now pushes f_t away from itself
    out = sign_fidelity(k, w2, f, fl, np.array([0, 1]), np.array([0]), "contrastive", n=1)
    assert out["precision_at_1_attract"] == 1.0 and out["precision_at_1_repel"] == 0.0 and out["attract_share"] == 0.5


def test_explain_uses_the_configured_sign(tiny):
    from sslaudit.methods.krepes.explainer import Krepes

    enc, x, aug = tiny
    out = {}
    for sign in ("contrastive", "radial"):
        k = Krepes(enc, landmarks=12, step_sample=40, ssl_batch_size=20, lam=1.0, sign=sign, top_k=12).fit(x, augment=aug)
        kt = k.kernel_rows(np.random.default_rng(3).normal(size=(6, 6)).astype(np.float32))  # fresh points: none is a landmark
        res = k.explain(k_test=kt)
        f, fl, w = k.model.embed(kt), k.model.embed(k.k_mm), k.model.weights
        if sign == "contrastive":
            ref = np.where(_dcos_autograd(kt, w, f, fl) > 0, 1, -1)
        else:
            ref = np.where(kt * (f @ w.T) > 0, 1, -1)
        assert np.array_equal(res.top_signs, np.take_along_axis(ref, res.top, 1))
        out[sign] = res.top_signs
    assert not np.array_equal(out["contrastive"], out["radial"])  # the two signs disagree somewhere on this problem
