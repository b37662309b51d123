"""Throughput of the mtmarl trainer vs a minimal stock-torchrl MAPPO loop, measured in one run.

Both pipelines train the same ``basic`` MAPPO agents (same mtmarl actor/critic modules, hidden
sizes 64x64) on the same Move Box easy stack (64 envs x 20 steps per iteration, 4 epochs of
minibatches of 320). The stock loop follows torchrl's multi-agent PPO tutorial: ``Collector`` ->
``loss.value_estimator`` (``MultiAgentGAE``) -> ``ReplayBuffer(LazyTensorStorage,
SamplerWithoutReplacement)`` -> ``MAPPOLoss`` -> Adam. The trainer adds its own GAE, metrics,
logging, progress bookkeeping and signal handling on top.

Rounds alternate (trainer, stock, trainer, stock, ...) and frames/s is the median per pipeline,
timed from the end of the first iteration (warm-up) to the end of the last training iteration
(the trainer's final evaluation and plot are excluded).

Usage::

    python benchmarks/bench_trainer_overhead.py [--iterations 12] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs.utils import ExplorationType
from torchrl.objectives.multiagent import MAPPOLoss

from mtmarl.envs import make_movebox_env
from mtmarl.modules import make_actor, make_critic
from mtmarl.training import Trainer, apply_overrides, get_experiment

NUM_ENVS, HORIZON, EPOCHS, MINIBATCH, LR = 64, 20, 4, 320, 3e-4


def trainer_fps(iterations: int, seed: int) -> float:
    cfg = apply_overrides(
        get_experiment("movebox-easy").config,
        [
            "variant=basic",
            f"seed={seed}",
            f"collector.num_envs={NUM_ENVS}",
            f"collector.steps_per_env={HORIZON}",
            f"collector.iterations={iterations}",
            f"optim.epochs={EPOCHS}",
            f"optim.minibatch_size={MINIBATCH}",
            f"optim.lr={LR}",
            "eval.episodes=16",
            f"eval.interval={10 * iterations}",
            "run.progress=false",
        ],
    )
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir=run_dir)
        trainer.train(callback=lambda _t, _m: stamps.append(time.perf_counter()))
    # stamps[-1] is taken after the final evaluation: stop at the second-to-last iteration
    frames = NUM_ENVS * HORIZON * (len(stamps) - 2)
    return frames / (stamps[-2] - stamps[0])


def stock_fps(iterations: int, seed: int) -> float:
    torch.manual_seed(seed)
    env = make_movebox_env("easy", num_envs=NUM_ENVS, seed=seed)
    n_agents, obs_dim = env.observation_spec["agents", "observation"].shape[-2:]
    actor = make_actor(
        "basic", n_agents=n_agents, observation_dim=obs_dim, n_actions=3, num_cells=(64, 64)
    )
    critic = make_critic(
        "basic",
        n_agents=n_agents,
        state_dim=env.observation_spec["state"].shape[-1],
        num_cells=(64, 64),
    )
    frames_per_batch = NUM_ENVS * HORIZON
    collector = Collector(
        env,
        actor,
        frames_per_batch=frames_per_batch,
        total_frames=frames_per_batch * iterations,
        reset_at_each_iter=True,
        exploration_type=ExplorationType.RANDOM,
        auto_register_policy_transforms=False,
    )
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(frames_per_batch),
        sampler=SamplerWithoutReplacement(),
        batch_size=MINIBATCH,
    )
    loss = MAPPOLoss(actor, critic, entropy_coeff=0.01)
    loss.set_keys(
        action=("agents", "action"),
        value=("agents", "state_value"),
        sample_log_prob=("agents", "action_log_prob"),
        reward="reward",
        done="done",
        terminated="terminated",
    )
    loss.make_value_estimator(gamma=0.99, lmbda=0.95)
    optim = torch.optim.Adam(loss.parameters(), lr=LR)
    stamps = []
    for data in collector:
        with torch.no_grad():
            loss.value_estimator(data, params=loss.critic_network_params)
        buffer.extend(data.reshape(-1))
        for _ in range(EPOCHS):
            for _ in range(frames_per_batch // MINIBATCH):
                out = loss(buffer.sample())
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optim.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
                optim.step()
        collector.update_policy_weights_()
        stamps.append(time.perf_counter())
    collector.shutdown()
    frames = frames_per_batch * (len(stamps) - 2)
    return frames / (stamps[-2] - stamps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    ours, stock = [], []
    for r in range(args.rounds):
        ours.append(trainer_fps(args.iterations, seed=r))
        stock.append(stock_fps(args.iterations, seed=r))
        print(f"round {r}: trainer {ours[-1]:.0f} frames/s, stock loop {stock[-1]:.0f} frames/s")
    res = {
        "trainer_fps": statistics.median(ours),
        "stock_fps": statistics.median(stock),
        "threads": torch.get_num_threads(),
    }
    res["overhead"] = res["stock_fps"] / res["trainer_fps"] - 1
    print(
        f"median: trainer {res['trainer_fps']:.0f} frames/s, stock torchrl loop "
        f"{res['stock_fps']:.0f} frames/s -> trainer overhead {100 * res['overhead']:+.1f}% "
        f"(target < 10%)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
