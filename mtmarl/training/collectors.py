"""The collectors a run gathers its batches with: local, worker processes, or Ray.

Every iteration yields one ``[num_envs, steps_per_env]`` batch with all envs reset at its
start (whole episodes; ``reset_at_each_iter``), whichever backend (``collector.backend``,
``collector.workers``): torchrl's ``Collector`` in the training process, its
``MultiSyncCollector`` over worker processes, or its ``RayCollector`` over Ray actors. Workers
return ``[workers, num_envs / workers, T]``, which :func:`flatten_workers` turns into
``[num_envs, T]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType

from mtmarl.errors import ConfigError

__all__ = ["check_collector_config", "flatten_workers", "make_collector", "worker_env_makers"]


def check_collector_config(config: Any) -> None:
    """Collector choices a run cannot honour, refused before any work.

    Examples:
        >>> from mtmarl.training import TrainConfig, apply_overrides
        >>> cfg = apply_overrides(TrainConfig(), ["variant=recurrent", "collector.workers=2"])
        >>> try:
        ...     check_collector_config(cfg)
        ... except ConfigError as err:
        ...     print(str(err).split(";")[0])
        collector.workers > 1 is not supported for variant=recurrent yet (the workers would need the recurrent primers)
    """
    from mtmarl.modules.builders import get_variant

    col = config.collector
    if get_variant(config.variant).recurrent and (col.workers > 1 or col.backend == "ray"):
        what = "collector.workers > 1" if col.workers > 1 else "collector.backend='ray'"
        raise ConfigError(
            f"{what} is not supported for variant=recurrent yet (the workers would need the "
            "recurrent primers); use collector.workers=1 and collector.backend=local"
        )
    if col.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                f"collector.backend='ray' needs Ray ({err}); install the extra: "
                "pip install 'mtmarl[distributed]'"
            ) from None


def worker_env_makers(
    config: Any, env_maker: Callable[..., EnvBase]
) -> list[Callable[[], EnvBase]]:
    """One picklable env factory per worker, each with its own seed."""
    per_worker = config.collector.num_envs // config.collector.workers
    return [
        functools.partial(
            env_maker, num_envs=per_worker, seed=config.seed + 1 + w * 7919, training=True
        )
        for w in range(config.collector.workers)
    ]


def flatten_workers(data: TensorDictBase) -> TensorDictBase:
    """``[workers, envs per worker, T] -> [E, T]``; an ``[E, T]`` batch is returned as is.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> flatten_workers(TensorDict({"x": torch.zeros(2, 3, 5)}, [2, 3, 5])).shape
        torch.Size([6, 5])
    """
    if data.ndim == 3:
        return data.reshape(-1, data.shape[-1])
    return data


def make_collector(
    config: Any,
    *,
    env: EnvBase,
    policy: TensorDictModuleBase,
    env_maker: Callable[..., EnvBase],
    device: torch.device,
):
    """The collector of ``config.collector``: one ``[num_envs, steps_per_env]`` batch per
    iteration (see the module).

    Args:
        config (TrainConfig): the run's config.

    Keyword Args:
        env (EnvBase): the training env (used by the local single-process collector).
        policy (TensorDictModuleBase): the actor.
        env_maker (Callable): the run's picklable env maker (for the workers).
        device (torch.device): where the policy runs.
    """
    cfg = config
    options = {
        "frames_per_batch": cfg.collector.frames_per_batch,
        "total_frames": -1,
        "reset_at_each_iter": True,  # whole episodes per iteration
        "exploration_type": ExplorationType.RANDOM,
        "device": device,
    }
    if cfg.collector.backend == "ray":
        return _make_ray_collector(cfg, policy, env_maker, options, device)
    options["auto_register_policy_transforms"] = False
    if cfg.collector.workers == 1:
        return Collector(env, policy, **options)
    return MultiSyncCollector(worker_env_makers(cfg, env_maker), policy, **options)


def _make_ray_collector(cfg, policy, env_maker, options: dict[str, Any], device):
    """torchrl's ``RayCollector``: ``workers`` Ray actors, each running a ``Collector`` on
    ``num_envs / workers`` envs; ``sync=True`` stacks their batches every iteration.

    Ray is initialised here unless the caller already did (``ray.init(...)``): the cluster
    ``RAY_ADDRESS`` names, else one started on this machine with ``ray start``, else a fresh
    local instance (shut down again with the collector)."""
    from torchrl.collectors.distributed import RayCollector

    remote = {"num_cpus": 1}
    if device.type == "cuda":  # the workers share the GPUs Ray schedules them on
        remote["num_gpus"] = 1.0 / cfg.collector.workers
    collector = RayCollector(
        worker_env_makers(cfg, env_maker),
        policy,
        # RayCollector stops at total_frames (it has no "-1 = forever"): the run's budget
        frames_per_batch=options["frames_per_batch"],
        total_frames=cfg.collector.total_frames,
        reset_at_each_iter=options["reset_at_each_iter"],
        exploration_type=options["exploration_type"],
        device=options["device"],
        sync=True,
        collector_class=Collector,
        collector_kwargs={"auto_register_policy_transforms": False},
        remote_configs=remote,
        ray_init_config={"address": None, "include_dashboard": False, "log_to_driver": False},
    )
    collector.update_policy_weights_()  # the first sync; later ones follow each update
    return collector
