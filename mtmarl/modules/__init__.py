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
from mtmarl.modules.epsilon_categorical import EpsilonMaskedCategorical
from mtmarl.modules.forecast_encoder import ForecastEncoder
from mtmarl.modules.hybrid_actor import make_hybrid_actor
from mtmarl.modules.init import orthogonal_init
from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal
from mtmarl.modules.recurrent import MultiAgentGRU, set_recurrent_mode
from mtmarl.modules.running_norm import RunningNorm, add_input_norms, update_input_norms
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
    # initialisation (CleanRL's orthogonal scheme) and running input normalisation
    "orthogonal_init",
    "RunningNorm",
    "add_input_norms",
    "update_input_norms",
    # building blocks
    "SharedAgentNet",
    "PhaseFromStepCount",
    "make_categorical_actor",
    # a categorical policy with a uniform floor over the allowed actions (COMA's epsilon)
    "EpsilonMaskedCategorical",
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
