"""Continuous-action actors for the seed-004 variants (basic, recurrent, onehot, phasic).

:func:`make_continuous_actor` is the continuous counterpart of
:func:`~mtmarl.modules.make_actor`: the same parameter-shared networks with a one-hot agent
id (:class:`~mtmarl.modules.SharedAgentNet`) output ``2 A`` features per agent, which
:class:`tensordict.nn.NormalParamExtractor` splits into ``loc`` and a positive ``scale``
``(*B, N, A)``; the distribution is :class:`~mtmarl.modules.MaskedTanhNormal` bounded by
the action spec's ``low``/``high``. With ``can_act_key`` (an
:class:`~mtmarl.transforms.ActionFrequencyMask` in the env) the log-probability and the
entropy are 0 where an agent may not act, so torchrl's ``ClipPPOLoss`` / ``MAPPOLoss``
ignore its forced steps unchanged.

============  =====================================================================
``basic``     shared MLP on observation + id.
``onehot``    the ``basic`` network on observations already augmented with the one-hot
              phase (``PhaseEncoding(mode="onehot")``: ``observation_dim`` is ``F + L``).
``phasic``    shared :class:`~mtmarl.nn.PhaseMLP` reading root ``"phase"`` ``(*B, 1)``, or,
              with ``pfnn_period=P``, ``(t mod P) / P`` from root ``"step_count"``.
``recurrent`` ``Linear -> MultiAgentGRU -> MLP`` as in
              :func:`~mtmarl.modules.make_recurrent_actor` (needs ``InitTracker`` and the
              module's primer in the env; losses run it in recurrent mode).
============  =====================================================================

Keys (defaults). Per-agent entries live under ``group`` (torchrl's multi-agent convention):
``"agents"`` by default, ``group="agent"`` for a PettingZoo env wrapped by torchrl with its
default grouping; root entries stay root.

* read: ``(group, "observation")`` ``(*B, N, F)``; ``(group, "can_act")`` ``(*B, N)``
  bool; root ``"phase"`` ``(*B, 1)`` float or ``"step_count"`` ``(*B, 1)`` int64 (phasic);
  root ``"is_init"`` ``(*B, 1)`` and ``(group, "rnn_hidden_actor")`` ``(*B, N, H)``
  (recurrent);
* written: ``(group, "params")`` ``(*B, N, 2 A)``, ``(group, "loc" | "scale")``
  ``(*B, N, A)``, ``(group, "action")``
  ``(*B, N, A)`` in ``[low, high]``, ``(group, "action_log_prob")`` ``(*B, N)``; recurrent
  also ``(group, "rnn_output_actor")`` and ``("next", group, "rnn_hidden_actor")``.

The network's entries (``params``, ``loc``, ``scale`` and the recurrent ``rnn_hidden_actor``
/ ``rnn_output_actor``) sit next to the action: under ``action_key`` without its last
element, which is ``group`` unless ``action_key`` is passed explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torchrl.data import Bounded, Composite
from torchrl.modules import ProbabilisticActor

from mtmarl.modules.agent_id import SharedAgentNet
from mtmarl.modules.categorical import _ACTION, _LOG_PROB, _check_group, _in_group, _InGroup
from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal
from mtmarl.modules.variants import (
    _OBS,
    _activation,
    _check_variant,
    _mlp,
    _num_cells,
    _phase_net,
    _positive_int,
    _recurrent_body,
    _variant_options,
)

__all__ = ["make_continuous_actor"]

_WHO = "make_continuous_actor"
_CAN_ACT = _InGroup("can_act")


def _bounds(
    action_spec: Bounded | Composite | None,
    low: torch.Tensor | float | None,
    high: torch.Tensor | float | None,
    *,
    n_agents: int,
    action_dim: int,
    action_key: NestedKey,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` broadcastable to ``(N, A)``, from the spec or the given bounds."""
    if action_spec is not None:
        if low is not None or high is not None:
            raise ValueError(
                f"{_WHO} expected either action_spec or low/high, got both "
                f"(low={low!r}, high={high!r})"
            )
        if isinstance(action_spec, Composite):
            if action_key not in action_spec.keys(True, True):
                raise ValueError(
                    f"{_WHO} expected the Composite action spec to hold the action at "
                    f"{action_key!r}, its leaves are {list(action_spec.keys(True, True))}"
                )
            spec = action_spec[action_key]
        else:
            spec = action_spec
        if not isinstance(spec, Bounded):
            raise TypeError(
                f"{_WHO} expected a Bounded action spec (or a Composite holding one at "
                f"{action_key!r}), got {type(spec).__name__}"
            )
        if tuple(spec.shape[-2:]) != (n_agents, action_dim):
            raise ValueError(
                f"{_WHO} expected an action spec of shape (*E, {n_agents}, {action_dim}) "
                f"(n_agents, action_dim), got {tuple(spec.shape)}"
            )
        bounds = []
        for name, value in (("low", spec.space.low), ("high", spec.space.high)):
            per_env = value.reshape(-1, n_agents, action_dim)
            if not bool((per_env == per_env[:1]).all()):
                raise ValueError(
                    f"{_WHO} expected the action's {name} bound to be the same in every env "
                    f"of the spec's batch {tuple(value.shape[:-2])}, got {value}"
                )
            bounds.append(per_env[0].clone())
        low_t, high_t = bounds
    else:
        low_t = torch.as_tensor(-1.0 if low is None else low, dtype=torch.get_default_dtype())
        high_t = torch.as_tensor(1.0 if high is None else high, dtype=torch.get_default_dtype())
        for name, value in (("low", low_t), ("high", high_t)):
            try:
                ok = torch.broadcast_shapes(value.shape, (n_agents, action_dim)) == (
                    n_agents,
                    action_dim,
                )
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{_WHO} expected {name} broadcastable to (n_agents, action_dim) = "
                    f"({n_agents}, {action_dim}), got shape {tuple(value.shape)}"
                )
    if not bool((high_t > low_t).all()):
        raise ValueError(f"{_WHO} expected high > low everywhere, got low={low_t}, high={high_t}")
    return low_t, high_t


def make_continuous_actor(
    variant: str,
    *,
    n_agents: int,
    observation_dim: int,
    action_dim: int,
    action_spec: Bounded | Composite | None = None,
    low: torch.Tensor | Number | None = None,
    high: torch.Tensor | Number | None = None,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    pfnn_period: int | None = None,
    n_control_points: int | None = None,
    hidden_size: int | None = None,
    group: str = "agents",
    can_act_key: NestedKey | None = _CAN_ACT,
    observation_key: NestedKey = _OBS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
    phase_key: NestedKey = "phase",
    step_count_key: NestedKey = "step_count",
) -> ProbabilisticActor:
    """Build a parameter-shared tanh-normal actor of a seed-004 variant.

    The network writes ``2 A`` features per agent, split by ``NormalParamExtractor`` into
    ``loc`` and ``scale`` (``biased_softplus_1.0``) next to the action; the distribution is
    :class:`~mtmarl.modules.MaskedTanhNormal` fed with ``can_act_key`` (plain
    tanh-normal behaviour if ``None``). Deterministic mode (the default outside a
    collector, ``ExplorationType.DETERMINISTIC``) returns
    ``low + (high - low) (tanh(loc) + 1) / 2``.

    Args:
        variant (str): one of ``"basic"``, ``"recurrent"``, ``"onehot"``, ``"phasic"``.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        observation_dim (int): per-agent observation features ``F`` (``onehot``: including
            the ``L`` phase features).
        action_dim (int): continuous action dims per agent ``A``.
        action_spec (Bounded | Composite, optional): the ``(*E, N, A)`` bounded action spec
            or a composite holding it at ``action_key`` (e.g. ``env.full_action_spec``);
            its bounds must not vary across envs. Exclusive with ``low``/``high``.
        low (torch.Tensor | float, optional): lower bound broadcastable to ``(N, A)``.
            Defaults to -1 when no spec is given.
        high (torch.Tensor | float, optional): upper bound broadcastable to ``(N, A)``.
            Defaults to 1 when no spec is given.
        num_cells (Sequence[int]): hidden layer sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): hidden activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        pfnn_period (int, optional): ``phasic`` only: PFNN period ``P`` (phase from
            ``step_count_key``). Defaults to ``None`` (read ``phase_key``).
        n_control_points (int, optional): ``phasic`` only: spline control points (>= 4).
            Defaults to ``None`` (4).
        hidden_size (int, optional): ``recurrent`` only: GRU hidden size. Defaults to
            ``None`` (64).
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper). Defaults to ``"agents"``.
        can_act_key (NestedKey | None): ``(*B, N)`` bool, ``True`` where an agent chooses
            its action; ``None`` for no mask. Defaults to ``(group, "can_act")``.
        observation_key (NestedKey): defaults to ``(group, "observation")``.
        action_key (NestedKey): defaults to ``(group, "action")``.
        log_prob_key (NestedKey): defaults to ``(group, "action_log_prob")``.
        phase_key (NestedKey): ``phasic`` phase ``(*B, 1)``. Defaults to ``"phase"``.
        step_count_key (NestedKey): ``phasic`` step count ``(*B, 1)``. Defaults to
            ``"step_count"``.

    Returns:
        ProbabilisticActor: ``return_log_prob=True``; in_keys as in the module docstring;
        writes ``(*prefix, "params")`` ``(*B, N, 2 A)``, ``(*prefix, "loc" | "scale")``
        ``(*B, N, A)``, ``action_key`` and ``log_prob_key``, where ``prefix`` is
        ``action_key`` without its last element (``(group,)`` by default); the
        ``recurrent`` variant also reads ``(*prefix, "rnn_hidden_actor")`` and writes
        ``(*prefix, "rnn_output_actor")`` and ``("next", *prefix, "rnn_hidden_actor")``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> actor = make_continuous_actor("phasic", n_agents=3, observation_dim=5,
        ...     action_dim=2, low=-2.0, high=2.0, num_cells=(16,))
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(4, 3, 5),
        ...     "can_act": torch.tensor([True, False, True]).expand(4, 3)}, [4, 3]),
        ...     "phase": torch.rand(4, 1)}, [4])
        >>> td = actor(td)
        >>> td["agents", "action"].shape, td["agents", "action_log_prob"].shape
        (torch.Size([4, 3, 2]), torch.Size([4, 3]))
        >>> td["agents", "action_log_prob"][:, 1].abs().max().item()   # agent 1 is forced
        0.0
        >>> bool(td["agents", "action"].abs().max() < 2)
        True
        >>> make_continuous_actor("basic", n_agents=3, observation_dim=5, action_dim=2,
        ...     group="agent").in_keys                      # torchrl's PettingZoo grouping
        [('agent', 'observation'), ('agent', 'can_act')]
    """
    variant = _check_variant(variant, _WHO)
    group = _check_group(group, _WHO)
    can_act_key, observation_key, action_key, log_prob_key = (
        _in_group(k, group) for k in (can_act_key, observation_key, action_key, log_prob_key)
    )
    options = _variant_options(
        _WHO,
        variant,
        pfnn_period=pfnn_period,
        n_control_points=n_control_points,
        hidden_size=hidden_size,
    )
    n_agents = _positive_int(n_agents, "n_agents", _WHO)
    observation_dim = _positive_int(observation_dim, "observation_dim", _WHO)
    action_dim = _positive_int(action_dim, "action_dim", _WHO)
    cells, act = _num_cells(num_cells, _WHO), _activation(activation, _WHO)
    observation_key, action_key = unravel_key(observation_key), unravel_key(action_key)
    log_prob_key = unravel_key(log_prob_key)
    low_t, high_t = _bounds(
        action_spec,
        low,
        high,
        n_agents=n_agents,
        action_dim=action_dim,
        action_key=action_key,
    )
    prefix = action_key[:-1] if isinstance(action_key, tuple) else ()
    params_key: NestedKey = unravel_key((*prefix, "params"))
    loc_key: NestedKey = unravel_key((*prefix, "loc"))
    scale_key: NestedKey = unravel_key((*prefix, "scale"))
    out_dim = 2 * action_dim

    body: TensorDictModule | TensorDictSequential
    if variant in ("basic", "onehot"):
        net = SharedAgentNet(
            _mlp(observation_dim + (n_agents if agent_id else 0), out_dim, cells, act),
            n_agents=n_agents,
            agent_id=agent_id,
        )
        body = TensorDictModule(net, in_keys=[observation_key], out_keys=[params_key])
    elif variant == "phasic":
        net, phase_in = _phase_net(
            _WHO,
            observation_dim,
            out_dim,
            n_agents=n_agents,
            num_cells=cells,
            activation=act,
            agent_id=agent_id,
            shared_input=False,
            pfnn_period=options.get("pfnn_period"),
            n_control_points=options.get("n_control_points", 4),
            phase_key=phase_key,
            step_count_key=step_count_key,
        )
        body = TensorDictModule(net, in_keys=[observation_key, phase_in], out_keys=[params_key])
    else:  # recurrent
        body = _recurrent_body(
            _WHO,
            observation_dim,
            out_dim,
            n_agents=n_agents,
            num_cells=cells,
            activation=act,
            agent_id=agent_id,
            shared_input=False,
            hidden_size=options.get("hidden_size", 64),
            in_key=observation_key,
            out_key=params_key,
            hidden_key=(*prefix, "rnn_hidden_actor"),
            rnn_output_key=(*prefix, "rnn_output_actor"),
            is_init_key="is_init",
        )
    extractor = TensorDictModule(
        NormalParamExtractor(), in_keys=[params_key], out_keys=[loc_key, scale_key]
    )
    dist_keys: dict[str, NestedKey] = {"loc": loc_key, "scale": scale_key}
    if can_act_key is not None:
        dist_keys["can_act"] = unravel_key(can_act_key)
    return ProbabilisticActor(
        TensorDictSequential(body, extractor),
        in_keys=dist_keys,
        out_keys=[action_key],
        distribution_class=MaskedTanhNormal,
        distribution_kwargs={"low": low_t, "high": high_t},
        return_log_prob=True,
        log_prob_key=log_prob_key,
    )
