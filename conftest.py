"""Root pytest configuration: notebooks executed by nbmake run on the tiny shipped data."""

import os

# nbmake's kernels inherit this environment; the first cell of each notebook reads it
os.environ.setdefault("TGKIT_TINY", "1")
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never download a browser
