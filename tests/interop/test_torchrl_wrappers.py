"""The reverse direction: mtmarl transforms and modules on a PettingZoo env wrapped by torchrl.

The PettingZoo env is an mtmarl env exported with :func:`mtmarl.interop.to_pettingzoo` (the raw
env, without its frequency mask), wrapped back with torchrl's ``PettingZooWrapper`` (the
env-instance form of ``PettingZooEnv``). torchrl groups parallel agents named ``agent_0``,
``agent_1``, ... under ``"agent"`` by default, so the transforms' keys name that group; with
``group_map={"agents": names}`` mtmarl's default ``("agents", ...)`` keys work unchanged.
(VMAS through ``VmasEnv`` is not covered: vmas is not installed.)
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pettingzoo")

from torchrl.envs import Compose, PettingZooWrapper, StepCounter, TransformedEnv  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from mtmarl.envs import CommunityEnergyEnv, MoveBoxEnv  # noqa: E402
from mtmarl.interop import to_pettingzoo  # noqa: E402
from mtmarl.modules import make_actor  # noqa: E402
from mtmarl.transforms import ActionFrequencyMask, PhaseEncoding  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")

UP, NULL = MoveBoxEnv.UP, MoveBoxEnv.NULL


def _wrapped_movebox(group_map=None):
    pz = to_pettingzoo(MoveBoxEnv.easy(seed=0))
    return PettingZooWrapper(env=pz, return_state=True, group_map=group_map, seed=0)


def test_default_group_layout_and_transforms_with_adapted_keys():
    base = _wrapped_movebox()
    assert base.group_map == {"agent": ["agent_0", "agent_1"]}
    env = TransformedEnv(
        base,
        Compose(
            StepCounter(),
            ActionFrequencyMask(
                MoveBoxEnv.easy().action_periods,
                mode="null",
                null_action=NULL,
                action_key=("agent", "action"),
            ),
            PhaseEncoding(2, mode="onehot", in_keys=[("agent", "observation")]),
        ),
    )
    check_env_specs(env, seed=0)
    td = env.reset()
    assert td["agent", "observation"].shape == (2, 4 + 2)  # + one-hot phase (L = 2)
    assert td["agent", "action_mask"].shape == (2, 3)

    def always_up(td):
        return td.set(("agent", "action"), torch.full((2,), UP))

    rollout = env.rollout(8, policy=always_up, break_when_any_done=False)
    executed = rollout["next", "agent", "prev_action"]  # (T, 2)
    t = rollout["step_count"].squeeze(-1)
    assert (executed[:, 0] == UP).all()  # fast agent acts every step
    assert (executed[t % 2 == 0, 1] == UP).all()
    assert (executed[t % 2 == 1, 1] == NULL).all()  # slow agent forced between decisions
    assert rollout["next", "agent", "reward"].shape == (8, 2, 1)


def test_phasic_actor_rollout_with_mtmarl_group_layout():
    base = _wrapped_movebox(group_map={"agents": ["agent_0", "agent_1"]})
    env = TransformedEnv(
        base,
        Compose(
            StepCounter(),
            ActionFrequencyMask((1, 2), mode="null", null_action=NULL),
            PhaseEncoding(2),  # root "phase" for the PFNN actor
        ),
    )
    check_env_specs(env, seed=0)
    actor = make_actor("phasic", n_agents=2, observation_dim=4, n_actions=3)
    torch.manual_seed(0)
    rollout = env.rollout(20, policy=actor)
    T = rollout.shape[0]
    assert 1 <= T <= 20
    assert rollout["agents", "action"].shape == (T, 2)
    assert rollout["agents", "logits"].shape == (T, 2, 3)
    t = rollout["step_count"].squeeze(-1)
    forced = t % 2 == 1
    # masked (forced) steps of the slow agent carry no log-probability, and run NULL
    log_prob = rollout["agents", "action_log_prob"][:, 1]
    assert torch.equal(log_prob[forced], torch.zeros_like(log_prob[forced]))
    assert (rollout["next", "agents", "prev_action"][forced, 1] == NULL).all()
    assert torch.allclose(rollout["phase"].squeeze(-1), (t % 2).float() / 2)
    assert rollout["state"].shape == (T, 6)


def test_hybrid_action_roundtrip_with_hold_mask():
    """A composite (hybrid) action survives the export + torchrl wrapping, and the mask holds it."""
    pz = to_pettingzoo(CommunityEnergyEnv(n_prosumers=2, seed=0))
    base = PettingZooWrapper(env=pz, return_state=True, seed=0)
    env = TransformedEnv(
        base,
        Compose(StepCounter(), ActionFrequencyMask((1, 3), action_key=("agent", "action"))),
    )
    check_env_specs(env, seed=0)
    assert set(env.full_action_spec["agent", "action"].keys()) == {"mode", "power"}
    torch.manual_seed(0)
    rollout = env.rollout(6)
    executed = rollout["next", "agent", "prev_action"]
    t = rollout["step_count"].squeeze(-1)
    for key in ("mode", "power"):
        # agent 1 (period 3) holds its previous action between decision steps
        held = executed[key][1:, 1][t[1:] % 3 != 0]
        previous = executed[key][:-1, 1][t[1:] % 3 != 0]
        assert torch.equal(held, previous)
        assert torch.equal(executed[key][:, 0], rollout["agent", "action", key][:, 0])
