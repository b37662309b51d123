"""The ``group`` of the actor/critic factories: torchrl's per-agent entry, ``"agents"`` or
``"agent"`` (torchrl's PettingZoo wrapper), with every per-agent key defaulting into it."""

from functools import partial

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch.distributions import Categorical
from torchrl.modules import MaskedCategorical

from mtmarl.modules import (
    VARIANTS,
    make_actor,
    make_basic_actor,
    make_basic_critic,
    make_categorical_actor,
    make_continuous_actor,
    make_critic,
    make_onehot_actor,
    make_onehot_critic,
    make_phasic_actor,
    make_phasic_critic,
    make_recurrent_actor,
    make_recurrent_critic,
)

N, F, S, A, D, H = 3, 4, 5, 4, 2, 8  # agents, obs / state features, actions, action dims, GRU
BATCHES = [(), (2,), (3, 2)]
SMALL = {"num_cells": (16, 16)}
HIDDEN = ("rnn_hidden_actor", "rnn_hidden_critic")


def _options(variant):
    return {"hidden_size": H} if variant == "recurrent" else {}


def _actor(variant, **kw):
    torch.manual_seed(0)
    return make_actor(
        variant, n_agents=N, observation_dim=F, n_actions=A, **SMALL, **_options(variant), **kw
    )


def _continuous(variant, **kw):
    torch.manual_seed(0)
    return make_continuous_actor(
        variant, n_agents=N, observation_dim=F, action_dim=D, **SMALL, **_options(variant), **kw
    )


def _critic(variant, *, centralised=True, **kw):
    torch.manual_seed(0)
    dims = {"state_dim": S} if centralised else {"observation_dim": F}
    return make_critic(
        variant, n_agents=N, centralised=centralised, **dims, **SMALL, **_options(variant), **kw
    )


def _td(batch, group="agent"):
    """Per-agent entries (with zero GRU states) under ``group``; state, phase, etc. at root."""
    mask = torch.rand(*batch, N, A) > 0.5
    mask[..., 0] = True
    per_agent = {
        "observation": torch.randn(*batch, N, F),
        "action_mask": mask,
        "can_act": torch.rand(*batch, N) > 0.3,
        **{key: torch.zeros(*batch, N, H) for key in HIDDEN},
    }
    return TensorDict(
        {
            group: TensorDict(per_agent, (*batch, N)),
            "state": torch.randn(*batch, S),
            "phase": torch.rand(*batch, 1),
            "step_count": torch.randint(0, 50, (*batch, 1)),
            "is_init": torch.ones(*batch, 1, dtype=torch.bool),
        },
        batch,
    )


def _run(module, td):
    """``module(td)``, and the keys it wrote: all under ``"agent"`` (or ``"next", "agent"``)."""
    before = set(td.keys(True, True))
    out = module(td)
    written = set(out.keys(True, True)) - before
    assert written
    for key in written:
        assert key[0] == "agent" or key[:2] == ("next", "agent"), key
    assert not any("agents" in key for key in out.keys(True) if isinstance(key, tuple))
    assert "agents" not in out.keys()
    return out


# ---------------------------------------------------------------------------- group="agent"
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_discrete_actor_reads_and_writes_the_group(variant, batch):
    actor = _actor(variant, group="agent")
    assert ("agent", "action_mask") in actor.in_keys
    assert isinstance(actor.get_dist(_td(batch)), MaskedCategorical)
    out = _run(actor, _td(batch))
    assert out["agent", "logits"].shape == (*batch, N, A)
    assert out["agent", "action"].shape == (*batch, N)
    assert out["agent", "action"].dtype == torch.int64
    assert out["agent", "action_log_prob"].shape == (*batch, N)
    allowed = out["agent", "action_mask"].gather(-1, out["agent", "action"].unsqueeze(-1))
    assert allowed.all()
    if variant == "recurrent":
        assert out["next", "agent", "rnn_hidden_actor"].shape == (*batch, N, H)
        assert out["agent", "rnn_output_actor"].shape == (*batch, N, H)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_continuous_actor_reads_and_writes_the_group(variant, batch):
    actor = _continuous(variant, group="agent")
    assert ("agent", "can_act") in actor.in_keys
    td = _td(batch)
    out = _run(actor, td)
    assert out["agent", "action"].shape == (*batch, N, D)
    assert out["agent", "loc"].shape == out["agent", "scale"].shape == (*batch, N, D)
    assert out["agent", "params"].shape == (*batch, N, 2 * D)
    log_prob = out["agent", "action_log_prob"]
    assert log_prob.shape == (*batch, N)
    assert (log_prob[~out["agent", "can_act"]] == 0).all()  # forced steps: no log-prob
    if variant == "recurrent":
        assert out["next", "agent", "rnn_hidden_actor"].shape == (*batch, N, H)


