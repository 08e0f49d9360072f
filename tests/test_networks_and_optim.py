"""Networks have the paper's shapes; the optimisers follow their update rules (hand-computed values)."""

import math

import pytest
import torch

from actormimic_fast.models.networks import build_network
from actormimic_fast.models.optimizers import AuthorsAdam, DeepMindRMSprop


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
