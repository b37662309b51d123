"""A KL penalty that anchors a policy to a fixed reference policy.

PPO's clip is a trust region around the *previous* iterate only: nothing stops a run from
drifting, iteration after iteration, away from a good starting policy (a rule-based prior,
a behaviour-cloned or pre-trained actor). :class:`ReferenceKLLoss` adds the penalty

    ``loss_reference_kl = coeff * mean_batch KL(pi_theta(. | o) || pi_ref(. | o))``

computed in closed form on the minibatch's observations, the regulariser of KL-controlled
policy optimisation (e.g. the reference-policy KL of RLHF's PPO, or the KL to a prior of
Jaques et al., 2017). torchrl's ``ClipPPOLoss`` has no such term (its ``KLPENPPOLoss``
penalises the distance to the behaviour policy of the current batch, not to a fixed one);
this loss is added next to it::

    ppo, anchor = ClipPPOLoss(actor, critic), ReferenceKLLoss(actor, coeff=0.1)
    losses = ppo(batch).update(anchor(batch))
    sum(v for k, v in losses.items() if k.startswith("loss_")).backward()

:func:`distribution_kl` gives the per-sample KL of the distributions mtmarl's actors build:
``Categorical`` (and torchrl's ``MaskedCategorical``: masked choices have probability 0
under both), ``TanhNormal`` (the KL of two tanh-squashed normals on the same bounds is that
of the pre-tanh normals, since ``tanh`` is a bijection; a
:class:`~mtmarl.modules.MaskedTanhNormal` contributes 0 where its agent may not act),
tensordict's ``CompositeDistribution`` (the sum over its leaves, each reduced to the batch
shape), and whatever ``torch.distributions.kl_divergence`` knows (``Normal``, ``Beta``,
``Independent`` of them, e.g. :class:`~mtmarl.modules.ScaledBeta`).
"""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import CompositeDistribution, ProbabilisticTensorDictSequential
from torch import distributions as D  # noqa: N812
from torchrl.modules import TanhNormal
from torchrl.objectives import LossModule

from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal

__all__ = ["ReferenceKLLoss", "distribution_kl"]

_WHO = "ReferenceKLLoss"


def _normal_kl(p: TanhNormal, q: TanhNormal) -> torch.Tensor:
    """KL of the pre-tanh normals, summed over the event dims."""
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"distribution_kl expected TanhNormals with one event shape, got "
            f"{tuple(p.event_shape)} and {tuple(q.event_shape)}"
        )
    for bound in ("low", "high"):
        if not torch.equal(torch.as_tensor(getattr(p, bound)), torch.as_tensor(getattr(q, bound))):
            raise ValueError(
                f"distribution_kl expected TanhNormals on the same bounds, got {bound} "
                f"{getattr(p, bound)} and {getattr(q, bound)}"
            )
    kl = D.kl_divergence(D.Normal(p.loc, p.scale), D.Normal(q.loc, q.scale))
    kl = kl.flatten(-len(p.event_shape)).sum(-1) if p.event_shape else kl
    if isinstance(p, MaskedTanhNormal):
        kl = torch.where(p.can_act, kl, torch.zeros((), dtype=kl.dtype, device=kl.device))
    return kl


def _categorical_kl(p: D.Categorical, q: D.Categorical) -> torch.Tensor:
    """``sum_a p_a (log p_a - log q_a)`` over ``p``'s support, with finite gradients.

    A masked choice has log-probability ``-inf`` (torchrl's ``MaskedCategorical``); torch's
    own ``Categorical`` KL gives its term the right value 0 but a ``nan`` gradient
    (``0 * (-inf - -inf)``), so the log-probabilities are zeroed off the support first.
    """
    probs = p.probs
    support = probs > 0
    zero = torch.zeros((), dtype=probs.dtype, device=probs.device)
    diff = torch.where(support, p.logits, zero) - torch.where(support, q.logits, zero)
    return (probs * diff).sum(-1)


