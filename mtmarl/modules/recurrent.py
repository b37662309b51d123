"""A GRU over the episode history that understands the agent dim of multi-agent tensordicts.

:class:`torchrl.modules.GRUModule` / ``LSTMModule`` feed a 4-D tensor to ``nn.GRU`` when the
data carries an agent dim, and their primers lack that dim. :class:`MultiAgentGRU` is the
multi-agent counterpart written the TorchRL way:

* **step mode** (collection, evaluation): reads the input ``(*B, N, F)`` and the hidden state
  ``(*B, N, H)`` stored in the tensordict, zeros the hidden state where root ``"is_init"``
  ``(*B, 1)`` is ``True`` and writes the output and the new hidden state at
  ``("next", hidden_key)``, from where ``step_mdp`` carries it to the next step;
* **recurrent mode** (losses; :class:`set_recurrent_mode`): the root batch is ``(*E, T)``
  with time last; starting from the stored hidden state of the first step, it scans over
  ``T`` and resets at every ``is_init``, reproducing step mode exactly on a collected
  trajectory while letting gradients flow through time;
* :meth:`MultiAgentGRU.make_tensordict_primer` gives the ``TensorDictPrimer`` that declares
  the ``(*B, N, H)`` hidden state in the env specs and zeros it at reset.

Shape glossary: ``*B`` root batch dims, ``*E`` batch dims in front of time ``T``, ``N``
agents, ``F`` input features, ``H`` hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torchrl.data import Composite, Unbounded
from torchrl.envs import TensorDictPrimer
from torchrl.modules import recurrent_mode as _torchrl_recurrent_mode
from torchrl.modules import set_recurrent_mode as _torchrl_set_recurrent_mode

__all__ = ["MultiAgentGRU", "set_recurrent_mode"]


class set_recurrent_mode(_torchrl_set_recurrent_mode):  # noqa: N801 (torchrl's name)
    """Context manager / decorator switching recurrent modules to sequence (``True``) mode.

    The same switch as :class:`torchrl.modules.set_recurrent_mode` (it flips torchrl's
    ``GRUModule``/``LSTMModule`` too); re-exported so that code using
    :class:`MultiAgentGRU` needs only :mod:`mtmarl.modules`. TorchRL losses already enter
    recurrent mode in their ``forward``; outside a loss, wrap the call yourself.

    Args:
        mode (bool or str): ``True``/``"recurrent"`` (default) for whole ``(*E, T)``
            trajectories, ``False``/``"sequential"`` for one step at a time, ``None`` to
            fall back to each module's ``default_recurrent_mode``.

    Examples:
        >>> gru = MultiAgentGRU(3, 4, n_agents=2)
        >>> gru.recurrent_mode
        False
        >>> with set_recurrent_mode(True):
        ...     gru.recurrent_mode
        True
    """


def _gru_step(
    gi: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None
) -> torch.Tensor:
    """One GRU update from precomputed input gates ``gi = W_ih x + b_ih`` (``nn.GRUCell`` math)."""
    gh = F.linear(h, weight_hh, bias_hh)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)


class MultiAgentGRU(TensorDictModuleBase):
    """A parameter-shared GRU per agent, with TorchRL's step / recurrent modes and primer.

    An optional ``encoder`` maps the input entry to ``(*B, N, input_size)`` first -- e.g.
    :class:`~mtmarl.modules.SharedAgentNet` around an MLP, which appends the one-hot agent
    id and can broadcast a global ``(*B, S)`` state to the agents. One ``nn.GRUCell`` is
    shared by all agents; the id in the encoded input (and so the hidden state) keeps them
    apart.

    The input-side gates of all ``T`` steps are computed in one batched matmul; only the
    hidden-side product runs in the Python loop over time.

    Args:
        input_size (int): features ``F`` of the GRU input (after the encoder).
        hidden_size (int): hidden size ``H``.

    Keyword Args:
        n_agents (int): number of agents ``N`` (needed for the primer's spec).
        in_key (NestedKey): input entry. Defaults to ``("agents", "observation")``.
        out_key (NestedKey): output entry ``(*B, N, H)`` (the new hidden state, for a head
            to read). Defaults to ``("agents", "rnn_output")``.
        hidden_key (NestedKey): recurrent state ``(*B, N, H)``; the new state is written to
            ``("next", *hidden_key)``. Defaults to ``("agents", "rnn_hidden")``.
        is_init_key (NestedKey): root ``(*B, 1)`` bool written by
            :class:`torchrl.envs.InitTracker`. Optional in step mode (the primer already
            zeros the state at reset), required in recurrent mode. Defaults to ``"is_init"``.
        encoder (nn.Module, optional): applied to the input entry before the GRU; must
            return ``(*B, N, input_size)``. Defaults to ``None`` (the entry is used as is).
        default_recurrent_mode (bool, optional): mode used when no
            :class:`set_recurrent_mode` context is active. Defaults to ``None`` (step mode).

    in_keys: ``[in_key, hidden_key, is_init_key]``. out_keys: ``[out_key, ("next", *hidden_key)]``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> gru = MultiAgentGRU(3, 8, n_agents=2, hidden_key=("agents", "h"))
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(5, 2, 3)},
        ...     [5, 2]), "is_init": torch.ones(5, 1, dtype=torch.bool)}, [5])
        >>> gru(td)["agents", "rnn_output"].shape              # step mode: (B, N, H)
        torch.Size([5, 2, 8])
        >>> torch.equal(td["next", "agents", "h"], td["agents", "rnn_output"])
        True
        >>> seq = TensorDict({"agents": TensorDict({"observation": torch.randn(4, 6, 2, 3)},
        ...     [4, 6, 2]), "is_init": torch.zeros(4, 6, 1, dtype=torch.bool)}, [4, 6])
        >>> with set_recurrent_mode(True):                      # (E, T) trajectories
        ...     gru(seq)["agents", "rnn_output"].shape
        torch.Size([4, 6, 2, 8])
        >>> gru.make_tensordict_primer().primers["agents", "h"].shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        n_agents: int,
        in_key: NestedKey = ("agents", "observation"),
        out_key: NestedKey = ("agents", "rnn_output"),
        hidden_key: NestedKey = ("agents", "rnn_hidden"),
        is_init_key: NestedKey = "is_init",
        encoder: nn.Module | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("n_agents", n_agents),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"MultiAgentGRU expected {name} to be a positive int, got {value!r}"
                )
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise TypeError(
                f"MultiAgentGRU expected encoder to be an nn.Module or None, got {type(encoder)}"
            )
        in_key, out_key, hidden_key, is_init_key = (
            unravel_key(k) for k in (in_key, out_key, hidden_key, is_init_key)
        )
        next_hidden = unravel_key(("next", hidden_key))
        if len({in_key, out_key, hidden_key, is_init_key, next_hidden}) != 5:
            raise ValueError(
                f"MultiAgentGRU expected distinct in_key, out_key, hidden_key and is_init_key, "
                f"got {in_key!r}, {out_key!r}, {hidden_key!r}, {is_init_key!r}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.n_agents = n_agents
        self.in_key, self.out_key = in_key, out_key
        self.hidden_key, self.is_init_key = hidden_key, is_init_key
        self.encoder = encoder
        self.cell = nn.GRUCell(input_size, hidden_size)
        self._recurrent_mode = default_recurrent_mode
        self.in_keys = [in_key, hidden_key, is_init_key]
        self.out_keys = [out_key, next_hidden]

    @property
    def recurrent_mode(self) -> bool:
        """``True`` when inputs are ``(*E, T)`` trajectories (see :class:`set_recurrent_mode`)."""
        mode = _torchrl_recurrent_mode()
        if mode is None:
            return bool(self._recurrent_mode)
        return bool(mode)

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """A ``TensorDictPrimer`` declaring ``hidden_key`` ``(N, H)`` (zeros at reset).

        Append it to the env (``env.append_transform(gru.make_tensordict_primer())``); its
        spec is expanded to the env's batch shape, ``(*B, N, H)``. Intermediate groups of a
        nested ``hidden_key`` (e.g. ``"agents"``) are given the agent batch dim ``(N,)``.

        Returns:
            TensorDictPrimer: the primer transform.
        """
        leaf = Unbounded(shape=(self.n_agents, self.hidden_size), dtype=self.cell.weight_hh.dtype)
        key = (self.hidden_key,) if isinstance(self.hidden_key, str) else self.hidden_key
        spec: Composite | Unbounded = leaf
        for name in reversed(key[1:]):
            spec = Composite({name: spec}, shape=(self.n_agents,))
        return TensorDictPrimer(Composite({key[0]: spec}, shape=()), expand_specs=True)

    def _encode(self, tensordict: TensorDictBase) -> torch.Tensor:
        x = tensordict.get(self.in_key, None)
        if x is None:
            raise KeyError(f"MultiAgentGRU expected the input entry {self.in_key!r}, missing")
        if self.encoder is not None:
            x = self.encoder(x)
        expected = (*tensordict.batch_size, self.n_agents, self.input_size)
        if tuple(x.shape) != expected:
            what = "encoder output" if self.encoder is not None else f"entry {self.in_key!r}"
            raise ValueError(
                f"MultiAgentGRU expected the {what} of shape {expected} "
                f"(batch, n_agents={self.n_agents}, input_size={self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        return x

    def _hidden(self, tensordict: TensorDictBase, like: torch.Tensor) -> torch.Tensor:
        h = tensordict.get(self.hidden_key, None)
        shape = (*tensordict.batch_size, self.n_agents, self.hidden_size)
        if h is None:
            return like.new_zeros(shape)
        if tuple(h.shape) != shape:
            raise ValueError(
                f"MultiAgentGRU expected the hidden state {self.hidden_key!r} of shape {shape}, "
                f"got {tuple(h.shape)}; did you append make_tensordict_primer() to the env?"
            )
        return h.to(like.dtype)

    def _is_init(self, tensordict: TensorDictBase, required: bool) -> torch.Tensor | None:
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is None:
            if required:
                raise KeyError(
                    f"MultiAgentGRU in recurrent mode needs the episode-start flags "
                    f"{self.is_init_key!r} (*E, T, 1); add torchrl.envs.InitTracker() to the env"
                )
            return None
        shape = (*tensordict.batch_size, 1)
        if tuple(is_init.shape) != shape:
            raise ValueError(
                f"MultiAgentGRU expected {self.is_init_key!r} of shape {shape}, "
                f"got {tuple(is_init.shape)}"
            )
        return is_init.bool().unsqueeze(-1)  # (*B, 1, 1): broadcasts over (N, H)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Run one step (step mode) or whole ``(*E, T)`` trajectories (recurrent mode).

        Args:
            tensordict (TensorDictBase): holds ``in_key``, and optionally ``hidden_key``
                (zeros when absent) and ``is_init_key``.

        Returns:
            TensorDictBase: the same tensordict with ``out_key`` and ``("next", hidden_key)``.
        """
        recurrent = self.recurrent_mode
        if recurrent and tensordict.ndim == 0:
            raise ValueError(
                "MultiAgentGRU in recurrent mode expected a tensordict with a time dim "
                "(batch (*E, T), time last), got batch_size ()"
            )
        x = self._encode(tensordict)
        gi = F.linear(x, self.cell.weight_ih, self.cell.bias_ih)
        weight_hh, bias_hh = self.cell.weight_hh, self.cell.bias_hh
        is_init = self._is_init(tensordict, required=recurrent)
        if not recurrent:
            h = self._hidden(tensordict, gi)
            if is_init is not None:
                h = torch.where(is_init, torch.zeros_like(h), h)
            out = _gru_step(gi, h, weight_hh, bias_hh)
        else:
            time_dim = tensordict.ndim - 1
            h = self._hidden(tensordict, gi).select(time_dim, 0)
            outs = []
            for t in range(tensordict.shape[-1]):
                h = torch.where(is_init.select(time_dim, t), torch.zeros_like(h), h)
                h = _gru_step(gi.select(time_dim, t), h, weight_hh, bias_hh)
                outs.append(h)
            out = torch.stack(outs, dim=time_dim)
        tensordict.set(self.out_key, out)
        tensordict.set(self.out_keys[1], out)
        return tensordict

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"n_agents={self.n_agents}, in_key={self.in_key!r}, hidden_key={self.hidden_key!r}"
        )
