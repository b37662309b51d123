"""The trainer's MATPPO wiring: actor encoders, critics (MLP / Transformer / local), injection."""

from __future__ import annotations

import pytest
import torch
from bandit_env import HORIZON, bandit_env_fn
from tensordict.nn import TensorDictModule
from torchrl.modules import MLP

from mtmarl.modules import ForecastEncoder, TransformerCritic
from mtmarl.training import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    Trainer,
    apply_overrides,
    explained_variance,
    get_experiment,
)

ADVANTAGE = ("agents", "advantage")
VALUE = ("agents", "state_value")
VALUE_TARGET = ("agents", "value_target")
GLOBAL_TARGET = "state_value_global_target"


def community_config(*overrides):
    return apply_overrides(
        get_experiment("community").config,
        [
            "env.n_prosumers=3",
            "collector.num_envs=2",
            "collector.steps_per_env=24",
            "collector.iterations=2",
            "optim.minibatch_size=24",
            "optim.epochs=1",
            "model.num_cells=[16]",
            "model.hidden_size=8",
            "model.feature_dim=8",
            "model.attention_dim=8",
            "model.attention_heads=2",
            "model.attention_layers=1",
            "eval.episodes=2",
            "eval.interval=100",
            "run.progress=false",
            *overrides,
        ],
    )


def _has(module, cls):
    return any(isinstance(m, cls) for m in module.modules())


CASES = [  # (encoder, critic, variant, critic type)
    ("mlp", "mlp", "basic", TensorDictModule),
    ("lstm", "mlp", "basic", TensorDictModule),
    ("lstm", "local", "basic", TensorDictModule),
    ("lstm", "transformer", "basic", TransformerCritic),
    ("lstm", "transformer", "phasic", TransformerCritic),
    ("mlp", "transformer", "onehot", TransformerCritic),
]


