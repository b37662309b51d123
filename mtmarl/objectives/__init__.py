"""Losses torchrl does not ship, as torchrl ``LossModule`` subclasses."""

from mtmarl.objectives.coma import COMALoss
from mtmarl.objectives.group_baseline import leave_one_out
from mtmarl.objectives.mappo import MAPPOLoss
from mtmarl.objectives.reference_kl import ReferenceKLLoss, distribution_kl

__all__ = [
    # counterfactual multi-agent policy gradients
    "COMALoss",
    # torchrl's MAPPOLoss with a KL anchor and a global-value head
    "MAPPOLoss",
    # anchoring a policy to a fixed reference
    "ReferenceKLLoss",
    "distribution_kl",
    # baselines over envs that share their episodes
    "leave_one_out",
]
