"""The weight average (sugar.training.averaging): the EMA arithmetic, the swap that validates it, its checkpoint."""

import pytest
import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.training.averaging import WeightAverage


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_average_is_the_exponential_moving_average_of_parameters_and_buffers():
    model = net()
    average = WeightAverage(model, decay=0.5)
    seen = []
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            model[0].weight.fill_(value)
            model[1].running_mean.fill_(-value)
        average.update()
        seen.append(value)
    expected = (1.0 * 0.5 + 2.0 * 0.5) * 0.5 + 4.0 * 0.5  # the first update copies, then halves toward each value
    with average.swapped_in():
        assert torch.allclose(model[0].weight, torch.full_like(model[0].weight, expected))
        assert torch.allclose(model[1].running_mean, torch.full((2,), -expected))
    assert torch.equal(model[0].weight, torch.full_like(model[0].weight, 4.0)), "the raw weights come back"


def test_the_raw_weights_come_back_when_the_block_fails():
    model = net()
    average = WeightAverage(model, decay=0.9)
    average.update()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    before = model[0].weight.clone()
    with pytest.raises(RuntimeError), average.swapped_in():
        raise RuntimeError("validation failed")
    assert torch.equal(model[0].weight, before)


def test_state_dict_round_trip_continues_the_same_average():
    a, b = net(), net()
    first, second = WeightAverage(a, decay=0.8), WeightAverage(b, decay=0.8)
    for avg in (first, second):
        avg.update()
    with torch.no_grad():
        a[0].weight.add_(3.0)
    first.update()
    second.load_state_dict(first.state_dict())
    with torch.no_grad():
        b[0].weight.copy_(a[0].weight)
    with first.swapped_in():
        want = a[0].weight.clone()
    with second.swapped_in():
        assert torch.equal(b[0].weight, want)


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_a_decay_outside_0_1_is_refused_by_name(decay):
    with pytest.raises(ConfigError, match="ema_decay"):
        WeightAverage(net(), decay)


def test_an_average_in_another_format_is_refused_with_a_message():
    with pytest.raises(ConfigError, match="another format"):
        WeightAverage(net(), 0.9).load_state_dict({"n_averaged": torch.tensor(3), "module.0.weight": torch.ones(2, 3)})
