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
        ("collector.num_envs=0", r"collector.num_envs must be a finite number > 0, got 0"),
        ("variant=foo", r"variant must be one of \['basic', 'recurrent', 'onehot', 'phasic'\]"),
        ("algorithm=ppo", "algorithm must be one of"),
        ("loss.gamma=1.5", r"loss.gamma must be in \[0.0, 1.0\]"),
        ("model.n_control_points=3", "model.n_control_points must be >= 4"),
        ("model.num_cells=[]", "at least one hidden layer"),
        ("run.logger=wandb", "run.logger must be one of"),
        ("seed", "key=value"),
        ("seed=-1", r"seed must be in \[0, 2147483647\]"),
        ("collector.workers=3", r"num_envs \(64\) must be a multiple of collector.workers \(3\)"),
        ("optim.critic_warmup=-1", r"optim.critic_warmup must be >= 0, got -1"),
        ("optim.critic_warmup=100", r"critic_warmup must be < collector.iterations .* 100 >= 100"),
        (
            "collector.episode_group_size=0",
            r"collector.episode_group_size must be a finite number > 0",
        ),
        ("collector.episode_group_size=3", r"episode_group_size \(3\) must divide .* = 64\)"),
        (
            "loss.group_baseline=true",
            r"group_baseline needs collector.episode_group_size >= 2 .* got 1",
        ),
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


def test_moved_names_keep_working_with_a_deprecation_warning():
    import mtmarl.training
    import mtmarl.training.config
    from mtmarl.algorithms import ALGORITHMS, MAPPOConfig

    with pytest.warns(DeprecationWarning, match="moved to mtmarl.algorithms.MAPPOConfig"):
        assert mtmarl.training.LossConfig is MAPPOConfig
    with pytest.warns(DeprecationWarning, match="moved to mtmarl.algorithms.MAPPOConfig"):
        assert mtmarl.training.config.LossConfig is MAPPOConfig
    with pytest.warns(DeprecationWarning, match="mtmarl.algorithms.ALGORITHMS"):
        assert mtmarl.training.config.ALGORITHMS is ALGORITHMS


def test_switching_algorithm_keeps_the_shared_options_and_refuses_the_others():
    base = apply_overrides(TrainConfig(), ["loss.gamma=0.9", "loss.clip_epsilon=0.1"])
    coma = apply_overrides(base, ["algorithm=coma"])
    assert coma.loss.gamma == 0.9 and coma.critic == "coma"
    with pytest.raises(ConfigError, match="loss.clip_epsilon is not an option of COMAConfig"):
        apply_overrides(base, ["algorithm=coma", "loss.clip_epsilon=0.3"])
    back = apply_overrides(coma, ["algorithm=mappo"])
    assert back.loss.gamma == 0.9 and back.loss.clip_epsilon == 0.2  # MAPPO's default again
    text = config_to_yaml(coma)
    assert config_from_yaml(text) == coma


@pytest.mark.parametrize(
    "override",
    [
        "optim.lr=nan",
        "optim.lr=inf",
        "optim.max_grad_norm=nan",
        "loss.entropy_coeff=nan",
        "loss.critic_coeff=inf",
        "loss.clip_epsilon=nan",
        "loss.gamma=nan",
        "model.init_scale=inf",
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        apply_overrides(TrainConfig(), [override])


def test_moved_trainer_attributes_warn_and_answer(tmp_path):
    from mtmarl.training import Trainer

    cfg = apply_overrides(
        TrainConfig(experiment="movebox-easy"),
        ["variant=basic", "collector.num_envs=2", "run.progress=false"],
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    with pytest.warns(
        DeprecationWarning, match=r"Trainer.n_agents moved: use trainer.info.n_agents"
    ):
        assert trainer.n_agents == 2
    with pytest.warns(DeprecationWarning, match="Trainer.hybrid moved"):
        assert trainer.hybrid is False
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trainer.nope  # noqa: B018
