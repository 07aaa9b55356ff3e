"""The study's claims as numbers: pure, batched metric functions on tensors (no files, no tracking).

All log-densities are in nats per image, under the model's own likelihood object (the same
``log_prob`` that training uses). Two kinds of metric:

- likelihood and distortion: squared reconstruction error of the mean code, the negative ELBO split
  into reconstruction and KL, and the importance-weighted bound on log p(x) of Burda et al. (2015), by :mod:`vaelab.measures.importance`;
- structure of the latent space: kNN digit accuracy, silhouette by digit, and the fraction of a
  decoded grid a classifier calls a digit with confidence.
"""

from __future__ import annotations

import torch

from vaelab.core.distributions import DiagonalGaussian
from vaelab.data.mnist import batches
from vaelab.measures import importance
from vaelab.models.base import LatentModel

# Rows decoded at once where nothing is summed over samples (mean images of codes or prior draws).
DECODER_ROWS = 16_384


@torch.no_grad()
def codes(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """The deterministic code of each image (the posterior's mean), on the CPU."""
    device = model.device
    return torch.cat([model.encode(x[i].to(device), None if y is None else y[i].to(device)).mean.cpu()
                      for i in batches(len(x), batch_size)])


@torch.no_grad()
def reconstruction_error(model: LatentModel, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None,
                         batch_size: int = 1024) -> torch.Tensor:
    """Summed squared error per image of the mean image decoded from codes ``z``: comparable across models."""
    device = model.device
    return torch.cat([(model.mean_image(z[i].to(device), None if y is None else y[i].to(device)).cpu() - x[i])
                      .pow(2).sum(-1) for i in batches(len(x), batch_size)])


@torch.no_grad()
def likelihood_bounds(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None, k: int,
                      generator: torch.Generator | None = None, rows: int = importance.ROWS) -> dict[str, torch.Tensor]:
    """Per-image negative ELBO (= recon + KL) and IWAE negative log-likelihood with ``k`` samples, in nats.

    recon is the Monte-Carlo mean of −log p(x|z) over the same K samples; KL is in closed form. The samples and
    the bound are :mod:`vaelab.measures.importance`'s (noise drawn per image up front: ``rows`` changes only the shape
    of the decoder's matrix products).
    """
    device = model.device
    x = x.to(device)
    y = None if y is None else y.to(device)
    parts = [model.encode(x[i], None if y is None else y[i]) for i in batches(len(x), 1024)]
    q = DiagonalGaussian(torch.cat([p.mean for p in parts]), torch.cat([p.logvar for p in parts]))

    def log_lik(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        n, s, d = z.shape
        out = model.decode(z.reshape(n * s, d), None if y is None else y[idx].repeat_interleave(s))
        return model.likelihood.log_prob(out.view(n, s, -1), x[idx, None])

    est = importance.estimate(log_lik, q, importance.draw(q, k, generator), (k,), rows=rows)
    recon, kl = -est.log_lik.cpu(), q.kl().cpu()
    return {"recon": recon, "kl": kl, "iwae_nll": -est.iwae[k].cpu(), "neg_elbo": recon + kl}


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                 k: int) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean; ties go to the smaller label) fitted on train:
    scikit-learn's ``KNeighborsClassifier`` with a k-d tree (the codes are low-dimensional: each query visits a few
    leaves, not every training code)."""
    from sklearn.neighbors import KNeighborsClassifier

    k = min(k, len(train_z))
    vote = KNeighborsClassifier(n_neighbors=k, algorithm="kd_tree").fit(train_z.double().numpy(), train_y.numpy())
    return float(vote.score(test_z.double().numpy(), test_y.numpy()))


def silhouette(z: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette (Rousseeuw 1987) of points ``z`` clustered by ``labels``, in [-1, 1] (scikit-learn's
    ``silhouette_score``: a point alone in its cluster scores 0)."""
    from sklearn.metrics import silhouette_score

    if len(labels.unique()) < 2:
        raise ValueError("silhouette needs at least two clusters")
    return float(silhouette_score(z.double().numpy(), labels.numpy()))


def trustworthiness(images: torch.Tensor, codes: torch.Tensor, k: int) -> float:
    """Whether the codes' neighbours are neighbours in pixel space (Venna & Kaski 2001, scikit-learn's
    ``trustworthiness``): 1 when each code's ``k`` nearest codes are its image's ``k`` nearest images, about 0.5
    for codes that ignore the images; each intruder is penalised by how far down the image ranking it sits.

    The post's "similar digits lie close together" (and its wish that a 0 may lie near a 9): kNN accuracy asks
    only whether neighbours share a label, the silhouette whether labels form separated clusters."""
    from sklearn.manifold import trustworthiness as venna_kaski

    return float(venna_kaski(images.double().numpy(), codes.double().numpy(), n_neighbors=k))


def confident_fraction(probs: torch.Tensor, threshold: float) -> float:
    """Fraction of rows of class probabilities whose largest entry is at least ``threshold``."""
    return (probs.max(1).values >= threshold).to(torch.float32).mean().item()
