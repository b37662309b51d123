"""Throughput of the mtmarl trainer vs a minimal stock-torchrl MAPPO loop, measured in one run.

Two pairs (``--task movebox|vmas|both``), each training the same MAPPO agents with both
pipelines -- the same mtmarl actor/critic modules, the same env stack, the same sizes:

* ``movebox``: ``basic`` agents (MLP 64x64) on Move Box easy, 64 envs x 20 steps per
  iteration, 4 epochs of minibatches of 320, lr 3e-4, entropy 0.01, grad clip 1.
* ``vmas``: the ``vmas-navigation`` preset (BenchMARL's ``mappo/vmas/navigation`` sizes):
  3 agents with continuous actions (``basic`` tanh-normal actor and centralised critic, MLP
  256x256), 10 envs x 600 steps = 6000 frames per iteration, 3 epochs x 15 minibatches of 400,
  lr 5e-5, grad clip 5, clip 0.2, lmbda 0.9, no advantage normalisation, no entropy bonus. The
  stock loop runs on the preset's own env stack (``Experiment.make_env``) and reads every size
  and loss option from the preset's config.

The stock loop follows torchrl's multi-agent PPO tutorial: ``Collector`` ->
``loss.value_estimator`` (GAE) -> ``ReplayBuffer(LazyTensorStorage,
SamplerWithoutReplacement)`` -> ``MAPPOLoss`` -> Adam with the gradient norm clipped. The
trainer adds its own GAE, metrics, logging, checkpoints, progress bookkeeping and signal
handling on top.

Rounds alternate (trainer, stock, trainer, stock, ...) and frames/s is the median per pipeline,
timed from the end of the first iteration (warm-up) to the end of the last training iteration
(the trainer's final evaluation, which runs inside its last iteration, is excluded by stopping
at the second-to-last iteration on both sides; no evaluation of the initial policy either).

Usage::

    python benchmarks/bench_trainer_overhead.py [--task both] [--iterations 12] [--rounds 3]
        [--threads N] [--json out.json]
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
from mtmarl.modules import make_actor, make_continuous_actor, make_critic
from mtmarl.training import Trainer, apply_overrides, get_experiment

NUM_ENVS, HORIZON, EPOCHS, MINIBATCH, LR = 64, 20, 4, 320, 3e-4

#: the trainer's options of a timed run: no evaluation inside the run (the final one falls in
#: the last iteration, outside the timed window), none of the initial policy, no progress bar
_QUIET = ["eval.keep_best=false", "run.progress=false"]


def _trainer_fps(cfg, iterations: int) -> float:
    """frames/s of ``Trainer.train`` from the end of iteration 1 to the end of iteration
    ``iterations - 1`` (the last one holds the final evaluation)."""
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir=run_dir)
        trainer.train(callback=lambda _t, _m: stamps.append(time.perf_counter()))
    # stamps[-1] is taken after the final evaluation: stop at the second-to-last iteration
    frames = cfg.collector.num_envs * cfg.collector.steps_per_env * (len(stamps) - 2)
    return frames / (stamps[-2] - stamps[0])


# ---------------------------------------------------------------------------- Move Box easy
def movebox_trainer_fps(iterations: int, seed: int) -> float:
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
            *_QUIET,
        ],
    )
    return _trainer_fps(cfg, iterations)


def movebox_stock_fps(iterations: int, seed: int) -> float:
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


# ---------------------------------------------------------------------------- VMAS navigation
VMAS = "vmas-navigation"


def vmas_config(iterations: int, seed: int):
    """The ``vmas-navigation`` preset (``variant=basic``) for a timed run of ``iterations``."""
    return apply_overrides(
        get_experiment(VMAS).config,
        [
            "variant=basic",
            f"seed={seed}",
            f"collector.iterations={iterations}",
            "eval.episodes=2",
            f"eval.interval={10 * iterations}",
            *_QUIET,
        ],
    )


def vmas_trainer_fps(iterations: int, seed: int) -> float:
    return _trainer_fps(vmas_config(iterations, seed), iterations)


def vmas_stock_fps(iterations: int, seed: int) -> float:
    cfg = vmas_config(iterations, seed)
    col, opt, lcfg = cfg.collector, cfg.optim, cfg.loss
    torch.manual_seed(seed)
    # the preset's env stack: VmasEnv navigation + state / team-reward transforms + RewardSum
    env = get_experiment(VMAS).make_env(cfg, num_envs=col.num_envs, seed=seed, training=True)
    n_agents, obs_dim = env.observation_spec["agents", "observation"].shape[-2:]
    cells = tuple(cfg.model.num_cells)
    actor = make_continuous_actor(
        "basic",
        n_agents=n_agents,
        observation_dim=obs_dim,
        action_dim=env.full_action_spec["agents", "action"].shape[-1],
        action_spec=env.full_action_spec,
        num_cells=cells,
        can_act_key=None,
    )
    critic = make_critic(
        "basic",
        n_agents=n_agents,
        state_dim=env.observation_spec["state"].shape[-1],
        num_cells=cells,
    )
    frames_per_batch = col.num_envs * col.steps_per_env
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
        batch_size=opt.minibatch_size,
    )
    loss = MAPPOLoss(
        actor,
        critic,
        clip_epsilon=lcfg.clip_epsilon,
        entropy_coeff=lcfg.entropy_coeff,
        critic_coeff=lcfg.critic_coeff,
        normalize_advantage=lcfg.normalize_advantage,
        loss_critic_type="smooth_l1",
    )
    loss.set_keys(
        action=("agents", "action"),
        value=("agents", "state_value"),
        sample_log_prob=("agents", "action_log_prob"),
        reward="reward",
        done="done",
        terminated="terminated",
    )
    loss.make_value_estimator(gamma=lcfg.gamma, lmbda=lcfg.lmbda)
    optim = torch.optim.Adam(loss.parameters(), lr=opt.lr)
    stamps = []
    for data in collector:
        with torch.no_grad():
            loss.value_estimator(data, params=loss.critic_network_params)
        buffer.extend(data.reshape(-1))
        for _ in range(opt.epochs):
            for _ in range(frames_per_batch // opt.minibatch_size):
                out = loss(buffer.sample())
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optim.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), opt.max_grad_norm)
                optim.step()
        collector.update_policy_weights_()
        stamps.append(time.perf_counter())
    collector.shutdown()
    frames = frames_per_batch * (len(stamps) - 2)
    return frames / (stamps[-2] - stamps[0])


TASKS = {
    "movebox": (movebox_trainer_fps, movebox_stock_fps),
    "vmas": (vmas_trainer_fps, vmas_stock_fps),
}


def measure(task: str, iterations: int, rounds: int) -> dict[str, float]:
    trainer_fn, stock_fn = TASKS[task]
    ours, stock = [], []
    for r in range(rounds):
        ours.append(trainer_fn(iterations, seed=r))
        stock.append(stock_fn(iterations, seed=r))
        print(
            f"[{task}] round {r}: trainer {ours[-1]:.0f} frames/s, "
            f"stock loop {stock[-1]:.0f} frames/s",
            flush=True,
        )
    res = {
        "iterations": iterations,
        "rounds": rounds,
        "trainer_fps": statistics.median(ours),
        "stock_fps": statistics.median(stock),
        "trainer_fps_rounds": ours,
        "stock_fps_rounds": stock,
    }
    res["ratio"] = res["trainer_fps"] / res["stock_fps"]
    res["overhead"] = res["stock_fps"] / res["trainer_fps"] - 1
    print(
        f"[{task}] median: trainer {res['trainer_fps']:.0f} frames/s, stock torchrl loop "
        f"{res['stock_fps']:.0f} frames/s -> ratio trainer/stock {res['ratio']:.3f} "
        f"(target >= 0.95), trainer overhead {100 * res['overhead']:+.1f}%",
        flush=True,
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("movebox", "vmas", "both"), default="both")
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="iterations per round (>= 3; default 12 for movebox, 4 for vmas)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.iterations is not None and args.iterations < 3:
        parser.error("--iterations must be >= 3 (warm-up, timed, final-evaluation iteration)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    defaults = {"movebox": 12, "vmas": 4}
    tasks = list(TASKS) if args.task == "both" else [args.task]
    results: dict[str, object] = {"threads": torch.get_num_threads()}
    for task in tasks:
        results[task] = measure(task, args.iterations or defaults[task], args.rounds)
    if len(tasks) > 1:
        for task in tasks:
            print(f"{task}: ratio trainer/stock {results[task]['ratio']:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
