"""A stand-in for requests: nothing can be downloaded here.

``GP_STANDIN_URLS`` (JSON, url -> local file) lets the harness serve a generated file for a URL
that an example fetches unconditionally (gcn fetches Cora on every run); any other URL fails.
"""
from __future__ import annotations

import json
import os
from typing import Any


class RequestException(Exception):
    pass


class Response:
    def __init__(self, path: str) -> None:
        self.raw = open(path, "rb")
        self.status_code = 200

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.raw.close()

    @property
    def content(self) -> bytes:
        return self.raw.read()

    def raise_for_status(self) -> None:
        return None

    def iter_content(self, chunk_size: int = 65536) -> Any:
        while True:
            b = self.raw.read(chunk_size)
            if not b:
                return
            yield b


def get(url: str, *args: Any, **kwargs: Any) -> Response:
    served = json.loads(os.environ.get("GP_STANDIN_URLS", "{}"))
    if url in served:
        return Response(served[url])
    raise RequestException(f"graphprobe harness: no network here, and no stand-in for {url}")
