"""HTTP recognition service (FastAPI + uvicorn): POST a skeleton, get the action, its top-5 and a description.

    app.py       the endpoints around one loaded recogniser (`create_app`)
    batcher.py   concurrent requests share forward passes; a failed batch is retried per request
    limits.py    bounds on size, time, queue and memory that keep one client from hurting the others
    workers.py   client input parsed in worker processes (sugar.skeleton.untrusted: samples or a 4xx)
`server_config` is the uvicorn configuration `sugar serve` runs the app with (header timeout included).
"""

from __future__ import annotations

import uvicorn

from sugar.serve.app import ActionList, SkeletonJSON, animation_data_url, create_app
from sugar.serve.batcher import Recognizes, RequestBatcher
from sugar.serve.limits import ServiceLimits, bind_warning, header_timeout_protocol, is_loopback

__all__ = ["ActionList", "Recognizes", "RequestBatcher", "ServiceLimits", "SkeletonJSON", "animation_data_url",
           "bind_warning", "create_app", "is_loopback", "server_config"]


def server_config(app, host: str = "127.0.0.1", port: int = 8000, limits: ServiceLimits | None = None,
                  **kwargs) -> uvicorn.Config:
    """uvicorn settings with the service's connection bounds: h11 with a request-head timeout, keep-alive,
    a cap on open connections, no websockets."""
    limits = limits or getattr(getattr(app, "state", None), "limits", None) or ServiceLimits()
    return uvicorn.Config(app, host=host, port=port, http=header_timeout_protocol(limits.header_timeout_s),
                          ws="none", timeout_keep_alive=limits.keep_alive_s,
                          limit_concurrency=limits.max_connections, **kwargs)
