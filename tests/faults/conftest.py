import shutil

import pytest

from support.drill import Drill
from support.helpers import short_dir


@pytest.fixture
def make_drill(tmp_path):
    """A drill on its own target and state directory; its daemons are gone afterwards."""
    made = []
    sockdir = short_dir()

    def make(files=None):
        drill = Drill(tmp_path, sockdir, files)
        made.append(drill)
        return drill

    yield make
    for drill in made:
        drill.close()
    shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture
def drill(make_drill):
    return make_drill()
