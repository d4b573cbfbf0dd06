"""What SDKs fetch at start: ``/flags``, ``/decide``, ``/array/<token>/config(.js)``.

Headwater has no feature flags, so these answer "no flags" in the shapes posthog-js parses,
and advertise the compressions capture accepts. ``supportedCompression`` must contain the
exact string ``gzip-js`` for posthog-js to gzip its requests.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SUPPORTED_COMPRESSION = ["gzip-js", "gzip", "lz64", "base64"]

REMOTE_CONFIG = {
    "supportedCompression": SUPPORTED_COMPRESSION,
    "hasFeatureFlags": False,
    "sessionRecording": False,
    "surveys": False,
    "heatmaps": False,
    "autocaptureExceptions": False,
    "siteApps": [],
}

FLAGS = {
    "flags": {},
    "featureFlags": {},
    "featureFlagPayloads": {},
    "errorsWhileComputingFlags": False,
    "supportedCompression": SUPPORTED_COMPRESSION,
    "sessionRecording": False,
    "config": {"enable_collect_everything": True},
    "toolbarParams": {},
    "siteApps": [],
}


async def flags(_: Request) -> Response:
    """``/flags`` and ``/decide``, any version: no flags, capture's compressions."""
    return JSONResponse(FLAGS)


async def remote_config(request: Request) -> Response:
    """``/array/<token>/config``: the remote config object as JSON."""
    return JSONResponse(REMOTE_CONFIG)


async def remote_config_js(request: Request) -> Response:
    """``/array/<token>/config.js``: defines ``window._POSTHOG_REMOTE_CONFIG[token]``."""
    token = orjson.dumps(request.path_params["token"]).decode()
    config = orjson.dumps(REMOTE_CONFIG).decode()
    script = (
        "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};"
        f"window._POSTHOG_REMOTE_CONFIG[{token}]={{config:{config},siteApps:[]}};}})();"
    )
    return Response(script, media_type="application/javascript")
