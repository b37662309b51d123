"""TorchRL transforms for multi-timescale control (seed 004).

The phase encoding and the action-frequency mask read the time step ``t`` from the ``"step_count"`` a
:class:`~torchrl.envs.StepCounter` writes, so append them after one, e.g.
``Compose(StepCounter(), ActionFrequencyMask([1, 2]), PhaseEncoding(2))``.
"""

from mtmarl.transforms.action_frequency import ActionFrequencyMask
from mtmarl.transforms.discrete_levels import DiscreteActionLevels
from mtmarl.transforms.period import multi_timescale_period
from mtmarl.transforms.phase_encoding import PhaseEncoding

__all__ = [
    # the joint period L = LCM(omega_1, ..., omega_N, Z)
    "multi_timescale_period",
    # phase of t mod L for time-aware policies
    "PhaseEncoding",
    # agents acting every omega_n steps (hold / null, masks, executed actions)
    "ActionFrequencyMask",
    # continuous actions as K levels each (discrete actions for COMA)
    "DiscreteActionLevels",
]
