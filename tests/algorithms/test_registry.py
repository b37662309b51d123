"""The algorithm registry: a toy algorithm defined here trains through ``train`` and the CLI
without any library file knowing it; the registry refuses what is not an algorithm."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from bandit_env import HORIZON, N_AGENTS, bandit_env_fn, plugin_source  # noqa: E402

from mtmarl.algorithms import (  # noqa: E402
    ALGORITHMS,
    Algorithm,
    AlgorithmConfig,
    MetricSums,
    clipped_step,
    get_algorithm,
    list_algorithms,
    register_algorithm,
)
from mtmarl.cli import main  # noqa: E402
from mtmarl.errors import ConfigError  # noqa: E402
from mtmarl.training import TrainConfig, apply_overrides, train  # noqa: E402


@dataclass
class ToyConfig(AlgorithmConfig):
    """REINFORCE's options: ``baseline`` subtracts the critic's value from the return."""

    baseline: bool = True


class ToyReinforce(Algorithm):
    """REINFORCE with a learned baseline: Monte-Carlo team returns, one step per batch."""

    name: ClassVar[str] = "toy-reinforce"
    description: ClassVar[str] = "REINFORCE with a value baseline (a test's algorithm)"
    config_class: ClassVar[type[AlgorithmConfig]] = ToyConfig
    critics: ClassVar[tuple[str, ...]] = ("mlp", "local")
    action_kinds: ClassVar[tuple[str, ...]] = ("discrete",)
    metrics: ClassVar[tuple[str, ...]] = ("loss_objective", "loss_critic", "return")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_module = torch.nn.ModuleDict({"actor": self.actor, "critic": self.critic})
        self.optimizer = torch.optim.Adam(self.loss_module.parameters(), lr=self.config.optim.lr)

    def optimizers(self):
        return {"optimizer": self.optimizer}

    def update(self, batch, *, iteration):
        gamma = self.config.loss.gamma
        reward = batch["next", "reward"].squeeze(-1)  # (E, T)
        done = batch["next", "done"].squeeze(-1).float()
        returns = torch.zeros_like(reward)
        running = torch.zeros_like(reward[:, 0])
        for t in reversed(range(reward.shape[1])):
            running = reward[:, t] + gamma * running * (1 - done[:, t])
            returns[:, t] = running
        value = self.critic(batch.clone())[self.info.key("state_value")].squeeze(-1)  # (E, T, N)
        target = returns.unsqueeze(-1).expand_as(value)
        advantage = target - value.detach() if self.config.loss.baseline else target
        log_prob = self.actor.get_dist(batch.clone()).log_prob(batch[self.info.key("action")])
        loss_objective = -(advantage * log_prob).mean()
        loss_critic = ((value - target) ** 2).mean()
        clipped_step(
            self.optimizer, loss_objective + loss_critic, self.loss_module.parameters(), 1.0
        )
        sums = MetricSums()
        sums.add(
            {
                "loss_objective": loss_objective,
                "loss_critic": loss_critic,
                "return": returns[:, 0].mean(),
            }
        )
        return sums.means()


@pytest.fixture
def toy():
    register_algorithm(ToyReinforce)
    yield ToyReinforce
    del ALGORITHMS[ToyReinforce.name]


def toy_overrides():
    return [
        "algorithm=toy-reinforce",
        "variant=basic",
        "collector.num_envs=32",
        f"collector.steps_per_env={HORIZON}",
        "collector.iterations=30",
        "optim.lr=1e-2",
        "model.num_cells=[32]",
        "eval.episodes=16",
        "eval.interval=100",
        "run.progress=false",
    ]


def test_a_registered_toy_algorithm_trains_through_train(toy, tmp_path):
    cfg = apply_overrides(TrainConfig(experiment="bandit"), toy_overrides())
    assert type(cfg.loss) is ToyConfig and cfg.critic == "mlp"
    assert toy in list_algorithms() and get_algorithm("toy-reinforce") is toy
    result = train(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    assert result.evaluation.return_mean >= 0.9 * HORIZON * N_AGENTS
    assert {"train/loss_objective", "train/return"} <= set(result.history[-1])
    # its own options are checked like the built-in ones
    with pytest.raises(ConfigError, match="loss.clip_epsilon is not an option of ToyConfig"):
        apply_overrides(cfg, ["loss.clip_epsilon=0.1"])
    with pytest.raises(ConfigError, match="trains the critics \\['mlp', 'local'\\]"):
        apply_overrides(cfg, ["model.critic=transformer"])


def test_a_registered_toy_algorithm_trains_through_the_cli(toy, tmp_path, monkeypatch, capsys):
    import mtmarl.training.experiments as experiments

    monkeypatch.setattr(experiments, "_REGISTRY", dict(experiments._REGISTRY))
    monkeypatch.delitem(sys.modules, "toy_bandit", raising=False)
    plugin = tmp_path / "toy_bandit.py"
    plugin.write_text(plugin_source("toy-bandit"))
    assert main(["list", "--import", str(plugin)]) == 0
    assert "toy-reinforce" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    overrides = [o for o in toy_overrides() if not o.startswith("variant")]
    argv = ["train", "toy-bandit", *overrides, "--run-dir", str(run_dir), "--import", str(plugin)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "toy-reinforce" in out and "evaluation over 16 episodes: return 8.00" in out
    assert "algorithm: toy-reinforce" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize(
    "bad, match",
    [
        (int, "expected an Algorithm subclass"),
        (type("NoName", (Algorithm,), {"update": lambda self, b, iteration: {}}), "must set"),
        (
            type("NoCritic", (Algorithm,), {"name": "x", "update": lambda s, b, iteration: {}}),
            "critics must name",
        ),
    ],
)
def test_the_registry_refuses_what_is_not_an_algorithm(bad, match):
    with pytest.raises(ConfigError, match=match):
        register_algorithm(bad)


def test_a_taken_name_is_refused_and_unknown_names_list_the_known():
    with pytest.raises(ConfigError, match="already registered"):
        register_algorithm(get_algorithm("mappo"))
    with pytest.raises(ConfigError, match=r"algorithm must be one of \['coma', 'mappo'\]"):
        apply_overrides(TrainConfig(), ["algorithm=qmix"])


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_registered_algorithm_declares_what_it_supports(name):
    cls = get_algorithm(name)
    assert cls.name == name and cls.description
    assert issubclass(cls.config_class, AlgorithmConfig)
    assert cls.critics and set(cls.action_kinds) <= {"discrete", "continuous", "hybrid"}
    cfg = apply_overrides(TrainConfig(), [f"algorithm={name}"])
    assert type(cfg.loss) is cls.config_class and cfg.critic == cls.default_critic()
