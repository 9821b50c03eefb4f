"""A watch that survives what real clusters do to watches: 410 Gone, dropped connections, timeouts.

``follow(list_fn, ...)`` yields ``(type, object)`` events for one collection. It lists first (so it
starts from a known state and resourceVersion), then watches from there. On ``410 Gone`` (the version
fell out of etcd's history) it re-lists and yields the listed objects again as ``SYNC`` events, so a
terminal state reached while the watch was down is never missed; on a dropped stream it reconnects from
the last version it saw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from mnistkit.cluster.objects import raw
from mnistkit.errors import ClusterError

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

__all__ = ["follow", "WatchStats"]


class WatchStats:
    """Counters a test or a monitor can read (reconnects, relists after 410)."""

    def __init__(self) -> None:
        self.relists = 0
        self.reconnects = 0
        self.events = 0


def _lines(resp: BaseHTTPResponse) -> Iterator[str]:
    from kubernetes.watch.watch import iter_resp_lines

    try:
        yield from iter_resp_lines(resp)
    finally:
        resp.close()
        resp.release_conn()


def follow(
    list_fn: Callable[..., object],
    *,
    field_selector: str = "",
    label_selector: str = "",
    timeout: float | None = None,
    server_timeout: int = 60,
    stats: WatchStats | None = None,
    max_failures: int = 8,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("SYNC"|"ADDED"|"MODIFIED"|"DELETED", obj)`` until ``timeout`` seconds pass (or forever).

    ``list_fn`` is a ``kubernetes`` list call with its positional arguments bound, e.g.
    ``functools.partial(api.list_namespaced_custom_object, group, version, ns, plural)``.
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    stats = stats or WatchStats()
    deadline = None if timeout is None else time.monotonic() + timeout
    kwargs: dict[str, Any] = {}
    if field_selector:
        kwargs["field_selector"] = field_selector
    if label_selector:
        kwargs["label_selector"] = label_selector
    rv: str | None = None
    failures = 0
    while deadline is None or time.monotonic() < deadline:
        if rv is None:
            listing = cast(dict[str, Any], list_fn(**kwargs))  # the parsed JSON list
            rv = listing["metadata"]["resourceVersion"]
            for obj in listing.get("items", []):
                yield "SYNC", obj
        remaining = (
            server_timeout if deadline is None else max(1, min(server_timeout, int(deadline - time.monotonic()) + 1))
        )
        try:
            resp = raw(
                list_fn(
                    watch=True,
                    resource_version=rv,
                    timeout_seconds=remaining,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                    **kwargs,
                )
            )
            for line in _lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object", {})
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        stats.relists += 1
                        rv = None  # re-list: the only safe resume point after 410
                        break
                    raise ClusterError(f"watch failed: {obj.get('message', obj)}", field="watch", value=obj.get("code"))
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if event.get("type") == "BOOKMARK":
                    continue
                stats.events += 1
                failures = 0
                yield event["type"], obj
        except ApiException as exc:
            if exc.status == 410:
                stats.relists += 1
                rv = None
                continue
            raise
        except (urllib3.exceptions.HTTPError, ConnectionError, OSError) as exc:
            failures += 1
            stats.reconnects += 1
            if failures > max_failures:
                raise ClusterError(f"watch lost its connection {failures} times: {exc}", field="watch") from None
            time.sleep(min(0.05 * 2**failures, 2.0))
