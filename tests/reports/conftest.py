import pytest
from report_fakes import fake_step


@pytest.fixture
def step():
    return fake_step()
