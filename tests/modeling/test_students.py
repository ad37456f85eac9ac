"""Students: which teacher layers are kept, and which layers teach which."""

from __future__ import annotations

import pytest

from edgetransfer.errors import ConfigError
from edgetransfer.modeling.students import layer_mapping, spread_layers


@pytest.mark.parametrize("n, k, kept", [(6, 3, [0, 2, 5]), (6, 2, [0, 5]), (6, 1, [5]),
                                        (12, 4, [0, 4, 7, 11]), (6, 6, [0, 1, 2, 3, 4, 5])])
def test_spread_layers_keeps_first_and_last(n, k, kept):
    assert spread_layers(n, k) == kept


def test_spread_layers_refuses_impossible_depths():
    with pytest.raises(ConfigError, match="choose between 1 and 6"):
        spread_layers(6, 7)


def test_a_cut_down_teacher_maps_each_kept_layer_to_itself():
    # hidden-state indices: 0 is the embeddings, i is after layer i
    assert layer_mapping(3, 6, keep=[0, 2, 5]) == [(0, 0), (1, 1), (2, 3), (3, 6)]


def test_another_model_maps_layers_uniformly():
    assert layer_mapping(3, 6) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert layer_mapping(4, 6) == [(0, 0), (1, 2), (2, 3), (3, 4), (4, 6)]
