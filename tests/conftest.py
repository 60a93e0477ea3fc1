import sys
from collections.abc import Iterator

import pytest
from loguru import logger

pytest_plugins = [
    "tests.support.zookeeper",
    "tests.support.secure_zookeeper",
    "tests.support.prometheus",
]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Commands run in-process point loguru at the captured stderr: undo that."""
    yield
    logger.remove()
    logger.add(sys.stderr)
