from __future__ import annotations

import pytest

from mtmarl.training import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_yaml,
    config_to_yaml,
)


def test_defaults_and_derived_sizes():
    cfg = TrainConfig(experiment="movebox-easy")
    assert cfg.collector.frames_per_batch == cfg.collector.num_envs * cfg.collector.steps_per_env
    assert cfg.collector.total_frames == cfg.collector.frames_per_batch * cfg.collector.iterations
    assert cfg.run_name == "movebox-easy-phasic-mappo-seed0"


def test_overrides_are_typed():
    cfg = apply_overrides(
        TrainConfig(),
        [
            "variant=onehot",
            "seed=3",
            "model.num_cells=[128,32]",
            "optim.lr=1e-3",
            "model.pfnn_period=4",
            "env.foo=1",
        ],
    )
    assert cfg.variant == "onehot" and cfg.seed == 3
    assert cfg.model.num_cells == [128, 32] and cfg.model.pfnn_period == 4
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.env == {"foo": 1}


@pytest.mark.parametrize(
    "override, match",
    [
        ("colector.num_envs=3", "Key 'colector' not in 'TrainConfig'"),
        ("collector.num_env=3", "Key 'num_env' not in 'CollectorConfig'"),
        ("collector.num_envs=abc", "collector.num_envs"),
        ("collector.num_envs=0", r"collector.num_envs must be > 0, got 0"),
        ("variant=foo", r"variant must be one of \['basic', 'recurrent', 'onehot', 'phasic'\]"),
        ("algorithm=ppo", "algorithm must be one of"),
        ("loss.gamma=1.5", r"loss.gamma must be in \[0, 1\]"),
        ("model.n_control_points=3", "model.n_control_points must be >= 4"),
        ("model.num_cells=[]", "at least one hidden layer"),
        ("run.logger=wandb", "run.logger must be one of"),
        ("seed", "key=value"),
        ("seed=-1", "seed must be >= 0"),
        ("collector.workers=3", r"num_envs \(64\) must be a multiple of collector.workers \(3\)"),
        ("optim.critic_warmup=-1", r"optim.critic_warmup must be >= 0, got -1"),
        ("optim.critic_warmup=100", r"critic_warmup must be < collector.iterations .* 100 >= 100"),
        ("collector.episode_group_size=0", r"collector.episode_group_size must be > 0"),
        ("collector.episode_group_size=3", r"episode_group_size \(3\) must divide .* = 64\)"),
        ("loss.group_baseline=true", r"group_baseline needs .* episode_group_size=1"),
    ],
)
def test_bad_overrides_name_the_problem(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(TrainConfig(), [override])


def test_direct_construction_validates():
    with pytest.raises(ConfigError, match="variant"):
        TrainConfig(variant="nope")


def test_yaml_roundtrip():
    cfg = apply_overrides(TrainConfig(), ["seed=7", "model.num_cells=[8]", "env.x=2"])
    back = config_from_yaml(config_to_yaml(cfg))
    assert back == cfg
    with pytest.raises(ConfigError, match="seed"):
        config_from_yaml("seed: notanumber")
