"""TensorDict actors and critics built from :mod:`mtmarl.nn`.

The four policy/critic variants of seed 004 (``basic``, ``recurrent``, ``onehot``,
``phasic``) for discrete per-agent actions, all parameter-shared over agents with a one-hot
agent id, plus the building blocks they are composed of (usable without the trainer), and
MATPPO's LSTM forecast encoder, hybrid-action shared actor and Transformer critic.
"""

from mtmarl.modules.action_prior import ActionPrior
from mtmarl.modules.agent_id import SharedAgentNet
from mtmarl.modules.builders import (
    CRITICS,
    ENCODERS,
    VARIANT_REGISTRY,
    CriticBuilder,
    EncoderBuilder,
    EnvInfo,
    Variant,
    build_actor,
    build_critic,
    check_model_inputs,
    get_variant,
    register_critic,
)
from mtmarl.modules.categorical import make_categorical_actor
from mtmarl.modules.coma_critic import COMACritic
from mtmarl.modules.continuous import make_continuous_actor
from mtmarl.modules.forecast_encoder import ForecastEncoder
from mtmarl.modules.hybrid_actor import make_hybrid_actor
from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal
from mtmarl.modules.recurrent import MultiAgentGRU, set_recurrent_mode
from mtmarl.modules.scaled_beta import ScaledBeta
from mtmarl.modules.step_phase import PhaseFromStepCount
from mtmarl.modules.transformer_critic import TransformerCritic
from mtmarl.modules.variants import (
    VARIANTS,
    make_actor,
    make_basic_actor,
    make_basic_critic,
    make_critic,
    make_onehot_actor,
    make_onehot_critic,
    make_phasic_actor,
    make_phasic_critic,
    make_recurrent_actor,
    make_recurrent_critic,
)

__all__ = [
    # builders: a model choice -> modules, sized from the env's specs
    "EnvInfo",
    "Variant",
    "VARIANT_REGISTRY",
    "get_variant",
    "CRITICS",
    "ENCODERS",
    "CriticBuilder",
    "EncoderBuilder",
    "register_critic",
    "build_actor",
    "build_critic",
    "check_model_inputs",
    # seed-004 variant factories
    "VARIANTS",
    "make_actor",
    "make_critic",
    # per-variant builders
    "make_basic_actor",
    "make_basic_critic",
    "make_onehot_actor",
    "make_onehot_critic",
    "make_phasic_actor",
    "make_phasic_critic",
    "make_recurrent_actor",
    "make_recurrent_critic",
    # COMA's counterfactual critic (per-agent Q over the agent's own actions)
    "COMACritic",
    # building blocks
    "SharedAgentNet",
    "PhaseFromStepCount",
    "make_categorical_actor",
    # recurrence (TorchRL step / recurrent modes, primers)
    "MultiAgentGRU",
    "set_recurrent_mode",
    # continuous actions (multi-timescale: masked tanh-normal, zero log-prob on forced steps)
    "make_continuous_actor",
    "MaskedTanhNormal",
    # MATPPO (seed 000): forecast encoder, hybrid-action shared actor, Transformer critic
    "ForecastEncoder",
    "make_hybrid_actor",
    "ActionPrior",
    "ScaledBeta",
    "TransformerCritic",
]
