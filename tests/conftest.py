"""Suite-wide set-up: no test may reach beyond 127.0.0.1.

google-auth looks for a GCE metadata server at 169.254.169.254 when Application Default Credentials are not
configured (the Logging reader and ID tokens ask for them). Point it at a closed loopback port before google-auth
is imported (it reads these at import time), so "no metadata server" is answered locally and at once.
"""

from __future__ import annotations

import os

NO_METADATA_SERVER = {"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9"}
for _name, _value in NO_METADATA_SERVER.items():
    os.environ[_name] = _value
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
