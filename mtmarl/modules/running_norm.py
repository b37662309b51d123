"""Running observation normalisation inside the model, with statistics shared over agents.

The standard on-policy practice (SB3's ``VecNormalize``, CleanRL's ``NormalizeObservation``)
normalises observations by their running mean and std. Here the normalisation is part of
the actor and the critic rather than of the env:

* the collected batch keeps the raw observations (KPIs, controllers and logs read the
  env's own units), and the model normalises what it reads;
* the statistics are buffers of the modules, so the trainer's checkpoint, ``best.pt`` and
  any copy of the actor carry them: an evaluation on a plain env, a resumed run and an
  exported actor all normalise as training did;
* the statistics change only between iterations (:func:`update_input_norms`, called by the
  trainer after each update on the batch just collected), so the policy that collected a
  batch is the one PPO's ratio starts from.

:class:`RunningNorm` keeps, for one observation key, the count, mean and sum of squared
deviations of its features (the last ``feature_dims`` dims) over every other dim -- the
batch *and* the agent dim: one set of statistics for a parameter-shared actor, the same for
any ``N`` -- updated with Chan's parallel formula in float64, and maps ``x`` to
``clip((x - mean) / sqrt(var + eps), -clip, clip)``. :func:`add_input_norms` puts one in
front of every input of a model that is an observation key.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

__all__ = ["RunningNorm", "add_input_norms", "update_input_norms"]


class RunningNorm(nn.Module):
    """Normalise one observation by the running mean and std of its features.

    Args:
        key (NestedKey): the observation this normalises (for :func:`update_input_norms`).
        feature_shape (torch.Size or tuple): the trailing dims that are features, e.g.
            ``(W, F)`` for a forecast ``(*B, N, W, F)``; every leading dim is a sample.

    Keyword Args:
        clip (float or None): bound of the normalised values (SB3's ``clip_obs``); ``None``
            does not clip. Defaults to ``10.0``.
        eps (float): added to the variance. Defaults to ``1e-8``.

    Attributes:
        count, mean, m2 (torch.Tensor): the statistics (float64 buffers).

    Examples:
        >>> import torch
        >>> norm = RunningNorm(("agents", "observation"), (3,))
        >>> x = torch.randn(64, 2, 3) * 5 + 2        # (B, N, F): 128 samples
        >>> torch.equal(norm(x), x)                  # no data yet: the identity
        True
        >>> norm.update(x[:40]); norm.update(x[40:])  # in two parts: the same statistics
        >>> torch.allclose(norm.mean, x.reshape(-1, 3).double().mean(0))
        True
        >>> y = norm(x)
        >>> torch.allclose(y.reshape(-1, 3).mean(0), torch.zeros(3), atol=1e-5)
        True
        >>> int(norm.count)
        128
    """

    def __init__(
        self,
        key: NestedKey,
        feature_shape: torch.Size | tuple[int, ...],
        *,
        clip: float | None = 10.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if clip is not None and not float(clip) > 0:
            raise ValueError(f"RunningNorm expected clip > 0 or None, got {clip!r}")
        if not float(eps) > 0:
            raise ValueError(f"RunningNorm expected eps > 0, got {eps!r}")
        self.key = key
        self.feature_shape = torch.Size(feature_shape)
        self.clip = None if clip is None else float(clip)
        self.eps = float(eps)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(self.feature_shape, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(self.feature_shape, dtype=torch.float64))

    def _check(self, x: torch.Tensor) -> None:
        n = len(self.feature_shape)
        if tuple(x.shape[x.ndim - n :]) != tuple(self.feature_shape) or x.ndim < n:
            raise ValueError(
                f"RunningNorm of {self.key!r} expected (*B, {', '.join(map(str, self.feature_shape))}), "
                f"got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add the samples of ``x`` ``(*B, *feature_shape)`` to the statistics.

        Raises:
            ValueError: a wrong shape, or non-finite values (refused before they reach the
                statistics).
        """
        self._check(x)
        if not torch.isfinite(x).all():
            raise ValueError(
                f"RunningNorm of {self.key!r}: the observations hold non-finite values; refused "
                "before they reach the running statistics"
            )
        flat = x.detach().reshape(-1, *self.feature_shape).to(torch.float64)
        n = flat.shape[0]
        if n == 0:
            return
        batch_mean = flat.mean(0)
        batch_m2 = (flat - batch_mean).pow(2).sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean.add_(delta * (n / total))
        self.m2.add_(batch_m2 + delta.pow(2) * (self.count * n / total))
        self.count.fill_(total)

    def std(self) -> torch.Tensor:
        """``sqrt(var + eps)`` of the features (1 before any data)."""
        if self.count == 0:
            return torch.ones_like(self.m2)
        return (self.m2 / self.count + self.eps).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` normalised (the identity before any :meth:`update`), in ``x``'s dtype."""
        self._check(x)
        if self.count == 0:
            return x
        mean = self.mean.to(x.dtype)
        y = (x - mean) / self.std().to(x.dtype)
        return y if self.clip is None else y.clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"key={self.key!r}, features={tuple(self.feature_shape)}, clip={self.clip}"


class _NormalizedInputs(nn.Module):
    """A ``TensorDictModule``'s network with a :class:`RunningNorm` on some positional inputs."""

    def __init__(self, module: nn.Module, norms: list[RunningNorm | None]) -> None:
        super().__init__()
        self.module = module
        self.norms = nn.ModuleList(n if n is not None else nn.Identity() for n in norms)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*(norm(x) for norm, x in zip(self.norms, inputs)))


def add_input_norms(
    model: nn.Module,
    observation_shapes: dict[NestedKey, torch.Size],
    *,
    clip: float | None = 10.0,
) -> list[NestedKey]:
    """Put a :class:`RunningNorm` in front of every input of ``model`` that is an observation.

    Every ``TensorDictModule`` in ``model`` whose ``in_keys`` (a list) hold keys of
    ``observation_shapes`` gets its network wrapped, so that those inputs are normalised as
    they are read: nothing normalised is written to a tensordict. A module that reads its
    keys itself (a ``TensorDictModuleBase`` with an ``input_norms`` attribute, e.g.
    :class:`~mtmarl.modules.TransformerCritic`) gets its norms there.

    Args:
        model (nn.Module): an actor or a critic (modified in place).
        observation_shapes (dict[NestedKey, torch.Size]): the float observation keys to
            normalise and their feature shapes (e.g. from the env's spec: the dims after the
            batch and agent dims).

    Keyword Args:
        clip (float or None): as :class:`RunningNorm`. Defaults to ``10.0``.

    Returns:
        list[NestedKey]: the observation keys the model now normalises.

    Raises:
        ValueError: a module reads an observation key and cannot be given a norm (a
            ``TensorDictModuleBase`` without ``input_norms``, or dict ``in_keys``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> net = TensorDictModule(torch.nn.Linear(3, 1), in_keys=["obs"], out_keys=["value"])
        >>> add_input_norms(net, {"obs": torch.Size([3])})
        ['obs']
        >>> td = TensorDict({"obs": torch.randn(50, 3) * 4 + 1}, [50])
        >>> update_input_norms(net, td)
        1
        >>> before = td["obs"].clone()
        >>> _ = net(td)
        >>> torch.equal(td["obs"], before)                   # the batch keeps raw values
        True
    """
    done: list[NestedKey] = []
    for sub in list(model.modules()):
        if not isinstance(sub, TensorDictModuleBase):
            continue
        keys = [k for k in getattr(sub, "in_keys", []) if k in observation_shapes]
        if not keys:
            continue
        if any(isinstance(c, TensorDictModuleBase) for c in sub.modules() if c is not sub):
            continue  # a container: its members are visited themselves
        if isinstance(sub, TensorDictModule) and isinstance(sub.in_keys, list):
            if not isinstance(sub.module, _NormalizedInputs):  # (a second call adds nothing)
                sub.module = _NormalizedInputs(
                    sub.module,
                    [
                        RunningNorm(k, observation_shapes[k], clip=clip)
                        if k in observation_shapes
                        else None
                        for k in sub.in_keys
                    ],
                )
        elif hasattr(sub, "input_norms"):
            if len(sub.input_norms) == 0:
                for k in keys:
                    sub.input_norms.append(RunningNorm(k, observation_shapes[k], clip=clip))
        else:
            raise ValueError(
                f"add_input_norms: {type(sub).__name__} reads the observations {keys} and has "
                "no input_norms to normalise them with"
            )
        done += [k for k in keys if k not in done]
    return done


def input_norms(model: nn.Module) -> Iterable[RunningNorm]:
    """The :class:`RunningNorm` modules of ``model``."""
    return (m for m in model.modules() if isinstance(m, RunningNorm))


@torch.no_grad()
def update_input_norms(model: nn.Module, batch: TensorDictBase) -> int:
    """Update every :class:`RunningNorm` of ``model`` with its key's values in ``batch``;
    returns how many it updated.

    Raises:
        KeyError: ``batch`` lacks a normalised key.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> net = TensorDictModule(torch.nn.Linear(2, 1), in_keys=["obs"], out_keys=["v"])
        >>> _ = add_input_norms(net, {"obs": torch.Size([2])})
        >>> update_input_norms(net, TensorDict({"obs": torch.ones(8, 2)}, [8]))
        1
        >>> [int(m.count) for m in net.modules() if isinstance(m, RunningNorm)]
        [8]
    """
    n = 0
    for norm in input_norms(model):
        norm.update(batch.get(norm.key))
        n += 1
    return n
