"""Pure-torch building blocks (no tensordict/torchrl import).

``from mtmarl.nn import PhaseLinear`` stays light for other projects.
"""

from mtmarl.nn.attention import AgentAttentionEncoder
from mtmarl.nn.forecast import ForecastFeatureNet, ForecastLSTM
from mtmarl.nn.phase import PhaseLinear, PhaseMLP, catmull_rom_coefficients

__all__ = [
    # phase-functioned layers (PFNN)
    "PhaseLinear",
    "PhaseMLP",
    "catmull_rom_coefficients",
    # forecast LSTM / agent attention (MATPPO cores)
    "ForecastLSTM",
    "ForecastFeatureNet",
    "AgentAttentionEncoder",
]
