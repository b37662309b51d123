"""COMA: counterfactual multi-agent policy gradients (Foerster et al., AAAI 2018).

Each agent ``n`` is trained with the advantage

    ``A_n(s, u) = Q(s, u)[u_n] - sum_a pi_n(a | tau_n) Q(s, (u_-n, a))``

where ``Q(s, (u_-n, .))`` is one row of a centralised critic that outputs a
value for every action of agent ``n`` with the other agents' actions fixed (see
:class:`mtmarl.modules.coma_critic.COMACritic`). The baseline marginalises agent
``n``'s own action only, so it answers "how much better was ``u_n`` than what
agent ``n`` would do on average, everyone else unchanged" -- the
counterfactual credit assignment of COMA. The critic is fitted to TD(lambda)
targets built from a *target* critic evaluated at the actions taken next.

Data layout the loss expects (torchrl's multi-agent convention, ``N`` agents,
``A`` actions):

    =================================  ================  ==================================
    ``("agents", "action")``           ``(*E, T, N)``    int64, taken actions
    actor ``in_keys``                  ``(*E, T, ...)``  e.g. observation, mask
    critic ``in_keys``                 ``(*E, T, ...)``  e.g. ``"state"``
    ``("next", "reward")``             ``(*E, T, 1)``    team reward (or ``(*E, T, N, 1)``)
    ``("next", "done")``               ``(*E, T, 1)``    bool, root
    ``("next", "terminated")``         ``(*E, T, 1)``    bool, root
    ``("next", <actor/critic keys>)``  ``(*E, T, ...)``  to bootstrap
    ``("agents", "can_act")``          ``(*E, T, N)``    bool, optional
    ``("collector", "traj_ids")``      ``(*E, T)``       optional
    =================================  ================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule
from tensordict.utils import NestedKey, unravel_key
from torchrl.envs.utils import set_exploration_type
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import LossModule
from torchrl.objectives.utils import ValueEstimators, distance_loss

__all__ = ["COMALoss"]

_LOSS_CRITIC_TYPES = ("l1", "l2", "smooth_l1")


def _next(key: NestedKey) -> NestedKey:
    return unravel_key(("next", key))


def _td_lambda_return(
    reward: torch.Tensor,
    next_value: torch.Tensor,
    boundary: torch.Tensor,
    terminated: torch.Tensor,
    *,
    gamma: float,
    lmbda: float,
) -> torch.Tensor:
    """Exact TD(lambda) returns with time at dim ``-2``: ``(*E, T, N)``.

    ``y_t = r_t + gamma * ((1 - lmbda) * v_t + lmbda * g_{t+1})`` with
    ``v_t = next_value_t`` (``0`` where ``terminated``) and ``g_{t+1} = v_t``
    where ``boundary`` (the segment ends after ``t``; must hold at ``t = T-1``),
    else ``y_{t+1}``. ``boundary``/``terminated`` broadcast to ``reward``.
    """
    shape = reward.shape
    nv = torch.where(terminated, torch.zeros_like(next_value), next_value)
    nv, r = nv.movedim(-2, 0), reward.movedim(-2, 0)
    cut = boundary.expand(shape).movedim(-2, 0)
    out = torch.empty_like(r)
    g = nv[-1]
    for t in range(r.shape[0] - 1, -1, -1):
        g = torch.where(cut[t], nv[t], g)
        g = r[t] + gamma * ((1.0 - lmbda) * nv[t] + lmbda * g)
        out[t] = g
    return out.movedim(0, -2)


class COMALoss(LossModule):
    """COMA (counterfactual multi-agent policy gradients) as a torchrl ``LossModule``.

    **Critic.** ``critic_network`` is a TensorDict module that reads the global
    state (and whatever else it needs) plus the joint action at
    ``tensor_keys.action`` and writes ``Q(s, (u_-n, a))`` for every agent ``n``
    and action ``a`` at ``tensor_keys.action_value`` ``(*E, T, N, A)`` --
    :class:`mtmarl.modules.coma_critic.COMACritic` is one. It is fitted to
    TD(lambda) targets (per agent, team reward broadcast over agents)

        ``y_t = r_t + gamma * ((1 - lmbda) * V_{t+1} + lmbda * y_{t+1})``

    with ``V_{t+1} = Q_target(s_{t+1}, u_{t+1})[u_{n,t+1}]``, the *target*
    critic at the joint action taken at the next step of the same trajectory.
    The recursion restarts at every episode end (``("next", "done")``), at a
    change of ``("collector", "traj_ids")`` (when present) and at the end of the
    batch; there ``V_{t+1}`` is bootstrapped from ``("next", ...)``: a joint
    action ``u'`` is sampled from the current policy at ``s_{t+1}`` and
    ``V_{t+1} = sum_a pi_n(a | tau'_n) Q_target(s_{t+1}, (u'_-n, a))``;
    ``V_{t+1} = 0`` where ``("next", "terminated")`` is set. Target parameters
    live in ``loss.target_critic_network_params``: update them with torchrl's
    :class:`~torchrl.objectives.HardUpdate` (COMA's choice) or
    :class:`~torchrl.objectives.SoftUpdate`.

    **Actor.** ``actor_network`` is a :class:`~torchrl.modules.ProbabilisticActor`
    whose distribution is a ``Categorical`` or a
    :class:`~torchrl.modules.MaskedCategorical` over ``A`` actions for each
    agent (``probs`` ``(*E, T, N, A)``). Its ``get_dist`` is evaluated with the
    current parameters on the whole batch (recurrent actors run in recurrent
    mode, so keep trajectories whole). The objective is
    ``-mean(A_n.detach() * log pi_n(u_n | tau_n))`` over agents and steps with
    the counterfactual advantage of the module docstring computed from the
    current critic. If ``tensor_keys.can_act`` (bool ``(*E, T, N)``) is in the
    input, steps where an agent could not act (a forced action: log-prob 0
    and advantage 0 under a one-action ``MaskedCategorical``) are left out of
    the mean of the actor and entropy terms; the critic is still fitted there.
    Masks torchrl writes itself (``loss_mask_key``, default ``"auto"``:
    ``("collector", "mask")``) exclude positions from every term.

    **Layout.** TD(lambda) needs time order: the input must be a batch of whole,
    contiguous trajectory segments with time as the *last* root batch dim --
    ``[E, T]`` as collectors return it, or ``[T]``. Do not shuffle steps before
    the loss. A flat ``[E * T]`` is fine only with ``("collector",
    "traj_ids")`` present (collectors write it) so segments are split there. To
    train on shuffled minibatches, call :meth:`compute_value_target` on the
    whole batch first: ``forward`` uses targets found at
    ``tensor_keys.value_target`` instead of recomputing them.

    Args:
        actor_network (ProbabilisticTensorDictSequential): the policy; its
            distribution over ``A`` discrete actions per agent.
        critic_network (TensorDictModule): the COMA critic, reading
            ``tensor_keys.action`` and writing ``tensor_keys.action_value``.

    Keyword Args:
        gamma (float): discount in ``[0, 1]``. Defaults to ``0.99``.
        lmbda (float): TD(lambda) trace parameter in ``[0, 1]``. Defaults to
            ``0.8`` (the COMA paper's value).
        entropy_coeff (float): weight of the entropy bonus; ``0`` leaves
            ``loss_entropy`` out of the output. Schedulable
            (``loss.entropy_coeff = 0.001``). Defaults to ``0.0``.
        critic_coeff (float): weight of the critic loss. Schedulable.
            Defaults to ``1.0``.
        loss_critic_type (str): ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
            Defaults to ``"l2"`` (COMA's squared TD error).
        normalize_advantage (bool): standardise the counterfactual advantages over the
            (actor-masked) batch before the policy-gradient term, as PPO implementations do.
            Sparse rewards give tiny early advantages that an unnormalised gradient barely
            moves. Defaults to ``False`` (the COMA paper's estimator).
        delay_critic (bool): keep a separate target critic
            (``target_critic_network_params``, updated by a target-net
            updater). ``False`` uses the current critic (detached) for targets.
            Defaults to ``True``.
        reduction (str): ``"mean"`` or ``"sum"`` over agents and steps.
            Defaults to ``"mean"``.

    Output: a TensorDict with ``batch_size=[]`` holding ``loss_objective``,
    ``loss_critic``, ``loss_entropy`` (only with ``entropy_coeff > 0`` at
    construction) and detached diagnostics ``entropy`` (mean policy entropy),
    ``advantage`` (mean counterfactual advantage), ``action_value`` (mean
    ``Q`` of the taken actions), ``value_target`` (mean target),
    ``critic_td_error`` (mean ``|y - Q|``) and ``explained_variance``
    (``1 - Var(y - Q) / Var(y)``, ``0`` when the targets are constant).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torch.distributions import Categorical
        >>> from torchrl.modules import ProbabilisticActor
        >>> from torchrl.objectives import HardUpdate
        >>> from mtmarl.modules.coma_critic import COMACritic
        >>> N, A, E, T = 2, 3, 4, 5
        >>> actor = ProbabilisticActor(
        ...     TensorDictModule(torch.nn.Linear(6, A), in_keys=[("agents", "observation")],
        ...                      out_keys=[("agents", "logits")]),
        ...     in_keys={"logits": ("agents", "logits")}, out_keys=[("agents", "action")],
        ...     distribution_class=Categorical)
        >>> critic = COMACritic(N, A, state_dim=8, num_cells=(16,))
        >>> loss = COMALoss(actor, critic, gamma=0.9, entropy_coeff=0.01)
        >>> updater = HardUpdate(loss, value_network_update_interval=100)
        >>> def step(*b):
        ...     return {"state": torch.randn(*b, 8), "done": torch.zeros(*b, 1, dtype=torch.bool),
        ...             "terminated": torch.zeros(*b, 1, dtype=torch.bool),
        ...             "agents": TensorDict({"observation": torch.randn(*b, N, 6)}, [*b, N])}
        >>> td = TensorDict({**step(E, T), "next": {**step(E, T), "reward": torch.randn(E, T, 1)}},
        ...                 batch_size=[E, T])
        >>> td["agents", "action"] = torch.randint(A, (E, T, N))
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_entropy', 'loss_objective']
        >>> out["loss_objective"].shape, out["loss_critic"].requires_grad
        (torch.Size([]), True)
        >>> # targets for shuffled minibatches: compute on whole trajectories first
        >>> loss.compute_value_target(td)["agents", "value_target"].shape
        torch.Size([4, 5, 2, 1])
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys of :class:`COMALoss` (``loss.set_keys(...)``).

        Attributes:
            action (NestedKey): taken actions, integer ``(*E, T, N)``; also where
                the loss writes sampled next actions for the critic. Defaults to
                the actor's sample key (``("agents", "action")``).
            action_value (NestedKey): the critic's output ``(*E, T, N, A)``.
                Defaults to the critic's single out key
                (``("agents", "action_value")``).
            value_target (NestedKey): where :meth:`COMALoss.compute_value_target`
                writes the TD(lambda) targets ``(*E, T, N, 1)``, and where
                ``forward`` looks for precomputed ones. Defaults to
                ``("agents", "value_target")``.
            can_act (NestedKey): optional bool ``(*E, T, N)``; ``False`` steps
                are excluded from the actor and entropy terms. Defaults to
                ``("agents", "can_act")``.
            reward (NestedKey): reward, read under ``"next"``; ``(*E, T, 1)``
                (team) or ``(*E, T, N, 1)``. Defaults to ``"reward"``.
            done (NestedKey): episode end, read under ``"next"``, ``(*E, T, 1)``.
                Defaults to ``"done"``.
            terminated (NestedKey): termination (no bootstrap), read under
                ``"next"``, ``(*E, T, 1)``. Defaults to ``"terminated"``.
            traj_ids (NestedKey): optional trajectory ids ``(*E, T)``; a change
                between consecutive steps cuts the TD(lambda) recursion.
                Defaults to ``("collector", "traj_ids")``.
        """

        action: NestedKey = ("agents", "action")
        action_value: NestedKey = ("agents", "action_value")
        value_target: NestedKey = ("agents", "value_target")
        can_act: NestedKey = ("agents", "can_act")
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        traj_ids: NestedKey = ("collector", "traj_ids")

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    default_value_estimator = None
    _schedulable_buffers = frozenset({"entropy_coeff", "critic_coeff"})

    actor_network: TensorDictModule
    critic_network: TensorDictModule
    actor_network_params: TensorDictParams
    critic_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams
    target_critic_network_params: TensorDictParams

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        critic_network: TensorDictModule,
        *,
        gamma: float = 0.99,
        lmbda: float = 0.8,
        entropy_coeff: float = 0.0,
        critic_coeff: float = 1.0,
        loss_critic_type: str = "l2",
        delay_critic: bool = True,
        reduction: str = "mean",
        normalize_advantage: bool = False,
    ) -> None:
        for name, value in (("gamma", gamma), ("lmbda", lmbda)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"COMALoss expected {name} to be a float, got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"COMALoss expected {name} in [0, 1], got {value}")
        for name, value in (("entropy_coeff", entropy_coeff), ("critic_coeff", critic_coeff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"COMALoss expected {name} to be a float >= 0, got {value!r}")
        if loss_critic_type not in _LOSS_CRITIC_TYPES:
            raise ValueError(
                f"COMALoss expected loss_critic_type in {_LOSS_CRITIC_TYPES}, "
                f"got {loss_critic_type!r}"
            )
        if reduction not in ("mean", "sum"):
            raise ValueError(f"COMALoss expected reduction 'mean' or 'sum', got {reduction!r}")
        if not hasattr(actor_network, "get_dist"):
            raise TypeError(
                f"COMALoss expected a probabilistic actor with get_dist (e.g. a "
                f"ProbabilisticActor), got {type(actor_network).__name__}"
            )
        for name, net in (("actor_network", actor_network), ("critic_network", critic_network)):
            if not (hasattr(net, "in_keys") and hasattr(net, "out_keys")):
                raise TypeError(
                    f"COMALoss expected {name} to be a TensorDict module with in_keys and "
                    f"out_keys, got {type(net).__name__}"
                )
        super().__init__()
        self.convert_to_functional(actor_network, "actor_network")
        self.convert_to_functional(
            critic_network, "critic_network", create_target_params=delay_critic
        )
        self.delay_critic = delay_critic
        self.loss_critic_type = loss_critic_type
        self.normalize_advantage = bool(normalize_advantage)
        self.reduction = reduction
        self.gamma = float(gamma)
        self.lmbda = float(lmbda)
        self.entropy_bonus = entropy_coeff > 0
        device = next((p.device for p in self.parameters()), None)
        self.register_coeff_buffer("entropy_coeff", float(entropy_coeff), device=device)
        self.register_coeff_buffer("critic_coeff", float(critic_coeff), device=device)
        self._out_keys = None

        defaults: dict[str, NestedKey] = {}
        sample_keys = getattr(actor_network, "dist_sample_keys", None)
        if sample_keys is not None and len(sample_keys) == 1:
            defaults["action"] = sample_keys[0]
        if len(critic_network.out_keys) == 1:
            defaults["action_value"] = critic_network.out_keys[0]
        self.set_keys(**defaults)  # also checks the keys against the critic

    # ------------------------------------------------------------------ keys
    def set_keys(self, **kwargs) -> None:
        """Rename tensordict keys (see ``_AcceptedKeys``); checked against the critic.

        Examples:
            >>> import torch
            >>> from tensordict.nn import TensorDictModule
            >>> from torch.distributions import Categorical
            >>> from torchrl.modules import ProbabilisticActor
            >>> from mtmarl.modules.coma_critic import COMACritic
            >>> actor = ProbabilisticActor(
            ...     TensorDictModule(torch.nn.Linear(2, 2), in_keys=[("agents", "observation")],
            ...                      out_keys=[("agents", "logits")]),
            ...     in_keys={"logits": ("agents", "logits")}, out_keys=[("agents", "action")],
            ...     distribution_class=Categorical)
            >>> loss = COMALoss(actor, COMACritic(2, 2, state_dim=1), delay_critic=False)
            >>> loss.set_keys(reward=("agents", "reward"), can_act="acting")
            >>> loss.tensor_keys.reward, loss.tensor_keys.can_act
            (('agents', 'reward'), 'acting')
        """
        previous = {k: getattr(self.tensor_keys, k) for k in kwargs if hasattr(self.tensor_keys, k)}
        try:
            super().set_keys(**kwargs)
        except ValueError:
            for key, value in previous.items():
                setattr(self.tensor_keys, key, value)
            raise

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        """COMA has no value estimator: ``set_keys`` ends here; check the keys."""
        critic_in = [unravel_key(k) for k in self.critic_network.in_keys]
        critic_out = [unravel_key(k) for k in self.critic_network.out_keys]
        action = unravel_key(self.tensor_keys.action)
        action_value = unravel_key(self.tensor_keys.action_value)
        if action not in critic_in:
            raise ValueError(
                f"COMALoss expected the critic to read the action key {action!r}, but its "
                f"in_keys are {critic_in}; build the critic with that action key or set_keys "
                f"the loss to the critic's"
            )
        if action_value not in critic_out:
            raise ValueError(
                f"COMALoss expected the critic to write the action_value key {action_value!r}, "
                f"but its out_keys are {critic_out}"
            )
        self._out_keys = None

    def make_value_estimator(self, value_type: ValueEstimators = None, **hyperparams):
        """Not supported: COMA computes its own TD(lambda) targets from the Q-critic.

        Set ``gamma``/``lmbda`` at construction (or assign ``loss.gamma``,
        ``loss.lmbda``) instead.
        """
        raise NotImplementedError(
            "COMALoss computes TD(lambda) targets from its action-value critic itself; "
            "set gamma and lmbda on the loss (COMALoss(..., gamma=, lmbda=)) instead of "
            f"a value estimator (got {value_type!r})"
        )

    @property
    def in_keys(self) -> list[NestedKey]:
        """Required input keys (``can_act`` and ``traj_ids`` are optional extras)."""
        keys: list[NestedKey] = [
            unravel_key(self.tensor_keys.action),
            _next(self.tensor_keys.reward),
            _next(self.tensor_keys.done),
            _next(self.tensor_keys.terminated),
        ]
        action = unravel_key(self.tensor_keys.action)
        for key in (*self.actor_network.in_keys, *self.critic_network.in_keys):
            keys.append(unravel_key(key))
            if unravel_key(key) != action:
                keys.append(_next(key))
        return list(dict.fromkeys(keys))

    @property
    def out_keys(self) -> list[str]:
        """Keys of the output TensorDict."""
        if self._out_keys is None:
            keys = ["loss_objective", "loss_critic"]
            if self.entropy_bonus:
                keys.append("loss_entropy")
            keys += [
                "entropy",
                "advantage",
                "action_value",
                "value_target",
                "critic_td_error",
                "explained_variance",
            ]
            self._out_keys = keys
        return self._out_keys

    @out_keys.setter
    def out_keys(self, value: list[str]) -> None:
        self._out_keys = value

    # --------------------------------------------------------------- helpers
    def _require(self, td: TensorDictBase, keys, what: str) -> None:
        missing = [k for k in keys if unravel_key(k) not in td.keys(True, True)]
        if missing:
            raise KeyError(
                f"COMALoss expected {what} {missing} in the input tensordict, but they are "
                f"missing (it has {sorted(map(str, td.keys(True, True)))})"
            )

    def _action_values(
        self, td: TensorDictBase, params: TensorDictBase, action: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the critic with ``params`` (optionally on other actions): ``(*B, N, A)``."""
        needed = self.critic_network.in_keys
        if action is not None:  # the action is supplied: only the rest must be in td
            taken = unravel_key(self.tensor_keys.action)
            needed = [k for k in needed if unravel_key(k) != taken]
        self._require(td, needed, "the critic's inputs")
        sub = td.select(*self.critic_network.in_keys, strict=False)
        if action is not None:
            sub.set(self.tensor_keys.action, action)
        with params.to_module(self.critic_network):
            out = self.critic_network(sub)
        return out.get(self.tensor_keys.action_value)

    def _policy(self, td: TensorDictBase):
        self._require(td, self.actor_network.in_keys, "the actor's inputs")
        sub = td.select(*self.actor_network.in_keys, strict=False).copy()
        with self.actor_network_params.to_module(self.actor_network):
            dist = self.actor_network.get_dist(sub)
        if not hasattr(dist, "probs"):
            raise TypeError(
                f"COMALoss expected a Categorical / MaskedCategorical policy with probs, got "
                f"{type(dist).__name__}"
            )
        return dist

    def _actions(self, td: TensorDictBase) -> torch.Tensor:
        self._require(td, [self.tensor_keys.action], "the taken actions")
        action = td.get(self.tensor_keys.action)
        if action.ndim != td.batch_dims + 1 or action.is_floating_point():
            raise ValueError(
                f"COMALoss expected integer actions of shape (*batch, n_agents) = "
                f"({', '.join(map(str, td.batch_size))}, N) at {self.tensor_keys.action!r}, got "
                f"{tuple(action.shape)} {action.dtype}"
            )
        if action.requires_grad:
            raise RuntimeError(f"the stored action {self.tensor_keys.action!r} requires grad")
        return action.long()

    @staticmethod
    def _root_flag(x: torch.Tensor, batch: torch.Size, name: NestedKey) -> torch.Tensor:
        if x.shape == (*batch, 1):
            x = x.squeeze(-1)
        if x.shape != batch:
            raise ValueError(
                f"COMALoss expected {name!r} of shape {(*batch, 1)} (root flag), "
                f"got {tuple(x.shape)}"
            )
        return x.bool()

    @staticmethod
    def _per_agent(x: torch.Tensor, batch: torch.Size, n: int, name: NestedKey) -> torch.Tensor:
        if x.shape in ((*batch, 1), (*batch, n)):
            return x.expand(*batch, n)
        if x.shape == (*batch, n, 1):
            return x.squeeze(-1)
        if x.shape == batch:
            return x.unsqueeze(-1).expand(*batch, n)
        raise ValueError(
            f"COMALoss expected {name!r} of shape {(*batch, 1)} (team) or {(*batch, n, 1)} "
            f"(per agent), got {tuple(x.shape)}"
        )

    def _valid_mask(self, td: TensorDictBase, like: torch.Tensor) -> torch.Tensor | None:
        """AND of the torchrl validity masks found in ``td`` (``loss_mask_key``)."""
        mask = None
        for key in self._loss_mask_keys():
            m = td.get(key, None)
            if m is not None:
                m = self._expand_loss_mask(m.bool(), like)
                mask = m if mask is None else mask & m
        return mask

    @staticmethod
    def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return x.mean()
        return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp_min(1)

    # --------------------------------------------------------------- targets
    def _value_target(
        self, td: TensorDictBase, q_detached: torch.Tensor | None = None
    ) -> torch.Tensor:
        """TD(lambda) targets ``(*E, T, N)`` (no grad); see the class docstring."""
        if td.batch_dims < 1:
            raise ValueError(
                "COMALoss expected a batch of trajectories with time as the last batch dim "
                f"([T] or [E, T]), got batch_size {tuple(td.batch_size)}"
            )
        batch = td.batch_size
        action = self._actions(td)
        n = action.shape[-1]
        self._require(
            td,
            [
                _next(self.tensor_keys.reward),
                _next(self.tensor_keys.done),
                _next(self.tensor_keys.terminated),
            ],
            "reward/done/terminated",
        )
        reward = self._per_agent(
            td.get(_next(self.tensor_keys.reward)), batch, n, _next(self.tensor_keys.reward)
        )
        done = self._root_flag(td.get(_next(self.tensor_keys.done)), batch, "done")
        terminated = self._root_flag(
            td.get(_next(self.tensor_keys.terminated)), batch, "terminated"
        )
        boundary = done.clone()
        boundary[..., -1] = True
        traj_ids = td.get(self.tensor_keys.traj_ids, None)
        if traj_ids is not None:
            if traj_ids.shape == (*batch, 1):
                traj_ids = traj_ids.squeeze(-1)
            if traj_ids.shape != batch:
                raise ValueError(
                    f"COMALoss expected {self.tensor_keys.traj_ids!r} of shape {tuple(batch)}, "
                    f"got {tuple(traj_ids.shape)}"
                )
            boundary[..., :-1] |= traj_ids[..., 1:] != traj_ids[..., :-1]
        bootstrap = boundary & ~terminated

        if q_detached is None or self.delay_critic:
            q_target = self._action_values(td, self.target_critic_network_params)
        else:
            q_target = q_detached
        q_taken = q_target.gather(-1, action.unsqueeze(-1)).squeeze(-1)  # (*E, T, N)
        next_value = torch.zeros_like(q_taken)
        next_value[..., :-1, :] = q_taken[..., 1:, :]
        if bool(bootstrap.any()):
            next_td = td.get("next")
            dist = self._policy(next_td)
            next_action = dist.sample()
            q_next = self._action_values(next_td, self.target_critic_network_params, next_action)
            v_next = (dist.probs * q_next).sum(-1)
            next_value = torch.where(bootstrap.unsqueeze(-1), v_next, next_value)
        return _td_lambda_return(
            reward.to(next_value.dtype),
            next_value,
            boundary.unsqueeze(-1),
            terminated.unsqueeze(-1),
            gamma=self.gamma,
            lmbda=self.lmbda,
        )

    @torch.no_grad()
    def compute_value_target(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the critic's TD(lambda) targets into ``tensordict`` and return it.

        Call it on whole trajectories (``[E, T]`` or ``[T]``); the result, at
        ``tensor_keys.value_target`` ``(*E, T, N, 1)``, survives shuffling, so
        minibatches of single steps can then be fed to ``forward``.

        Args:
            tensordict (TensorDictBase): the batch, laid out as in the class
                docstring.

        Returns:
            TensorDictBase: ``tensordict``, updated in place.

        Examples:
            >>> # see COMALoss; with gamma=0 the target is the reward itself
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from tensordict.nn import TensorDictModule
            >>> from torch.distributions import Categorical
            >>> from torchrl.modules import ProbabilisticActor
            >>> from mtmarl.modules.coma_critic import COMACritic
            >>> actor = ProbabilisticActor(
            ...     TensorDictModule(torch.nn.Linear(2, 2), in_keys=[("agents", "observation")],
            ...                      out_keys=[("agents", "logits")]),
            ...     in_keys={"logits": ("agents", "logits")}, out_keys=[("agents", "action")],
            ...     distribution_class=Categorical)
            >>> loss = COMALoss(actor, COMACritic(3, 2, state_dim=1), gamma=0.0, delay_critic=False)
            >>> def step(*b):
            ...     return {"state": torch.randn(*b, 1), "done": torch.zeros(*b, 1, dtype=torch.bool),
            ...             "terminated": torch.zeros(*b, 1, dtype=torch.bool),
            ...             "agents": TensorDict({"observation": torch.randn(*b, 3, 2)}, [*b, 3])}
            >>> td = TensorDict({**step(6), "next": {**step(6), "reward": torch.randn(6, 1)}}, [6])
            >>> td["agents", "action"] = torch.randint(2, (6, 3))
            >>> y = loss.compute_value_target(td)["agents", "value_target"]
            >>> y.shape, torch.allclose(y, td["next", "reward"].unsqueeze(-1).expand(6, 3, 1))
            (torch.Size([6, 3, 1]), True)
        """
        with set_recurrent_mode(True), set_exploration_type(self.deterministic_sampling_mode):
            target = self._value_target(tensordict)
        tensordict.set(self.tensor_keys.value_target, target.unsqueeze(-1))
        return tensordict

    # --------------------------------------------------------------- forward
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the COMA losses on a batch of trajectories (see the class docstring).

        Args:
            tensordict (TensorDictBase): batch ``[E, T]`` or ``[T]`` (or any
                batch if ``tensor_keys.value_target`` is already present).

        Returns:
            TensorDictBase: scalar losses and diagnostics, ``batch_size=[]``.
        """
        td = tensordict.clone(False)
        action = self._actions(td)
        batch, n = td.batch_size, action.shape[-1]

        q = self._action_values(td, self.critic_network_params)  # (*B, N, A)
        if q.shape[:-1] != (*batch, n):
            raise ValueError(
                f"COMALoss expected the critic's {self.tensor_keys.action_value!r} of shape "
                f"{(*batch, n, 'A')}, got {tuple(q.shape)}"
            )
        q_taken = q.gather(-1, action.unsqueeze(-1)).squeeze(-1)  # (*B, N)

        target = td.get(self.tensor_keys.value_target, None)
        if target is None:
            with torch.no_grad():
                target = self._value_target(td, q.detach())
        else:
            if target.shape == (*batch, n, 1):
                target = target.squeeze(-1)
            if target.shape != (*batch, n):
                raise ValueError(
                    f"COMALoss expected {self.tensor_keys.value_target!r} of shape "
                    f"{(*batch, n, 1)}, got {tuple(target.shape)}"
                )
            target = target.detach()

        dist = self._policy(td)
        probs = dist.probs
        if probs.shape != q.shape:
            raise ValueError(
                f"COMALoss expected the policy's probs to match the critic's action values "
                f"{tuple(q.shape)} (*batch, N, A), got {tuple(probs.shape)}"
            )
        log_prob = dist.log_prob(action)  # (*B, N)
        with torch.no_grad():
            q_d = q.detach()
            baseline = (probs.detach() * q_d).sum(-1)
            advantage = q_d.gather(-1, action.unsqueeze(-1)).squeeze(-1) - baseline

        valid = self._valid_mask(td, q_taken)
        can_act = td.get(self.tensor_keys.can_act, None)
        actor_mask = valid
        if can_act is not None:
            if can_act.shape == (*batch, n, 1):
                can_act = can_act.squeeze(-1)
            if can_act.shape != (*batch, n):
                raise ValueError(
                    f"COMALoss expected {self.tensor_keys.can_act!r} of shape {(*batch, n)}, "
                    f"got {tuple(can_act.shape)}"
                )
            can_act = can_act.bool()
            actor_mask = can_act if valid is None else valid & can_act

        if self.normalize_advantage:
            with torch.no_grad():
                mean = self._masked_mean(advantage, actor_mask)
                var = self._masked_mean((advantage - mean) ** 2, actor_mask)
                advantage = (advantage - mean) / var.sqrt().clamp_min(1e-6)
        loss_objective = self._reduce_loss(-(advantage * log_prob), mask=actor_mask)
        loss_critic = self._reduce_loss(
            distance_loss(q_taken, target, loss_function=self.loss_critic_type), mask=valid
        )
        entropy = dist.entropy()
        out = TensorDict(
            {
                "loss_objective": loss_objective,
                "loss_critic": self.critic_coeff * loss_critic,
            },
            batch_size=[],
        )
        if self.entropy_bonus:
            out.set(
                "loss_entropy", -self.entropy_coeff * self._reduce_loss(entropy, mask=actor_mask)
            )
        with torch.no_grad():
            error = target - q_taken.detach()
            mean_err = self._masked_mean(error, valid)
            mean_y = self._masked_mean(target, valid)
            var_res = self._masked_mean((error - mean_err) ** 2, valid)
            var_y = self._masked_mean((target - mean_y) ** 2, valid)
            ev = torch.where(
                var_y > 1e-12, 1 - var_res / var_y.clamp_min(1e-12), torch.zeros_like(var_y)
            )
            out.update(
                {
                    "entropy": self._masked_mean(entropy.detach(), actor_mask),
                    "advantage": self._masked_mean(advantage, actor_mask),
                    "action_value": self._masked_mean(q_taken.detach(), valid),
                    "value_target": mean_y,
                    "critic_td_error": self._masked_mean(error.abs(), valid),
                    "explained_variance": ev,
                }
            )
        return out
