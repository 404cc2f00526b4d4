"""Suite-wide set-up: no test may reach beyond 127.0.0.1, and no test sleeps through the bot's own waits.

google-auth looks for a GCE metadata server at 169.254.169.254 when Application Default Credentials are not
configured (the Logging reader and ID tokens ask for them). Point it at a closed loopback port before google-auth
is imported (it reads these at import time), so "no metadata server" is answered locally and at once: the port
refuses the connection, and one detection attempt (``GCE_METADATA_DETECT_RETRIES``, google-auth's documented
knob; its default of 3 sleeps about 1 s then 2 s between attempts) is all it makes.

``waits.set_testing()`` zeroes the bot's settles, back-offs and polls (stamina's testing mode): a test that is
about a wait asserts the wait requested (``waits.recorded()``), and one whose subject is real waiting (concurrent
writers meeting within a settle) waits for real inside ``with waits.set_testing(False):``.
"""

from __future__ import annotations

import os

from bot import waits

NO_METADATA_SERVER = {
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GCE_METADATA_DETECT_RETRIES": "1",
}
for _name, _value in NO_METADATA_SERVER.items():
    os.environ[_name] = _value
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)

waits.set_testing()
