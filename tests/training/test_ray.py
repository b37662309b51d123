"""``collector.backend=ray``: torchrl's ``RayCollector`` on a local Ray instance (loopback).

Skipped, with the reason in the ``-ra`` summary, only where Ray is not installed (``pip install
'mtmarl[distributed]'``; the nox ``tests`` session installs it).
"""

from __future__ import annotations

import warnings

import pytest
import torch

ray = pytest.importorskip("ray", reason="collector.backend=ray needs the [distributed] extra")

with warnings.catch_warnings():  # torchrl's legacy weight updaters warn when first imported
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchrl.collectors.distributed import RayCollector

from mtmarl.training import ConfigError, Trainer, apply_overrides, get_experiment  # noqa: E402

NUM_ENVS, HORIZON, ITERATIONS, WORKERS = 4, 20, 3, 2


@pytest.fixture(scope="module")
def local_ray():
    """A private Ray instance on this machine (``address="local"`` never joins a cluster that
    ``RAY_ADDRESS`` or ``ray start`` may have set up)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class RecordingTrainer(Trainer):
    """Keeps each iteration's batch shape and first step counts."""

    def collect(self):
        data = super().collect()
        self.batches = [*getattr(self, "batches", []), (data.shape, data["step_count"][:, 0])]
        return data


def tiny_config(*extra: str):
    return apply_overrides(
        get_experiment("movebox-easy").config,
        [
            "variant=basic",
            f"collector.num_envs={NUM_ENVS}",
            f"collector.iterations={ITERATIONS}",
            f"collector.workers={WORKERS}",
            "collector.backend=ray",
            "model.num_cells=[16]",
            "optim.minibatch_size=40",
            "optim.epochs=1",
            "eval.episodes=4",
            "run.progress=false",
            *extra,
        ],
    )


def test_ray_collection_trains_with_the_local_batch_layout(local_ray, tmp_path):
    synced = []

    def check_remote_weights(trainer, metrics):
        assert isinstance(trainer.collector, RayCollector)
        local = dict(trainer.actor.named_parameters())
        for remote_policy in trainer.collector.get_distant_attr("policy"):
            remote = dict(remote_policy.named_parameters())
            synced.append(all(torch.equal(remote[k], v.detach()) for k, v in local.items()))

    trainer = RecordingTrainer(tiny_config(), run_dir=tmp_path)
    before = [p.detach().clone() for p in trainer.actor.parameters()]
    result = trainer.train(callback=check_remote_weights)

    assert result.iterations == ITERATIONS
    assert result.frames == ITERATIONS * NUM_ENVS * HORIZON
    # same [E, T] layout as the local collectors, every env reset at the start of the batch
    for shape, first_steps in trainer.batches:
        assert shape == torch.Size([NUM_ENVS, HORIZON])
        assert (first_steps == 0).all()
    # one whole episode per env per iteration
    assert [m["train/episodes"] for m in result.history] == [float(NUM_ENVS)] * ITERATIONS
    assert synced and all(synced), "the remote policies did not receive the updated weights"
    after = list(trainer.actor.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert (tmp_path / "eval.json").exists()
    assert ray.is_initialized(), "the trainer must not shut down a Ray instance it did not start"


def test_ray_backend_rejects_recurrent():
    with pytest.raises(ConfigError, match="collector.backend='ray' is not supported"):
        Trainer(tiny_config("variant=recurrent", "collector.workers=1"))
