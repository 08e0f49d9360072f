"""Networks have the paper's shapes; the optimisers follow their update rules (hand-computed values);
several networks side by side train as each would alone."""

import copy
import math

import pytest
import torch

from actormimic_fast.models.networks import SeparateNetworks, StackedNetworks, build_network
from actormimic_fast.models.optimizers import AuthorsAdam, DeepMindRMSprop, fast_optimizer_options, make_optimizer


@pytest.mark.parametrize("architecture,feature_dim", [("nature", 512), ("large", 1024)])
def test_network_shapes(architecture, feature_dim):
    net = build_network(architecture, 18)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert net(obs).shape == (2, 18)
    assert net.features(obs).shape == (2, feature_dim)
    torch.testing.assert_close(net(obs), net(obs.float() / 255))


def test_nature_dqn_parameter_count():
    # conv1 4*32*64+32, conv2 32*64*16+64, conv3 64*64*9+64, fc 3136*512+512, out 512*6+6
    expected = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64) + (3136 * 512 + 512) + (512 * 6 + 6)
    assert sum(p.numel() for p in build_network("nature", 6).parameters()) == expected


def test_unknown_architecture():
    with pytest.raises(ValueError, match="architecture must be one of .*got 'huge'"):
        build_network("huge", 4)


def test_deepmind_rmsprop_two_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = DeepMindRMSprop([p], lr=0.1, momentum=0.9, eps=0.01)
    value, g, n = 1.0, 0.0, 0.0
    for grad in (2.0, -1.0):
        p.grad = torch.tensor([grad])
        opt.step()
        g = 0.9 * g + 0.1 * grad
        n = 0.9 * n + 0.1 * grad * grad
        value -= 0.1 * grad / math.sqrt(n - g * g + 0.01)
        assert p.item() == pytest.approx(value, rel=1e-6)


