"""Where a device reads a registry from: HTTP(S) through the standard library, anything else through fsspec.

A source opens one registry file from a byte offset, to be read by `until` (a time.monotonic() instant: the
file's deadline); errors come back as Missing (no retry) or Transient (retry, then "unreachable"). Imports
neither torch nor prefect.
"""

from __future__ import annotations

import http.client
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO

from .errors import RegistryError
from .pull_watch import Watchdog, WatchedResponse, watched_opener


class Missing(Exception):
    """The registry answered that the file does not exist."""


class Transient(Exception):
    """The registry did not answer properly this time; trying again may work."""


class RangeRefused(Exception):
    """The server cannot serve the asked-for byte range (the partial file is longer than the file)."""


TRANSIENT_ERRORS = (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, TimeoutError)


class HttpSource:
    """A registry served over HTTP(S), read with Range requests so downloads resume.

    Connecting and the whole status line and headers must take at most `timeout` seconds; the socket timeout
    bounds each later receive. A watchdog enforces both that and `until` for the whole response.
    """

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url.rstrip("/") + "/", timeout

    def open(self, rel: str, offset: int = 0, until: float = math.inf) -> tuple[BinaryIO, int]:
        """A stream of `rel` and the offset it really starts at (0 when the server ignores Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = urllib.request.Request(self.url + urllib.parse.quote(rel), headers=headers)
        watch = Watchdog(min(time.monotonic() + self.timeout, until))
        try:
            response = self._response(request, rel, watch)
            if not watch.extend(until):  # too late: a cut header block can look complete to http.client
                response.close()
                raise Transient(self._late())
        except BaseException:
            watch.close()
            raise
        return WatchedResponse(response, watch), offset if response.status == 206 else 0

    def _response(self, request: urllib.request.Request, rel: str, watch: Watchdog):
        timeout = max(watch.until - time.monotonic(), 0.01)  # 0 would make the socket non-blocking
        try:
            return watched_opener(watch).open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if watch.fired:
                raise Transient(self._late()) from None
            if exc.code in (404, 410):
                raise Missing(rel) from None
            if exc.code == 416:
                raise RangeRefused(rel) from None
            raise Transient(f"HTTP {exc.code}") from None
        except TRANSIENT_ERRORS as exc:
            raise Transient(self._late() if watch.fired else str(getattr(exc, "reason", exc))) from None

    def _late(self) -> str:
        return f"no response headers within {self.timeout:g} s"


class FsspecSource:
    """A registry at a local path or any fsspec URL (s3://, gs://, memory://, ...)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = _filesystem(url)
        self.root = self.root.rstrip("/")

    def open(self, rel: str, offset: int = 0, until: float = math.inf) -> tuple[BinaryIO, int]:
        """`until` is not enforced while opening (a local file, or the backend's own timeouts); reads check it."""
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
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port  # a bad port or host raises here, not mid-download
    except ValueError as exc:
        raise RegistryError(f"registry URL {url!r} is malformed ({exc}); check --registry") from None
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname:
            raise RegistryError(f"registry URL {url!r} names no host; check --registry (e.g. http://127.0.0.1:8765)")
        return HttpSource(str(url), timeout)
    return FsspecSource(str(url))


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
