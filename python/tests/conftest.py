"""Fixtures of the Python test suite (helpers are in `support`)."""

import pytest

import pike
from support import Proc


@pytest.fixture
def connectors():
    """Makes connectors and shuts each down (now) at the end of the test."""
    made = []

    def make(converter=pike.Primitives.STRING_CONVERTER, listening=True, **kwargs):
        if listening:
            c = pike.Connector(converter, 0, host="127.0.0.1", **kwargs)
        else:
            c = pike.Connector(converter, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown(now=True)


@pytest.fixture
def procs():
    """Starts processes and kills whatever is still running at the end."""
    started = []

    def start(args, **kwargs):
        p = Proc(args, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
