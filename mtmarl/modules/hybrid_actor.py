"""A parameter-shared hybrid (discrete + continuous) actor for MATPPO (seed 000, section 3.4).

:func:`make_hybrid_actor` builds, from any composite action spec with one discrete
(:class:`torchrl.data.Categorical`) and one continuous (:class:`torchrl.data.Bounded`) leaf
per agent, a :class:`torchrl.modules.ProbabilisticActor` over a
:class:`tensordict.nn.CompositeDistribution`:

* discrete head -> ``Categorical`` (or :class:`torchrl.modules.MaskedCategorical` fed with
  an action mask: masked choices are never sampled, a forced choice has log-prob 0);
* continuous head -> :class:`torchrl.modules.TanhNormal` bounded by the spec's
  ``low``/``high`` (read from the spec, never hard-coded), or with
  ``continuous_distribution="beta"`` a :class:`~mtmarl.modules.ScaledBeta` stretched to the
  same bounds (concentrations ``1 + softplus(.)``, so unimodal);
* one network shared by all agents (it acts on the last dim of ``(*B, N, D)``).

Per-head log-probabilities are written next to the actions (``<name>_log_prob``, shape
``(*B, N)``; ``TanhNormal``'s is summed over its ``A`` action dims). ``ClipPPOLoss`` /
``MAPPOLoss`` read ``actor.log_prob_keys`` and ``actor.dist_sample_keys`` themselves, sum the
heads per agent for the ratio, and accept per-head entropy coefficients keyed by the
``<name>_entropy`` leaves, e.g. ``{("agents", "action", "mode_entropy"): 0.01,
("agents", "action", "power_entropy"): 0.001}``. Deterministic mode
(``set_exploration_type(ExplorationType.DETERMINISTIC)``) gives the (masked) argmax and
``low + (high - low) (tanh(loc) + 1) / 2``.

Heads are injectable: any ``nn.Module`` called as ``head(feature, *extra)`` with the extra
inputs read from ``head_extra_keys``. A phase-aware MATPPO head is
``PhaseLinear(D, n_modes)`` with ``head_extra_keys=["phase"]``.

Keys (defaults for an action spec with leaves ``("agents", "action", "mode")`` and
``("agents", "action", "power")``):

* read: the encoder's inputs (e.g. ``("agents", "forecast" | "device_state")``), or the
  feature ``("agents", "feature")`` ``(*B, N, D)`` directly when ``encoder=None``;
  ``head_extra_keys``; the mask ``action_mask_key`` ``(*B, N, n_modes)`` bool if given;
* written: ``("agents", "feature")`` (by the encoder), distribution parameters under
  ``("agents", "params", "mode" | "power", ...)``, the actions ``("agents", "action",
  "mode")`` ``(*B, N)`` int64 and ``("agents", "action", "power")`` ``(*B, N, A)`` float, and
  their log-probs ``("agents", "action", "mode_log_prob" | "power_log_prob")`` ``(*B, N)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import (
    CompositeDistribution,
    NormalParamExtractor,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torch.distributions import Categorical as CategoricalDist
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical
from torchrl.modules import MLP, MaskedCategorical, ProbabilisticActor, TanhNormal

from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal
from mtmarl.modules.scaled_beta import ScaledBeta

__all__ = ["make_hybrid_actor"]

_WHO = "make_hybrid_actor"


class _HybridHeads(nn.Module):
    """``feature (*B, N, D)`` -> ``logits (*B, N, n)``, ``loc``, ``scale`` ``(*B, N, A)``."""

    def __init__(
        self,
        discrete: nn.Module,
        continuous: nn.Module,
        *,
        discrete_extra: bool,
        continuous_extra: bool,
        n_modes: int,
        action_dim: int,
        scale_mapping: str,
        scale_lb: float,
        beta: bool = False,
    ) -> None:
        super().__init__()
        self.beta = beta
        self.discrete = discrete
        self.continuous = continuous
        self.discrete_extra = discrete_extra
        self.continuous_extra = continuous_extra
        self.n_modes = n_modes
        self.action_dim = action_dim
        self.extractor = NormalParamExtractor(scale_mapping=scale_mapping, scale_lb=scale_lb)

    def forward(
        self, feature: torch.Tensor, *extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.discrete(feature, *extra) if self.discrete_extra else self.discrete(feature)
        raw = (
            self.continuous(feature, *extra) if self.continuous_extra else self.continuous(feature)
        )
        batch = feature.shape[:-1]
        if tuple(logits.shape) != (*batch, self.n_modes):
            raise ValueError(
                f"{_WHO}: the discrete head expected to map a feature of shape "
                f"{tuple(feature.shape)} to logits of shape {(*batch, self.n_modes)}, "
                f"got {tuple(logits.shape)}"
            )
        if tuple(raw.shape) != (*batch, 2 * self.action_dim):
            raise ValueError(
                f"{_WHO}: the continuous head expected to map a feature of shape "
                f"{tuple(feature.shape)} to {(*batch, 2 * self.action_dim)} (loc and raw "
                f"scale of {self.action_dim} action dims), got {tuple(raw.shape)}"
            )
        if self.beta:  # concentrations alpha, beta > 1: a unimodal Beta
            alpha, beta = (1.0 + nn.functional.softplus(raw)).chunk(2, -1)
            return logits, alpha, beta
        loc, scale = self.extractor(raw)
        return logits, loc, scale


class _CombinedMask(nn.Module):
    """``mask_1 & ... & mask_k`` ``(*B, N, n)``; where that allows nothing, the input mask
    with the fewest allowed choices (a forced step's one-hot; on a tie the later mask, e.g.
    the ``ActionFrequencyMask``'s after the env's own)."""

    def forward(self, *masks: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(torch.broadcast_tensors(*masks))  # (k, *B, N, n)
        both = stacked.all(0)
        k = stacked.shape[0]
        fewest = (k - 1) - stacked.flip(0).sum(-1).argmin(0)  # (*B, N), ties: the later mask
        fallback = stacked.gather(0, fewest[None, ..., None].expand_as(stacked[:1]))[0]
        return torch.where(both.any(-1, keepdim=True), both, fallback)


class _Copy(nn.Module):
    """Passes its inputs through (copies entries to other keys)."""

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return inputs if len(inputs) != 1 else inputs[0]


def _scale_last_layer(head: nn.Module, factor: float) -> None:
    """Scale the parameters of ``head``'s last parametrised layer by ``factor`` (in place)."""
    for module in reversed(list(head.modules())):
        params = list(module.parameters(recurse=False))
        if params:
            with torch.no_grad():
                for p in params:
                    p.mul_(factor)
            return


