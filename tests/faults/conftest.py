import pytest

from support.drill import Drill


@pytest.fixture
def make_drill(tmp_path, sockdir):
    """A drill on its own target and state directory; its daemons are gone afterwards."""
    made = []

    def make(files=None, name="proj"):
        drill = Drill(tmp_path, sockdir, files, name)
        made.append(drill)
        return drill

    yield make
    for drill in made:
        drill.close()


@pytest.fixture
def drill(make_drill):
    return make_drill()
