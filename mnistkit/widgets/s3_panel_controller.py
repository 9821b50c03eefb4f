"""The S3 panel's logic, as plain Python that tests (and papermill) drive without a browser.

``S3Panel`` (``s3_panel.py``, beside this file) is a thin view over ``S3PanelController``: fields pre-filled
from the seed's environment, validated into an ``S3Config``, a connection probe, the dataset upload and
the Kubernetes Secret. Errors are kept as a sentence, never raised at the user.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mnistkit.config import S3_ENV_VARS
from mnistkit.errors import ConfigError, MnistkitError
from mnistkit.widgets.job_monitor import describe_error

if TYPE_CHECKING:
    from mnistkit.config import S3Config
    from mnistkit.data import Dataset

__all__ = ["S3PanelController", "S3_FIELDS"]


# Panel field -> S3Config field, in the order the panel shows them.
S3_FIELDS = ("bucket", "endpoint_url", "access_key_id", "secret_access_key", "region", "use_https", "verify_ssl")


class S3PanelController:
    """Fields pre-filled from the seed's environment; validate, probe, upload the dataset, create the k8s secret.

    The secret lives only in ``values["secret_access_key"]`` and in the ``S3Config`` built from it; every
    message this class produces is built from error text that never contains it (``S3Config`` and
    ``MnistkitError`` hide secrets) and is scrubbed once more before it is kept.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        from mnistkit.config import S3Config

        env = os.environ if env is None else env
        self.values: dict[str, Any] = {}
        self.message = ""
        self.error = ""
        try:
            cfg = S3Config.from_env(env)
            endpoint_url = cfg.endpoint_url
            self.values = {name: getattr(cfg, name) for name in S3_FIELDS}
            self.values["endpoint_url"] = endpoint_url
        except MnistkitError as exc:
            # Show what the environment says and why it is wrong; the user fixes it in the fields.
            defaults = S3Config()
            for name in S3_FIELDS:
                raw = env.get(S3_ENV_VARS[name], "")
                self.values[name] = raw if raw != "" else getattr(defaults, name)
            for flag in ("use_https", "verify_ssl"):
                raw_flag = str(self.values[flag]).strip().lower()
                self.values[flag] = raw_flag not in ("0", "false", "no", "off")
            if not self.values["endpoint_url"] and env.get("S3_ENDPOINT"):
                self.values["endpoint_url"] = f"https://{env['S3_ENDPOINT']}"
            self.error = self._scrub(str(exc))
        self.config: S3Config | None = None

    def _scrub(self, text: str) -> str:
        secret = str(self.values.get("secret_access_key") or "")
        return text.replace(secret, "***") if secret else text

    def _fail(self, exc: BaseException) -> None:
        self.message, self.error = "", self._scrub(describe_error(exc))

    def update(self, **values: Any) -> None:
        unknown = set(values) - set(S3_FIELDS)
        if unknown:
            raise ConfigError(f"unknown S3 field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        self.values.update(values)
        self.config = None

    def validate(self) -> S3Config | None:
        """Build the ``S3Config`` from the fields; ``None`` with ``error`` set when a field is wrong."""
        from mnistkit.config import S3Config

        try:
            v = dict(self.values)
            url = str(v.get("endpoint_url") or "").strip()
            if url:
                v["use_https"] = url.startswith("https://")
            self.config = S3Config(**v)
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            self.config = None
            self._fail(exc)
            return None
        self.message, self.error = f"valid: {self.config.url()} at {self.config.endpoint_url or 'AWS'}", ""
        return self.config

    def test_connection(self) -> bool:
        """Reachable, and a probe object can be written, read back and deleted."""
        from mnistkit import s3

        cfg = self.validate()
        if cfg is None:
            return False
        try:
            s3.probe_bucket(s3.make_client(cfg, max_attempts=2, connect_timeout=3.0), cfg.bucket)
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            self._fail(exc)
            return False
        self.message, self.error = f"connected: {cfg.url()} is reachable and writable", ""
        return True

    def upload_dataset(
        self,
        dataset: Dataset | str | os.PathLike[str] | None = None,
        prefix: str = "data/mnist",
        progress: Callable[[int, int], None] | None = None,
    ) -> str | None:
        """Upload ``dataset`` (a ``Dataset``, a local data dir, or ``None`` = the offline sample) to ``s3://bucket/prefix``."""
        from mnistkit import data

        cfg = self.validate()
        if cfg is None:
            return None
        try:
            if dataset is None:
                ds = data.offline_sample()
            elif isinstance(dataset, (str, os.PathLike)):
                ds = data.read_data_dir(dataset)
            else:
                ds = dataset
            url = cfg.url(prefix)
            keys = data.upload_dataset(ds, url, cfg, progress)
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            self._fail(exc)
            return None
        self.message, self.error = f"uploaded {len(keys)} files to {url}", ""
        return url

    @staticmethod
    def cluster_status() -> tuple[bool, str]:
        """Whether a Kubernetes secret can be created: a cluster configuration loads (the API is not called)."""
        from mnistkit.cluster.connect import cluster_status

        return cluster_status()

    def create_secret(self, namespace: str | None = None) -> bool:
        """Store the credentials as a Kubernetes secret for training pods (``create_aws_secret``).

        ``namespace`` defaults to the connection's (the kubeconfig context's, or the notebook pod's own).
        """
        ok, why = self.cluster_status()
        if not ok:
            self.message, self.error = "", why
            return False
        cfg = self.validate()
        if cfg is None:
            return False
        try:
            from mnistkit.cluster.secrets import create_aws_secret

            if namespace is None:
                from mnistkit.cluster.connect import connect

                namespace = connect().namespace
            result = create_aws_secret(cfg, namespace)
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            self._fail(exc)
            return False
        name = getattr(result, "name", None) or (result if isinstance(result, str) else "the AWS secret")
        self.message, self.error = f"created {name} in namespace {namespace}", ""
        return True
