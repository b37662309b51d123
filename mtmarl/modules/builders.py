"""Builders: the one place that turns a model choice into TensorDict modules, sized from specs.

A training pipeline (:class:`~mtmarl.training.Trainer`, or your own) describes what it wants
with three names and a few sizes, and asks this module for the modules:

* a **variant** (:class:`Variant`, :data:`VARIANTS`: ``basic`` / ``recurrent`` / ``onehot`` /
  ``phasic``, seed 004): which phase encoding the env stack needs, which networks, how
  minibatches are cut (whole trajectories for a recurrent variant);
* an **encoder** (:data:`ENCODERS`: ``mlp`` -- the heads read the flat observation -- or
  ``lstm`` -- MATPPO's :class:`~mtmarl.modules.ForecastEncoder`);
* a **critic** (:data:`CRITICS`: ``mlp`` on the global ``"state"`` (MAPPO), ``local`` on each
  agent's observation (IPPO), ``transformer`` over the agents (MATPPO), ``coma``'s
  counterfactual Q over the agent's own actions); :func:`register_critic` adds one.

Each encoder and critic entry declares the keys it reads (:meth:`CriticBuilder.reads`), so
:func:`check_model_inputs` can refuse, before any module is built, an env that lacks them,
with a message that names the missing keys and the ones the env has. The actor's kind is not
a choice but read from the env's action spec (:class:`EnvInfo`): discrete
(``Categorical``), continuous (``Bounded``) or hybrid (one of each in a ``Composite``).

Keys follow torchrl's multi-agent convention: per-agent entries under a group (default
``"agents"``; :class:`EnvInfo`'s ``group``), the global state at ``"state"``, the phase at
``"phase"`` (or ``"step_count"`` for a phasic network with its own period).

``model`` arguments: any object with the attributes of
:class:`~mtmarl.training.ModelConfig` (``num_cells``, ``hidden_size``, ``n_control_points``,
``pfnn_period``, ``feature_dim``, ``attention_*``, ``continuous_distribution``,
``init_scale``), so that this layer does not import the training layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs import EnvBase

from mtmarl._registry import Registry
from mtmarl.errors import ConfigError

__all__ = [
    # what the env offers
    "EnvInfo",
    # variants
    "VARIANT_REGISTRY",
    "Variant",
    "get_variant",
    # encoders and critics
    "CRITICS",
    "ENCODERS",
    "CriticBuilder",
    "EncoderBuilder",
    "register_critic",
    # building
    "build_actor",
    "build_critic",
    "check_model_inputs",
]

_ACTION_KINDS = ("discrete", "continuous", "hybrid")


# ---------------------------------------------------------------------------- the env
@dataclass(frozen=True)
class EnvInfo:
    """What the builders need to know of an env: its agent group, specs and action kind.

    Attributes:
        group (str): the per-agent group, e.g. ``"agents"`` (torchrl's ``VmasEnv``) or
            ``"agent"`` (its PettingZoo wrapper's default).
        n_agents (int): ``N``, the group's last batch dim.
        action_kind (str): ``"discrete"`` (``Categorical`` ``(*E, N)``), ``"continuous"``
            (float ``Bounded`` ``(*E, N, A)``) or ``"hybrid"`` (a ``Composite`` with one of
            each).
        action_spec: the spec at ``(group, "action")``.
        full_action_spec (Composite): the env's full action spec.
        observation_spec (Composite): the env's observation spec (after its transforms).
        reward_keys (tuple): the env's reward keys.
        n_actions (int or None): discrete choices ``n`` (discrete actions).
        action_dim (int or None): ``A`` (continuous actions).

    Examples:
        >>> from mtmarl.envs import make_movebox_env
        >>> info = EnvInfo.from_env(make_movebox_env("easy", num_envs=2))
        >>> info.group, info.n_agents, info.action_kind, info.n_actions
        ('agents', 2, 'discrete', 3)
        >>> info.key("observation"), info.has(info.key("action_mask"))
        (('agents', 'observation'), True)
    """

    group: str
    n_agents: int
    action_kind: str
    action_spec: Any
    full_action_spec: Composite
    observation_spec: Composite
    reward_keys: tuple
    n_actions: int | None = None
    action_dim: int | None = None

    @classmethod
    def from_env(cls, env: EnvBase, *, group: str = "agents") -> EnvInfo:
        """Read an env's specs.

        Args:
            env (EnvBase): the (transformed) env the modules will act in.

        Keyword Args:
            group (str): the per-agent group. Defaults to ``"agents"``.

        Raises:
            ConfigError: no action at ``(group, "action")``, or one that is neither
                discrete, continuous nor hybrid.
        """
        if not isinstance(group, str) or not group:
            raise ConfigError(f"EnvInfo expected group to be a non-empty str, got {group!r}")
        key = (group, "action")
        full = env.full_action_spec
        if key not in full.keys(True):
            raise ConfigError(
                f"the env has no per-agent action at {key}; its action keys are "
                f"{[k for k in full.keys(True, True)]} (pass the agent group the env uses)"
            )
        spec = full[key]
        n_actions = action_dim = None
        if isinstance(spec, Composite):
            kind, n_agents = "hybrid", spec.shape[-1]
        elif isinstance(spec, Categorical):
            kind, n_agents, n_actions = "discrete", spec.shape[-1], int(spec.n)
        elif isinstance(spec, Bounded) and spec.dtype.is_floating_point:
            kind = "continuous"
            n_agents, action_dim = spec.shape[-2:]
        else:
            raise ConfigError(
                f"the action at {key} must be Categorical (discrete), float Bounded "
                f"(continuous) or a Composite of one of each (hybrid), got {type(spec).__name__}"
            )
        return cls(
            group=group,
            n_agents=int(n_agents),
            action_kind=kind,
            action_spec=spec,
            full_action_spec=full,
            observation_spec=env.observation_spec,
            reward_keys=tuple(env.reward_keys),
            n_actions=n_actions,
            action_dim=None if action_dim is None else int(action_dim),
        )

    def key(self, name: str) -> tuple[str, str]:
        """The per-agent key ``(group, name)``."""
        return (self.group, name)

    def has(self, key: NestedKey) -> bool:
        """Whether the observation spec holds ``key``."""
        return key in self.observation_spec.keys(True, True)

    def dim(self, key: NestedKey) -> int:
        """The last dim of the observation entry ``key`` (e.g. ``F`` of ``(*B, N, F)``)."""
        return int(self.observation_spec[key].shape[-1])

    def action_mask_keys(self) -> list[NestedKey]:
        """The group's boolean action masks: ``(group, "action_mask")`` first, then every
        other ``(group, "<name>action_mask")`` entry (e.g. an ``ActionFrequencyMask``'s,
        written under another key when the env has a mask of its own)."""
        keys = [
            k
            for k in self.observation_spec.keys(True, True)
            if isinstance(k, tuple)
            and len(k) == 2
            and k[0] == self.group
            and k[1].endswith("action_mask")
            and self.observation_spec[k].dtype == torch.bool
        ]
        return sorted(keys, key=lambda k: (k != self.key("action_mask"), k))

    def observation_keys(self) -> list[str]:
        """The observation spec's leaf keys, as strings (for error messages)."""
        return sorted(map(str, self.observation_spec.keys(True, True)))


# ---------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """A policy/critic variant of seed 004: what it needs from the env and how it trains.

    Attributes:
        name (str): ``"basic"``, ``"recurrent"``, ``"onehot"`` or ``"phasic"``.
        description (str): one line for ``mtmarl list``.
        phase_mode (str or None): the :class:`~mtmarl.transforms.PhaseEncoding` mode the env
            stack must carry (``"phase"``: a root ``"phase"`` entry; ``"onehot"``: the one-hot
            phase appended to the observations and the state), or ``None``.
        phase_input (bool): its networks are :class:`~mtmarl.nn.PhaseMLP` s reading the phase
            (the PFNN options ``pfnn_period`` and ``n_control_points`` apply).
        recurrent (bool): its networks carry a hidden state over the episode: the env needs
            ``InitTracker`` and the modules' primers, losses run in recurrent mode, and
            minibatches hold whole trajectories.

    Examples:
        >>> phasic = get_variant("phasic")
        >>> phasic.phase_mode, phasic.recurrent
        ('phase', False)
        >>> import torch
        >>> from tensordict import TensorDict
        >>> data = TensorDict({"x": torch.arange(24.).reshape(4, 6)}, [4, 6])
        >>> [tuple(b.shape) for b in get_variant("recurrent").minibatches(data, 12)]
        [(2, 6), (2, 6)]
        >>> [tuple(b.shape) for b in phasic.minibatches(data, 12)]
        [(12,), (12,)]
    """

    name: str
    description: str
    phase_mode: str | None = None
    phase_input: bool = False
    recurrent: bool = False

    def network_options(self, model: Any) -> dict[str, Any]:
        """The variant's own keyword arguments of the actor/critic factories."""
        if self.phase_input:
            return {"pfnn_period": model.pfnn_period, "n_control_points": model.n_control_points}
        if self.recurrent:
            return {"hidden_size": model.hidden_size}
        return {}

    def context(self) -> contextlib.AbstractContextManager:
        """The context the losses and critics run in (recurrent mode for a recurrent
        variant: modules scan whole trajectories)."""
        if not self.recurrent:
            return contextlib.nullcontext()
        from mtmarl.modules.recurrent import set_recurrent_mode

        return set_recurrent_mode(True)

    def minibatches(self, data: TensorDictBase, size: int) -> Iterator[TensorDictBase]:
        """Shuffled minibatches of about ``size`` samples of an ``[E, T]`` batch.

        Feed-forward variants: env steps, one gather per call then contiguous slices.
        Recurrent: whole trajectories (``max(1, size // T)`` envs each), time order kept.
        """
        if self.recurrent:
            per = max(1, size // data.shape[-1])
            perm = torch.randperm(data.shape[0])
            for i in range(0, data.shape[0], per):
                yield data[perm[i : i + per]]
            return
        flat = data.reshape(-1)
        shuffled = flat[torch.randperm(flat.shape[0])]
        for i in range(0, shuffled.shape[0], size):
            yield shuffled[i : i + size]

    def hybrid_heads(
        self, *, feature_dim: int, n_modes: int, action_dim: int, model: Any
    ) -> dict[str, Any]:
        """The heads of a hybrid actor (:func:`~mtmarl.modules.make_hybrid_actor`'s
        ``discrete_head`` / ``continuous_head`` / ``head_extra_keys``): PhaseMLP heads
        reading the root ``"phase"`` for a phase-input variant, the default MLPs otherwise.

        Raises:
            ConfigError: a recurrent variant (hybrid actors have no recurrent heads yet).
        """
        if self.recurrent:
            raise ConfigError(
                f"variant={self.name}: hybrid (composite) actions have no recurrent actor; "
                "use variant basic, onehot or phasic"
            )
        if not self.phase_input:
            return {}
        if model.pfnn_period is not None:
            raise ConfigError(
                "model.pfnn_period applies to discrete and continuous actors; a hybrid "
                "actor's phasic heads read the env's root 'phase' (set model.pfnn_period=null)"
            )
        from mtmarl.nn import PhaseMLP

        def mlp(out: int) -> PhaseMLP:
            return PhaseMLP(
                feature_dim,
                out,
                num_cells=tuple(model.num_cells),
                n_control_points=model.n_control_points,
            )

        return {
            "discrete_head": mlp(n_modes),
            "continuous_head": mlp(2 * action_dim),
            "head_extra_keys": ["phase"],
        }

    def phase_keys(self, model: Any) -> list[NestedKey]:
        """The root keys its networks read besides the observations."""
        if not self.phase_input:
            return []
        return ["phase"] if model.pfnn_period is None else ["step_count"]


VARIANT_REGISTRY: dict[str, Variant] = Registry(
    "The seed-004 variants by name (``variant=NAME``), in the paper's order.",
    (
        (v.name, v)
        for v in (
            Variant("basic", "MLP actor and critic, time-unaware"),
            Variant("recurrent", "GRU actor and critic over the episode", recurrent=True),
            Variant("onehot", "MLP on the one-hot phase t mod L", phase_mode="onehot"),
            Variant(
                "phasic", "PFNN (PhaseMLP) actor and critic", phase_mode="phase", phase_input=True
            ),
        )
    ),
)


def get_variant(name: str) -> Variant:
    """The registered :class:`Variant` called ``name``.

    Raises:
        ConfigError: an unknown name, listing the known ones.

    Examples:
        >>> get_variant("onehot").phase_mode
        'onehot'
    """
    try:
        return VARIANT_REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"variant must be one of {list(VARIANT_REGISTRY)}, got {name!r}"
        ) from None


# ---------------------------------------------------------------------------- encoders
@dataclass(frozen=True)
class EncoderBuilder:
    """How the actor's per-agent feature is made (``model.encoder``).

    Attributes:
        name (str): the choice's name.
        description (str): one line for ``mtmarl list``.
        reads (Callable[[EnvInfo], list]): the observation keys it needs.
        build (Callable[[EnvInfo, model], tuple]): ``(encoder module or None, feature dim,
            feature key)``; ``None`` means the heads read the feature key from the env.
        action_kinds (tuple[str, ...]): the action kinds it serves.

    Examples:
        >>> ENCODERS["lstm"].action_kinds
        ('hybrid',)
    """

    name: str
    description: str
    reads: Callable[[EnvInfo], list[NestedKey]]
    build: Callable[[EnvInfo, Any], tuple[TensorDictModuleBase | None, int, NestedKey]]
    action_kinds: tuple[str, ...] = _ACTION_KINDS


class _Concat(nn.Module):
    """``cat((*B, a), (*B, b), ...) -> (*B, a + b + ...)`` on the last dim."""

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts, dim=-1)


def _lstm_state_keys(info: EnvInfo) -> list[NestedKey]:
    keys = [info.key("device_state")]
    keys += [k for k in (info.key("context"), info.key("ratings")) if info.has(k)]
    return keys


def _build_lstm(info: EnvInfo, model: Any):
    """MATPPO's local encoder: an LSTM over the forecast window, its last hidden state with
    the device state (and the context features and device ratings, if the env has them)
    mapped to ``(group, "feature")``."""
    from mtmarl.modules.forecast_encoder import ForecastEncoder

    state_keys = _lstm_state_keys(info)
    local = info.key("local_state")
    feature = info.key("feature")
    encoder = ForecastEncoder(
        info.dim(info.key("forecast")),
        model.feature_dim,
        state_features=sum(info.dim(k) for k in state_keys),
        hidden_size=model.hidden_size,
        forecast_key=info.key("forecast"),
        state_key=local if len(state_keys) > 1 else state_keys[0],
        out_key=feature,
    )
    if len(state_keys) > 1:
        concat = TensorDictModule(_Concat(), in_keys=state_keys, out_keys=[local])
        encoder = TensorDictSequential(concat, encoder)
    return encoder, model.feature_dim, feature


ENCODERS: dict[str, EncoderBuilder] = Registry(
    "The actor's feature extractors by name (``model.encoder=NAME``).",
    mlp=EncoderBuilder(
        "mlp",
        "the heads read the flat (group, 'observation')",
        reads=lambda info: [info.key("observation")],
        build=lambda info, model: (
            None,
            info.dim(info.key("observation")),
            info.key("observation"),
        ),
    ),
    lstm=EncoderBuilder(
        "lstm",
        "MATPPO: an LSTM over (group, 'forecast') with (group, 'device_state')",
        reads=lambda info: [info.key("forecast"), info.key("device_state")],
        build=_build_lstm,
        action_kinds=("hybrid",),
    ),
)


# ---------------------------------------------------------------------------- actors
def _discrete_actor(info: EnvInfo, variant: Variant, model: Any, **_: Any):
    from mtmarl.modules.variants import make_actor

    masks = info.action_mask_keys()
    if len(masks) > 1:
        raise ConfigError(
            f"the discrete actor takes one action mask; the env writes {masks} (combine them "
            "in the env, or use an ActionFrequencyMask without a mask of the env's own)"
        )
    return make_actor(
        variant.name,
        n_agents=info.n_agents,
        observation_dim=info.dim(info.key("observation")),
        n_actions=info.n_actions,
        num_cells=tuple(model.num_cells),
        action_mask_key=masks[0] if masks else None,
        group=info.group,
        **variant.network_options(model),
    )


def _continuous_actor(info: EnvInfo, variant: Variant, model: Any, **_: Any):
    from mtmarl.modules.continuous import make_continuous_actor

    can_act = info.key("can_act")
    return make_continuous_actor(
        variant.name,
        n_agents=info.n_agents,
        observation_dim=info.dim(info.key("observation")),
        action_dim=info.action_dim,
        action_spec=info.full_action_spec,
        action_key=info.key("action"),
        num_cells=tuple(model.num_cells),
        can_act_key=can_act if info.has(can_act) else None,
        group=info.group,
        **variant.network_options(model),
    )


def _hybrid_actor(
    info: EnvInfo,
    variant: Variant,
    model: Any,
    *,
    action_prior: TensorDictModuleBase | None = None,
    head_output_scale: float = 1.0,
):
    from mtmarl.modules.hybrid_actor import make_hybrid_actor

    encoder, feature_dim, feature_key = ENCODERS[model.encoder].build(info, model)
    leaves = [info.action_spec[k] for k in info.action_spec.keys(True, True)]
    n_modes = next(int(v.n) for v in leaves if isinstance(v, Categorical))
    action_dim = next(v.shape[-1] for v in leaves if isinstance(v, Bounded))
    heads = variant.hybrid_heads(
        feature_dim=feature_dim, n_modes=n_modes, action_dim=action_dim, model=model
    )
    masks, can_act, prev = info.action_mask_keys(), info.key("can_act"), info.key("prev_action")
    has_can_act = info.has(can_act) and bool(masks)
    return make_hybrid_actor(
        info.full_action_spec,
        encoder=encoder,
        feature_dim=feature_dim,
        feature_key=feature_key,
        num_cells=tuple(model.num_cells),
        action_mask_key=(masks if len(masks) > 1 else masks[0]) if masks else None,
        can_act_key=can_act if has_can_act else None,
        forced_action_key=prev
        if has_can_act and prev in info.observation_spec.keys(True)
        else None,
        continuous_distribution=model.continuous_distribution,
        scale_mapping=f"biased_softplus_{float(model.init_scale)}",
        action_prior=action_prior,
        head_output_scale=head_output_scale,
        **heads,
    )


_ACTORS = {"discrete": _discrete_actor, "continuous": _continuous_actor, "hybrid": _hybrid_actor}


def build_actor(
    info: EnvInfo,
    *,
    variant: Variant,
    model: Any,
    action_prior: TensorDictModuleBase | None = None,
    head_output_scale: float = 1.0,
) -> TensorDictModuleBase:
    """The parameter-shared actor for the env's action kind.

    Discrete: :func:`~mtmarl.modules.make_actor` (masked by ``(group, "action_mask")`` when
    the env writes it). Continuous: :func:`~mtmarl.modules.make_continuous_actor` (forced
    steps from ``(group, "can_act")`` get log-prob 0). Hybrid:
    :func:`~mtmarl.modules.make_hybrid_actor` on the ``model.encoder``'s feature, with the
    variant's heads; under an :class:`~mtmarl.transforms.ActionFrequencyMask` every head
    honours ``(group, "can_act")`` and the stored continuous action is the held
    ``(group, "prev_action")`` one.

    Args:
        info (EnvInfo): the env's specs.

    Keyword Args:
        variant (Variant): the variant.
        model: the sizes (a :class:`~mtmarl.training.ModelConfig`).
        action_prior (TensorDictModuleBase, optional): hybrid only, see
            :func:`~mtmarl.modules.make_hybrid_actor`. Defaults to ``None``.
        head_output_scale (float): hybrid only, see there. Defaults to ``1.0``.

    Returns:
        TensorDictModuleBase: a ``ProbabilisticActor`` writing ``(group, "action")``.

    Examples:
        >>> from types import SimpleNamespace
        >>> from mtmarl.envs import make_movebox_env
        >>> model = SimpleNamespace(num_cells=[16], pfnn_period=None, n_control_points=4,
        ...                         hidden_size=8, encoder="mlp")
        >>> env = make_movebox_env("easy", num_envs=3)
        >>> actor = build_actor(EnvInfo.from_env(env), variant=get_variant("basic"), model=model)
        >>> actor(env.reset())["agents", "action"].shape
        torch.Size([3, 2])
    """
    if action_prior is not None and info.action_kind != "hybrid":
        raise ConfigError(
            f"an action prior centres a hybrid (composite) actor; the action at "
            f"{info.key('action')} is {info.action_kind}"
        )
    return _ACTORS[info.action_kind](
        info,
        variant,
        model,
        action_prior=action_prior,
        head_output_scale=head_output_scale,
    )


# ---------------------------------------------------------------------------- critics
@dataclass(frozen=True)
class CriticBuilder:
    """A critic choice (``model.critic``): the keys it reads and how it is built.

    Attributes:
        name (str): the choice's name.
        description (str): one line for ``mtmarl list``.
        reads (Callable[[EnvInfo, Variant, model], list]): the observation keys it needs.
        build (Callable[[EnvInfo, Variant, model], TensorDictModuleBase]): the critic.
        action_kinds (tuple[str, ...]): the action kinds it serves. Defaults to all.

    Examples:
        >>> CRITICS["transformer"].description.split(":")[0]
        'MATPPO'
    """

    name: str
    description: str
    reads: Callable[[EnvInfo, Variant, Any], list[NestedKey]]
    build: Callable[[EnvInfo, Variant, Any], TensorDictModuleBase]
    action_kinds: tuple[str, ...] = _ACTION_KINDS


def _variant_critic(centralised: bool):
    def build(info: EnvInfo, variant: Variant, model: Any) -> TensorDictModuleBase:
        from mtmarl.modules.variants import make_critic

        sizes = (
            {"state_dim": info.dim("state")}
            if centralised
            else {"observation_dim": info.dim(info.key("observation"))}
        )
        return make_critic(
            variant.name,
            n_agents=info.n_agents,
            centralised=centralised,
            num_cells=tuple(model.num_cells),
            group=info.group,
            **sizes,
            **variant.network_options(model),
        )

    return build


def _build_transformer(info: EnvInfo, variant: Variant, model: Any) -> TensorDictModuleBase:
    from mtmarl.modules.transformer_critic import TransformerCritic

    return TransformerCritic(
        info.dim(info.key("critic_observation")),
        global_features=info.dim("aggregate") if info.has("aggregate") else None,
        d_model=model.attention_dim,
        num_heads=model.attention_heads,
        num_layers=model.attention_layers,
        head_cells=(model.num_cells[-1],),
        agent_key=info.key("critic_observation"),
        global_key="aggregate",
        value_key=info.key("state_value"),
    )


def _build_coma(info: EnvInfo, variant: Variant, model: Any) -> TensorDictModuleBase:
    from mtmarl.modules.coma_critic import COMACritic
    from mtmarl.modules.step_phase import PhaseFromStepCount
    from mtmarl.nn import PhaseMLP

    # the critic conditions on the full state (and the joint action), so a recurrent
    # variant's COMA critic is the feed-forward one: only its actor carries a hidden state
    state_dim = info.dim("state")
    sizes = {
        "n_agents": info.n_agents,
        "n_actions": info.n_actions,
        "state_dim": state_dim,
        "state_key": "state",
        "action_key": info.key("action"),
        "out_key": info.key("action_value"),
    }
    if not variant.phase_input:
        return COMACritic(**sizes, num_cells=model.num_cells)
    network = PhaseMLP(
        COMACritic.input_size(state_dim, info.n_agents, info.n_actions),
        info.n_actions,
        num_cells=tuple(model.num_cells),
        n_control_points=model.n_control_points,
    )
    if model.pfnn_period is None:
        return COMACritic(**sizes, network=network, phase_key="phase")
    network = PhaseFromStepCount(network, period=model.pfnn_period)
    return COMACritic(**sizes, network=network, phase_key="step_count")


CRITICS: dict[str, CriticBuilder] = Registry(
    "The critics by name (``model.critic=NAME``); :func:`register_critic` adds one.",
    mlp=CriticBuilder(
        "mlp",
        "MAPPO: the variant's critic on the global 'state', one value per agent",
        reads=lambda info, variant, model: ["state", *variant.phase_keys(model)],
        build=_variant_critic(centralised=True),
    ),
    local=CriticBuilder(
        "local",
        "IPPO: the variant's critic on each agent's own (group, 'observation')",
        reads=lambda info, variant, model: [info.key("observation"), *variant.phase_keys(model)],
        build=_variant_critic(centralised=False),
    ),
    transformer=CriticBuilder(
        "transformer",
        "MATPPO: attention over (group, 'critic_observation') with the root 'aggregate' "
        "as global token (learned if absent)",
        reads=lambda info, variant, model: [info.key("critic_observation")],
        build=_build_transformer,
    ),
    coma=CriticBuilder(
        "coma",
        "COMA: Q(state, other agents' actions, agent id) over the agent's own actions "
        "(feed-forward for a recurrent variant: the state is the full state)",
        reads=lambda info, variant, model: ["state", *variant.phase_keys(model)],
        build=_build_coma,
        action_kinds=("discrete",),
    ),
)


def register_critic(builder: CriticBuilder, *, overwrite: bool = False) -> CriticBuilder:
    """Add a critic choice, so that ``model.critic=NAME`` builds it.

    Raises:
        ConfigError: the name is taken (unless ``overwrite``), or ``builder`` is not a
            :class:`CriticBuilder`.

    Examples:
        >>> entry = CriticBuilder("mlp-copy", "the mlp critic again",
        ...     reads=CRITICS["mlp"].reads, build=CRITICS["mlp"].build)
        >>> register_critic(entry) is CRITICS["mlp-copy"]
        True
        >>> _ = CRITICS.pop("mlp-copy")
    """
    if not isinstance(builder, CriticBuilder):
        raise ConfigError(f"register_critic expected a CriticBuilder, got {type(builder).__name__}")
    if builder.name in CRITICS and not overwrite:
        raise ConfigError(f"a critic named {builder.name!r} is registered already")
    CRITICS[builder.name] = builder
    return builder


def _get(registry: dict, kind: str, name: str):
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(f"model.{kind} must be one of {list(registry)}, got {name!r}") from None


def build_critic(info: EnvInfo, *, name: str, variant: Variant, model: Any):
    """The critic ``name`` of :data:`CRITICS` for this env and variant.

    Examples:
        >>> from types import SimpleNamespace
        >>> from mtmarl.envs import make_movebox_env
        >>> model = SimpleNamespace(num_cells=[16], pfnn_period=None, n_control_points=4)
        >>> env = make_movebox_env("easy", num_envs=3)
        >>> critic = build_critic(EnvInfo.from_env(env), name="mlp",
        ...                       variant=get_variant("basic"), model=model)
        >>> critic(env.reset())["agents", "state_value"].shape
        torch.Size([3, 2, 1])
    """
    return _get(CRITICS, "critic", name).build(info, variant, model)


def check_model_inputs(
    info: EnvInfo,
    *,
    variant: Variant,
    model: Any,
    critic: str | None,
    actor: bool = True,
) -> None:
    """Refuse, before anything is built, a choice whose inputs the env does not provide.

    Args:
        info (EnvInfo): the env's specs.

    Keyword Args:
        variant (Variant): the variant.
        model: the choices (``encoder``, ``critic``, ``pfnn_period`` ...).
        critic (str or None): the critic to check (``None``: an injected one, unchecked).
        actor (bool): check the actor's inputs (``False``: an injected actor). Defaults to
            ``True``.

    Raises:
        ConfigError: naming the choice, the missing keys and the keys the env has.

    Examples:
        >>> from types import SimpleNamespace
        >>> from mtmarl.envs import make_movebox_env
        >>> model = SimpleNamespace(encoder="mlp", pfnn_period=None)
        >>> info = EnvInfo.from_env(make_movebox_env("easy", num_envs=2))
        >>> try:
        ...     check_model_inputs(info, variant=get_variant("basic"), model=model,
        ...                        critic="transformer")
        ... except ConfigError as err:
        ...     print(str(err).split(" (")[0])
        model.critic=transformer reads [('agents', 'critic_observation')], which the env does not provide
    """
    checks: list[tuple[str, list[NestedKey], tuple[str, ...]]] = []
    distribution = getattr(model, "continuous_distribution", "tanh_normal")
    if actor and distribution != "tanh_normal" and info.action_kind != "hybrid":
        raise ConfigError(
            f"model.continuous_distribution={distribution} applies to hybrid (composite) "
            f"actions; the action at {info.key('action')} is {info.action_kind}"
        )
    if actor and getattr(model, "action_prior", None) is not None and info.action_kind != "hybrid":
        raise ConfigError(
            f"model.action_prior={model.action_prior} centres a hybrid (composite) actor; the "
            f"action at {info.key('action')} is {info.action_kind}"
        )
    if actor:
        encoder = _get(ENCODERS, "encoder", model.encoder)
        checks.append(
            (
                f"model.encoder={encoder.name}",
                [*encoder.reads(info), *variant.phase_keys(model)],
                encoder.action_kinds,
            )
        )
    if critic is not None:
        entry = _get(CRITICS, "critic", critic)
        checks.append(
            (f"model.critic={entry.name}", entry.reads(info, variant, model), entry.action_kinds)
        )
    for what, keys, kinds in checks:
        if info.action_kind not in kinds:
            raise ConfigError(
                f"{what} serves {' or '.join(kinds)} actions; the action at "
                f"{info.key('action')} is {info.action_kind}"
            )
        missing = [k for k in keys if not info.has(k)]
        if missing:
            raise ConfigError(
                f"{what} reads {missing}, which the env does not provide (its observation "
                f"keys are {info.observation_keys()})"
            )
