"""torchrl's ``MAPPOLoss`` with two additions MATPPO's runs use: a KL anchor and a global value.

:class:`MAPPOLoss` is a drop-in subclass of :class:`torchrl.objectives.multiagent.MAPPOLoss`:

* ``reference_kl`` (a :class:`~mtmarl.objectives.ReferenceKLLoss`): the KL from the actor to a
  frozen copy of itself is computed on the distribution of the loss's own actor pass (one
  forward of the frozen reference without gradients, not a second actor pass) and returned as
  ``loss_reference_kl``; the frozen copy is a submodule, so the loss's ``state_dict`` (the
  checkpoint) holds it;
* ``global_value_key``: a critic that also writes a pooled global value (the
  :class:`~mtmarl.modules.TransformerCritic`'s ``"state_value_global"``) has it fitted, from
  the same critic pass, to its own target at ``global_value_target_key``:
  ``loss_critic_global = global_value_coeff * distance(value, target)`` (the PPO critic's
  distance, smooth L1 by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from tensordict import TensorDictBase
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule
from tensordict.utils import NestedKey
from torchrl.objectives.multiagent import MAPPOLoss as _TorchRLMAPPOLoss
from torchrl.objectives.utils import distance_loss

if TYPE_CHECKING:
    from torchrl.modules import ValueNorm

    from mtmarl.objectives.reference_kl import ReferenceKLLoss

__all__ = ["MAPPOLoss"]


class MAPPOLoss(_TorchRLMAPPOLoss):
    """``MAPPOLoss`` with an optional KL anchor and an optional global-value head's loss.

    Args:
        actor_network (ProbabilisticTensorDictSequential): the policy.
        critic_network (TensorDictModule): writes the per-agent values (and, with
            ``global_value_key``, the pooled global value).

    Keyword Args:
        clip_epsilon (float): PPO ratio clip. Defaults to 0.2.
        entropy_coeff (float): entropy bonus weight. Defaults to 0.01.
        critic_coeff (float): critic loss weight. Defaults to 1.0.
        normalize_advantage (bool): standardise advantages over the batch (not across
            agents). Defaults to True.
        value_norm (ValueNorm, optional): torchrl's value normaliser (e.g.
            ``PopArtValueNorm(shape=1)``). Defaults to ``None``.
        loss_critic_type (str): ``"l1"``, ``"l2"`` or ``"smooth_l1"``. Defaults to
            ``"smooth_l1"``.
        reference_kl (ReferenceKLLoss, optional): the anchor, added as
            ``loss_reference_kl`` (and its ``reference_kl`` logged). Defaults to ``None``.
        global_value_key (NestedKey, optional): the critic's pooled global value ``(*B, 1)``.
            Defaults to ``None`` (no global-value loss).
        global_value_coeff (float): its loss weight. Defaults to 1.0.
        global_value_target_key (NestedKey): its target ``(*B, 1)`` in the batch (e.g.
            single-agent GAE on the team reward). Defaults to
            ``"state_value_global_target"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from mtmarl.modules import make_actor, make_critic
        >>> actor = make_actor("basic", n_agents=2, observation_dim=3, n_actions=4,
        ...                    action_mask_key=None)
        >>> critic = make_critic("basic", n_agents=2, state_dim=5)
        >>> loss = MAPPOLoss(actor, critic)
        >>> loss.set_keys(value=("agents", "state_value"), action=("agents", "action"),
        ...     sample_log_prob=("agents", "action_log_prob"),
        ...     advantage=("agents", "advantage"), value_target=("agents", "value_target"))
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(8, 2, 3)},
        ...     [8, 2]), "state": torch.randn(8, 5)}, [8])
        >>> td = actor(td)
        >>> td["agents", "action_log_prob"] = td["agents", "action_log_prob"].detach()
        >>> td["agents", "advantage"] = torch.randn(8, 2, 1)
        >>> td["agents", "value_target"] = torch.randn(8, 2, 1)
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_entropy', 'loss_objective']
    """

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        critic_network: TensorDictModule,
        *,
        clip_epsilon: float = 0.2,
        entropy_coeff: float = 0.01,
        critic_coeff: float = 1.0,
        normalize_advantage: bool = True,
        value_norm: ValueNorm | None = None,
        loss_critic_type: str = "smooth_l1",
        reference_kl: ReferenceKLLoss | None = None,
        global_value_key: NestedKey | None = None,
        global_value_coeff: float = 1.0,
        global_value_target_key: NestedKey = "state_value_global_target",
    ) -> None:
        super().__init__(
            actor_network,
            critic_network,
            clip_epsilon=clip_epsilon,
            entropy_coeff=entropy_coeff,
            critic_coeff=critic_coeff,
            normalize_advantage=normalize_advantage,
            value_norm=value_norm,
            loss_critic_type=loss_critic_type,
        )
        self.reference_kl = reference_kl
        self.global_value_key = global_value_key
        self.global_value_coeff = float(global_value_coeff)
        self.global_value_target_key = global_value_target_key
        self._penalty: TensorDictBase | None = None
        self._global_loss: torch.Tensor | None = None

    def _log_weight(self, tensordict: TensorDictBase, adv_shape: torch.Size):
        out = super()._log_weight(tensordict, adv_shape)
        if self.reference_kl is not None:
            self._penalty = self.reference_kl.penalty(out[1], tensordict)
        return out

    def loss_critic(self, tensordict: TensorDictBase):
        out = super().loss_critic(tensordict)
        if self.global_value_key is not None:
            value = tensordict.get(self.global_value_key)
            loss = distance_loss(
                value,
                tensordict.get(self.global_value_target_key).to(value.dtype),
                loss_function=self.loss_critic_type,
            )
            self._global_loss = self.global_value_coeff * loss.mean()
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        td_out = super().forward(tensordict)
        if self._penalty is not None:
            td_out.update(self._penalty)
            self._penalty = None
        if self._global_loss is not None:
            td_out.set("loss_critic_global", self._global_loss)
            self._global_loss = None
        return td_out
