"""Short lessons for learners, printed by ``gradcheck explain TOPIC``.

Examples
--------
>>> print(explain("batchnorm").splitlines()[0])
BatchNorm, from what a student asks
>>> topics()
('batchnorm',)
"""

from __future__ import annotations

from gradcheck.errors import InvalidArgument

__all__ = ["explain", "topics"]

BATCHNORM = """\
BatchNorm, from what a student asks
===================================

What it computes (training). For a batch x of shape (N, D), per feature j, over the batch:

    mu_j    = mean_i x_ij                      the batch mean
    var_j   = mean_i (x_ij - mu_j)^2           the biased variance (divide by N, not N - 1)
    xhat_ij = (x_ij - mu_j) / sqrt(var_j + eps)   eps inside the square root
    out_ij  = gamma_j * xhat_ij + beta_j

For images (N, C, H, W) the statistics run over N, H and W, one per channel C.
At inference the running averages of mu and var replace the batch statistics.

How are gamma and beta initialised, and why? gamma = ones, beta = zeros: one value per feature
(shape (D,)) or per channel (shape (C,) for (N, C, H, W)), never one per example. With gamma = 1
and beta = 0 the layer starts as pure normalisation (out = xhat: zero mean, unit variance per
feature), which is what makes the next layer easy to train; gamma and beta then let the network
learn back any scale and shift it needs, including undoing the normalisation entirely
(gamma = sqrt(var + eps), beta = mu). Their gradients have their shapes: dgamma and dbeta are
(D,), summed over the batch (and over H, W for images), not (N, D) and not (1, D).

The backward, derived. Write g = dout (shape of x), s = sqrt(var + eps), sums over the batch.
  dbeta  = sum_i g_i               out depends on beta_j with slope 1 in every row
  dgamma = sum_i g_i * xhat_i      out depends on gamma_j with slope xhat_ij
  dxhat  = g * gamma
  dx has three terms, because x reaches the output three ways: directly, through mu, and
  through var:
    dx = (gamma / s) * ( g  -  mean_i(g)  -  xhat * mean_i(g * xhat) )
           direct path   |     through mu   |  through var (the variance path)
  The staged form computes the same thing: dvar = sum(dxhat * (x - mu)) * -1/2 * (var + eps)^(-3/2),
  dmu = sum(-dxhat / s) + dvar * mean(-2 (x - mu)), dx = dxhat / s + dvar * 2 (x - mu) / N
  + dmu / N. (mean(x - mu) = 0, so dvar's share of dmu vanishes.)
  Consequences worth checking in your own code: sum_i dx_i = 0 and sum_i dx_i * xhat_i = 0
  per feature (the output cannot change its batch mean or variance), and a constant dout gives
  dx = 0, which is why gradcheck draws a random dout.

Common mistakes, and how `gradcheck check` names them: a missing mean(g) term (the error is
the same in every row of a column), a missing xhat * mean(g * xhat) term, N - 1 instead of N,
eps outside the square root, gamma missing from dx, dgamma summed over the wrong axis or with
keepdims, dgamma and dbeta swapped, dbeta as a mean instead of a sum.

Where does BatchNorm go? Between a hidden layer's affine map and its nonlinearity
(affine -> BatchNorm -> ReLU), in hidden layers, not on the output: the output layer must be
free to produce the scale the loss needs (logits, regression targets); normalising it to zero
mean and unit variance per batch would fight the loss. (Placing it after the ReLU also works
in practice; the original paper puts it before.)

Why is a bias before it redundant? BatchNorm subtracts the batch mean, so any constant b added
by the previous layer (x W + b) is removed exactly: mean(x W + b) = mean(x W) + b. Its gradient
through BatchNorm is exactly zero; beta does the bias's job. Use bias=False on that layer.

References: Ioffe & Szegedy 2015, arXiv:1502.03167; PyTorch BatchNorm1d/2d documentation."""

_TOPICS = {"batchnorm": BATCHNORM}


def topics() -> tuple[str, ...]:
    """The topics :func:`explain` knows."""
    return tuple(_TOPICS)


def explain(topic: str) -> str:
    """The lesson on ``topic`` (case-insensitive; ``bn`` and ``batch-norm`` mean batchnorm).

    Raises
    ------
    InvalidArgument
        An unknown topic (the message lists the known ones).
    """
    key = topic.strip().lower().replace("-", "").replace("_", "")
    key = {"bn": "batchnorm"}.get(key, key)
    if key not in _TOPICS:
        raise InvalidArgument(f"`topic` must be one of {', '.join(_TOPICS)}, got {topic!r}")
    return _TOPICS[key]