def distribution_kl(p: D.Distribution, q: D.Distribution) -> torch.Tensor:
    """Closed-form ``KL(p || q)`` per sample, with the batch shape of ``p``.

    Args:
        p (torch.distributions.Distribution): the first distribution (e.g. the current
            policy), batch shape ``(*B,)``.
        q (torch.distributions.Distribution): the second (e.g. the reference policy), of the
            same type and batch shape; for a ``CompositeDistribution`` the same leaves.

    Returns:
        torch.Tensor: ``(*B,)``; a ``CompositeDistribution``'s leaves are each summed over
        their dims beyond the shortest leaf batch shape (e.g. ``(*E, N)`` for a hybrid
        actor's ``(*E, N)`` discrete and ``(*E, N, A)`` continuous leaves) and then added.

    Raises:
        TypeError: ``p`` and ``q`` are of different types, or no closed form is known.
        ValueError: mismatching leaves, event shapes or ``TanhNormal`` bounds.

    Examples:
        >>> import torch
        >>> from torch import distributions as D
        >>> from torchrl.modules import TanhNormal
        >>> p = TanhNormal(torch.zeros(4, 2), torch.ones(4, 2))
        >>> q = TanhNormal(torch.ones(4, 2), torch.ones(4, 2))
        >>> distribution_kl(p, q)  # 2 dims x (1 - 0)^2 / 2
        tensor([1., 1., 1., 1.])
        >>> c = D.Categorical(logits=torch.zeros(3, 2))
        >>> distribution_kl(c, c).tolist()
        [0.0, 0.0, 0.0]
    """
    if type(p) is not type(q):
        raise TypeError(
            f"distribution_kl expected two distributions of one type, got {type(p).__name__} "
            f"and {type(q).__name__}"
        )
    if isinstance(p, CompositeDistribution):
        if set(p.dists) != set(q.dists):
            raise ValueError(
                f"distribution_kl expected composite distributions with the same leaves, got "
                f"{sorted(p.dists)} and {sorted(q.dists)}"
            )
        parts = [distribution_kl(p.dists[k], q.dists[k]) for k in p.dists]
        dims = min(part.ndim for part in parts)  # (note: ``sum(())`` would sum every dim)
        return sum(part.flatten(dims).sum(-1) if part.ndim > dims else part for part in parts)
    if isinstance(p, TanhNormal):
        return _normal_kl(p, q)
    if isinstance(p, D.Categorical):
        return _categorical_kl(p, q)
    try:
        return D.kl_divergence(p, q)
    except NotImplementedError as err:
        raise TypeError(
            f"distribution_kl has no closed form for {type(p).__name__}; supported: "
            "Categorical, TanhNormal, CompositeDistribution of them, and the pairs "
            "torch.distributions.kl_divergence registers"
        ) from err


