"""CONTRACT STUB: the arXiv export API double (being written)."""

from __future__ import annotations

from pipeline.sandbox.server import Request, Response


class ArxivDouble:
    def handle(self, request: Request) -> Response:
        raise NotImplementedError
