"""What the local pool's fork server imports before it forks collect's workers.

Each worker then starts with aiohttp, pyarrow and :mod:`.chunk` (the work function's module)
already loaded instead of importing them on its first chunk (about 0.4 s each on the 2-core VM).
The driver names this module (``run.WORK_MODULE``) and never imports it: it has no use for aiohttp,
and importing it there (about 0.3 s) delayed the first chunk.
"""

import aiohttp  # noqa: F401
import pyarrow  # noqa: F401

from imgnet_tools.collect import chunk  # noqa: F401
