"""Where a device reads a registry from: HTTP(S) through the standard library, anything else through fsspec.

A source opens one registry file from a byte offset; errors come back as Missing (no retry) or
Transient (retry, then "unreachable"). Imports neither torch nor prefect.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO

from .errors import RegistryError


class Missing(Exception):
    """The registry answered that the file does not exist."""


class Transient(Exception):
    """The registry did not answer properly this time; trying again may work."""


class RangeRefused(Exception):
    """The server cannot serve the asked-for byte range (the partial file is longer than the file)."""


TRANSIENT_ERRORS = (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, TimeoutError)


class HttpSource:
    """A registry served over HTTP(S), read with Range requests so downloads resume."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url.rstrip("/") + "/", timeout

    def open(self, rel: str, offset: int = 0) -> tuple[BinaryIO, int]:
        """A stream of `rel` and the offset it really starts at (0 when the server ignores Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = urllib.request.Request(self.url + urllib.parse.quote(rel), headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise Missing(rel) from None
            if exc.code == 416:
                raise RangeRefused(rel) from None
            raise Transient(f"HTTP {exc.code}") from None
        except TRANSIENT_ERRORS as exc:
            raise Transient(str(getattr(exc, "reason", exc))) from None
        return response, offset if response.status == 206 else 0


class FsspecSource:
    """A registry at a local path or any fsspec URL (s3://, gs://, memory://, ...)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = _filesystem(url)
        self.root = self.root.rstrip("/")

    def open(self, rel: str, offset: int = 0) -> tuple[BinaryIO, int]:
        path = f"{self.root}/{rel}" if self.root else rel
        try:
            handle = self.fs.open(path, "rb")
            handle.seek(offset)
        except FileNotFoundError:
            raise Missing(rel) from None
        except OSError as exc:
            raise Transient(str(exc)) from None
        return handle, offset


def source_for(url: str, timeout: float = 30.0):
    scheme = urllib.parse.urlsplit(str(url)).scheme.lower()
    return HttpSource(str(url), timeout) if scheme in ("http", "https") else FsspecSource(str(url))


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem and root for `url`, or one sentence naming the package or URL to fix."""
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        raise RegistryError(f"registry URL {url} is not http(s)://, so reading it needs fsspec; install it with "
                            "pip install fsspec or serve the registry with `incop registry serve`") from None
    protocol = fsspec.core.split_protocol(url)[0]
    if protocol and protocol not in fsspec.available_protocols():
        raise RegistryError(f"registry URL {url} uses protocol {protocol} that fsspec does not know; use http(s)://, "
                            "a directory or an installed fsspec backend")
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        package = known_implementations.get(protocol, {}).get("class", f"{protocol}fs").split(".")[0]
        raise RegistryError(f"registry URL {url} needs the {package} package; install it with pip install {package} "
                            "or use http(s)://") from None
    except (ValueError, OSError) as exc:
        raise RegistryError(f"registry URL {url} cannot be opened ({exc}); check --registry") from None
