"""End to end on every available device (``device`` fixture, tests/conftest.py): each env stack
with its transforms, the nn layers and modules, and one trainer run.

On a CPU-only machine the ``cuda`` cases are reported as skipped with their reason; the ``cpu``
cases always run.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import check_env_specs

from mtmarl.envs import BuildingEnv, CommunityEnergyEnv, MoveBoxEnv
from mtmarl.nn import AgentAttentionEncoder, PhaseLinear, PhaseMLP
from mtmarl.training import Trainer, apply_overrides, get_experiment

NUM_ENVS = 3
HAS_VMAS = importlib.util.find_spec("vmas") is not None

# (experiment preset, variant): every preset's env stack as a run builds it, with the
# transforms the variants add (StepCounter, ActionFrequencyMask, PhaseEncoding phase/onehot)
STACKS = [
    ("movebox-hard", "phasic"),
    ("movebox-easy", "onehot"),
    ("building", "phasic"),
    ("building", "onehot"),
    ("community", "basic"),
    ("community", "phasic"),
    pytest.param(
        "vmas-navigation",
        "basic",
        marks=pytest.mark.skipif(not HAS_VMAS, reason="vmas not installed ([vmas] extra)"),
    ),
]


def assert_on(td: TensorDictBase, device: torch.device) -> None:
    wrong = {
        key: value.device
        for key, value in td.items(include_nested=True, leaves_only=True)
        if value.device.type != device.type
    }
    assert not wrong, f"entries not on {device}: {wrong}"


def make_stack(name: str, variant: str, device: torch.device, num_envs: int = NUM_ENVS):
    experiment = get_experiment(name)
    config = apply_overrides(experiment.config, [f"variant={variant}", f"device={device}"])
    return experiment.make_env(config, num_envs=num_envs, seed=0)


@pytest.mark.parametrize("name, variant", STACKS)
def test_env_stack_runs_on_device(name, variant, device):
    env = make_stack(name, variant, device)
    assert env.device.type == device.type
    check_env_specs(env)
    reset = env.reset()
    assert_on(reset, device)
    rollout = env.rollout(4, break_when_any_done=False)
    assert rollout.batch_size == (NUM_ENVS, 4)
    assert_on(rollout, device)
    if variant == "phasic":
        assert ((rollout["phase"] >= 0) & (rollout["phase"] < 1)).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: MoveBoxEnv.hard(num_envs=NUM_ENVS, seed=1),
        lambda: BuildingEnv(num_envs=NUM_ENVS, seed=1),
        lambda: CommunityEnergyEnv(n_prosumers=4, num_envs=NUM_ENVS, seed=1),
    ],
    ids=["movebox", "building", "community"],
)
def test_env_state_follows_to(make, device):
    """``to(device)`` moves the specs and every state/table tensor; stepping stays there."""
    env = make().to(device)
    td = env.reset()
    td = env.rand_step(td)
    assert_on(td, device)
    for name in type(env)._TENSOR_ATTRS:
        assert getattr(env, name).device.type == device.type, name
    check_env_specs(env)


def test_nn_layers_on_device(device):
    x, phase = torch.randn(5, 3, 4, device=device), torch.rand(5, 3, device=device)
    layer = PhaseLinear(4, 2).to(device)
    mlp = PhaseMLP(4, 2, num_cells=(8,)).to(device)
    enc = AgentAttentionEncoder(4, global_features=6, d_model=8, num_heads=2).to(device)
    out = layer(x, phase) + mlp(x, phase)
    agents, glob = enc(x, torch.randn(5, 6, device=device))
    (out.sum() + agents.sum() + glob.sum()).backward()
    assert out.device.type == agents.device.type == device.type
    for module in (layer, mlp, enc):
        assert all(
            p.grad is not None and p.grad.device.type == device.type for p in module.parameters()
        )


@pytest.mark.parametrize(
    "experiment, variant",
    [("movebox-easy", "phasic"), ("building", "basic")],
)
def test_trainer_runs_on_device(experiment, variant, device, tmp_path):
    cfg = apply_overrides(
        get_experiment(experiment).config,
        [
            f"device={device.type}",
            f"variant={variant}",
            "collector.num_envs=4",
            "collector.iterations=2",
            "model.num_cells=[16]",
            "optim.minibatch_size=40",
            "optim.epochs=1",
            "eval.episodes=4",
            "run.progress=false",
        ],
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    params = list(trainer.loss_module.parameters())
    assert all(p.device.type == device.type for p in params)
    before = [p.detach().clone() for p in params]
    batches = []
    result = trainer.train(callback=lambda t, m: batches.append(t.collector is not None))
    assert result.iterations == 2 and len(batches) == 2
    assert all(torch.isfinite(torch.tensor(m["train/loss_objective"])) for m in result.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.loss_module.parameters()))
    assert result.evaluation is not None


def test_transformer_critic_on_a_community_batch(device):
    from mtmarl.modules import TransformerCritic

    env = make_stack("community", "basic", device)
    td = env.reset()
    obs, state = td["agents", "observation"], td["state"]
    critic = TransformerCritic(
        obs.shape[-1], global_features=state.shape[-1], d_model=16, num_heads=2
    ).to(device)
    out = critic(td)
    assert out["agents", "state_value"].shape == (*obs.shape[:-1], 1)
    assert out["state_value_global"].shape == (NUM_ENVS, 1)
    assert_on(out, device)