@pytest.mark.parametrize("encoder, critic, variant, critic_type", CASES)
def test_every_critic_and_encoder_trains_on_the_community(
    encoder, critic, variant, critic_type, tmp_path
):
    cfg = community_config(
        f"model.encoder={encoder}", f"model.critic={critic}", f"variant={variant}"
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    assert isinstance(trainer.critic, critic_type)
    assert _has(trainer.actor, ForecastEncoder) == (encoder == "lstm")
    if critic == "mlp":
        assert trainer.critic.in_keys[0] == "state"
    elif critic == "local":
        assert trainer.critic.in_keys[0] == ("agents", "observation")
    else:
        assert trainer.critic.in_keys[:2] == [("agents", "critic_observation"), "aggregate"]
    assert trainer.algorithm.train_global_value == (critic == "transformer")
    before = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    result = trainer.train()
    assert result.iterations == 2 and result.frames == 2 * 2 * 24
    last = result.history[-1]
    losses = {k: v for k, v in last.items() if k.startswith("train/loss")}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert ("train/loss_critic_global" in losses) == (critic == "transformer")
    changed = [k for k, v in trainer.critic.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    if critic == "transformer":  # the global value head is trained too
        assert any(k.startswith("global_head") for k in changed)
    assert torch.isfinite(torch.tensor(result.evaluation.return_mean))


def test_global_value_target_is_the_team_return_estimate(tmp_path):
    cfg = community_config("loss.gamma=1", "loss.lmbda=1", "loss.agent_rewards=false")
    trainer = Trainer(cfg, run_dir=tmp_path)
    data = trainer.collect()
    trainer.algorithm.estimate_advantage(data)
    assert data[GLOBAL_TARGET].shape == (2, 24, 1)
    assert data["agents", "value_target"].shape == (2, 24, 3, 1)
    # gamma = lambda = 1: both targets are the reward-to-go (bootstrapped after the last
    # collected step), so consecutive targets differ by the team reward of the step
    reward = data["next", "reward"]
    for target in (data[GLOBAL_TARGET], data["agents", "value_target"][..., 0, :]):
        torch.testing.assert_close(target[:, :-1] - target[:, 1:], reward[:, :-1])
    no_global = Trainer(community_config("loss.global_value_coeff=0"), run_dir=tmp_path / "off")
    assert not no_global.algorithm.train_global_value


@pytest.mark.parametrize("critic", ["transformer", "mlp", "local"])
def test_agent_rewards_give_each_agent_its_own_return(critic, tmp_path):
    cfg = community_config(
        "loss.gamma=1", "loss.lmbda=1", "loss.agent_rewards=true", f"model.critic={critic}"
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    data = trainer.collect()
    trainer.algorithm.estimate_advantage(data)
    target = data["agents", "value_target"]  # (2, 24, 3, 1)
    own = data["next", "agents", "reward"]
    torch.testing.assert_close(target[:, :-1] - target[:, 1:], own[:, :-1])
    assert not torch.allclose(own[..., 0, :], own[..., 1, :])  # the agents' rewards differ
    if critic == "transformer":  # the pooled global value stays on the team reward
        torch.testing.assert_close(
            data[GLOBAL_TARGET][:, :-1] - data[GLOBAL_TARGET][:, 1:], data["next", "reward"][:, :-1]
        )
    trainer.train()


def test_agent_rewards_need_an_env_that_writes_them(tmp_path):
    cfg = community_config("loss.agent_rewards=true", "env.agent_rewards=false")
    with pytest.raises(
        ConfigError, match=r"loss.agent_rewards needs an env .*\('agents', 'reward'\)"
    ):
        Trainer(cfg, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="loss.agent_rewards is not an option of COMAConfig"):
        apply_overrides(TrainConfig(), ["algorithm=coma", "loss.agent_rewards=true"])


def test_preset_is_matppo_and_the_baselines_are_overrides():
    cfg = get_experiment("community").config
    assert (cfg.model.encoder, cfg.model.critic) == ("lstm", "transformer")
    assert apply_overrides(cfg, ["model.critic=mlp"]).model.critic == "mlp"
    assert apply_overrides(cfg, ["model.critic=local"]).run_name.endswith("lstm-local-seed0")
    assert TrainConfig(experiment="movebox-easy").run_name == "movebox-easy-phasic-mappo-seed0"


def test_preset_env_options_reach_the_env():
    exp = get_experiment("community")
    cfg = apply_overrides(exp.config, ["env.n_prosumers=3", "env.overload_weight=0.0"])
    env = exp.make_env(cfg, num_envs=2, seed=0)
    assert env.base_env.n_prosumers == 3 and env.base_env.overload_weight == 0.0
    assert set(exp.env_kwargs_doc) == {
        "n_prosumers",
        "comfort_weight",
        "ev_weight",
        "overload_weight",
        "agent_rewards",
    }
    with pytest.raises(ConfigError, match="do not fit experiment 'community'"):
        exp.make_env(apply_overrides(exp.config, ["env.overload=0.0"]), num_envs=2, seed=0)


def test_bad_model_configuration_fails_at_construction(tmp_path):
    with pytest.raises(ConfigError, match="model.critic must be one of"):
        apply_overrides(TrainConfig(), ["model.critic=gnn"])
    with pytest.raises(ConfigError, match="model.encoder must be one of"):
        apply_overrides(TrainConfig(), ["model.encoder=gru"])
    with pytest.raises(ConfigError, match="attention_heads"):
        ModelConfig(attention_dim=10, attention_heads=4)
    with pytest.raises(ConfigError, match="algorithm=coma"):
        apply_overrides(TrainConfig(), ["algorithm=coma", "model.critic=transformer"])
    with pytest.raises(ConfigError, match="global_value_coeff"):
        apply_overrides(TrainConfig(), ["loss.global_value_coeff=-1"])

    def hybrid_fn(**kw):
        return bandit_env_fn(hybrid=True, **kw)

    base = apply_overrides(TrainConfig(experiment="bandit"), ["variant=basic"])
    steps = {"max_episode_steps": HORIZON, "run_dir": tmp_path}
    with pytest.raises(ConfigError, match="critic_observation"):
        Trainer(apply_overrides(base, ["model.critic=transformer"]), env_fn=hybrid_fn, **steps)
    with pytest.raises(ConfigError, match="'forecast'"):
        Trainer(apply_overrides(base, ["model.encoder=lstm"]), env_fn=hybrid_fn, **steps)
    with pytest.raises(ConfigError, match="model.encoder=lstm serves hybrid actions"):
        Trainer(apply_overrides(base, ["model.encoder=lstm"]), env_fn=bandit_env_fn, **steps)
    with pytest.raises(ConfigError, match="TensorDictModuleBase"):
        Trainer(base, env_fn=bandit_env_fn, critic=torch.nn.Linear(2, 2), **steps)
    with pytest.raises(ConfigError, match="model.continuous_distribution must be one of"):
        apply_overrides(TrainConfig(), ["model.continuous_distribution=gaussian"])
    with pytest.raises(ConfigError, match="applies to hybrid"):
        Trainer(
            apply_overrides(base, ["model.continuous_distribution=beta"]),
            env_fn=bandit_env_fn,
            **steps,
        )
    assert not (tmp_path / "config.yaml").exists()  # nothing was written


def test_beta_head_trains_on_the_community(tmp_path):
    from mtmarl.modules import ScaledBeta

    trainer = Trainer(
        community_config("model.continuous_distribution=beta", "model.action_prior=null"),
        run_dir=tmp_path,
    )
    before = [p.detach().clone() for p in trainer.actor.parameters()]
    td = trainer.env.reset()
    with torch.no_grad():
        dist = trainer.actor.get_dist(td)
    assert any(isinstance(d, ScaledBeta) for d in dist.dists.values())
    result = trainer.train()
    assert result.iterations == 2
    assert all(torch.isfinite(torch.tensor(h["train/loss_objective"])) for h in result.history)
    after = list(trainer.actor.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_injected_critic_and_actor_are_trained(tmp_path):
    """Trainer(config, actor=..., critic=...): your modules, the trainer's loop."""
    cfg = apply_overrides(
        TrainConfig(experiment="bandit"),
        [
            "variant=basic",
            "collector.num_envs=8",
            f"collector.steps_per_env={HORIZON}",
            "collector.iterations=2",
            "optim.minibatch_size=16",
            "eval.episodes=4",
            "run.progress=false",
        ],
    )
    reference = Trainer(
        cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "ref"
    )
    critic = TensorDictModule(  # an IPPO-style critic on the observation, no agent id
        MLP(in_features=3, out_features=1, num_cells=[8]),
        in_keys=[("agents", "observation")],
        out_keys=[("agents", "state_value")],
    )
    trainer = Trainer(
        cfg,
        env_fn=bandit_env_fn,
        max_episode_steps=HORIZON,
        run_dir=tmp_path / "mine",
        actor=reference.actor,
        critic=critic,
    )
    assert trainer.critic is critic and trainer.actor is reference.actor
    before = [p.clone() for p in critic.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))


# ------------------------------------------------------------------ action prior (residual)
def test_rule_based_prior_starts_the_actor_at_the_controller(tmp_path):
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from mtmarl.envs.community.baselines import RuleBasedSelfConsumptionPolicy
    from mtmarl.modules import ActionPrior
    from mtmarl.training.experiments import COMMUNITY_THERMOSTAT_DEADBAND

    trainer = Trainer(community_config("model.action_prior=rule_based"), run_dir=tmp_path)
    assert _has(trainer.actor, ActionPrior)
    # another community than the training one: the controller reads the ratings it observes
    env = get_experiment("community").env_factory(num_envs=3, device="cpu", seed=123, n_prosumers=3)
    td = env.reset()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        ours = trainer.actor(td.clone())
    # model.action_prior=rule_based: the plain EV rules, the preset's deadband thermostat
    rule = RuleBasedSelfConsumptionPolicy(env, thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND)(
        td.clone()
    )
    mode, power = ("agents", "action", "mode"), ("agents", "action", "power")
    assert torch.equal(ours[mode], rule[mode])
    # the prior clips at 0.99 of the bounds; the heads start at 1 % of their init
    torch.testing.assert_close(ours[power], rule[power].clamp(-0.99, 0.99), atol=0.03, rtol=0)
    result = trainer.train()
    assert result.iterations == 2
    assert all(torch.isfinite(torch.tensor(h["train/loss_objective"])) for h in result.history)


def test_the_spread_prior_is_the_rule_based_controller_with_spread_pacing_and_deadband(tmp_path):
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from mtmarl.envs.community.baselines import RuleBasedSelfConsumptionPolicy
    from mtmarl.training.experiments import (
        COMMUNITY_BATTERY_REFILL_HOUR,
        COMMUNITY_BATTERY_SPREAD,
        COMMUNITY_EV_SPREAD,
        COMMUNITY_THERMOSTAT_DEADBAND,
    )

    trainer = Trainer(community_config("model.action_prior=rule_based_spread"), run_dir=tmp_path)
    env = get_experiment("community").env_factory(num_envs=2, device="cpu", seed=123, n_prosumers=4)
    rule = RuleBasedSelfConsumptionPolicy(
        env,
        ev_spread=COMMUNITY_EV_SPREAD,
        thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND,
        battery_spread=COMMUNITY_BATTERY_SPREAD,
        battery_refill_hour=COMMUNITY_BATTERY_REFILL_HOUR,
    )
    day = env.rollout(env.base_env.HORIZON, rule)  # a whole day: EVs plug in and charge
    assert COMMUNITY_BATTERY_SPREAD > 0  # the batteries are paced: unpaced ones act otherwise
    unpaced = RuleBasedSelfConsumptionPolicy(
        env, ev_spread=COMMUNITY_EV_SPREAD, thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND
    )(day.exclude("next").clone())
    power = ("agents", "action", "power")
    assert not torch.allclose(unpaced[power], day[power])
    assert bool((day["agents", "action", "mode"] > 0).any())
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        ours = trainer.actor(day.exclude("next").clone())
    assert torch.equal(ours["agents", "action", "mode"], day["agents", "action", "mode"])
    # the heat pumps idle inside the deadband, as the controller's do
    hvac = day["agents", "action", "power"][..., 1]
    assert bool((hvac == 0).any()) and bool((hvac != 0).any())
    torch.testing.assert_close(
        ours["agents", "action", "power"], day["agents", "action", "power"], atol=0.05, rtol=0
    )


def test_bad_action_prior_fails_at_construction(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"not a controller of experiment 'community'; known: "
        r"\['rule_based', 'rule_based_preheat', 'rule_based_spread'\]",
    ):
        Trainer(community_config("model.action_prior=oracle"), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="continuous_distribution=tanh_normal"):
        Trainer(
            community_config("model.action_prior=rule_based", "model.continuous_distribution=beta"),
            run_dir=tmp_path,
        )
    movebox = apply_overrides(
        get_experiment("movebox-easy").config, ["model.action_prior=rule_based"]
    )
    with pytest.raises(ConfigError, match=r"known: \[\]"):
        Trainer(movebox, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="model.init_scale must be a finite number > 0"):
        ModelConfig(init_scale=0.0)
    with pytest.raises(ConfigError, match="model.action_prior_bonus must be >= 0"):
        ModelConfig(action_prior_bonus=-1.0)
    with pytest.raises(ConfigError, match="model.action_prior must be"):
        ModelConfig(action_prior="")
    assert not (tmp_path / "config.yaml").exists()  # nothing was written


def test_an_injected_actor_is_used_as_it_is(tmp_path):
    """model.action_prior belongs to the actor the trainer builds, like the rest of model.*"""
    from mtmarl.modules import ActionPrior

    built = Trainer(community_config(), run_dir=tmp_path / "a")  # the preset: with a prior
    assert _has(built.actor, ActionPrior)
    own = Trainer(community_config(), run_dir=tmp_path / "b", actor=built.actor)
    assert own.actor is built.actor


# ------------------------------------------------------------------ reference-KL anchor
def test_reference_kl_anchors_the_actor_to_its_initial_copy_and_resumes(tmp_path):
    cfg = community_config("loss.reference_kl_coeff=0.5")
    trainer = Trainer(cfg, run_dir=tmp_path)
    initial = {k: v.clone() for k, v in trainer.actor.state_dict().items()}
    reference = trainer.loss_module.reference_kl.reference_network
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(value, initial[key], rtol=0, atol=0)
    result = trainer.train()
    kls = [h["train/reference_kl"] for h in result.history]
    assert kls[0] >= 0 and kls[-1] > 0  # the actor moved away from its copy, which did not
    assert all("train/loss_reference_kl" in h for h in result.history)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(value, initial[key], rtol=0, atol=0)
    # a resumed run anchors to the same initial actor, from the checkpoint
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["loss_module"]
    assert any(k.startswith("reference_kl.reference_network.") for k in saved)
    resumed = Trainer(
        apply_overrides(cfg, ["collector.iterations=3"]), run_dir=tmp_path, resume=True
    )
    for key, value in resumed.loss_module.reference_kl.reference_network.state_dict().items():
        torch.testing.assert_close(value, initial[key], rtol=0, atol=0)
    assert community_config().loss.reference_kl_coeff == 0.1  # the preset anchors its actor
    off = Trainer(community_config("loss.reference_kl_coeff=0"), run_dir=tmp_path / "off")
    assert off.loss_module.reference_kl is None


def test_bad_reference_kl_coeff_fails_at_construction():
    from mtmarl.algorithms import MAPPOConfig

    with pytest.raises(ConfigError, match="loss.reference_kl_coeff must be >= 0.0, got -0.1"):
        MAPPOConfig(reference_kl_coeff=-0.1)


def test_the_preset_prior_is_the_spread_prior_with_pre_heating(tmp_path):
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from mtmarl.envs.community.baselines import RuleBasedSelfConsumptionPolicy
    from mtmarl.training.experiments import (
        COMMUNITY_BATTERY_REFILL_HOUR,
        COMMUNITY_BATTERY_SPREAD,
        COMMUNITY_EV_SPREAD,
        COMMUNITY_PREHEAT_HOURS,
        COMMUNITY_PREHEAT_TARGET,
        COMMUNITY_THERMOSTAT_DEADBAND,
    )

    trainer = Trainer(community_config(), run_dir=tmp_path)
    assert trainer.config.model.action_prior == "rule_based_preheat"
    env = get_experiment("community").env_factory(num_envs=2, device="cpu", seed=123, n_prosumers=4)
    kwargs = {
        "ev_spread": COMMUNITY_EV_SPREAD,
        "thermostat_deadband": COMMUNITY_THERMOSTAT_DEADBAND,
        "battery_spread": COMMUNITY_BATTERY_SPREAD,
        "battery_refill_hour": COMMUNITY_BATTERY_REFILL_HOUR,
    }
    rule = RuleBasedSelfConsumptionPolicy(
        env,
        **kwargs,
        preheat_target=COMMUNITY_PREHEAT_TARGET,
        preheat_hours=COMMUNITY_PREHEAT_HOURS,
    )
    day = env.rollout(env.base_env.HORIZON, rule)
    power = ("agents", "action", "power")
    spread = RuleBasedSelfConsumptionPolicy(env, **kwargs)(day.exclude("next").clone())
    assert not torch.allclose(spread[power][..., 1], day[power][..., 1])  # the heat pumps
    torch.testing.assert_close(spread[power][..., 0], day[power][..., 0])  # not the batteries
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        ours = trainer.actor(day.exclude("next").clone())
    torch.testing.assert_close(ours[power], day[power], atol=0.05, rtol=0)


def test_the_logged_explained_variance_is_the_critics_fit_and_rises_as_it_learns(
    tmp_path, monkeypatch
):
    cfg = community_config(
        "collector.iterations=8",
        "collector.steps_per_env=96",
        "collector.num_envs=4",
        "optim.epochs=4",
        "optim.minibatch_size=96",
        "optim.lr=3e-3",
        "model.num_cells=[32]",
        "model.attention_dim=16",
        "model.feature_dim=16",
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    fits = []
    estimate = trainer.algorithm.estimate_advantage

    def recording(data):  # the batch's values and targets, as the update sees them
        estimate(data)
        fits.append(explained_variance(data[VALUE], data[VALUE_TARGET]))

    monkeypatch.setattr(trainer.algorithm, "estimate_advantage", recording)
    explained = [h["train/explained_variance"] for h in trainer.train().history]
    assert explained == pytest.approx(fits)
    # an untrained critic explains nothing of the (time-of-day driven) returns; 8 iterations
    # of fitting explain a good part of them
    assert abs(explained[0]) < 0.1 and max(explained[-2:]) > 0.4, explained


def test_group_baseline_trains_on_episode_groups_and_validates_on_independent_days(tmp_path):
    cfg = community_config(
        "collector.num_envs=4", "collector.episode_group_size=2", "loss.group_baseline=true"
    )
    trainer = Trainer(cfg, run_dir=tmp_path / "grouped")
    assert trainer.env.base_env.episode_group_size == 2
    assert trainer.make_env(4, seed=1).base_env.episode_group_size == 1  # validation
    data = trainer.collect()
    obs = data["agents", "observation"]  # the envs of a group share their day
    torch.testing.assert_close(obs[1, 0], obs[0, 0])
    assert not torch.equal(obs[2, 0], obs[0, 0])
    trainer.algorithm.estimate_advantage(data)
    grouped = data[ADVANTAGE].reshape(2, 2, *data[ADVANTAGE].shape[1:])
    # leave-one-out within each group: the two envs' advantages are opposite
    torch.testing.assert_close(grouped[:, 0], -grouped[:, 1])
    plain = Trainer(community_config("collector.num_envs=4"), run_dir=tmp_path / "plain")
    assert plain.env.base_env.episode_group_size == 1
    result = trainer.train()
    assert result.iterations == cfg.collector.iterations


def test_episode_groups_need_an_env_that_takes_them(tmp_path):
    with pytest.raises(ConfigError, match="env.episode_group_size is set by the trainer"):
        Trainer(community_config("env.episode_group_size=2"), run_dir=tmp_path / "a")
    cfg = apply_overrides(
        TrainConfig(experiment="bandit"),
        ["collector.num_envs=4", "collector.steps_per_env=4", "collector.episode_group_size=2"],
    )
    with pytest.raises(
        ConfigError,
        match="needs an env that takes episode_group_size; the env factory of the env_fn does not",
    ):
        Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "b")