def _relative_leaf(dkey: NestedKey, ckey: NestedKey) -> tuple[str, ...]:
    """The continuous leaf's key relative to the action entry (the two leaves' common
    prefix): ``("agents", "action", "mode")``, ``("agents", "action", "power")`` ->
    ``("power",)``."""
    d = (dkey,) if isinstance(dkey, str) else tuple(dkey)
    c = (ckey,) if isinstance(ckey, str) else tuple(ckey)
    n = 0
    while n < min(len(d), len(c)) - 1 and d[n] == c[n]:
        n += 1
    return c[n:]


def _leaves(action_spec: Composite) -> tuple[NestedKey, Categorical, NestedKey, Bounded]:
    """The one discrete and the one continuous leaf of the spec."""
    discrete, continuous, others = [], [], []
    for key in action_spec.keys(include_nested=True, leaves_only=True):
        spec = action_spec[key]
        if isinstance(spec, Categorical) and not isinstance(spec, (Binary, MultiCategorical)):
            discrete.append((unravel_key(key), spec))
        elif isinstance(spec, Bounded) and spec.dtype.is_floating_point:
            continuous.append((unravel_key(key), spec))
        else:
            others.append((unravel_key(key), type(spec).__name__))
    if len(discrete) != 1 or len(continuous) != 1 or others:
        raise ValueError(
            f"{_WHO} expected an action spec with exactly one Categorical leaf and one float "
            f"Bounded leaf, got Categorical leaves {[k for k, _ in discrete]}, Bounded leaves "
            f"{[k for k, _ in continuous]} and other leaves {others}"
        )
    (dkey, dspec), (ckey, cspec) = discrete[0], continuous[0]
    if len(cspec.shape) < 1 or cspec.shape[:-1] != dspec.shape:
        raise ValueError(
            f"{_WHO} expected the continuous leaf {ckey!r} to have the discrete leaf's shape "
            f"plus one action dim, i.e. {(*dspec.shape, 'A')}, got {tuple(cspec.shape)}"
        )
    if _name(dkey) == _name(ckey):
        raise ValueError(
            f"{_WHO} expected the two action leaves to have different names, got {dkey!r} "
            f"and {ckey!r}"
        )
    return dkey, dspec, ckey, cspec


