"""COMA's optional epsilon floor (PyMARL's multinomial selector): the mixed policy, its
schedule, forced steps, the refused options and the untouched default."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MaskedCategorical

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from bandit_env import coma_bandit_trainer  # noqa: E402

from mtmarl.algorithms import COMAConfig  # noqa: E402
from mtmarl.errors import ConfigError  # noqa: E402
from mtmarl.modules import EpsilonMaskedCategorical  # noqa: E402
from mtmarl.training import TrainConfig, Trainer, apply_overrides, get_experiment  # noqa: E402

NUM_ENVS = 8  # x HORIZON = 32 frames per batch


def bandit_trainer(tmp_path, *extra):
    return coma_bandit_trainer(tmp_path, *extra)


def movebox_trainer(tmp_path, *extra):
    cfg = apply_overrides(
        get_experiment("movebox-easy").config_for("coma"),
        [
            "variant=phasic",
            "collector.num_envs=4",
            "collector.iterations=2",
            "optim.minibatch_size=40",
            "eval.episodes=4",
            "eval.keep_best=false",
            "run.progress=false",
            *extra,
        ],
    )
    return Trainer(cfg, run_dir=tmp_path)


def _mixed(logits, mask, eps):
    plain = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
    return (1 - eps) * plain + eps * mask.float() / mask.sum(-1, keepdim=True)


# ---------------------------------------------------------------- the distribution
@pytest.mark.parametrize("eps", [0.0, 0.01, 0.3, 1.0])
def test_mixed_probabilities_follow_the_formula(eps):
    torch.manual_seed(0)
    logits = 3 * torch.randn(64, 2, 5)
    mask = torch.rand(64, 2, 5) < 0.6
    mask[..., 0] = True  # at least one allowed action per row
    mask[:8, 0] = torch.tensor([True, False, False, False, False])  # forced rows
    dist = EpsilonMaskedCategorical(logits, mask=mask, epsilon=eps)
    expected = _mixed(logits, mask, eps)
    assert torch.allclose(dist.probs, expected, atol=1e-6)
    assert torch.allclose(dist.probs.sum(-1), torch.ones(64, 2), atol=1e-6)
    assert (dist.probs[~mask] == 0).all()
    actions = dist.sample()
    assert mask.gather(-1, actions.unsqueeze(-1)).all()  # masked actions are never sampled
    log_prob = dist.log_prob(actions)
    assert torch.allclose(
        log_prob, expected.gather(-1, actions.unsqueeze(-1)).squeeze(-1).log(), atol=1e-5
    )
    entropy = -(expected * expected.clamp_min(1e-30).log()).sum(-1)
    assert torch.allclose(dist.entropy(), entropy, atol=1e-5)
    # forced rows: probability 1 and log-prob 0 exactly, whatever epsilon
    assert (dist.log_prob(torch.zeros(64, 2, dtype=torch.long))[:8, 0] == 0).all()
    assert (dist.probs[:8, 0, 0] == 1).all()


def test_without_a_mask_the_floor_is_uniform_over_all_actions():
    logits = torch.tensor([[4.0, 0.0, -4.0, 0.0]])
    dist = EpsilonMaskedCategorical(logits, epsilon=0.5)
    expected = 0.5 * torch.softmax(logits, -1) + 0.5 / 4
    assert torch.allclose(dist.probs, expected, atol=1e-7)


def test_the_mode_is_the_unmixed_argmax():
    torch.manual_seed(1)
    logits = torch.randn(256, 6)
    mask = torch.rand(256, 6) < 0.5
    mask[:, 3] = True
    dist = EpsilonMaskedCategorical(logits, mask=mask, epsilon=0.9)
    plain = MaskedCategorical(logits=logits, mask=mask)
    assert torch.equal(dist.mode, plain.mode)
    assert torch.equal(dist.deterministic_sample, plain.deterministic_sample)


def test_gradients_stay_finite_through_masked_actions():
    logits = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor(
        [[True, False, False], [True, True, False], [True] * 3, [False, True, True]]
    )
    dist = EpsilonMaskedCategorical(logits, mask=mask, epsilon=0.2)
    (dist.log_prob(torch.tensor([0, 1, 2, 2])).sum() + dist.entropy().sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[0] == 0).all()  # a forced row carries no gradient


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan"), True])
def test_the_distribution_refuses_a_bad_epsilon(eps):
    with pytest.raises(ValueError, match="epsilon to be a float in"):
        EpsilonMaskedCategorical(torch.zeros(2, 3), epsilon=eps)


# ---------------------------------------------------------------- the schedule
def test_the_schedule_at_start_middle_and_end():
    cfg = COMAConfig(epsilon_start=0.5, epsilon_finish=0.01, epsilon_anneal_frames=1000)
    assert cfg.epsilon_at(0) == 0.5
    assert cfg.epsilon_at(500) == pytest.approx(0.255)
    assert cfg.epsilon_at(250) == pytest.approx(0.3775)
    assert cfg.epsilon_at(1000) == 0.01 and cfg.epsilon_at(10**9) == 0.01
    assert COMAConfig().epsilon_at(0) == 0.0  # off by default
    assert COMAConfig().epsilon_anneal_frames == 500_000  # PyMARL's epsilon_anneal_time


def test_the_policy_follows_the_schedule_per_collected_frame(tmp_path):
    # 32 frames per batch, anneal over 64 frames: 0.5 at iteration 0, 0.25 at 1, 0 from 2 on
    trainer = bandit_trainer(
        tmp_path,
        "loss.epsilon_start=0.5",
        "loss.epsilon_finish=0.0",
        "loss.epsilon_anneal_frames=64",
    )
    algo = trainer.algorithm
    module = algo._policy_module
    assert module.distribution_class is EpsilonMaskedCategorical
    assert [algo.epsilon(i) for i in range(4)] == [0.5, 0.25, 0.0, 0.0]
    assert module.distribution_kwargs["epsilon"] == 0.5  # the first collection
    batch = trainer.collect()
    # the stored log-prob is that of the mixed policy the actions were drawn from
    logits, action = batch["agents", "logits"], batch["agents", "action"]
    mixed = _mixed(logits, torch.ones_like(logits, dtype=torch.bool), 0.5)
    expected = mixed.gather(-1, action.unsqueeze(-1)).squeeze(-1).log()
    assert torch.allclose(batch["agents", "action_log_prob"], expected, atol=1e-6)
    metrics = trainer.update(batch)
    assert metrics["train/epsilon"] == 0.5  # the loss used the batch's floor
    assert module.distribution_kwargs["epsilon"] == 0.25  # the next collection's
    assert algo.state_dict()["epsilon_iteration"] == 1


def test_a_resumed_run_acts_with_the_uninterrupted_runs_floor(tmp_path):
    opts = ("loss.epsilon_start=0.5", "loss.epsilon_anneal_frames=64")
    first = bandit_trainer(tmp_path / "a", *opts)
    for _ in range(2):
        first.update(first.collect())
        first.iteration += 1
    state = first.algorithm.state_dict()
    second = bandit_trainer(tmp_path / "b", *opts)
    assert second.algorithm._policy_module.distribution_kwargs["epsilon"] == 0.5
    second.algorithm.load_state_dict(state)
    assert second.algorithm._policy_module.distribution_kwargs[
        "epsilon"
    ] == first.algorithm.epsilon(2)
    assert first.algorithm.epsilon(2) == 0.01


def test_deterministic_actions_are_unaffected(tmp_path):
    plain = movebox_trainer(tmp_path / "plain")
    floored = movebox_trainer(tmp_path / "floored", "loss.epsilon_start=0.5")
    floored.actor.load_state_dict(plain.actor.state_dict())
    td = plain.env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a = plain.actor(td.clone())["agents", "action"]
        b = floored.actor(td.clone())["agents", "action"]
    assert torch.equal(a, b)


# ---------------------------------------------------------------- forced steps
def test_forced_steps_keep_log_prob_zero(tmp_path):
    trainer = movebox_trainer(tmp_path, "loss.epsilon_start=0.5")
    batch = trainer.collect()
    mask, can_act = batch["agents", "action_mask"], batch["agents", "can_act"]
    forced = mask.sum(-1) == 1
    assert forced.any() and (~can_act).any() and (forced | can_act).all()
    assert (batch["agents", "action_log_prob"][forced] == 0).all()
    assert (batch["agents", "action_log_prob"][~forced] < 0).all()  # the floor is on
    loss = trainer.algorithm.loss_module
    dist = loss._policy(batch)
    log_prob = dist.log_prob(batch["agents", "action"])
    assert (log_prob[forced] == 0).all() and (log_prob[~can_act] == 0).all()
    metrics = trainer.update(batch)
    assert metrics["train/epsilon"] == 0.5 and torch.isfinite(
        torch.tensor(metrics["train/loss_objective"])
    )


# ---------------------------------------------------------------- refused options
@pytest.mark.parametrize(
    "overrides, match",
    [
        (["loss.epsilon_start=1.5"], r"loss.epsilon_start must be in \[0.0, 1.0\]"),
        (["loss.epsilon_start=-0.1"], r"loss.epsilon_start must be in \[0.0, 1.0\]"),
        (["loss.epsilon_finish=2"], r"loss.epsilon_finish must be in \[0.0, 1.0\]"),
        (
            ["loss.epsilon_start=0.1", "loss.epsilon_finish=0.2"],
            "loss.epsilon_finish must be <= loss.epsilon_start",
        ),
        (["loss.epsilon_anneal_frames=0"], "loss.epsilon_anneal_frames must be a finite number"),
        (["loss.epsilon_anneal_frames=1.5"], "loss.epsilon_anneal_frames"),
    ],
)
def test_bad_epsilon_options_are_refused_naming_them(overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(TrainConfig(), ["algorithm=coma", *overrides])
    with pytest.raises(ConfigError, match="loss.epsilon_anneal_frames must be an int"):
        COMAConfig(epsilon_anneal_frames=1.5)


def test_the_floor_needs_the_local_collector(tmp_path):
    with pytest.raises(ConfigError, match="loss.epsilon_start > 0 needs collector.workers=1"):
        bandit_trainer(tmp_path, "loss.epsilon_start=0.5", "collector.workers=2")


# ---------------------------------------------------------------- off by default
def test_off_by_default_and_bit_identical_with_epsilon_start_zero(tmp_path):
    def train_two(run_dir, *extra):
        trainer = bandit_trainer(run_dir, *extra)
        assert trainer.algorithm._policy_module is None  # the actor is left as built
        history = []
        for _ in range(2):
            history.append(trainer.update(trainer.collect()))
            trainer.iteration += 1
        return trainer, history

    default, h_default = train_two(tmp_path / "default")
    off, h_off = train_two(tmp_path / "off", "loss.epsilon_start=0")
    assert h_default == h_off and all(h["train/epsilon"] == 0.0 for h in h_off)
    a, b = default.loss_module.state_dict(), off.loss_module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
