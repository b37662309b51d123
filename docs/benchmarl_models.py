"""mtmarl's PhaseMLP and TransformerCritic as BenchMARL models (shown in docs/benchmarl.rst).

Run against BenchMARL 1.5.2 (torchrl 0.11) in an environment of its own: see the page for why
BenchMARL and mtmarl (torchrl 0.14) cannot share one yet. Nothing here is imported by mtmarl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, dataclass

import torch
from benchmarl.models.common import Model, ModelConfig
from tensordict import TensorDict, TensorDictBase
from torch import nn

from mtmarl.modules import TransformerCritic
from mtmarl.nn import PhaseMLP


class PhaseMlp(Model):
    """BenchMARL model whose MLP weights are a Catmull-Rom spline of the phase (PFNN).

    Reads the model's input keys: the key whose last element is ``phase_key`` is the phase
    (per agent ``(*B, N, 1)`` or per env ``(*B, 1)``, fraction of the cycle in ``[0, 1)``, e.g.
    written by ``mtmarl.transforms.PhaseEncoding``), the others are concatenated as features.
    Works as a decentralised policy (``share_params`` or one network per agent) and as a
    centralised critic (agents' features concatenated, or a global state).
    """

    def __init__(
        self,
        num_cells: Sequence[int],
        n_control_points: int,
        phase_key: str,
        activation_class: type[nn.Module],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.phase_in = next(k for k in self.in_keys if _last(k) == phase_key)
        self.feature_in = [k for k in self.in_keys if k != self.phase_in]
        per_agent = self.input_has_agent_dim and not self.centralised
        features = sum(self.input_spec[k].shape[-1] for k in self.feature_in)
        if self.input_has_agent_dim and self.centralised:
            features *= self.n_agents  # the agents' features side by side
        out = self.output_leaf_spec.shape[-1]
        n_nets = 1 if self.share_params else self.n_agents
        self.nets = nn.ModuleList(
            PhaseMLP(
                features,
                out,
                num_cells=tuple(num_cells),
                activation=activation_class,
                n_control_points=n_control_points,
            )
            for _ in range(n_nets)
        )
        self.per_agent = per_agent

    def _forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        x = torch.cat([tensordict.get(k) for k in self.feature_in], dim=-1)
        phase = tensordict.get(self.phase_in)
        if self.input_has_agent_dim and phase.dim() == x.dim() - 1:  # per-env phase
            phase = phase.unsqueeze(-2).expand(*x.shape[:-1], phase.shape[-1])
        if self.input_has_agent_dim and self.centralised:
            x, phase = x.flatten(-2), phase[..., 0, :]  # (*B, N * F), one phase per env
        if self.per_agent:  # (*B, N, F) -> (*B, N, out)
            if self.share_params:
                out = self.nets[0](x, phase)
            else:
                out = torch.stack(
                    [net(x[..., i, :], phase[..., i, :]) for i, net in enumerate(self.nets)],
                    dim=-2,
                )
        elif self.output_has_agent_dim:  # centralised, one network per agent
            out = torch.stack([net(x, phase) for net in self.nets], dim=-2)
        else:  # centralised and shared: one output for the group
            out = self.nets[0](x, phase)
        tensordict.set(self.out_key, out)
        return tensordict


@dataclass
class PhaseMlpConfig(ModelConfig):
    """Configuration of :class:`PhaseMlp`."""

    num_cells: Sequence[int] = MISSING
    n_control_points: int = 4
    phase_key: str = "phase"
    activation_class: type[nn.Module] = nn.ELU

    @staticmethod
    def associated_class():
        return PhaseMlp


class AttentionCritic(Model):
    """BenchMARL critic around :class:`mtmarl.modules.TransformerCritic` (MATPPO's critic).

    Self-attention over the group's agents; its pooled global value is the output when
    BenchMARL asks for one value per group (``share_param_critic=True``: centralised and
    shared, the MAPPO default), its per-agent values otherwise. It needs the agents'
    observations (``input_has_agent_dim``), not a flat global state.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_layers: int,
        head_cells: Sequence[int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (self.input_has_agent_dim and self.centralised):
            raise ValueError(
                "AttentionCritic attends over the agents' observations: it needs a centralised "
                "critic with the agent dimension (a task without a global state spec)"
            )
        features = sum(self.input_spec[k].shape[-1] for k in self.in_keys)
        self.critic = TransformerCritic(
            features,
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            head_cells=tuple(head_cells),
            agent_key="x",
            value_key="agent_value",
            global_value_key="value",
        )

    def _forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        x = torch.cat([tensordict.get(k) for k in self.in_keys], dim=-1)  # (*B, N, F)
        out = self.critic(TensorDict({"x": x}, batch_size=x.shape[:-2]))
        value = out["agent_value"] if self.output_has_agent_dim else out["value"]
        tensordict.set(self.out_key, value)  # (*B, N, 1) or (*B, 1)
        return tensordict


@dataclass
class AttentionCriticConfig(ModelConfig):
    """Configuration of :class:`AttentionCritic`."""

    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    head_cells: Sequence[int] = (64,)

    @staticmethod
    def associated_class():
        return AttentionCritic


def _last(key):
    return key if isinstance(key, str) else key[-1]