def _name(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


def _prefix(key: NestedKey) -> tuple[str, ...]:
    return () if isinstance(key, str) else tuple(key[:-1])


def _bound(value: torch.Tensor, env_dims: int, name: str) -> torch.Tensor:
    """Reduce a spec bound ``(*E, [N,] A)`` to ``(A,)`` or, if it varies by agent, ``(N, A)``."""
    per_sample = value.reshape(-1, *value.shape[env_dims:])
    if not bool((per_sample == per_sample[:1]).all()):
        raise ValueError(
            f"{_WHO} expected the continuous action's {name} bound to be the same in every "
            f"env of the spec's batch {tuple(value.shape[:env_dims])} (it may vary by agent "
            f"and action dim), got {value}"
        )
    bound = per_sample[0]
    flat = bound.reshape(-1, bound.shape[-1])
    if bool((flat == flat[:1]).all()):
        return flat[0].clone()
    return bound.clone()


def _default_params_key(action_spec: Composite, dkey: NestedKey, dspec: Categorical):
    """``(*group, "params")`` for the shallowest composite with the per-agent batch shape."""
    path = _prefix(dkey)
    for depth in range(len(path) + 1):
        sub = action_spec[path[:depth]] if depth else action_spec
        if sub.shape == dspec.shape:
            return unravel_key((*path[:depth], "params"))
    raise ValueError(
        f"{_WHO} could not find a composite of shape {tuple(dspec.shape)} (the per-agent "
        f"batch) above {dkey!r} to hold the distribution parameters; pass params_key"
    )


def make_hybrid_actor(
    action_spec: Composite,
    *,
    feature_dim: int | None = None,
    encoder: TensorDictModuleBase | None = None,
    feature_key: NestedKey = ("agents", "feature"),
    discrete_head: nn.Module | None = None,
    continuous_head: nn.Module | None = None,
    head_extra_keys: Sequence[NestedKey] = (),
    num_cells: Sequence[int] = (64,),
    activation: type[nn.Module] = nn.ELU,
    action_mask_key: NestedKey | Sequence[NestedKey] | None = None,
    params_key: NestedKey | None = None,
    scale_mapping: str = "biased_softplus_1.0",
    scale_lb: float = 1e-4,
    continuous_distribution: str = "tanh_normal",
    action_prior: TensorDictModuleBase | None = None,
    can_act_key: NestedKey | None = None,
    forced_action_key: NestedKey | None = None,
    head_output_scale: float = 1.0,
) -> ProbabilisticActor:
    """Build a parameter-shared hybrid actor from a composite action spec.

    ``[encoder ->] heads -> CompositeDistribution(Categorical | MaskedCategorical,
    TanhNormal | ScaledBeta)``. The discrete head maps the feature ``(*B, N, D)`` to
    ``n_modes`` logits; the continuous head to ``2 A`` values split into ``loc`` and a
    positive ``scale`` (:class:`tensordict.nn.NormalParamExtractor`), or for a Beta into the
    concentrations ``1 + softplus(.)`` (``concentration1``, ``concentration0``).

    Args:
        action_spec (Composite): the env's (full) action spec, keys relative to the root,
            with exactly one :class:`~torchrl.data.Categorical` leaf (``n_modes`` choices,
            shape ``(*E, N)``) and one float :class:`~torchrl.data.Bounded` leaf (shape
            ``(*E, N, A)``). Bounds may vary by agent and action dim, not across envs.

    Keyword Args:
        feature_dim (int, optional): feature size ``D``; required when a default head is
            built (``discrete_head`` or ``continuous_head`` is ``None``).
        encoder (TensorDictModuleBase, optional): writes ``feature_key`` (e.g.
            :class:`~mtmarl.modules.ForecastEncoder`); ``None`` reads ``feature_key`` from
            the input (e.g. ``("agents", "observation")`` for an MLP baseline).
        feature_key (NestedKey): the ``(*B, N, D)`` feature. Defaults to
            ``("agents", "feature")``.
        discrete_head (nn.Module, optional): ``(*B, N, D) [, *extra] -> (*B, N, n_modes)``.
            Defaults to an MLP with ``num_cells``.
        continuous_head (nn.Module, optional): ``(*B, N, D) [, *extra] -> (*B, N, 2 A)``.
            Defaults to an MLP with ``num_cells``.
        head_extra_keys (Sequence[NestedKey]): extra inputs passed (in order) to the
            *injected* heads, e.g. ``["phase"]`` for :class:`~mtmarl.nn.PhaseLinear` heads;
            default heads read the feature only. Defaults to ``()``.
        num_cells (Sequence[int]): hidden sizes of the default heads (``()`` = linear).
            Defaults to ``(64,)``.
        activation (type[nn.Module]): hidden activation of the default heads. Defaults to
            ``nn.ELU``.
        action_mask_key (NestedKey or list of NestedKey, optional): ``(*B, N, n_modes)``
            bool mask, or several that are combined (an env's own mask and an
            ``ActionFrequencyMask``'s, written under another key): a choice is allowed where
            every mask allows it, and where they allow nothing together (the env's mask
            refuses the action a slow agent holds) the mask with the fewest choices -- the
            forced one; on a tie the later in the list -- wins. (``True`` =
            allowed) -> ``MaskedCategorical``; ``None`` -> ``Categorical``. Defaults to
            ``None``.
        params_key (NestedKey, optional): where the distribution parameters go. Defaults to
            ``(*group, "params")`` for the per-agent group of the action (e.g.
            ``("agents", "params")``).
        scale_mapping (str): positive mapping of the raw scale. Defaults to
            ``"biased_softplus_1.0"``.
        scale_lb (float): minimum scale. Defaults to ``1e-4``.
        continuous_distribution (str): ``"tanh_normal"`` (torchrl's ``TanhNormal``; the
            deterministic action is ``tanh(loc)`` stretched to the bounds) or ``"beta"``
            (:class:`~mtmarl.modules.ScaledBeta`; parameters ``concentration1`` /
            ``concentration0`` ``(*B, N, A)``, deterministic action its mode, exact
            entropy). Defaults to ``"tanh_normal"``.
        action_prior (TensorDictModuleBase, optional): runs after the heads and rewrites
            the discrete ``logits`` and the continuous ``loc`` under ``params_key``, e.g. an
            :class:`~mtmarl.modules.ActionPrior` that centres the distribution on a base
            controller's action (a residual policy). ``TanhNormal`` only. Defaults to
            ``None``.
        can_act_key (NestedKey, optional): ``(*B, N)`` bool, ``True`` where an agent chooses
            its action (:class:`~mtmarl.transforms.ActionFrequencyMask` writes it at
            ``("agents", "can_act")``). On the other (forced) steps every head carries
            log-prob 0 and entropy 0, as :func:`~mtmarl.modules.make_continuous_actor`'s: the
            discrete head through its action mask (so ``action_mask_key`` is required), the
            continuous head through :class:`~mtmarl.modules.MaskedTanhNormal` (or a masked
            :class:`~mtmarl.modules.ScaledBeta`). Defaults to ``None`` (every step is the
            agents' choice).
        forced_action_key (NestedKey, optional): the composite action the env executes on
            forced steps, e.g. the held ``("agents", "prev_action")`` of an
            ``ActionFrequencyMask(mode="hold")``; the continuous leaf's sample is replaced by
            its leaf there, so that the stored action is the executed one (the discrete leaf
            already is, through the mask). Needs ``can_act_key``. Defaults to ``None``.
        head_output_scale (float): multiply the parameters of each head's last layer by this
            at construction, e.g. ``0.01`` so that an ``action_prior``'s controller is close to
            the initial deterministic policy. Defaults to ``1.0``.

    Returns:
        ProbabilisticActor: ``return_log_prob=True``; ``dist_sample_keys`` are the two
        action keys, ``log_prob_keys`` their ``<name>_log_prob`` siblings ``(*B, N)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded, Categorical, Composite
        >>> E, N = 2, 4
        >>> spec = Composite(agents=Composite(action=Composite(
        ...     mode=Categorical(3, shape=(E, N)),
        ...     power=Bounded(-1.0, 1.0, shape=(E, N, 2)), shape=(E, N)), shape=(E, N)),
        ...     shape=(E,))
        >>> actor = make_hybrid_actor(spec, feature_dim=8, feature_key=("agents", "obs"))
        >>> td = TensorDict({"agents": TensorDict({"obs": torch.randn(5, 7, N, 8)},
        ...     [5, 7, N])}, [5, 7])                     # any batch, e.g. (E, T)
        >>> td = actor(td)
        >>> td["agents", "action", "mode"].shape, td["agents", "action", "power"].shape
        (torch.Size([5, 7, 4]), torch.Size([5, 7, 4, 2]))
        >>> [tuple(td[k].shape) for k in actor.log_prob_keys]
        [(5, 7, 4), (5, 7, 4)]
        >>> bool(td["agents", "action", "power"].abs().max() <= 1)
        True

        A phase-aware head (PhaseLinear reads the root phase ``(*B, 1)``):

        >>> from mtmarl.nn import PhaseLinear
        >>> phasic = make_hybrid_actor(spec, feature_key=("agents", "obs"),
        ...     discrete_head=PhaseLinear(8, 3), continuous_head=PhaseLinear(8, 4),
        ...     head_extra_keys=["phase"])
        >>> td = TensorDict({"agents": TensorDict({"obs": torch.randn(5, N, 8)}, [5, N]),
        ...     "phase": torch.rand(5, 1)}, [5])
        >>> phasic(td)["agents", "action", "mode_log_prob"].shape
        torch.Size([5, 4])

        A Beta continuous head (support exactly the spec's box):

        >>> beta = make_hybrid_actor(spec, feature_dim=8, feature_key=("agents", "obs"),
        ...     continuous_distribution="beta")
        >>> td = beta(TensorDict({"agents": TensorDict({"obs": torch.randn(5, N, 8)},
        ...     [5, N])}, [5]))
        >>> sorted(td["agents", "params", "power"].keys())
        ['concentration0', 'concentration1']
        >>> bool(td["agents", "action", "power"].abs().max() < 1)
        True
    """
    if not isinstance(action_spec, Composite):
        raise TypeError(
            f"{_WHO} expected a Composite action spec (e.g. env.full_action_spec), got "
            f"{type(action_spec).__name__}"
        )
    if continuous_distribution not in ("tanh_normal", "beta"):
        raise ValueError(
            f"{_WHO} expected continuous_distribution 'tanh_normal' or 'beta', got "
            f"{continuous_distribution!r}"
        )
    use_beta = continuous_distribution == "beta"
    if action_prior is not None:
        if not isinstance(action_prior, TensorDictModuleBase):
            raise TypeError(
                f"{_WHO} expected action_prior to be a TensorDictModuleBase (e.g. "
                f"ActionPrior), got {type(action_prior).__name__}"
            )
        if use_beta:
            raise ValueError(
                f"{_WHO}: action_prior shifts the TanhNormal loc and needs "
                f"continuous_distribution='tanh_normal', got 'beta'"
            )
    if forced_action_key is not None and can_act_key is None:
        raise ValueError(f"{_WHO}: forced_action_key needs can_act_key, got can_act_key=None")
    if can_act_key is not None and action_mask_key is None:
        raise ValueError(
            f"{_WHO}: can_act_key={can_act_key!r} masks the discrete head through its action "
            f"mask; pass action_mask_key (ActionFrequencyMask writes both), got None"
        )
    if not (isinstance(head_output_scale, (int, float)) and head_output_scale > 0):
        raise ValueError(f"{_WHO} expected head_output_scale > 0, got {head_output_scale!r}")
    dkey, dspec, ckey, cspec = _leaves(action_spec)
    n_modes = int(dspec.space.n)
    action_dim = int(cspec.shape[-1])
    env_dims = len(action_spec.shape)
    low = _bound(cspec.space.low, env_dims, "low")
    high = _bound(cspec.space.high, env_dims, "high")
    if not bool((high > low).all()):
        raise ValueError(f"{_WHO} expected high > low in the continuous spec, got {low}, {high}")

    feature_key = unravel_key(feature_key)
    if encoder is not None:
        if not isinstance(encoder, TensorDictModuleBase):
            raise TypeError(
                f"{_WHO} expected encoder to be a TensorDictModuleBase writing {feature_key!r}, "
                f"got {type(encoder).__name__}"
            )
        if feature_key not in [unravel_key(k) for k in encoder.out_keys]:
            raise ValueError(
                f"{_WHO} expected the encoder to write feature_key={feature_key!r}, its "
                f"out_keys are {encoder.out_keys}"
            )
    for name, head in (("discrete_head", discrete_head), ("continuous_head", continuous_head)):
        if head is not None and not isinstance(head, nn.Module):
            raise TypeError(f"{_WHO} expected {name} to be an nn.Module, got {type(head)}")
    if discrete_head is None or continuous_head is None:
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(
                f"{_WHO} builds a default head and expected feature_dim to be a positive int, "
                f"got {feature_dim!r}"
            )
        if isinstance(num_cells, int) or not isinstance(num_cells, Sequence):
            raise TypeError(
                f"{_WHO} expected num_cells to be a sequence of ints, e.g. (64,), got {num_cells!r}"
            )
        if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
            raise TypeError(
                f"{_WHO} expected activation to be an nn.Module class, got {activation!r}"
            )

    def default_head(out_features: int) -> MLP:
        return MLP(
            in_features=feature_dim,
            out_features=out_features,
            num_cells=list(num_cells),
            activation_class=activation,
        )

    extra_keys = [unravel_key(k) for k in head_extra_keys]
    heads = _HybridHeads(
        discrete_head if discrete_head is not None else default_head(n_modes),
        continuous_head if continuous_head is not None else default_head(2 * action_dim),
        discrete_extra=discrete_head is not None and bool(extra_keys),
        continuous_extra=continuous_head is not None and bool(extra_keys),
        n_modes=n_modes,
        action_dim=action_dim,
        scale_mapping=scale_mapping,
        scale_lb=scale_lb,
        beta=use_beta,
    )
    if head_output_scale != 1.0:
        _scale_last_layer(heads.discrete, float(head_output_scale))
        _scale_last_layer(heads.continuous, float(head_output_scale))
    if params_key is None:
        params_key = _default_params_key(action_spec, dkey, dspec)
    params_key = unravel_key(params_key)
    pk = (params_key,) if isinstance(params_key, str) else params_key
    dname, cname = _name(dkey), _name(ckey)
    cparams = ("concentration1", "concentration0") if use_beta else ("loc", "scale")
    modules: list[TensorDictModuleBase] = [] if encoder is None else [encoder]
    modules.append(
        TensorDictModule(
            heads,
            in_keys=[feature_key, *extra_keys],
            out_keys=[
                (*pk, dname, "logits"),
                *((*pk, cname, p) for p in cparams),
            ],
        )
    )
    if action_prior is not None:
        wanted = [(*pk, dname, "logits"), (*pk, cname, "loc")]
        written = [unravel_key(k) for k in action_prior.out_keys]
        if any(unravel_key(k) not in written for k in wanted):
            raise ValueError(
                f"{_WHO} expected action_prior to write the parameters {wanted}, its "
                f"out_keys are {action_prior.out_keys}"
            )
        modules.append(action_prior)
    if action_mask_key is not None:
        mask_keys = (
            [unravel_key(k) for k in action_mask_key]
            if isinstance(action_mask_key, list)
            else [unravel_key(action_mask_key)]
        )
        modules.append(
            TensorDictModule(
                _CombinedMask() if len(mask_keys) > 1 else nn.Identity(),
                in_keys=mask_keys,
                out_keys=[(*pk, dname, "mask")],
            )
        )
    if can_act_key is not None:
        copies = {unravel_key(can_act_key): (*pk, cname, "can_act")}
        if forced_action_key is not None:
            fk = unravel_key(forced_action_key)
            fk = (fk,) if isinstance(fk, str) else fk
            copies[(*fk, *_relative_leaf(dkey, ckey))] = (*pk, cname, "forced")
        modules.append(
            TensorDictModule(_Copy(), in_keys=list(copies), out_keys=list(copies.values()))
        )
    continuous_class = ScaledBeta if use_beta else TanhNormal
    if can_act_key is not None and not use_beta:
        continuous_class = MaskedTanhNormal
    return ProbabilisticActor(
        TensorDictSequential(*modules),
        in_keys={"params": params_key},
        distribution_class=CompositeDistribution,
        distribution_kwargs={
            "distribution_map": {
                dname: MaskedCategorical if action_mask_key is not None else CategoricalDist,
                cname: continuous_class,
            },
            "name_map": {dname: dkey, cname: ckey},
            "extra_kwargs": {cname: {"low": low, "high": high}},
        },
        return_log_prob=True,
    )
