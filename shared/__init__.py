"""Code shared by the API and the worker (it imports neither).

Importing it also cleans one environment variable: prometheus_client switches to its
multi-process mode whenever PROMETHEUS_MULTIPROC_DIR is *present*, even empty, and then
writes its files into the working directory (read-only in the images, so every metric update
would fail). An empty value, as an env file with `PROMETHEUS_MULTIPROC_DIR=` gives, means
unset here, like every other empty setting. Every process imports this package before
prometheus_client.
"""

import os

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "x").strip():
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
