"""A (masked) categorical policy mixed with the uniform distribution over the allowed actions.

PyMARL / EPyMARL's COMA (``basic_controller`` with ``action_selector: multinomial`` and
``mask_before_softmax``) acts with, and takes the log of,

    ``pi_eps = (1 - eps) * softmax(logits) + eps / n_available``

on the available actions, ``0`` on the others (``n_available``: the allowed actions of that
agent at that step). :class:`EpsilonMaskedCategorical` is that distribution: ``probs``,
``log_prob``, ``entropy`` and ``sample`` are those of ``pi_eps``; its ``mode`` (and
``deterministic_sample``) is the argmax of the unmixed masked logits, so a deterministic
evaluation acts as without the floor. A forced step (one allowed action) keeps probability 1
and log-prob 0 exactly, whatever ``eps``.
"""

from __future__ import annotations

import math

import torch
from torchrl.modules import MaskedCategorical

__all__ = ["EpsilonMaskedCategorical"]


class EpsilonMaskedCategorical(MaskedCategorical):
    """``(1 - epsilon) * MaskedCategorical(logits, mask) + epsilon * Uniform(allowed actions)``.

    Args:
        logits (Tensor): unnormalised log-probabilities ``(*B, n)``.

    Keyword Args:
        mask (Tensor, optional): bool ``(*B, n)`` (``True`` = allowed), at least one allowed
            action per row; ``None`` allows every action. Defaults to ``None``.
        epsilon (float): the uniform share, in ``[0, 1]``; ``0`` is the masked categorical
            itself. Defaults to ``0.0``.

    Raises:
        ValueError: ``epsilon`` outside ``[0, 1]`` (or not a number).

    Examples:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, 0.0, -1.0], [0.5, 0.0, 3.0, 0.0]])
        >>> mask = torch.tensor([[True, True, False, True], [False, False, True, False]])
        >>> dist = EpsilonMaskedCategorical(logits, mask=mask, epsilon=0.3)
        >>> plain = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
        >>> mixed = 0.7 * plain + 0.3 * mask / mask.sum(-1, keepdim=True)
        >>> torch.allclose(dist.probs, mixed), dist.probs[0, 2].item()  # masked: 0
        (True, 0.0)
        >>> dist.log_prob(torch.tensor([0, 2]))[1].item()  # a forced step
        0.0
        >>> dist.mode.tolist()  # the unmixed argmax
        [0, 2]
    """

    def __init__(
        self,
        logits: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        epsilon: float = 0.0,
    ) -> None:
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not (math.isfinite(epsilon) and 0.0 <= epsilon <= 1.0)
        ):
            raise ValueError(
                f"EpsilonMaskedCategorical expected epsilon to be a float in [0, 1], "
                f"got {epsilon!r}"
            )
        if mask is None:
            mask = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
        else:
            mask = mask.to(torch.bool).expand(logits.shape)
        self.epsilon = float(epsilon)
        self._raw_logits = logits
        if self.epsilon == 0.0:
            super().__init__(logits=logits, mask=mask)
            return
        probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        uniform = mask.to(probs.dtype) / mask.sum(-1, keepdim=True).to(probs.dtype)
        # p + eps * (u - p): a forced row (p = u = one-hot) stays exactly one-hot
        mixed = probs + self.epsilon * (uniform - probs)
        # log of the allowed entries only (a log(0) would give NaN gradients); the masked
        # ones become -inf in MaskedCategorical
        super().__init__(logits=mixed.masked_fill(~mask, 1.0).log(), mask=mask)

    @property
    def mode(self) -> torch.Tensor:
        """The argmax of the unmixed masked policy (as ``MaskedCategorical(logits, mask)``)."""
        return MaskedCategorical(logits=self._raw_logits, mask=self._mask).mode

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode
