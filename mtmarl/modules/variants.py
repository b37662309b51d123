"""The four actor/critic variants of seed 004 (basic, recurrent, onehot, phasic).

All are parameter-shared over agents with a one-hot agent id as an auxiliary input
(:class:`~mtmarl.modules.SharedAgentNet`), for discrete per-agent actions:

============  =====================================================================
``basic``     MLP actor and critic, time-unaware.
``recurrent`` GRU actor and critic over the episode history
              (:class:`~mtmarl.modules.MultiAgentGRU`: needs ``InitTracker`` and the
              modules' primers in the env; losses run it in recurrent mode).
``onehot``    MLP on observations (and state) already augmented with the one-hot phase by
              ``PhaseEncoding(mode="onehot")``: ``observation_dim``/``state_dim`` include
              the ``L`` phase features. The network is the ``basic`` one.
``phasic``    :class:`~mtmarl.nn.PhaseMLP` (PFNN) actor and critic. With
              ``pfnn_period=None`` the phase is root ``"phase"`` ``(*B, 1)``
              (``(t mod L) / L`` from ``PhaseEncoding(mode="phase")``, env period ``L``);
              with ``pfnn_period=P`` it is ``(t mod P) / P`` computed from root
              ``"step_count"`` ``(*B, 1)`` (``StepCounter``), the paper's
              "Phasic COMA (4)" when ``P != L``.
============  =====================================================================

:func:`make_actor` / :func:`make_critic` dispatch on the variant name to the per-variant
builders, which are public for composition. Custom networks: write logits with any
TensorDict module and wrap it with :func:`~mtmarl.modules.make_categorical_actor`.

Keys (defaults; every builder takes them as keyword arguments). Per-agent entries live
under the builder's ``group`` (torchrl's multi-agent convention): ``"agents"`` by default,
``group="agent"`` for a PettingZoo env wrapped by torchrl with its default grouping. An
explicitly passed key wins over the group; root entries stay root.

* read: ``(group, "observation")`` ``(*B, N, F)`` float; root ``"state"`` ``(*B, S)``
  float (centralised critics); root ``"phase"`` ``(*B, 1)`` float or ``"step_count"``
  ``(*B, 1)`` int64 (phasic); ``(group, "action_mask")`` ``(*B, N, n)`` bool (masked
  actors); root ``"is_init"`` ``(*B, 1)`` bool and ``(group, "rnn_hidden_actor" |
  "rnn_hidden_critic")`` ``(*B, N, H)`` (recurrent);
* written by actors: ``(group, "logits")`` ``(*B, N, n)``, ``(group, "action")``
  ``(*B, N)`` int64, ``(group, "action_log_prob")`` ``(*B, N)``; recurrent actors also
  ``(group, "rnn_output_actor")`` and ``("next", group, "rnn_hidden_actor")``;
* written by critics: ``(group, "state_value")`` ``(*B, N, 1)``; recurrent critics
  also ``(group, "rnn_output_critic")`` and ``("next", group, "rnn_hidden_critic")``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import MLP, ProbabilisticActor

from mtmarl._checks import positive_int as _positive_int
from mtmarl.modules.agent_id import SharedAgentNet
from mtmarl.modules.categorical import (
    _ACTION,
    _LOG_PROB,
    _LOGITS,
    _MASK,
    _check_group,
    _in_group,
    _InGroup,
    make_categorical_actor,
)
from mtmarl.modules.recurrent import MultiAgentGRU
from mtmarl.modules.step_phase import PhaseFromStepCount
from mtmarl.nn.phase import PhaseMLP

__all__ = [
    "VARIANTS",
    "make_actor",
    "make_basic_actor",
    "make_basic_critic",
    "make_critic",
    "make_onehot_actor",
    "make_onehot_critic",
    "make_phasic_actor",
    "make_phasic_critic",
    "make_recurrent_actor",
    "make_recurrent_critic",
]

#: The policy/critic variants of seed 004, in the paper's order.
VARIANTS: tuple[str, ...] = ("basic", "recurrent", "onehot", "phasic")

# Per-agent key defaults (with categorical's mask / logits / action / log-prob), resolved
# to ``(group, name)`` against each builder's ``group``.
_OBS = _InGroup("observation")
_VALUE = _InGroup("state_value")
_HIDDEN_ACTOR = _InGroup("rnn_hidden_actor")
_RNN_OUT_ACTOR = _InGroup("rnn_output_actor")
_HIDDEN_CRITIC = _InGroup("rnn_hidden_critic")
_RNN_OUT_CRITIC = _InGroup("rnn_output_critic")


# ---------------------------------------------------------------------------- validation
def _num_cells(num_cells: object, who: str) -> tuple[int, ...]:
    if isinstance(num_cells, int) or not isinstance(num_cells, Sequence):
        raise TypeError(
            f"{who} expected num_cells to be a sequence of positive ints, e.g. (64, 64), "
            f"got {num_cells!r}"
        )
    cells = tuple(num_cells)
    for c in cells:
        _positive_int(c, "every entry of num_cells", who)
    return cells


def _activation(activation: object, who: str) -> type[nn.Module]:
    if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
        raise TypeError(
            f"{who} expected activation to be an nn.Module class such as nn.ELU, got {activation!r}"
        )
    return activation


def _mlp(
    in_features: int,
    out_features: int,
    num_cells: tuple[int, ...],
    activation: type[nn.Module],
    *,
    activate_last_layer: bool = False,
) -> MLP:
    return MLP(
        in_features=in_features,
        out_features=out_features,
        num_cells=list(num_cells),
        activation_class=activation,
        activate_last_layer=activate_last_layer,
    )


def _critic_input(
    who: str,
    *,
    centralised: bool,
    state_dim: int | None,
    observation_dim: int | None,
    state_key: NestedKey,
    observation_key: NestedKey,
) -> tuple[int, NestedKey]:
    """``(input features, input key)`` of a critic; shared input iff centralised."""
    if centralised:
        if state_dim is None:
            raise ValueError(
                f"{who} with centralised=True reads the global state: expected state_dim, "
                f"got None (pass observation_dim with centralised=False for an IPPO critic)"
            )
        return _positive_int(state_dim, "state_dim", who), state_key
    if observation_dim is None:
        raise ValueError(
            f"{who} with centralised=False reads the agents' observations: expected "
            f"observation_dim, got None"
        )
    return _positive_int(observation_dim, "observation_dim", who), observation_key


# ---------------------------------------------------------------------------- basic / onehot
def make_basic_actor(
    *,
    n_agents: int,
    observation_dim: int,
    n_actions: int,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    observation_key: NestedKey = _OBS,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
) -> ProbabilisticActor:
    """The ``basic`` actor: a shared MLP on each agent's observation and one-hot id.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        observation_dim (int): per-agent observation features ``F``.
        n_actions (int): number of discrete actions ``n``.
        num_cells (Sequence[int]): hidden layer sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): hidden activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper). Defaults to ``"agents"``.
        action_mask_key (NestedKey or None): ``(*B, N, n)`` bool mask for a
            ``MaskedCategorical``; ``None`` for ``Categorical``. Defaults to
            ``(group, "action_mask")``.
        observation_key (NestedKey): ``(*B, N, F)`` input. Defaults to
            ``(group, "observation")``.
        logits_key (NestedKey): ``(*B, N, n)`` logits. Defaults to ``(group, "logits")``.
        action_key (NestedKey): ``(*B, N)`` int64 action. Defaults to ``(group, "action")``.
        log_prob_key (NestedKey): ``(*B, N)`` log-probability. Defaults to
            ``(group, "action_log_prob")``.

    Returns:
        ProbabilisticActor: in_keys ``[observation_key]`` (+ mask); writes ``logits_key``,
        ``action_key`` and ``log_prob_key``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> actor = make_basic_actor(n_agents=3, observation_dim=5, n_actions=4,
        ...                          action_mask_key=None)
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(8, 3, 5)},
        ...     [8, 3])}, [8])
        >>> actor(td)["agents", "logits"].shape
        torch.Size([8, 3, 4])
    """
    who = "make_basic_actor"
    group = _check_group(group, who)
    observation_key, logits_key = _in_group(observation_key, group), _in_group(logits_key, group)
    n_agents = _positive_int(n_agents, "n_agents", who)
    observation_dim = _positive_int(observation_dim, "observation_dim", who)
    n_actions = _positive_int(n_actions, "n_actions", who)
    cells, act = _num_cells(num_cells, who), _activation(activation, who)
    net = SharedAgentNet(
        _mlp(observation_dim + (n_agents if agent_id else 0), n_actions, cells, act),
        n_agents=n_agents,
        agent_id=agent_id,
    )
    logits = TensorDictModule(net, in_keys=[observation_key], out_keys=[logits_key])
    return make_categorical_actor(
        logits,
        group=group,
        action_mask_key=action_mask_key,
        logits_key=logits_key,
        action_key=action_key,
        log_prob_key=log_prob_key,
    )


def make_basic_critic(
    *,
    n_agents: int,
    state_dim: int | None = None,
    observation_dim: int | None = None,
    centralised: bool = True,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    group: str = "agents",
    state_key: NestedKey = "state",
    observation_key: NestedKey = _OBS,
    value_key: NestedKey = _VALUE,
) -> TensorDictModule:
    """The ``basic`` critic: a shared MLP giving one value per agent.

    Centralised (MAPPO): the global state ``(*B, S)`` is broadcast to the agents and the
    one-hot id appended. Decentralised (IPPO): each agent's observation ``(*B, N, F)`` plus id.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        state_dim (int, optional): global state features ``S`` (centralised).
        observation_dim (int, optional): per-agent observation features ``F``
            (``centralised=False``).
        centralised (bool): read the state rather than the observations. Defaults to ``True``.
        num_cells (Sequence[int]): hidden layer sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): hidden activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper). Defaults to ``"agents"``.
        state_key (NestedKey): root state entry. Defaults to ``"state"``.
        observation_key (NestedKey): observation entry. Defaults to ``(group, "observation")``.
        value_key (NestedKey): output ``(*B, N, 1)``. Defaults to ``(group, "state_value")``.

    Returns:
        TensorDictModule: in_keys ``[state_key]`` (or ``[observation_key]``), out_keys
        ``[value_key]``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = make_basic_critic(n_agents=3, state_dim=7)
        >>> critic(TensorDict({"state": torch.randn(8, 7)}, [8]))["agents", "state_value"].shape
        torch.Size([8, 3, 1])
    """
    who = "make_basic_critic"
    group = _check_group(group, who)
    observation_key, value_key = _in_group(observation_key, group), _in_group(value_key, group)
    n_agents = _positive_int(n_agents, "n_agents", who)
    in_dim, in_key = _critic_input(
        who,
        centralised=centralised,
        state_dim=state_dim,
        observation_dim=observation_dim,
        state_key=state_key,
        observation_key=observation_key,
    )
    cells, act = _num_cells(num_cells, who), _activation(activation, who)
    net = SharedAgentNet(
        _mlp(in_dim + (n_agents if agent_id else 0), 1, cells, act),
        n_agents=n_agents,
        agent_id=agent_id,
        shared_input=centralised,
    )
    return TensorDictModule(net, in_keys=[in_key], out_keys=[value_key])


def make_onehot_actor(
    *,
    n_agents: int,
    observation_dim: int,
    n_actions: int,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    observation_key: NestedKey = _OBS,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
) -> ProbabilisticActor:
    """The ``onehot`` (phase-aware) actor: the basic MLP on phase-augmented observations.

    The env stack appends the one-hot phase ``e_{t mod L}`` to every observation
    (``PhaseEncoding(mode="onehot")``), so ``observation_dim`` is ``F + L``; the network
    itself is :func:`make_basic_actor`'s. Arguments and outputs as there.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> L = 15                                        # env period: one-hot phase size
        >>> actor = make_onehot_actor(n_agents=2, observation_dim=5 + L, n_actions=3,
        ...                           action_mask_key=None)
        >>> obs = torch.cat([torch.randn(4, 2, 5), torch.eye(L)[:4, None].expand(4, 2, L)], -1)
        >>> td = actor(TensorDict({"agents": TensorDict({"observation": obs}, [4, 2])}, [4]))
        >>> td["agents", "action"].shape
        torch.Size([4, 2])
    """
    group = _check_group(group, "make_onehot_actor")
    return make_basic_actor(
        n_agents=n_agents,
        observation_dim=observation_dim,
        n_actions=n_actions,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        group=group,
        action_mask_key=action_mask_key,
        observation_key=observation_key,
        logits_key=logits_key,
        action_key=action_key,
        log_prob_key=log_prob_key,
    )


def make_onehot_critic(
    *,
    n_agents: int,
    state_dim: int | None = None,
    observation_dim: int | None = None,
    centralised: bool = True,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    group: str = "agents",
    state_key: NestedKey = "state",
    observation_key: NestedKey = _OBS,
    value_key: NestedKey = _VALUE,
) -> TensorDictModule:
    """The ``onehot`` critic: the basic critic on a phase-augmented state (or observations).

    ``PhaseEncoding(mode="onehot")`` appends the one-hot phase to ``"state"`` too, so
    ``state_dim`` is ``S + L``. Arguments and outputs as in :func:`make_basic_critic`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = make_onehot_critic(n_agents=2, state_dim=7 + 15)
        >>> td = critic(TensorDict({"state": torch.randn(4, 22)}, [4]))
        >>> td["agents", "state_value"].shape
        torch.Size([4, 2, 1])
    """
    group = _check_group(group, "make_onehot_critic")
    return make_basic_critic(
        n_agents=n_agents,
        state_dim=state_dim,
        observation_dim=observation_dim,
        centralised=centralised,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        group=group,
        state_key=state_key,
        observation_key=observation_key,
        value_key=value_key,
    )


# ---------------------------------------------------------------------------- phasic
def _phase_net(
    who: str,
    in_dim: int,
    out_dim: int,
    *,
    n_agents: int,
    num_cells: Sequence[int],
    activation: type[nn.Module],
    agent_id: bool,
    shared_input: bool,
    pfnn_period: int | None,
    n_control_points: int,
    phase_key: NestedKey,
    step_count_key: NestedKey,
) -> tuple[nn.Module, NestedKey]:
    """A shared PhaseMLP and the key of its phase input (``phase_key`` or ``step_count_key``)."""
    cells, act = _num_cells(num_cells, who), _activation(activation, who)
    if pfnn_period is not None:
        _positive_int(pfnn_period, "pfnn_period", who)
    if isinstance(n_control_points, bool) or not isinstance(n_control_points, int):
        raise TypeError(
            f"{who} expected n_control_points to be an int >= 4, got {n_control_points!r}"
        )
    if n_control_points < 4:
        raise ValueError(f"{who} expected n_control_points >= 4, got {n_control_points}")
    net: nn.Module = SharedAgentNet(
        PhaseMLP(
            in_dim + (n_agents if agent_id else 0),
            out_dim,
            num_cells=cells,
            activation=act,
            n_control_points=n_control_points,
        ),
        n_agents=n_agents,
        agent_id=agent_id,
        shared_input=shared_input,
    )
    if pfnn_period is None:
        return net, phase_key
    return PhaseFromStepCount(net, period=pfnn_period), step_count_key


def make_phasic_actor(
    *,
    n_agents: int,
    observation_dim: int,
    n_actions: int,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    pfnn_period: int | None = None,
    n_control_points: int = 4,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    observation_key: NestedKey = _OBS,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
    phase_key: NestedKey = "phase",
    step_count_key: NestedKey = "step_count",
) -> ProbabilisticActor:
    """The ``phasic`` actor: a shared PFNN (:class:`~mtmarl.nn.PhaseMLP`) on observation + id.

    The PFNN's weights follow the phase. Which phase:

    * ``pfnn_period=None``: root ``phase_key`` ``(*B, 1)`` float in ``[0, 1)``, i.e.
      ``(t mod L) / L`` as written by ``PhaseEncoding(mode="phase")`` for the env period
      ``L`` -- the PFNN period is ``L``;
    * ``pfnn_period=P``: ``(t mod P) / P`` from root ``step_count_key`` ``(*B, 1)`` int64
      (:class:`torchrl.envs.StepCounter`) -- any PFNN period, e.g. the paper's ``P = 4``
      with ``L = 15``. ``P = L`` gives the same phase as ``None``.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        observation_dim (int): per-agent observation features ``F``.
        n_actions (int): number of discrete actions ``n``.
        num_cells (Sequence[int]): hidden layer sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): hidden activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        pfnn_period (int, optional): PFNN period ``P`` in steps. Defaults to ``None`` (read
            ``phase_key``).
        n_control_points (int): spline control points (>= 4). Defaults to 4.
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper). Defaults to ``"agents"``.
        action_mask_key (NestedKey or None): mask for ``MaskedCategorical``. Defaults to
            ``(group, "action_mask")``.
        observation_key (NestedKey): defaults to ``(group, "observation")``.
        logits_key (NestedKey): defaults to ``(group, "logits")``.
        action_key (NestedKey): defaults to ``(group, "action")``.
        log_prob_key (NestedKey): defaults to ``(group, "action_log_prob")``.
        phase_key (NestedKey): root phase ``(*B, 1)``. Defaults to ``"phase"``.
        step_count_key (NestedKey): root step count ``(*B, 1)``. Defaults to
            ``"step_count"``.

    Returns:
        ProbabilisticActor: in_keys ``[observation_key, phase_key or step_count_key]`` (+
        mask); writes ``logits_key``, ``action_key`` and ``log_prob_key``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> actor = make_phasic_actor(n_agents=2, observation_dim=5, n_actions=3,
        ...                           action_mask_key=None, pfnn_period=4)
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(6, 2, 5)},
        ...     [6, 2]), "step_count": torch.arange(6).unsqueeze(-1)}, [6])
        >>> actor(td)["agents", "logits"].shape
        torch.Size([6, 2, 3])
        >>> "step_count" in actor.in_keys
        True
    """
    who = "make_phasic_actor"
    group = _check_group(group, who)
    observation_key, logits_key = _in_group(observation_key, group), _in_group(logits_key, group)
    n_agents = _positive_int(n_agents, "n_agents", who)
    observation_dim = _positive_int(observation_dim, "observation_dim", who)
    n_actions = _positive_int(n_actions, "n_actions", who)
    net, phase_in = _phase_net(
        who,
        observation_dim,
        n_actions,
        n_agents=n_agents,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        shared_input=False,
        pfnn_period=pfnn_period,
        n_control_points=n_control_points,
        phase_key=phase_key,
        step_count_key=step_count_key,
    )
    logits = TensorDictModule(net, in_keys=[observation_key, phase_in], out_keys=[logits_key])
    return make_categorical_actor(
        logits,
        group=group,
        action_mask_key=action_mask_key,
        logits_key=logits_key,
        action_key=action_key,
        log_prob_key=log_prob_key,
    )


def make_phasic_critic(
    *,
    n_agents: int,
    state_dim: int | None = None,
    observation_dim: int | None = None,
    centralised: bool = True,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    pfnn_period: int | None = None,
    n_control_points: int = 4,
    group: str = "agents",
    state_key: NestedKey = "state",
    observation_key: NestedKey = _OBS,
    phase_key: NestedKey = "phase",
    step_count_key: NestedKey = "step_count",
    value_key: NestedKey = _VALUE,
) -> TensorDictModule:
    """The ``phasic`` critic: a shared PFNN on the state (broadcast to agents) + id.

    Phase source (``pfnn_period``, ``n_control_points``, ``phase_key``,
    ``step_count_key``) as in :func:`make_phasic_actor`; the other arguments, inputs and
    outputs as in :func:`make_basic_critic` (``value_key`` defaults to
    ``(group, "state_value")``, ``observation_key`` to ``(group, "observation")``).

    Returns:
        TensorDictModule: in_keys ``[state_key or observation_key, phase_key or
        step_count_key]``, out_keys ``[value_key]`` ``(*B, N, 1)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = make_phasic_critic(n_agents=2, state_dim=7)
        >>> td = TensorDict({"state": torch.randn(4, 7), "phase": torch.rand(4, 1)}, [4])
        >>> critic(td)["agents", "state_value"].shape
        torch.Size([4, 2, 1])
    """
    who = "make_phasic_critic"
    group = _check_group(group, who)
    observation_key, value_key = _in_group(observation_key, group), _in_group(value_key, group)
    n_agents = _positive_int(n_agents, "n_agents", who)
    in_dim, in_key = _critic_input(
        who,
        centralised=centralised,
        state_dim=state_dim,
        observation_dim=observation_dim,
        state_key=state_key,
        observation_key=observation_key,
    )
    net, phase_in = _phase_net(
        who,
        in_dim,
        1,
        n_agents=n_agents,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        shared_input=centralised,
        pfnn_period=pfnn_period,
        n_control_points=n_control_points,
        phase_key=phase_key,
        step_count_key=step_count_key,
    )
    return TensorDictModule(net, in_keys=[in_key, phase_in], out_keys=[value_key])


# ---------------------------------------------------------------------------- recurrent
def _recurrent_body(
    who: str,
    in_dim: int,
    out_dim: int,
    *,
    n_agents: int,
    num_cells: Sequence[int],
    activation: type[nn.Module],
    agent_id: bool,
    shared_input: bool,
    hidden_size: int,
    in_key: NestedKey,
    out_key: NestedKey,
    hidden_key: NestedKey,
    rnn_output_key: NestedKey,
    is_init_key: NestedKey,
) -> TensorDictSequential:
    """``[encoder MLP -> GRU] -> head MLP``; the GRU sits after the first layer of num_cells."""
    cells, act = _num_cells(num_cells, who), _activation(activation, who)
    hidden_size = _positive_int(hidden_size, "hidden_size", who)
    id_dim = n_agents if agent_id else 0
    if cells:
        encoder_core: nn.Module = _mlp(in_dim + id_dim, cells[0], (), act, activate_last_layer=True)
        gru_in, head_cells = cells[0], cells[1:]
    else:
        encoder_core, gru_in, head_cells = nn.Identity(), in_dim + id_dim, ()
    encoder = SharedAgentNet(
        encoder_core, n_agents=n_agents, agent_id=agent_id, shared_input=shared_input
    )
    gru = MultiAgentGRU(
        gru_in,
        hidden_size,
        n_agents=n_agents,
        in_key=in_key,
        out_key=rnn_output_key,
        hidden_key=hidden_key,
        is_init_key=is_init_key,
        encoder=encoder,
    )
    head = TensorDictModule(
        _mlp(hidden_size, out_dim, head_cells, act), in_keys=[rnn_output_key], out_keys=[out_key]
    )
    return TensorDictSequential(gru, head)


def make_recurrent_actor(
    *,
    n_agents: int,
    observation_dim: int,
    n_actions: int,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    hidden_size: int = 64,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    observation_key: NestedKey = _OBS,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
    hidden_key: NestedKey = _HIDDEN_ACTOR,
    rnn_output_key: NestedKey = _RNN_OUT_ACTOR,
    is_init_key: NestedKey = "is_init",
) -> ProbabilisticActor:
    """The ``recurrent`` actor: ``Linear -> GRU -> MLP`` over each agent's history.

    Layout: the first entry of ``num_cells`` is a shared input layer on observation + id,
    then a :class:`~mtmarl.modules.MultiAgentGRU` of ``hidden_size``, then an MLP head with
    the remaining ``num_cells`` (``num_cells=()``: the GRU reads observation + id directly
    and a linear head follows). The env needs :class:`torchrl.envs.InitTracker` and the
    primer of the GRU (``env.append_transform(get_primers_from_module(actor))``); losses
    run it in recurrent mode on ``(*E, T)`` trajectories.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        observation_dim (int): per-agent observation features ``F``.
        n_actions (int): number of discrete actions ``n``.
        num_cells (Sequence[int]): feed-forward sizes around the GRU. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        hidden_size (int): GRU hidden size ``H``. Defaults to 64.
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper). Defaults to ``"agents"``.
        action_mask_key (NestedKey or None): mask for ``MaskedCategorical``. Defaults to
            ``(group, "action_mask")``.
        observation_key (NestedKey): defaults to ``(group, "observation")``.
        logits_key (NestedKey): defaults to ``(group, "logits")``.
        action_key (NestedKey): defaults to ``(group, "action")``.
        log_prob_key (NestedKey): defaults to ``(group, "action_log_prob")``.
        hidden_key (NestedKey): recurrent state ``(*B, N, H)``. Defaults to
            ``(group, "rnn_hidden_actor")``.
        rnn_output_key (NestedKey): GRU output ``(*B, N, H)``. Defaults to
            ``(group, "rnn_output_actor")``.
        is_init_key (NestedKey): root episode-start flags. Defaults to ``"is_init"``.

    Returns:
        ProbabilisticActor: in_keys ``[observation_key, hidden_key, is_init_key]`` (+ mask);
        writes ``logits_key``, ``action_key``, ``log_prob_key``, ``rnn_output_key`` and
        ``("next", *hidden_key)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> actor = make_recurrent_actor(n_agents=2, observation_dim=5, n_actions=3,
        ...                              action_mask_key=None, hidden_size=16)
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(4, 2, 5)},
        ...     [4, 2]), "is_init": torch.ones(4, 1, dtype=torch.bool)}, [4])
        >>> td = actor(td)
        >>> td["agents", "logits"].shape, td["next", "agents", "rnn_hidden_actor"].shape
        (torch.Size([4, 2, 3]), torch.Size([4, 2, 16]))
    """
    who = "make_recurrent_actor"
    group = _check_group(group, who)
    observation_key, logits_key, hidden_key, rnn_output_key = (
        _in_group(k, group) for k in (observation_key, logits_key, hidden_key, rnn_output_key)
    )
    n_agents = _positive_int(n_agents, "n_agents", who)
    observation_dim = _positive_int(observation_dim, "observation_dim", who)
    n_actions = _positive_int(n_actions, "n_actions", who)
    body = _recurrent_body(
        who,
        observation_dim,
        n_actions,
        n_agents=n_agents,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        shared_input=False,
        hidden_size=hidden_size,
        in_key=observation_key,
        out_key=logits_key,
        hidden_key=hidden_key,
        rnn_output_key=rnn_output_key,
        is_init_key=is_init_key,
    )
    return make_categorical_actor(
        body,
        group=group,
        action_mask_key=action_mask_key,
        logits_key=logits_key,
        action_key=action_key,
        log_prob_key=log_prob_key,
    )


def make_recurrent_critic(
    *,
    n_agents: int,
    state_dim: int | None = None,
    observation_dim: int | None = None,
    centralised: bool = True,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    hidden_size: int = 64,
    group: str = "agents",
    state_key: NestedKey = "state",
    observation_key: NestedKey = _OBS,
    value_key: NestedKey = _VALUE,
    hidden_key: NestedKey = _HIDDEN_CRITIC,
    rnn_output_key: NestedKey = _RNN_OUT_CRITIC,
    is_init_key: NestedKey = "is_init",
) -> TensorDictSequential:
    """The ``recurrent`` critic: ``Linear -> GRU -> MLP`` over the history of the state.

    Centralised: the state ``(*B, S)`` is broadcast to the agents and the id appended, so
    each agent has its own hidden state ``(*B, N, H)``; decentralised: observations + id.
    Layout and env requirements as in :func:`make_recurrent_actor`.

    The collector runs only the actor, so the stored critic state is the primer's zeros:
    compute values in recurrent mode over whole trajectories (``set_recurrent_mode(True)``,
    which also writes ``("next", *hidden_key)``, the state after each step, from which
    step mode on ``data["next"]`` gives the bootstrap values).

    Arguments as in :func:`make_basic_critic` and :func:`make_recurrent_actor`;
    ``hidden_key`` defaults to ``(group, "rnn_hidden_critic")`` and ``rnn_output_key`` to
    ``(group, "rnn_output_critic")``.

    Returns:
        TensorDictSequential: in_keys ``[state_key or observation_key, hidden_key,
        is_init_key]``, out_keys ``[rnn_output_key, ("next", *hidden_key), value_key]``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from mtmarl.modules import set_recurrent_mode
        >>> critic = make_recurrent_critic(n_agents=2, state_dim=7, hidden_size=16)
        >>> td = TensorDict({"state": torch.randn(3, 10, 7),                # (E, T, S)
        ...                  "is_init": torch.zeros(3, 10, 1, dtype=torch.bool)}, [3, 10])
        >>> with set_recurrent_mode(True):
        ...     critic(td)["agents", "state_value"].shape
        torch.Size([3, 10, 2, 1])
    """
    who = "make_recurrent_critic"
    group = _check_group(group, who)
    observation_key, value_key, hidden_key, rnn_output_key = (
        _in_group(k, group) for k in (observation_key, value_key, hidden_key, rnn_output_key)
    )
    n_agents = _positive_int(n_agents, "n_agents", who)
    in_dim, in_key = _critic_input(
        who,
        centralised=centralised,
        state_dim=state_dim,
        observation_dim=observation_dim,
        state_key=state_key,
        observation_key=observation_key,
    )
    return _recurrent_body(
        who,
        in_dim,
        1,
        n_agents=n_agents,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        shared_input=centralised,
        hidden_size=hidden_size,
        in_key=in_key,
        out_key=value_key,
        hidden_key=hidden_key,
        rnn_output_key=rnn_output_key,
        is_init_key=is_init_key,
    )


# ---------------------------------------------------------------------------- dispatch
def _check_variant(variant: object, who: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"{who} expected variant to be one of {list(VARIANTS)}, got {variant!r}")
    return variant  # type: ignore[return-value]


def _variant_options(
    who: str,
    variant: str,
    *,
    pfnn_period: int | None,
    n_control_points: int | None,
    hidden_size: int | None,
) -> dict[str, int | None]:
    """The variant-specific keyword arguments; any given to another variant is an error."""
    given = {
        "pfnn_period": (pfnn_period, "phasic"),
        "n_control_points": (n_control_points, "phasic"),
        "hidden_size": (hidden_size, "recurrent"),
    }
    options: dict[str, int | None] = {}
    for name, (value, owner) in given.items():
        if value is None:
            continue
        if owner != variant:
            raise ValueError(
                f"{who}: {name} applies to the {owner!r} variant only, got {name}={value!r} "
                f"with variant={variant!r}"
            )
        options[name] = value
    return options


_ACTORS = {
    "basic": make_basic_actor,
    "recurrent": make_recurrent_actor,
    "onehot": make_onehot_actor,
    "phasic": make_phasic_actor,
}
_CRITICS = {
    "basic": make_basic_critic,
    "recurrent": make_recurrent_critic,
    "onehot": make_onehot_critic,
    "phasic": make_phasic_critic,
}


def make_actor(
    variant: str,
    *,
    n_agents: int,
    observation_dim: int,
    n_actions: int,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    pfnn_period: int | None = None,
    n_control_points: int | None = None,
    hidden_size: int | None = None,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    observation_key: NestedKey = _OBS,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
    phase_key: NestedKey = "phase",
    step_count_key: NestedKey = "step_count",
) -> ProbabilisticActor:
    """Build the actor of a seed-004 variant (parameter-shared, one-hot agent id).

    Dispatches to :func:`make_basic_actor`, :func:`make_recurrent_actor`,
    :func:`make_onehot_actor` or :func:`make_phasic_actor`; see them for the keys.

    Args:
        variant (str): one of :data:`VARIANTS`: ``"basic"``, ``"recurrent"``,
            ``"onehot"``, ``"phasic"``.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        observation_dim (int): per-agent observation features ``F`` (for ``onehot``,
            including the ``L`` one-hot phase features).
        n_actions (int): number of discrete actions ``n``.
        num_cells (Sequence[int]): hidden sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        pfnn_period (int, optional): ``phasic`` only: PFNN period ``P``; ``None`` reads
            root ``"phase"`` (env period ``L``), an int reads root ``"step_count"`` and uses
            ``(t mod P) / P``. Defaults to ``None``.
        n_control_points (int, optional): ``phasic`` only: spline control points.
            Defaults to ``None`` (4).
        hidden_size (int, optional): ``recurrent`` only: GRU hidden size. Defaults to
            ``None`` (64).
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper); the ``recurrent`` hidden state is
            ``(group, "rnn_hidden_actor")``. Defaults to ``"agents"``.
        action_mask_key (NestedKey or None): ``(*B, N, n)`` bool mask ->
            ``MaskedCategorical``; ``None`` -> ``Categorical``. Defaults to
            ``(group, "action_mask")``.
        observation_key (NestedKey): defaults to ``(group, "observation")``.
        logits_key (NestedKey): defaults to ``(group, "logits")``.
        action_key (NestedKey): defaults to ``(group, "action")``.
        log_prob_key (NestedKey): defaults to ``(group, "action_log_prob")``.
        phase_key (NestedKey): ``phasic`` only (the others read no phase): root phase
            ``(*B, 1)``. Defaults to ``"phase"``.
        step_count_key (NestedKey): ``phasic`` only: root step count ``(*B, 1)``.
            Defaults to ``"step_count"``.

    Returns:
        ProbabilisticActor: writes ``logits_key`` ``(*B, N, n)``, ``action_key`` ``(*B, N)``
        int64 and ``log_prob_key`` ``(*B, N)``; deterministic mode takes the argmax.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> actors = {v: make_actor(v, n_agents=2, observation_dim=5, n_actions=3,
        ...                         action_mask_key=None) for v in VARIANTS}
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(4, 2, 5)},
        ...     [4, 2]), "phase": torch.rand(4, 1), "is_init": torch.ones(4, 1, dtype=bool)}, [4])
        >>> {v: tuple(a(td.clone())["agents", "action"].shape) for v, a in actors.items()}
        {'basic': (4, 2), 'recurrent': (4, 2), 'onehot': (4, 2), 'phasic': (4, 2)}
        >>> make_actor("basic", n_agents=2, observation_dim=5, n_actions=3,
        ...            group="agent").in_keys          # torchrl's PettingZoo grouping
        [('agent', 'observation'), ('agent', 'action_mask')]
    """
    who = "make_actor"
    variant = _check_variant(variant, who)
    group = _check_group(group, who)
    options = _variant_options(
        who,
        variant,
        pfnn_period=pfnn_period,
        n_control_points=n_control_points,
        hidden_size=hidden_size,
    )
    if variant == "phasic":
        options.update(phase_key=phase_key, step_count_key=step_count_key)
    return _ACTORS[variant](
        n_agents=n_agents,
        observation_dim=observation_dim,
        n_actions=n_actions,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        group=group,
        action_mask_key=action_mask_key,
        observation_key=observation_key,
        logits_key=logits_key,
        action_key=action_key,
        log_prob_key=log_prob_key,
        **options,
    )


def make_critic(
    variant: str,
    *,
    n_agents: int,
    state_dim: int | None = None,
    observation_dim: int | None = None,
    centralised: bool = True,
    num_cells: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ELU,
    agent_id: bool = True,
    pfnn_period: int | None = None,
    n_control_points: int | None = None,
    hidden_size: int | None = None,
    group: str = "agents",
    state_key: NestedKey = "state",
    observation_key: NestedKey = _OBS,
    value_key: NestedKey = _VALUE,
    phase_key: NestedKey = "phase",
    step_count_key: NestedKey = "step_count",
) -> TensorDictModuleBase:
    """Build the critic of a seed-004 variant: one value per agent at ``(group, "state_value")``.

    Centralised (MAPPO, default): reads root ``state_key`` ``(*B, S)``, broadcast to the
    agents with the one-hot id appended. ``centralised=False`` (IPPO): reads
    ``(group, "observation")`` ``(*B, N, F)``. Dispatches to :func:`make_basic_critic`,
    :func:`make_recurrent_critic`, :func:`make_onehot_critic` or :func:`make_phasic_critic`.

    Args:
        variant (str): one of :data:`VARIANTS`.

    Keyword Args:
        n_agents (int): number of agents ``N``.
        state_dim (int, optional): state features ``S`` (required when centralised; for
            ``onehot`` including the one-hot phase features).
        observation_dim (int, optional): observation features ``F`` (required when not).
        centralised (bool): defaults to ``True``.
        num_cells (Sequence[int]): hidden sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): activation. Defaults to ``nn.ELU``.
        agent_id (bool): append the one-hot agent id. Defaults to ``True``.
        pfnn_period (int, optional): ``phasic`` only, as in :func:`make_actor`.
        n_control_points (int, optional): ``phasic`` only. Defaults to ``None`` (4).
        hidden_size (int, optional): ``recurrent`` only. Defaults to ``None`` (64).
        group (str): the per-agent entry the default keys live under (``"agent"`` for
            torchrl's PettingZoo wrapper); the ``recurrent`` hidden state is
            ``(group, "rnn_hidden_critic")``. Defaults to ``"agents"``.
        state_key (NestedKey): root state ``(*B, S)`` (centralised). Defaults to
            ``"state"``.
        observation_key (NestedKey): ``(*B, N, F)`` (``centralised=False``). Defaults to
            ``(group, "observation")``.
        value_key (NestedKey): output ``(*B, N, 1)``. Defaults to ``(group, "state_value")``.
        phase_key (NestedKey): ``phasic`` only (the others read no phase): root phase
            ``(*B, 1)``. Defaults to ``"phase"``.
        step_count_key (NestedKey): ``phasic`` only: root step count ``(*B, 1)``.
            Defaults to ``"step_count"``.

    Returns:
        TensorDictModuleBase: writes ``value_key`` ``(*B, N, 1)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = make_critic("phasic", n_agents=3, state_dim=7, pfnn_period=4)
        >>> td = TensorDict({"state": torch.randn(5, 7),
        ...                  "step_count": torch.arange(5).unsqueeze(-1)}, [5])
        >>> critic(td)["agents", "state_value"].shape
        torch.Size([5, 3, 1])
        >>> make_critic("basic", n_agents=3, observation_dim=4, centralised=False).in_keys
        [('agents', 'observation')]
        >>> make_critic("basic", n_agents=3, observation_dim=4, centralised=False,
        ...             group="agent").out_keys
        [('agent', 'state_value')]
    """
    who = "make_critic"
    variant = _check_variant(variant, who)
    group = _check_group(group, who)
    options = _variant_options(
        who,
        variant,
        pfnn_period=pfnn_period,
        n_control_points=n_control_points,
        hidden_size=hidden_size,
    )
    if variant == "phasic":
        options.update(phase_key=phase_key, step_count_key=step_count_key)
    return _CRITICS[variant](
        n_agents=n_agents,
        state_dim=state_dim,
        observation_dim=observation_dim,
        centralised=centralised,
        num_cells=num_cells,
        activation=activation,
        agent_id=agent_id,
        group=group,
        state_key=state_key,
        observation_key=observation_key,
        value_key=value_key,
        **options,
    )
