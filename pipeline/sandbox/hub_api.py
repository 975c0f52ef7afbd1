"""CONTRACT STUB: the Hugging Face Hub API double (being written)."""

from __future__ import annotations

from pipeline.sandbox.server import Request, Response


class HubDouble:
    def handle(self, request: Request) -> Response:
        raise NotImplementedError
