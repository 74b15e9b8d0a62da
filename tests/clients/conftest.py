import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))

import loopback_guard  # noqa: E402

# Real clients run in this process: from here on, nothing leaves loopback.
loopback_guard.install()

from openimds_fixtures import binary, demo_server, make_server, server, workdir  # noqa: E402,F401
