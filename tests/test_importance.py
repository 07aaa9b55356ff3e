"""The importance-sampling kernel (vaelab.measures.importance): its numbers do not depend on how images are split into
calls (bit for bit), its bounds are ordered as the theory says, log q is computed without round-off, and
the helpers it shares (mean_se, the KL between diagonal Gaussians)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelab.core.distributions import DiagonalGaussian
from vaelab.measures import importance
from vaelab.models.layers import mlp
from vaelab.models.likelihoods import Bernoulli


def decoder_and_images(b: int = 23) -> tuple[torch.nn.Module, torch.Tensor, DiagonalGaussian]:
    torch.manual_seed(0)
    decoder = mlp([2, 32, 64, 784])
    x = (torch.rand(b, 784) > 0.7).float()
    q = DiagonalGaussian(torch.randn(b, 2), torch.randn(b, 2) - 2)
    return decoder, x, q


def log_lik_of(decoder: torch.nn.Module, x: torch.Tensor):
    def log_lik(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        n, k, d = z.shape
        return Bernoulli().log_prob(decoder(z.reshape(n * k, d)).view(n, k, -1), x[idx, None])
    return log_lik


@pytest.mark.parametrize("samples, rows", [(50, 400), (50, 37), (7, 64)])
def test_the_numbers_of_an_image_do_not_depend_on_how_images_are_split(samples: int, rows: int) -> None:
    # Every decoder call has the shape rows_per_call(M, rows) whatever the number of images (the last chunk
    # padded), and the noise is per image, so the matrix products are the same. An image's rows sit at another
    # offset of the call, though, and an elementwise kernel's vector tail falls elsewhere (AVX2 against AVX-512,
    # other thread counts): equal up to the last bits of float32, not bit for bit on every CPU.
    decoder, x, q = decoder_and_images()
    eps = importance.draw(q, samples, torch.Generator().manual_seed(1))
    ks = (1, 5, samples)
    with torch.no_grad():
        whole = importance.estimate(log_lik_of(decoder, x), q, eps, ks, rows=rows)
        for cuts in ([0, 1, 23], [0, 10, 11, 23], [0, 4, 17, 23]):
            parts = [importance.estimate(log_lik_of(decoder, x[a:b]), DiagonalGaussian(q.mean[a:b], q.logvar[a:b]),
                                         eps[a:b], ks, rows=rows) for a, b in zip(cuts, cuts[1:])]
            same = dict(rtol=1e-6, atol=1e-4)   # float32 round-off of values of a few hundred nats
            torch.testing.assert_close(torch.cat([p.elbo for p in parts]), whole.elbo, **same, msg=str(cuts))
            torch.testing.assert_close(torch.cat([p.log_lik for p in parts]), whole.log_lik, **same, msg=str(cuts))
            for k in ks:
                torch.testing.assert_close(torch.cat([p.iwae[k] for p in parts]), whole.iwae[k], **same,
                                           msg=str((cuts, k)))


def test_other_rows_change_only_round_off() -> None:
    # Different rows give different matrix shapes (BLAS may pick other kernels): equal up to round-off only.
    decoder, x, q = decoder_and_images()
    eps = importance.draw(q, 50, torch.Generator().manual_seed(1))
    a, b = (importance.estimate(log_lik_of(decoder, x), q, eps, (1, 50), rows=r) for r in (importance.ROWS, 13))
    torch.testing.assert_close(a.iwae[50], b.iwae[50], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(a.elbo, b.elbo, rtol=1e-5, atol=1e-3)


def test_rows_per_call_never_depends_on_the_number_of_images() -> None:
    assert importance.rows_per_call(1000, 4096) == (4, 1000)
    assert importance.rows_per_call(5000, 4096) == (1, 2500)   # equal blocks, no padded half block
    assert importance.rows_per_call(5000, 1) == (1, 1)


def test_bounds_rise_with_k_and_their_standard_errors() -> None:
    log_w = torch.randn(6, 100, generator=torch.Generator().manual_seed(0)) * 3
    est = importance.bounds(log_w, (1, 10, 100))
    assert (est.iwae[10] >= est.iwae[1]).all() and (est.iwae[100] >= est.iwae[10]).all()  # nested blocks
    torch.testing.assert_close(est.iwae[1], est.elbo)
    torch.testing.assert_close(est.iwae[100], torch.logsumexp(log_w, 1) - math.log(100))
    assert est.iwae_se[100] == pytest.approx(est.iwae[100].std().item() / math.sqrt(6))
    assert math.isnan(importance.bounds(log_w[:1], (1,)).elbo_se)


def test_log_q_comes_from_the_noise_without_round_off() -> None:
    # A posterior 1e-4 wide far from 0: q.log_prob(mu + sigma*eps) loses eps's digits in float32, log q from eps
    # does not. With p(x|z) constant and the prior replaced by q itself, every log weight must be exactly 0.
    q = DiagonalGaussian(torch.full((3, 2), 30.0), torch.full((3, 2), 2 * math.log(1e-4)))
    eps = importance.draw(q, 64, torch.Generator().manual_seed(0))
    log_q = lambda z, idx: -0.5 * (eps[idx].pow(2) + q.logvar[idx, None] + math.log(2 * math.pi)).sum(-1)
    log_w, _ = importance.log_weights(lambda z, idx: torch.zeros(z.shape[:2]), q, eps, log_q, rows=64)
    assert torch.equal(log_w, torch.zeros_like(log_w))
    naive = -q.log_prob(q.mean[:, None] + q.std[:, None] * eps) + log_q(None, torch.arange(3))
    assert naive.abs().max() > 1e-3                                 # what the care avoids


def test_mean_se() -> None:
    mean, se = importance.mean_se(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)
    with pytest.raises(ValueError, match="expected \\[N\\] with N >= 2"):
        importance.mean_se(torch.tensor([1.0]))


def test_kl_between_diagonal_gaussians_matches_torch() -> None:
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.randn(4, 3), torch.randn(4, 3))
    p = DiagonalGaussian(torch.randn(4, 3), torch.randn(4, 3))
    want = kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std)).sum(-1)
    torch.testing.assert_close(q.kl(p), want)
    torch.testing.assert_close(q.kl(DiagonalGaussian(torch.zeros(4, 3), torch.zeros(4, 3))), q.kl())
