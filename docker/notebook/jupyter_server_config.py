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

# Let the proxy reach in-cluster Services (a job's TensorBoard: ArgoJob.tensorboard_url), nothing else.
c.ServerProxy.host_allowlist = lambda handler, host: host in ("localhost", "127.0.0.1") or host.endswith(  # noqa: F821
    ".svc.cluster.local"
)
