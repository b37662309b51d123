"""A base controller as the prior of a hybrid actor (residual policy learning).

:class:`ActionPrior` sits between a hybrid actor's heads and its distribution (see
:func:`~mtmarl.modules.make_hybrid_actor`, ``action_prior=``). It runs a fixed,
observation-only base controller (e.g. the community's
:class:`~mtmarl.envs.community.RuleBasedSelfConsumptionPolicy`) and shifts the distribution
parameters the network wrote toward the controller's action:

* discrete head: ``logits + logit_bonus * one_hot(base_mode)``;
* continuous head (``TanhNormal``): ``loc + atanh(u)``, where ``u`` is the base action mapped
  from the spec's ``[low, high]`` to ``[-1, 1]`` and clipped to ``[-max_abs, max_abs]``
  (``max_abs = 0.99`` by default).

With the network's outputs at zero the deterministic action *is* the base controller's
(up to the clip), and whatever the network learns is a correction on top of it -- the
residual-policy idea of Silver et al. (2018) and Johannink et al. (2019), written as a
shift of the distribution so that the sampled action is still the env's action and its
log-probability is exact: ``ClipPPOLoss`` re-runs the actor, the base controller is
recomputed from the same observation, and the importance ratio is unchanged by the prior.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key
from torchrl.data import Composite

from mtmarl.modules.hybrid_actor import _bound, _default_params_key, _leaves, _name

__all__ = ["ActionPrior"]

_WHO = "ActionPrior"


class ActionPrior(TensorDictModuleBase):
    """Shift a hybrid actor's distribution parameters toward a base controller's action.

    Shapes: ``*B`` batch dims, ``N`` agents, ``n`` discrete choices, ``A`` continuous action
    dims (from ``action_spec``).

    Args:
        base_policy (Callable[[TensorDictBase], TensorDictBase]): a deterministic controller
            that reads only ``in_keys`` and writes the spec's two action leaves (discrete
            ``(*B, N)`` int, continuous ``(*B, N, A)`` within the bounds) into the
            tensordict it is given. It is called on a shallow copy holding ``in_keys`` only,
            without gradients.

    Keyword Args:
        action_spec (Composite): the env's full action spec, with one ``Categorical`` and one
            float ``Bounded`` leaf per agent (as for
            :func:`~mtmarl.modules.make_hybrid_actor`).
        in_keys (Sequence[NestedKey], optional): the observation keys ``base_policy`` reads;
            ``None`` takes ``base_policy.in_keys``. Defaults to ``None``.
        params_key (NestedKey, optional): where the actor writes its distribution parameters
            (``<params_key>/<discrete name>/logits`` ``(*B, N, n)`` and ``<params_key>/
            <continuous name>/loc`` ``(*B, N, A)``); these are read and overwritten.
            Defaults to the per-agent group's ``"params"``, as in ``make_hybrid_actor``.
        logit_bonus (float): added to the logit of the base controller's discrete choice;
            >= 0. ``3.0`` gives the base choice a probability of about 0.9 among 3 choices
            when the network's logits are equal. Defaults to ``3.0``.
        max_abs (float): clip of the normalised base action before ``atanh``, in ``(0, 1)``;
            a base action at a bound gets ``atanh(max_abs)``. Defaults to ``0.99``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded, Categorical, Composite
        >>> spec = Composite(agents=Composite(action=Composite(
        ...     mode=Categorical(3, shape=(2,)), power=Bounded(-1.0, 1.0, shape=(2, 1)),
        ...     shape=(2,)), shape=(2,)))
        >>> def base(td):  # mode 2, power 0.5 everywhere
        ...     obs = td["agents", "obs"]
        ...     td["agents", "action", "mode"] = torch.full(obs.shape[:-1], 2)
        ...     td["agents", "action", "power"] = torch.full((*obs.shape[:-1], 1), 0.5)
        ...     return td
        >>> prior = ActionPrior(base, action_spec=spec, in_keys=[("agents", "obs")])
        >>> td = TensorDict({"agents": {"obs": torch.zeros(2, 4),
        ...     "params": {"mode": {"logits": torch.zeros(2, 3)},
        ...                "power": {"loc": torch.zeros(2, 1), "scale": torch.ones(2, 1)}}}})
        >>> td = prior(td)
        >>> td["agents", "params", "mode", "logits"][0].tolist()
        [0.0, 0.0, 3.0]
        >>> round(torch.tanh(td["agents", "params", "power", "loc"][0, 0]).item(), 4)
        0.5
    """

    def __init__(
        self,
        base_policy: Callable[[TensorDictBase], TensorDictBase],
        *,
        action_spec: Composite,
        in_keys: Sequence[NestedKey] | None = None,
        params_key: NestedKey | None = None,
        logit_bonus: float = 3.0,
        max_abs: float = 0.99,
    ) -> None:
        if not callable(base_policy):
            raise TypeError(
                f"{_WHO} expected base_policy to be a callable tensordict -> tensordict, got "
                f"{type(base_policy).__name__}"
            )
        if not isinstance(action_spec, Composite):
            raise TypeError(
                f"{_WHO} expected a Composite action spec (e.g. env.full_action_spec), got "
                f"{type(action_spec).__name__}"
            )
        if in_keys is None:
            in_keys = getattr(base_policy, "in_keys", None)
            if in_keys is None:
                raise ValueError(
                    f"{_WHO} needs the keys the base policy reads: pass in_keys or give "
                    f"{type(base_policy).__name__} an in_keys attribute"
                )
        in_keys = [unravel_key(k) for k in in_keys]
        if not in_keys:
            raise ValueError(f"{_WHO} expected at least one in_key, got {in_keys}")
        if not logit_bonus >= 0:
            raise ValueError(f"{_WHO} expected logit_bonus >= 0, got {logit_bonus}")
        if not 0 < max_abs < 1:
            raise ValueError(f"{_WHO} expected max_abs in (0, 1), got {max_abs}")
        dkey, dspec, ckey, cspec = _leaves(action_spec)
        if params_key is None:
            params_key = _default_params_key(action_spec, dkey, dspec)
        params_key = unravel_key(params_key)
        pk = (params_key,) if isinstance(params_key, str) else params_key
        env_dims = len(action_spec.shape)
        super().__init__()
        self.base_policy = base_policy
        self.action_keys = (dkey, ckey)
        self.n_modes = int(dspec.space.n)
        self.logits_key = (*pk, _name(dkey), "logits")
        self.loc_key = (*pk, _name(ckey), "loc")
        self.in_keys = [*in_keys, self.logits_key, self.loc_key]
        self.out_keys = [self.logits_key, self.loc_key]
        self.base_keys = in_keys
        self.logit_bonus = float(logit_bonus)
        self.max_abs = float(max_abs)
        self.register_buffer("low", _bound(cspec.space.low, env_dims, "low"))
        self.register_buffer("high", _bound(cspec.space.high, env_dims, "high"))

    @torch.no_grad()
    def base_action(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """The base controller's ``(mode (*B, N) int64, power (*B, N, A))`` on ``tensordict``."""
        base = self.base_policy(tensordict.select(*self.base_keys).copy())
        dkey, ckey = self.action_keys
        mode, power = base.get(dkey), base.get(ckey)
        if mode.shape != power.shape[:-1]:
            raise ValueError(
                f"{_WHO} expected the base policy's actions {dkey!r} (*B, N) and {ckey!r} "
                f"(*B, N, A) to share (*B, N), got {tuple(mode.shape)} and {tuple(power.shape)}"
            )
        return mode.long(), power

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        logits = tensordict.get(self.logits_key)
        loc = tensordict.get(self.loc_key)
        mode, power = self.base_action(tensordict)
        if mode.shape != logits.shape[:-1] or power.shape != loc.shape:
            raise ValueError(
                f"{_WHO} expected base actions of shapes {tuple(logits.shape[:-1])} and "
                f"{tuple(loc.shape)} (the actor's parameters), got {tuple(mode.shape)} and "
                f"{tuple(power.shape)}"
            )
        bonus = torch.nn.functional.one_hot(mode, self.n_modes).to(logits.dtype)
        unit = 2.0 * (power.to(loc.dtype) - self.low) / (self.high - self.low) - 1.0
        shift = torch.atanh(unit.clamp(-self.max_abs, self.max_abs))
        tensordict.set(self.logits_key, logits + self.logit_bonus * bonus)
        tensordict.set(self.loc_key, loc + shift)
        return tensordict
