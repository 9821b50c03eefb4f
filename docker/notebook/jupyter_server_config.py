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
            "--bind_all",
        ],
        "absolute_url": True,
        "timeout": 60,
        "launcher_entry": {"title": "TensorBoard"},
    }
}
