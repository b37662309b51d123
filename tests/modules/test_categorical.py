import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch.distributions import Categorical
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MaskedCategorical

from mtmarl.modules import make_categorical_actor

N, F, A = 3, 4, 5


def _actor(mask_key=("agents", "action_mask")):
    torch.manual_seed(0)
    logits = TensorDictModule(
        torch.nn.Linear(F, A), in_keys=[("agents", "observation")], out_keys=[("agents", "logits")]
    )
    return make_categorical_actor(logits, action_mask_key=mask_key)


def _td(batch, mask=None):
    agents = {"observation": torch.randn(*batch, N, F)}
    if mask is not None:
        agents["action_mask"] = mask
    return TensorDict({"agents": TensorDict(agents, (*batch, N))}, batch)


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_keys_shapes_and_log_prob(batch):
    actor = _actor(None)
    td = actor(_td(batch))
    assert td["agents", "logits"].shape == (*batch, N, A)
    assert td["agents", "action"].shape == (*batch, N)
    assert td["agents", "action"].dtype == torch.int64
    assert td["agents", "action_log_prob"].shape == (*batch, N)
    dist = actor.get_dist(td)
    assert isinstance(dist, Categorical)
    torch.testing.assert_close(
        dist.log_prob(td["agents", "action"]), td["agents", "action_log_prob"]
    )
    assert set(actor.out_keys) >= {
        ("agents", "logits"),
        ("agents", "action"),
        ("agents", "action_log_prob"),
    }


def test_masked_actions_are_never_sampled_and_forced_choice_has_log_prob_zero():
    actor = _actor()
    mask = torch.zeros(200, N, A, dtype=torch.bool)
    mask[:, 0, 2] = True  # agent 0: forced
    mask[:, 1, 1:3] = True  # agent 1: two choices
    mask[:, 2, :] = True  # agent 2: free
    with set_exploration_type(ExplorationType.RANDOM):
        td = actor(_td((200,), mask))
    action, log_prob = td["agents", "action"], td["agents", "action_log_prob"]
    assert isinstance(actor.get_dist(td), MaskedCategorical)
    assert bool(mask.gather(-1, action.unsqueeze(-1)).all())
    assert torch.equal(action[:, 0], torch.full((200,), 2))
    assert torch.equal(log_prob[:, 0], torch.zeros(200))
    assert bool((log_prob[:, 1] < 0).all())
    assert set(action[:, 1].tolist()) == {1, 2}


def test_deterministic_mode_is_argmax_of_the_masked_logits():
    actor = _actor()
    mask = torch.rand(50, N, A) > 0.5
    mask[..., 0] = True
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = actor(_td((50,), mask))
    masked = td["agents", "logits"].masked_fill(~mask, float("-inf"))
    assert torch.equal(td["agents", "action"], masked.argmax(-1))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = _actor(None)(_td((50,)))
    assert torch.equal(td["agents", "action"], td["agents", "logits"].argmax(-1))


def test_bad_logits_module_raises():
    wrong = TensorDictModule(torch.nn.Linear(F, A), in_keys=["x"], out_keys=["y"])
    with pytest.raises(ValueError, match=r"write \('agents', 'logits'\)"):
        make_categorical_actor(wrong)
    with pytest.raises(TypeError, match="TensorDictModuleBase"):
        make_categorical_actor(torch.nn.Linear(F, A))
