# Appended to /etc/jupyter/jupyter_server_config.py in the mnistkit notebook image.
# jupyter-server-proxy serves TensorBoard at <notebook>/proxy/tensorboard/ (and a launcher tile).
import os

c.ServerProxy.servers = {  # noqa: F821 - `c` is the config object Jupyter provides
    "tensorboard": {
        "command": [
            "tensorboard",
            "--logdir",
            os.environ.get("MNISTKIT_TB_LOGDIR", os.path.expanduser("~/mnistkit-runs")),
            "--port",
            "{port}",
            "--path_prefix",
            "{base_url}tensorboard",
            # Loopback only: the proxy reaches it there, and TensorBoard has no authentication.
            "--host",
            "127.0.0.1",
        ],
        "absolute_url": True,
        "timeout": 60,
        "launcher_entry": {"title": "TensorBoard"},
    }
}

# Let the proxy reach only loopback and the user's own jobs' TensorBoard and serving Services in their namespace
# (a proxied page runs at the notebook's origin: any other Service's page could drive this Jupyter).
from mnistkit.proxy_allowlist import host_allowlist  # noqa: E402

c.ServerProxy.host_allowlist = host_allowlist  # noqa: F821
