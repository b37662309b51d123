"""mtmarl: composable TorchRL components for multi-timescale multi-agent RL in energy systems.

Sub-packages (import what you need; arrows point one way):

* :mod:`mtmarl.nn` -- pure-torch layers (:class:`~mtmarl.nn.PhaseLinear`, ...)
* :mod:`mtmarl.transforms` -- torchrl transforms (phase encoding, action-frequency masks)
* :mod:`mtmarl.envs` -- batched pure-torch environments
* :mod:`mtmarl.modules` -- TensorDict actors and critics
* :mod:`mtmarl.objectives` -- losses torchrl does not ship
* :mod:`mtmarl.training` -- configs, trainer, experiment presets
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
