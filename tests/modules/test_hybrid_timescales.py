"""Hybrid actions under an ActionFrequencyMask (the two papers together): on forced steps
every head of the hybrid actor has log-prob 0 and entropy 0, and the stored action is the
executed one."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs import StepCounter, TransformedEnv
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.modules.builders import EnvInfo, build_actor, get_variant
from mtmarl.transforms import ActionFrequencyMask

PERIODS = (1, 2, 3, 4, 4)  # 5 prosumers acting on four timescales


class _Model:
    num_cells = (16,)
    pfnn_period = None
    n_control_points = 4
    hidden_size = 8
    feature_dim = 8
    encoder = "lstm"
    continuous_distribution = "tanh_normal"
    init_scale = 1.0


def _env(num_envs=3):
    base = CommunityEnergyEnv(n_prosumers=len(PERIODS), num_envs=num_envs, seed=0)
    env = TransformedEnv(base, StepCounter())
    # the env writes an EV-deadline mask of its own at ("agents", "action_mask")
    mask = ("agents", "timescale_action_mask")
    env.append_transform(ActionFrequencyMask(PERIODS, mode="hold", mask_key=mask))
    return env


@pytest.mark.parametrize("distribution", ["tanh_normal", "beta"])
@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
def test_forced_steps_have_zero_log_prob_and_store_the_executed_action(distribution, encoder):
    torch.manual_seed(0)
    env = _env()
    check_env_specs(env)
    model = _Model()
    model.continuous_distribution, model.encoder = distribution, encoder
    actor = build_actor(EnvInfo.from_env(env), variant=get_variant("basic"), model=model)
    with set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(48, actor)
    can_act = data["agents", "can_act"]  # (E, T, N)
    forced = ~can_act
    assert int(forced.sum()) > 50
    for leaf in ("mode", "power"):
        log_prob = data["agents", "action", f"{leaf}_log_prob"]
        assert bool((log_prob[forced] == 0).all()), leaf
        # free steps are the policy's (the EV-deadline mask alone may still force a mode)
        choice = can_act & (data["agents", "action_mask"].sum(-1) > 1 if leaf == "mode" else True)
        assert bool((log_prob[choice] != 0).all()) and bool(choice.any()), leaf
        executed = data["next", "agents", "prev_action", leaf]
        stored = data["agents", "action", leaf]
        assert torch.equal(stored[forced], executed[forced]), leaf  # stored = executed
    # the loss's own pass: per-leaf log-probs and entropies of forced steps are exactly 0
    dist = actor.get_dist(data.clone())
    log_prob = dist.log_prob(data.clone())
    for key in actor.log_prob_keys:
        assert bool((log_prob[key][forced] == 0).all())
    entropy = dist.entropy()
    for leaf in ("mode", "power"):
        assert bool((entropy["agents", "action", f"{leaf}_entropy"][forced] == 0).all()), leaf


def test_deterministic_policy_holds_too():
    env = _env(num_envs=2)
    actor = build_actor(EnvInfo.from_env(env), variant=get_variant("basic"), model=_Model())
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        data = env.rollout(8, actor)
    forced = ~data["agents", "can_act"]
    stored = data["agents", "action", "power"]
    assert torch.equal(stored[forced], data["next", "agents", "prev_action", "power"][forced])
