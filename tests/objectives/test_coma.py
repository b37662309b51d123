"""Tests for mtmarl.objectives.COMALoss.

Hand computations on tiny cases (N = 2 agents, A = 3 actions) with a fixed policy
and a table critic ``Q_n(s, (u_-n, a)) = table[n, u_other, a]``: the counterfactual
baseline, TD(lambda) targets (forward view, episode ends in the middle), masks,
key renaming, target networks, and a one-step matrix game that COMA must learn.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Categorical
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MaskedCategorical, ProbabilisticActor
from torchrl.objectives import HardUpdate, SoftUpdate

from mtmarl.modules.coma_critic import COMACritic
from mtmarl.objectives import COMALoss

N, A = 2, 3
BATCHES = [(7,), (2, 7)]  # [T] and [E, T]


class FixedLogits(nn.Module):
    """Policy logits that ignore the observation: ``(N, A)`` -> ``(*B, N, A)``."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*obs.shape[:-1], A)


class TableQ(nn.Module):
    """``Q[..., n, a] = table[n, u_other(n), a]`` for two agents."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        other = action.flip(-1)
        return self.table[torch.arange(N), other]


def make_actor(logits, *, masked=False, action_key=("agents", "action")):
    net = TensorDictModule(
        FixedLogits(logits), in_keys=[("agents", "observation")], out_keys=[("agents", "logits")]
    )
    in_keys = {"logits": ("agents", "logits")}
    if masked:
        in_keys["mask"] = ("agents", "action_mask")
    return ProbabilisticActor(
        net,
        in_keys=in_keys,
        out_keys=[action_key],
        distribution_class=MaskedCategorical if masked else Categorical,
    )


def make_table_critic(
    table, *, action_key=("agents", "action"), out_key=("agents", "action_value")
):
    return TensorDictModule(TableQ(table), in_keys=["state", action_key], out_keys=[out_key])


def make_batch(batch, *, seed=0):
    g = torch.Generator().manual_seed(seed)

    def step():
        return {
            "state": torch.randn(*batch, 3, generator=g),
            "done": torch.zeros(*batch, 1, dtype=torch.bool),
            "terminated": torch.zeros(*batch, 1, dtype=torch.bool),
            "agents": TensorDict(
                {
                    "observation": torch.randn(*batch, N, 2, generator=g),
                    "action_mask": torch.ones(*batch, N, A, dtype=torch.bool),
                },
                [*batch, N],
            ),
        }

    td = TensorDict(
        {**step(), "next": {**step(), "reward": torch.randn(*batch, 1, generator=g)}},
        batch_size=batch,
    )
    td["agents", "action"] = torch.randint(A, (*batch, N), generator=g)
    return td


@pytest.fixture
def logits():
    return torch.tensor([[0.2, -0.5, 1.0], [1.5, 0.0, -0.3]])


@pytest.fixture
def table():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, A, A, generator=g)  # [agent, other's action, own action]


def hand_advantage(td, logits, table):
    """A_n = Q[u_n] - sum_a pi_n(a) Q[a], element by element in plain Python."""
    pi = torch.softmax(logits, -1).tolist()
    actions = td["agents", "action"].reshape(-1, N).tolist()
    adv, logp = [], []
    for u in actions:
        for n in range(N):
            other = u[1 - n]
            q = table[n, other].tolist()
            baseline = sum(pi[n][a] * q[a] for a in range(A))
            adv.append(q[u[n]] - baseline)
            logp.append(torch.log(torch.tensor(pi[n][u[n]])).item())
    return torch.tensor(adv), torch.tensor(logp)


# ----------------------------------------------------------------------------- baseline
@pytest.mark.parametrize("batch", BATCHES)
def test_counterfactual_baseline_by_hand(batch, logits, table):
    loss = COMALoss(make_actor(logits), make_table_critic(table), delay_critic=False)
    td = make_batch(batch)
    out = loss(td)
    adv, logp = hand_advantage(td, logits, table)
    assert torch.allclose(out["advantage"], adv.mean(), atol=1e-6)
    assert torch.allclose(out["loss_objective"], -(adv * logp).mean(), atol=1e-6)
    # the baseline keeps the other agent's actual action: it is not the
    # marginal over the joint action (which would differ for this table)
    pi = torch.softmax(logits, -1)
    joint = (pi[1][:, None] * pi[0][None, :] * table[0]).sum()
    u = td["agents", "action"].reshape(-1, N)
    assert not torch.allclose(table[0, u[:, 1], u[:, 0]] - joint, adv.view(-1, N)[:, 0])


def test_normalized_advantage(logits, table):
    loss = COMALoss(
        make_actor(logits), make_table_critic(table), delay_critic=False, normalize_advantage=True
    )
    td = make_batch((3, 5))
    out = loss(td)
    adv, logp = hand_advantage(td, logits, table)
    norm = (adv - adv.mean()) / adv.std(unbiased=False)
    assert torch.allclose(out["loss_objective"], -(norm * logp).mean(), atol=1e-5)


def test_actor_gradient_matches_hand_policy_gradient(logits, table):
    loss = COMALoss(make_actor(logits), make_table_critic(table), delay_critic=False)
    td = make_batch((9,))
    loss(td)["loss_objective"].backward()
    grad = loss.actor_network_params["module", "0", "module", "logits"].grad

    leaf = logits.clone().requires_grad_(True)
    adv, _ = hand_advantage(td, logits, table)
    logp = torch.log_softmax(leaf, -1)
    u = td["agents", "action"].reshape(-1, N)
    taken = torch.stack([logp[n, u[:, n]] for n in range(N)], -1)  # (T, N)
    (-(adv.view(-1, N) * taken).mean()).backward()
    assert torch.allclose(grad, leaf.grad, atol=1e-6)
    # the actor loss does not train the critic
    assert loss.critic_network_params["module", "table"].grad is None


# ----------------------------------------------------------------------------- TD(lambda)
def forward_view_lambda_return(rewards, next_values, boundary, terminated, gamma, lmbda):
    """Truncated lambda-return as a weighted sum of n-step returns (one env, one agent)."""
    T = len(rewards)
    values = [0.0 if terminated[t] else next_values[t] for t in range(T)]
    out = []
    for t in range(T):
        end = next(i for i in range(t, T) if boundary[i])
        K = end - t + 1

        def n_step(k, t=t):
            ret = sum(gamma**i * rewards[t + i] for i in range(k))
            return ret + gamma**k * values[t + k - 1]

        lam = (1 - lmbda) * sum(lmbda ** (k - 1) * n_step(k) for k in range(1, K))
        out.append(lam + lmbda ** (K - 1) * n_step(K))
    return out


def hand_targets(td, table, forced, gamma, lmbda):
    """Per-agent TD(lambda) targets; bootstraps use the forced next action ``forced``."""
    E = td.batch_size[:-1].numel()
    T = td.batch_size[-1]
    u = td["agents", "action"].reshape(E, T, N)
    reward = td["next", "reward"].reshape(E, T)
    done = td["next", "done"].reshape(E, T)
    term = td["next", "terminated"].reshape(E, T)
    out = torch.zeros(E, T, N)
    for e in range(E):
        boundary = [bool(done[e, t]) or t == T - 1 for t in range(T)]
        for n in range(N):
            nv = []
            for t in range(T):
                if boundary[t]:  # bootstrap: pi is one-hot on the forced action
                    nv.append(table[n, forced[1 - n], forced[n]].item())
                else:
                    nv.append(table[n, u[e, t + 1, 1 - n], u[e, t + 1, n]].item())
            ys = forward_view_lambda_return(
                reward[e].tolist(), nv, boundary, term[e].tolist(), gamma, lmbda
            )
            out[e, :, n] = torch.tensor(ys)
    return out.reshape(*td.batch_size, N)


def with_episode_ends(td):
    """Terminate env 0 after step 2, truncate it after step 4; force next actions (2, 0)."""
    flat = td.reshape(-1, td.batch_size[-1]) if td.batch_dims > 1 else td.unsqueeze(0)
    flat["next", "done"][0, 2] = True
    flat["next", "terminated"][0, 2] = True
    flat["next", "done"][0, 4] = True
    mask = torch.zeros(N, A, dtype=torch.bool)
    mask[0, 2] = mask[1, 0] = True
    flat["next", "agents", "action_mask"] = mask.expand_as(flat["next", "agents", "action_mask"])
    return flat.reshape(td.batch_size), (2, 0)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("gamma", "lmbda"), [(0.9, 0.8), (0.99, 1.0), (0.7, 0.0), (0.0, 0.5)])
def test_td_lambda_targets_match_forward_view(batch, gamma, lmbda, logits, table):
    loss = COMALoss(
        make_actor(logits, masked=True), make_table_critic(table), gamma=gamma, lmbda=lmbda
    )
    HardUpdate(loss, value_network_update_interval=1)
    td, forced = with_episode_ends(make_batch(batch))
    y = loss.compute_value_target(td)["agents", "value_target"]
    assert y.shape == (*batch, N, 1)
    expected = hand_targets(td, table, forced, gamma, lmbda)
    assert torch.allclose(y.squeeze(-1), expected, atol=1e-5)


def test_targets_come_from_the_target_critic(logits, table):
    loss = COMALoss(make_actor(logits, masked=True), make_table_critic(table), gamma=0.9)
    updater = HardUpdate(loss, value_network_update_interval=1)
    td, forced = with_episode_ends(make_batch((2, 7)))
    with torch.no_grad():
        loss.critic_network_params["module", "table"].add_(10.0)
    y_old = loss.compute_value_target(td.clone())["agents", "value_target"].squeeze(-1)
    assert torch.allclose(y_old, hand_targets(td, table, forced, 0.9, 0.8), atol=1e-5)
    updater.step()  # torchrl's HardUpdate copies when its counter reaches the interval:
    updater.step()  # with interval 1 that is the second step
    y_new = loss.compute_value_target(td.clone())["agents", "value_target"].squeeze(-1)
    assert torch.allclose(y_new, hand_targets(td, table + 10.0, forced, 0.9, 0.8), atol=1e-4)


def test_flat_batch_with_traj_ids_matches_env_time_layout(logits, table):
    loss = COMALoss(make_actor(logits, masked=True), make_table_critic(table), delay_critic=False)
    td, _ = with_episode_ends(make_batch((3, 5)))
    td["collector", "traj_ids"] = torch.arange(3).unsqueeze(-1).expand(3, 5)
    y = loss.compute_value_target(td.clone())["agents", "value_target"]
    y_flat = loss.compute_value_target(td.reshape(-1))["agents", "value_target"]
    assert torch.allclose(y.reshape(-1, N, 1), y_flat, atol=1e-6)
    # without the ids, the flat batch would bootstrap across envs
    flat = td.reshape(-1).exclude(("collector", "traj_ids"))
    y_wrong = loss.compute_value_target(flat)["agents", "value_target"]
    assert not torch.allclose(y.reshape(-1, N, 1), y_wrong)


def test_precomputed_targets_allow_shuffled_minibatches(logits, table):
    loss = COMALoss(make_actor(logits, masked=True), make_table_critic(table), delay_critic=False)
    td, _ = with_episode_ends(make_batch((2, 7)))
    full = loss(td)
    loss.compute_value_target(td)
    shuffled = td.reshape(-1)[torch.randperm(14, generator=torch.Generator().manual_seed(0))]
    out = loss(shuffled)
    for key in ("loss_objective", "loss_critic", "advantage", "value_target"):
        assert torch.allclose(out[key], full[key], atol=1e-6), key


# ----------------------------------------------------------------------------- masks and keys
def test_can_act_and_collector_mask_exclusions(logits, table):
    loss = COMALoss(
        make_actor(logits), make_table_critic(table), delay_critic=False, entropy_coeff=0.1
    )
    td = make_batch((3, 4))
    g = torch.Generator().manual_seed(3)
    can_act = torch.rand(3, 4, N, generator=g) > 0.4
    valid = torch.rand(3, 4, 1, generator=g) > 0.3
    td["agents", "can_act"] = can_act
    td["collector", "mask"] = valid
    td["agents", "value_target"] = torch.zeros(3, 4, N, 1)  # so loss_critic = mean Q_taken^2
    out = loss(td)

    adv, logp = hand_advantage(td, logits, table)
    keep_actor = (can_act & valid).reshape(-1)
    keep_critic = valid.expand(3, 4, N).reshape(-1)
    assert torch.allclose(out["loss_objective"], -(adv * logp)[keep_actor].mean(), atol=1e-6)
    u = td["agents", "action"].reshape(-1, N)
    q_taken = torch.stack([table[n, u[:, 1 - n], u[:, n]] for n in range(N)], -1).reshape(-1)
    assert torch.allclose(out["loss_critic"], (q_taken**2)[keep_critic].mean(), atol=1e-6)
    entropy = Categorical(logits=logits).entropy()  # (N,)
    ent = entropy.expand(12, N).reshape(-1)[keep_actor].mean()
    assert torch.allclose(out["entropy"], ent, atol=1e-6)
    assert torch.allclose(out["loss_entropy"], -0.1 * ent, atol=1e-6)


def test_forced_steps_have_no_policy_gradient(logits, table):
    loss = COMALoss(make_actor(logits, masked=True), make_table_critic(table), delay_critic=False)
    td = make_batch((6,))
    only = torch.zeros(6, N, A, dtype=torch.bool)
    only[:, 0, 1] = True  # agent 0 is forced to action 1
    td["agents", "action_mask"] = only | torch.tensor([False, True]).view(1, N, 1)
    td["agents", "action"][:, 0] = 1
    td["agents", "can_act"] = torch.tensor([False, True]).expand(6, N)
    out_masked = loss(td)
    out_all = loss(td.exclude(("agents", "can_act")))
    # forced steps contribute exactly 0 to the sum; only the denominator changes
    assert torch.allclose(out_masked["loss_objective"], 2 * out_all["loss_objective"], atol=1e-6)
    out_masked["loss_objective"].backward()
    grad = loss.actor_network_params["module", "0", "module", "logits"].grad
    assert torch.all(grad[0] == 0) and grad[1].abs().sum() > 0


@pytest.mark.parametrize("batch", BATCHES)
def test_set_keys_renames_everything(batch, logits, table):
    td = make_batch(batch)
    loss = COMALoss(make_actor(logits), make_table_critic(table), delay_critic=False)
    td["agents", "can_act"] = (
        torch.rand(*batch, N, generator=torch.Generator().manual_seed(0)) > 0.3
    )
    torch.manual_seed(0)  # the bootstrap samples next actions: same draws for both losses
    expected = loss(td)

    act, q = ("agents", "act"), ("agents", "q")
    renamed = TensorDict(
        {
            "state": td["state"],
            "agents": {
                "observation": td["agents", "observation"],
                "act": td["agents", "action"],
                "active": td["agents", "can_act"],
            },
            "next": {
                "state": td["next", "state"],
                "agents": {"observation": td["next", "agents", "observation"]},
                "team_reward": td["next", "reward"],
                "finished": td["next", "done"],
                "stop": td["next", "terminated"],
            },
        },
        batch_size=batch,
    )
    loss2 = COMALoss(
        make_actor(logits, action_key=act),
        make_table_critic(table, action_key=act, out_key=q),
        delay_critic=False,
    )
    assert loss2.tensor_keys.action == act and loss2.tensor_keys.action_value == q
    loss2.set_keys(
        reward="team_reward",
        done="finished",
        terminated="stop",
        can_act=("agents", "active"),
        value_target=("agents", "y"),
    )
    torch.manual_seed(0)
    out = loss2(renamed)
    for key in ("loss_objective", "loss_critic", "advantage", "value_target"):
        assert torch.allclose(out[key], expected[key], atol=1e-6), key
    assert ("next", "team_reward") in loss2.in_keys and act in loss2.in_keys
    assert ("agents", "y") in loss2.compute_value_target(renamed).keys(True)


def test_set_keys_rejects_an_action_the_critic_does_not_read(logits, table):
    loss = COMALoss(make_actor(logits), make_table_critic(table), delay_critic=False)
    with pytest.raises(ValueError, match="critic to read the action key"):
        loss.set_keys(action=("agents", "other"))
    assert loss.tensor_keys.action == ("agents", "action")
    with pytest.raises(ValueError, match="not an accepted tensordict key"):
        loss.set_keys(bogus="x")


# ----------------------------------------------------------------------------- module behaviour
def test_out_keys_and_entropy_switch(logits, table):
    loss = COMALoss(make_actor(logits), make_table_critic(table), delay_critic=False)
    out = loss(make_batch((4,)))
    assert "loss_entropy" not in out.keys() and "loss_entropy" not in loss.out_keys
    assert set(out.keys()) == set(loss.out_keys)
    assert all(v.shape == () for v in out.values())
    assert all(not v.requires_grad for k, v in out.items() if not k.startswith("loss_"))
    loss2 = COMALoss(make_actor(logits), make_table_critic(table), entropy_coeff=0.01)
    assert "loss_entropy" in loss2.out_keys
    loss2.entropy_coeff = 0.5  # schedulable buffer
    assert loss2.entropy_coeff.item() == 0.5


def test_critic_loss_trains_only_the_critic_and_soft_update(logits, table):
    loss = COMALoss(make_actor(logits), make_table_critic(table), gamma=0.5)
    updater = SoftUpdate(loss, tau=0.5)
    out = loss(make_batch((2, 5)))
    out["loss_critic"].backward()
    assert loss.critic_network_params["module", "table"].grad.abs().sum() > 0
    assert loss.actor_network_params["module", "0", "module", "logits"].grad is None
    with torch.no_grad():
        loss.critic_network_params["module", "table"].add_(2.0)
    updater.step()
    target = loss.target_critic_network_params["module", "table"]
    assert torch.allclose(target, table + 1.0)


def test_construction_and_input_errors(logits, table):
    actor, critic = make_actor(logits), make_table_critic(table)
    with pytest.raises(ValueError, match="gamma in"):
        COMALoss(actor, critic, gamma=1.5)
    with pytest.raises(ValueError, match="loss_critic_type"):
        COMALoss(actor, critic, loss_critic_type="huber")
    with pytest.raises(ValueError, match="entropy_coeff"):
        COMALoss(actor, critic, entropy_coeff=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        COMALoss(actor, critic, reduction="none")
    with pytest.raises(TypeError, match="get_dist"):
        COMALoss(critic, critic)
    with pytest.raises(ValueError, match="critic to write"):
        COMALoss(actor, make_table_critic(table, out_key="q")).set_keys(action_value="other")
    loss = COMALoss(actor, critic, delay_critic=False)
    with pytest.raises(NotImplementedError, match="gamma and lmbda"):
        loss.make_value_estimator()
    with pytest.raises(KeyError, match="reward"):
        loss(make_batch((4,)).exclude(("next", "reward")))
    with pytest.raises(ValueError, match="time as the last batch dim"):
        loss(make_batch((4,))[0])


# ----------------------------------------------------------------------------- learning
def test_learns_a_coordination_matrix_game():
    """One-step game: team reward 1 iff both agents pick action 1 (chance 1/9)."""
    torch.manual_seed(0)
    E = 64
    head = nn.Linear(1, A)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)  # uniform initial policy: P(optimal joint action) = 1/9
    actor = ProbabilisticActor(
        TensorDictModule(
            head, in_keys=[("agents", "observation")], out_keys=[("agents", "logits")]
        ),
        in_keys={"logits": ("agents", "logits")},
        out_keys=[("agents", "action")],
        distribution_class=Categorical,
    )
    critic = COMACritic(N, A, state_dim=1, num_cells=(32,))
    loss = COMALoss(actor, critic, gamma=0.0)
    updater = HardUpdate(loss, value_network_update_interval=5)
    optim = torch.optim.Adam(loss.parameters(), lr=0.05)

    def rollout():
        step = {
            "state": torch.ones(E, 1, 1),
            "done": torch.ones(E, 1, 1, dtype=torch.bool),
            "terminated": torch.ones(E, 1, 1, dtype=torch.bool),
            "agents": TensorDict({"observation": torch.ones(E, 1, N, 1)}, [E, 1, N]),
        }
        td = TensorDict({**step, "next": step}, batch_size=[E, 1])
        with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
            actor(td)
        both = (td["agents", "action"] == 1).all(-1, keepdim=True)
        td["next", "reward"] = both.float()
        return td

    def p_optimal():
        td = TensorDict({"agents": {"observation": torch.ones(1, N, 1)}}, [1])
        probs = actor.get_dist(td).probs[0, :, 1]
        return probs.prod().item()

    start = p_optimal()
    for _ in range(40):
        out = loss(rollout())
        optim.zero_grad()
        (out["loss_objective"] + out["loss_critic"]).backward()
        optim.step()
        updater.step()
    assert abs(start - 1 / 9) < 1e-6
    assert p_optimal() > 0.6
