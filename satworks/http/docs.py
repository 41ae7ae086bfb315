"""``/docs``: the OpenAPI document as a readable API reference (Swagger UI).

Swagger UI's files come from the ``swagger-ui-bundle-v2`` package and are served by this process: the
page loads nothing from another origin (the service may run without internet; no validator badge).
URLs in the page are relative, so it also works behind a proxy that mounts the API under a prefix.
"""

from __future__ import annotations

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>satworks intake API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "v1/openapi.json", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true});
  </script>
</body>
</html>
"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


def add_docs(app: web.Application) -> None:
    """Serve the reference at ``/docs`` and Swagger UI's files under ``/docs/assets/``."""
    app.router.add_get("/docs", docs_page)
    app.router.add_static("/docs/assets/", str(swagger_ui_path))