class ReferenceKLLoss(LossModule):
    """``coeff * KL(pi_theta || pi_ref)`` on a batch: anchor a policy to a fixed reference.

    The policy and the reference are run on the same tensordict (the reference without
    gradients, on a shallow copy, so its outputs never land in the batch); the KL is
    :func:`distribution_kl` of their distributions, averaged over the batch dims (e.g.
    ``(*E, T, N)`` for per-agent distributions: every agent-step counts once). Only the
    policy's parameters receive gradients; the reference is frozen.

    Shapes: the batch ``(*B,)`` is whatever the actor's distribution has, e.g.
    ``(*E, T, N)`` for a multi-agent actor on a collector's batch.

    Args:
        actor_network (ProbabilisticTensorDictSequential): the policy being trained (e.g.
            :func:`~mtmarl.modules.make_hybrid_actor`'s or a torchrl ``ProbabilisticActor``);
            shared with the PPO loss, so both train the same parameters.

    Keyword Args:
        reference_network (ProbabilisticTensorDictSequential, optional): the reference policy,
            with the same ``in_keys`` and distribution type. ``None`` takes a frozen deep copy
            of ``actor_network`` as it is at construction (the initial policy, e.g. an actor
            that starts at its :class:`~mtmarl.modules.ActionPrior`'s controller). Its
            parameters are buffers-like (``requires_grad=False``) but stay in the
            ``state_dict``, so a checkpoint restores the same anchor. Defaults to ``None``.
        coeff (float): weight of the penalty, > 0. Defaults to ``1.0``.

    Returns (of ``forward``): a ``TensorDict`` with ``"loss_reference_kl"`` (the weighted
    penalty, a scalar with gradient) and ``"reference_kl"`` (the unweighted mean KL, detached,
    for logging).

    The reference is frozen, so its distribution on a sample does not change between the
    epochs of a PPO update: :meth:`cache` runs it once on a whole batch and stores its
    distribution parameters under :attr:`CACHE_KEY` (minibatches cut from the batch carry
    them along), and the penalty then builds the reference's distribution from them instead
    of running the reference again. On the ``community`` preset that is one reference
    forward per batch instead of one per minibatch and epoch.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.modules import ProbabilisticActor, TanhNormal
        >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4),
        ...     NormalParamExtractor()), in_keys=["obs"], out_keys=["loc", "scale"])
        >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"],
        ...     distribution_class=TanhNormal)
        >>> anchor = ReferenceKLLoss(actor, coeff=0.5)
        >>> batch = TensorDict({"obs": torch.randn(8, 3)}, batch_size=[8])
        >>> float(anchor(batch)["reference_kl"])  # the policy is its own reference
        0.0
        >>> with torch.no_grad():
        ...     _ = net.module[0].bias.add_(1.0)
        >>> out = anchor(batch)
        >>> bool(out["loss_reference_kl"] > 0), out["loss_reference_kl"].requires_grad
        (True, True)
        >>> cached = anchor.cache(batch.clone())                 # the reference, run once
        >>> torch.allclose(anchor(cached[:4])["reference_kl"], anchor(batch[:4])["reference_kl"])
        True
    """

    #: where :meth:`cache` stores the reference's distribution parameters in a batch
    CACHE_KEY = "_reference_kl_params"

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        *,
        reference_network: ProbabilisticTensorDictSequential | None = None,
        coeff: float = 1.0,
    ) -> None:
        for name, net in (
            ("actor_network", actor_network),
            ("reference_network", reference_network),
        ):
            if net is not None and not hasattr(net, "get_dist"):
                raise TypeError(
                    f"{_WHO} expected {name} to be a probabilistic actor with get_dist (e.g. "
                    f"a torchrl ProbabilisticActor), got {type(net).__name__}"
                )
        if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not coeff > 0:
            raise ValueError(f"{_WHO} expected coeff > 0, got {coeff!r}")
        super().__init__()
        self.actor_network = actor_network
        reference = copy.deepcopy(actor_network) if reference_network is None else reference_network
        for param in reference.parameters():
            param.requires_grad_(False)
        self.reference_network = reference
        self.coeff = float(coeff)
        self.in_keys = list(actor_network.in_keys)
        self.out_keys = ["loss_reference_kl", "reference_kl"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The penalty on ``tensordict`` (read, not written): runs the policy, then
        :meth:`penalty`."""
        return self.penalty(self.actor_network.get_dist(tensordict.copy()), tensordict)

    def penalty(self, dist: D.Distribution, tensordict: TensorDictBase) -> TensorDictBase:
        """The penalty for a policy distribution computed elsewhere on ``tensordict``.

        A PPO loss already runs the policy on each minibatch; handing its distribution here
        (e.g. from an override of ``ClipPPOLoss._log_weight``, which returns it) saves a
        second forward and backward pass of the actor: only the reference runs, without
        gradients.

        Args:
            dist (torch.distributions.Distribution): the current policy's distribution on
                ``tensordict``, with gradients.
            tensordict (TensorDictBase): the batch it was computed on (read, not written).

        Returns:
            TensorDictBase: as :meth:`forward`.
        """
        with torch.no_grad():
            reference = self._reference_dist(tensordict)
        kl = distribution_kl(dist, reference)
        mean = kl.mean()
        return TensorDict(
            {"loss_reference_kl": self.coeff * mean, "reference_kl": mean.detach()},
            batch_size=[],
        )

    @torch.no_grad()
    def cache(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Run the reference once on ``tensordict`` and store its distribution parameters
        under :attr:`CACHE_KEY` (``tensordict`` is modified and returned); the penalty on
        it, or on any slice of it, then reads them instead of running the reference.

        Args:
            tensordict (TensorDictBase): holds the reference's ``in_keys``, e.g. a
                collected ``[E, T]`` batch before a PPO update.

        Returns:
            TensorDictBase: ``tensordict``.
        """
        out = self.reference_network.get_dist_params(tensordict.copy())
        params = out.select(*self.reference_network.dist_params_keys)
        tensordict.set(self.CACHE_KEY, params)
        return tensordict

    def _reference_dist(self, tensordict: TensorDictBase) -> D.Distribution:
        cached = tensordict.get(self.CACHE_KEY, None)
        if cached is None:
            return self.reference_network.get_dist(tensordict.copy())
        return self.reference_network.build_dist_from_params(cached)