def test_authors_adam_two_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor([0.5]))
    opt = AuthorsAdam([p], lr=0.01, beta1=0.95, beta2=0.95, eps=0.01)
    value, m, v = 0.5, 0.0, 0.0
    for grad in (1.0, 3.0):
        p.grad = torch.tensor([grad])
        opt.step()
        m = 0.95 * m + 0.05 * grad
        v = 0.95 * v + 0.05 * grad * grad
        value -= 0.01 * m / math.sqrt(v + 0.01)
        assert p.item() == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("make,kwargs,match", [
    (DeepMindRMSprop, dict(lr=0), "lr must be > 0, got 0"),
    (DeepMindRMSprop, dict(momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
    (AuthorsAdam, dict(beta2=1.5), r"beta2 must be in \[0, 1\), got 1.5"),
])
def test_optimiser_arguments(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("container", [StackedNetworks, SeparateNetworks])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_networks_side_by_side_train_as_each_network_alone(container, optimizer):
    """Both multi-network containers (StackedNetworks: the CUDA path of experts trained together;
    SeparateNetworks: the CPU path): outputs padded to the largest head, each network's gradient step
    equal to its own step alone, and each network's optimiser state cut out and joined again."""
    # "The same computation", so compared in float64 (frames scaled beforehand): torch.optim.Adam divides by
    # sqrt(v) + 1e-8, which turns a gradient's rounding error into up to lr / eps = 1e5 times that much weight
    # (a float32 last-bit gradient difference moves a weight by up to lr = 1e-3 per step on some CPUs); float64
    # gradients of these nets carry < 1e-13 of rounding, so 2 steps stay < 2 * 1e5 * 1e-13 = 2e-8 (7e-14 seen),
    # within assert_close's float64 default (1e-7), while a step a network would not take alone moves it ~lr.
    sizes = (3, 6, 18)
    alone = []
    for size in sizes:
        torch.manual_seed(size)
        alone.append(build_network("nature", size).double())
    joint = container([copy.deepcopy(n) for n in alone])
    obs = torch.randint(0, 256, (len(sizes), 5, 4, 84, 84), dtype=torch.uint8).double() / 255
    actions = [torch.randint(0, size, (5,)) for size in sizes]

    def loss_of(q_k, k):                       # any loss of the network's real outputs
        return q_k[:, : sizes[k]].gather(1, actions[k].unsqueeze(1)).square().sum() + q_k[:, : sizes[k]].mean()

    opts_alone = [make_optimizer(optimizer, n.parameters(), lr=1e-3) for n in alone]
    opt_joint = make_optimizer(optimizer, joint.parameters(), lr=1e-3)
    for _ in range(2):
        q = joint(obs)
        assert q.shape == (len(sizes), 5, max(sizes))
        opt_joint.zero_grad()
        sum(loss_of(q[k], k) for k in range(len(sizes))).backward()
        opt_joint.step()
        for k, (network, opt) in enumerate(zip(alone, opts_alone)):
            q_k = network(obs[k])
            torch.testing.assert_close(q[k, :, : sizes[k]], q_k)
            assert not q[k, :, sizes[k]:].any()                    # padding: zeros
            opt.zero_grad()
            loss_of(q_k, k).backward()
            opt.step()
    state = opt_joint.state_dict()
    shares = [joint.network_optimizer_state(state, k, size) for k, size in enumerate(sizes)]
    for k, (network, opt) in enumerate(zip(alone, opts_alone)):
        for name, value in joint.network_state(k, sizes[k]).items():
            torch.testing.assert_close(value, network.state_dict()[name])
        plain = opt.state_dict()
        assert shares[k]["param_groups"] == plain["param_groups"]
        for i, values in plain["state"].items():
            for key, value in values.items():
                torch.testing.assert_close(shares[k]["state"][i][key], value)
    rejoined = joint.joint_optimizer_state(shares)
    assert rejoined["param_groups"] == state["param_groups"]
    for i, values in state["state"].items():
        for key, value in values.items():
            torch.testing.assert_close(rejoined["state"][i][key], value)
    opt_joint.load_state_dict(rejoined)                            # loads back into the joint optimiser
    fresh = container([build_network("nature", size).double() for size in sizes])
    for k, network in enumerate(alone):
        fresh.load_network_state(k, network.state_dict())
    torch.testing.assert_close(fresh(obs), joint(obs))


@pytest.mark.parametrize("name,cls,option", [("adam", torch.optim.Adam, "fused"), ("radam", torch.optim.RAdam, "foreach")])
def test_torch_optimisers_run_their_fast_implementation_with_the_per_tensor_loops_arithmetic(name, cls, option):
    """fused Adam / multi-tensor RAdam on the CPU (models/optimizers.py): the per-tensor loop's steps, up to
    float32 rounding, through RAdam's rectified phase (rho_t > 5 from step 6) too."""
    torch.manual_seed(0)
    fast_net, loop_net = build_network("nature_ln", 6), build_network("nature_ln", 6)
    loop_net.load_state_dict(fast_net.state_dict())
    initial = copy.deepcopy(loop_net)
    fast = make_optimizer(name, fast_net.parameters(), lr=1e-3)
    loop = cls(loop_net.parameters(), lr=1e-3, eps=1e-8, foreach=False)
    assert type(fast) is cls and fast.defaults[option] is True
    for _ in range(8):
        grads = [torch.randn_like(p) for p in fast_net.parameters()]
        for net, opt in ((fast_net, fast), (loop_net, loop)):
            for p, g in zip(net.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for p, q, p0 in zip(fast_net.parameters(), loop_net.parameters(), initial.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
        assert (q - p0).abs().max() > 1e-3        # the steps moved every tensor far past the tolerance
    with pytest.raises(ValueError, match="name must be 'adam' or 'radam', got 'sgd'"):
        fast_optimizer_options("sgd", [])


def test_a_resumed_optimiser_keeps_its_fast_implementation(tmp_path):
    """A checkpoint saved by a per-tensor optimiser (runs before the change) restores into the fast one and
    leaves it fast: restore() keeps this run's group settings (files/checkpoint.py)."""
    from actormimic_fast.files.checkpoint import restore
    net = build_network("nature", 6)
    old = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=False)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    old.step()
    fast = make_optimizer("adam", net.parameters(), lr=1e-3)
    restore(fast, old.state_dict(), tmp_path / "checkpoint.pt", "optimizer")
    assert fast.param_groups[0]["fused"] is True and fast.param_groups[0]["foreach"] is not True
    fast.step()
    assert all(torch.isfinite(p).all() for p in net.parameters())
