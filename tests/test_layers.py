from pathlib import Path

import pytest

from tests.layers import LAYERS, layer_of

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("listed", list(LAYERS))
def test_every_listed_folder_or_file_exists_so_the_table_cannot_rot(listed):
    assert (TESTS / listed).exists(), listed


def test_the_soak_is_its_own_layer_and_real_servers_never_run_with_the_unit_layer():
    assert layer_of("e2e/test_soak.py") == "soak"
    assert layer_of("e2e/test_hostile.py") == "e2e"
    assert layer_of("api/test_connections.py") == "integration"
    assert layer_of("protocol/test_codec.py") == "unit"
    assert layer_of("test_validation.py") == "unit"