@pytest.mark.parametrize("centralised", [True, False], ids=["centralised", "local"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_critic_reads_and_writes_the_group(variant, batch, centralised):
    critic = _critic(variant, centralised=centralised, group="agent")
    assert ("state" if centralised else ("agent", "observation")) in critic.in_keys
    out = _run(critic, _td(batch))
    assert out["agent", "state_value"].shape == (*batch, N, 1)
    assert torch.isfinite(out["agent", "state_value"]).all()
    if variant == "recurrent":
        assert out["next", "agent", "rnn_hidden_critic"].shape == (*batch, N, H)


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_mask_is_still_a_plain_categorical_in_another_group(variant):
    actor = _actor(variant, group="agent", action_mask_key=None)
    assert ("agent", "action_mask") not in actor.in_keys
    td = _td((2,)).exclude(("agent", "action_mask"))
    assert type(actor.get_dist(td)) is Categorical
    assert _run(actor, td)["agent", "action"].shape == (2, N)
    continuous = _continuous(variant, group="agent", can_act_key=None)
    assert ("agent", "can_act") not in continuous.in_keys


# ---------------------------------------------------------------------------- the keys
def _keys(kind, variant, g, *, pfnn_period=None, centralised=True):
    """The in/out keys of the factories at their default keys (as before ``group`` existed,
    with ``g = "agents"``)."""
    phase = ["phase" if pfnn_period is None else "step_count"] if variant == "phasic" else []
    if kind == "critic":
        head = ["state"] if centralised else [(g, "observation")]
        if variant == "recurrent":
            return (
                [*head, (g, "rnn_hidden_critic"), "is_init"],
                [(g, "rnn_output_critic"), ("next", g, "rnn_hidden_critic"), (g, "state_value")],
            )
        return [*head, *phase], [(g, "state_value")]
    gate = (g, "action_mask") if kind == "actor" else (g, "can_act")
    outs = [(g, "logits")] if kind == "actor" else [(g, "params"), (g, "loc"), (g, "scale")]
    outs += [(g, "action"), (g, "action_log_prob")]
    if variant == "recurrent":
        rnn = [(g, "rnn_output_actor"), ("next", g, "rnn_hidden_actor")]
        return [(g, "observation"), (g, "rnn_hidden_actor"), "is_init", gate], rnn + outs
    return [(g, "observation"), *phase, gate], outs


def _built(kind, variant, *, pfnn_period=None, centralised=True, **kw):
    if pfnn_period is not None:
        kw["pfnn_period"] = pfnn_period
    if kind == "actor":
        return _actor(variant, **kw)
    if kind == "continuous":
        return _continuous(variant, **kw)
    return _critic(variant, centralised=centralised, **kw)


CASES = [
    (kind, variant, period, centralised)
    for kind in ("actor", "continuous", "critic")
    for variant in VARIANTS
    for period in ((None, 4) if variant == "phasic" else (None,))
    for centralised in ((True, False) if kind == "critic" else (True,))
]


@pytest.mark.parametrize(("kind", "variant", "pfnn_period", "centralised"), CASES)
def test_default_group_keeps_the_keys_and_the_group_moves_them(
    kind, variant, pfnn_period, centralised
):
    args = {"pfnn_period": pfnn_period, "centralised": centralised}
    default = _built(kind, variant, **args)
    assert (default.in_keys, default.out_keys) == _keys(kind, variant, "agents", **args)
    explicit = _built(kind, variant, group="agents", **args)
    assert (explicit.in_keys, explicit.out_keys) == (default.in_keys, default.out_keys)
    moved = _built(kind, variant, group="agent", **args)
    assert (moved.in_keys, moved.out_keys) == _keys(kind, variant, "agent", **args)


@pytest.mark.parametrize("variant", VARIANTS)
def test_default_group_gives_the_same_outputs_as_an_explicit_one(variant):
    td = _td((2,), group="agents")
    for build in (_actor, _continuous, _critic):
        default, explicit = build(variant)(td.clone()), build(variant, group="agents")(td.clone())
        assert (default == explicit).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_explicit_keys_win_over_the_group(variant):
    actor = _actor(
        variant,
        group="agent",
        observation_key=("obs", "x"),
        action_mask_key=None,
        logits_key=("policy", "logits"),
        action_key="act",
        log_prob_key=("policy", "log_prob"),
        phase_key="my_phase",
    )
    assert ("obs", "x") in actor.in_keys and ("agent", "observation") not in actor.in_keys
    assert {("policy", "logits"), "act", ("policy", "log_prob")} <= set(actor.out_keys)
    assert (variant == "phasic") == ("my_phase" in actor.in_keys)
    td = _td((2,)).set(("obs", "x"), torch.randn(2, N, F)).set("my_phase", torch.rand(2, 1))
    out = actor(td)
    assert out["act"].shape == out["policy", "log_prob"].shape == (2, N)
    assert out["policy", "logits"].shape == (2, N, A)
    assert ("agent", "action") not in out.keys(True)

    critic = _critic(
        variant,
        centralised=False,
        group="agent",
        observation_key=("obs", "x"),
        value_key=("values", "v"),
        step_count_key="t",
        pfnn_period=4 if variant == "phasic" else None,
    )
    assert ("obs", "x") in critic.in_keys and ("values", "v") in critic.out_keys
    assert (variant == "phasic") == ("t" in critic.in_keys)
    assert critic(td.set("t", torch.arange(2)[:, None]))["values", "v"].shape == (2, N, 1)
    central = _critic(variant, group="agent", state_key=("global", "s"))
    assert ("global", "s") in central.in_keys and "state" not in central.in_keys

    continuous = _continuous(
        variant, group="agent", can_act_key=None, observation_key=("obs", "x"), action_key="a"
    )
    assert ("obs", "x") in continuous.in_keys and "a" in continuous.out_keys
    assert "loc" in continuous.out_keys  # the network's entries sit next to the action


def test_categorical_actor_takes_the_group():
    logits = TensorDictModule(
        torch.nn.Linear(F, A), in_keys=[("agent", "observation")], out_keys=[("agent", "logits")]
    )
    actor = make_categorical_actor(logits, group="agent")
    assert actor.in_keys == [("agent", "observation"), ("agent", "action_mask")]
    assert actor.out_keys == [
        ("agent", "logits"),
        ("agent", "action"),
        ("agent", "action_log_prob"),
    ]
    for batch in BATCHES:
        out = _run(actor, _td(batch).exclude(*[("agent", k) for k in HIDDEN]))
        assert out["agent", "action"].shape == (*batch, N)
    with pytest.raises(ValueError, match=r"write \('agents', 'logits'\)"):
        make_categorical_actor(logits)  # the default group's logits are not written


# ---------------------------------------------------------------------------- validation
FACTORIES = {
    "make_actor": lambda **kw: make_actor(
        "basic", n_agents=N, observation_dim=F, n_actions=A, **kw
    ),
    "make_critic": lambda **kw: make_critic("basic", n_agents=N, state_dim=S, **kw),
    "make_continuous_actor": lambda **kw: make_continuous_actor(
        "basic", n_agents=N, observation_dim=F, action_dim=D, **kw
    ),
    "make_categorical_actor": lambda **kw: make_categorical_actor(
        TensorDictModule(torch.nn.Linear(F, A), in_keys=["x"], out_keys=[("agents", "logits")]),
        **kw,
    ),
    **{
        f.__name__: partial(f, n_agents=N, observation_dim=F, n_actions=A)
        for f in (make_basic_actor, make_onehot_actor, make_phasic_actor, make_recurrent_actor)
    },
    **{
        f.__name__: partial(f, n_agents=N, state_dim=S)
        for f in (make_basic_critic, make_onehot_critic, make_phasic_critic, make_recurrent_critic)
    },
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize(
    ("group", "error", "came"),
    [
        (("agents",), TypeError, r"got tuple \('agents',\)"),
        (None, TypeError, "got NoneType None"),
        (1, TypeError, "got int 1"),
        ("", ValueError, "got ''"),
    ],
)
def test_bad_group_raises_naming_the_factory_and_what_came(name, group, error, came):
    with pytest.raises(error, match=rf"^{name} expected group to be a non-empty str.*{came}"):
        FACTORIES[name](group=group)
    FACTORIES[name](group="agents")  # and the default group builds


# ---------------------------------------------------------------------------- PettingZoo
@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
@pytest.mark.parametrize("variant", VARIANTS)
def test_pettingzoo_env_with_torchrl_default_group_needs_no_renaming(variant):
    """torchrl's ``PettingZooWrapper`` groups ``agent_0``, ``agent_1`` under ``"agent"``."""
    pytest.importorskip("pettingzoo")
    from torchrl.envs import Compose, InitTracker, PettingZooWrapper, StepCounter, TransformedEnv
    from torchrl.modules.utils import get_primers_from_module

    from mtmarl.envs import MoveBoxEnv
    from mtmarl.interop import to_pettingzoo
    from mtmarl.modules import set_recurrent_mode
    from mtmarl.transforms import ActionFrequencyMask, PhaseEncoding

    base = PettingZooWrapper(env=to_pettingzoo(MoveBoxEnv.easy(seed=0)), return_state=True, seed=0)
    assert base.group_map == {"agent": ["agent_0", "agent_1"]}
    mask = ActionFrequencyMask(
        (1, 2), mode="null", null_action=MoveBoxEnv.NULL, action_key=("agent", "action")
    )
    phase = {
        "onehot": [PhaseEncoding(2, mode="onehot", in_keys=[("agent", "observation")])],
        "phasic": [PhaseEncoding(2)],
        "recurrent": [InitTracker()],
    }.get(variant, [])
    env = TransformedEnv(base, Compose(StepCounter(), mask, *phase))
    obs_dim = env.observation_spec["agent", "observation"].shape[-1]
    state_dim = env.observation_spec["state"].shape[-1]
    kw = {"n_agents": 2, "num_cells": (16,), "group": "agent", **_options(variant)}
    torch.manual_seed(0)
    actor = make_actor(variant, observation_dim=obs_dim, n_actions=3, **kw)
    critic = make_critic(variant, state_dim=state_dim, **kw)
    if variant == "recurrent":  # the wrapper has root and group resets: prime on the root
        for module in (actor, critic):
            primer = get_primers_from_module(module)
            primer.reset_key = "_reset"
            env.append_transform(primer)
    rollout = env.rollout(6, policy=actor, break_when_any_done=False)
    T = rollout.shape[0]
    assert rollout["agent", "action"].shape == (T, 2)
    forced = rollout["step_count"].squeeze(-1) % 2 == 1
    assert (rollout["agent", "action_log_prob"][forced, 1] == 0).all()
    with set_recurrent_mode(variant == "recurrent"):
        values = critic(rollout.unsqueeze(0))["agent", "state_value"]
    assert values.shape == (1, T, 2, 1)
    assert "agents" not in rollout.keys() and "agents" not in rollout["next"].keys()
