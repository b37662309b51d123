"""Losses torchrl does not ship, as torchrl ``LossModule`` subclasses."""

from mtmarl.objectives.coma import COMALoss

__all__ = [
    # counterfactual multi-agent policy gradients
    "COMALoss",
]
