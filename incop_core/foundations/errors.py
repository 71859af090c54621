"""Errors a user can meet. Each carries one sentence that names the fix; the CLI prints it and exits 2.

`explain` maps the expected failures that are not ours (a read-only or full disk, a file where a folder
belongs, a port in use, a corrupt JSON file, onnxruntime refusing a model, an unknown fsspec protocol, a
command whose extra is not installed) to such a sentence; anything else is a bug and keeps its traceback.
Only the standard library loads here.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Mapping, Optional


class IncopError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file, no GPU)."""


class ConfigError(IncopError):
    """The configuration is invalid or incompatible with an existing run."""


class DataError(IncopError):
    """A data set is missing, corrupt or truncated."""


class DeviceError(IncopError):
    """The requested device is not available."""


class TrainingDiverged(IncopError):
    """The training loss became NaN or infinite."""


class RunLocked(IncopError):
    """Another process is working on the same run directory."""


class CorruptFile(IncopError, ValueError):
    """A file the program wrote (a run's JSON) no longer parses."""


# What the `pipeline` extra installs, by import name: a command that needs one says which extra to install.
PIPELINE_MODULES = {"torch", "torchvision", "torch_pruning", "onnx", "onnxscript", "prefect", "pydantic", "matplotlib",
                    "zstandard", "fastapi", "sqlalchemy"}
ORT_LOAD_ERRORS = {"Fail", "InvalidProtobuf", "NoSuchFile", "InvalidGraph", "InvalidArgument", "NotImplemented"}
WRITE_DENIED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system"}


def _option_for(path: Path, outputs: Mapping[str, Optional[Path]]) -> Optional[str]:
    """The output option (--out, --dest, ...) whose path is `path` or one of its folders."""
    target = Path(path).absolute()
    for flag, given in outputs.items():
        if given is not None and (target == Path(given).absolute() or Path(given).absolute() in target.parents):
            return flag
    return None


def _file_on_path(path: Path) -> Path:
    """The first folder of `path` (or `path` itself) that is a file, else `path`."""
    for candidate in reversed([Path(path), *Path(path).parents]):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return Path(path)


def _explain_os(exc: OSError, outputs: Mapping[str, Optional[Path]]) -> Optional[str]:
    path = exc.filename if exc.filename is not None else "the file"
    flag = _option_for(Path(path), outputs) if exc.filename is not None else None
    writable, code = (f"choose a writable {flag}" if flag else "choose a writable location"), exc.errno
    if code in WRITE_DENIED:
        verb = "write" if flag or code == errno.EROFS else "access"
        return f"cannot {verb} {path}: {WRITE_DENIED[code]}; {writable} or fix its permissions"
    if code == errno.ENOTDIR or (code == errno.EEXIST and Path(path).exists() and not Path(path).is_dir()):
        return (f"{_file_on_path(Path(path))} is a file where a directory is needed; "
                f"choose another {flag or 'path'} or move the file away")
    return {errno.ENOSPC: f"cannot write {path}: the disk is full; free space or {writable}",
            errno.EDQUOT: f"cannot write {path}: the disk quota is used up; free space or {writable}",
            errno.EEXIST: f"{path} already exists; remove it or choose another {flag or 'path'}",
            errno.EISDIR: f"{path} is a directory where a file is needed; pass a file path or remove the directory",
            errno.ENAMETOOLONG: f"the file name {str(path)[:60]}... is too long; use a shorter path",
            errno.EADDRINUSE: "the address is already in use; stop the program using that port or choose another "
                              "--port",
            errno.ENOENT: f"cannot create {path} there; {writable}" if flag
                          else f"{path} does not exist; check the path",
            }.get(code)


def _missing_extra(exc: BaseException) -> Optional[str]:
    """A command run on the base install (an edge device) that needs the training side."""
    missing = (getattr(exc, "name", None) or "").split(".")[0] if isinstance(exc, ImportError) else ""
    if missing in PIPELINE_MODULES:
        return f"this command needs the pipeline extra ({missing} is not installed): pip install 'incop[pipeline]'"
    return None


def _explain_other(exc: BaseException) -> Optional[str]:
    kind, module, text = type(exc).__name__, type(exc).__module__, str(exc).strip()
    first = text.splitlines()[0][:200] if text else kind
    if module.startswith("onnxruntime") and kind in ORT_LOAD_ERRORS:
        return (f"onnxruntime cannot load the model ({first}); check that the file is a complete ONNX model, or "
                "export it again")
    if isinstance(exc, json.JSONDecodeError):
        return f"a JSON file is corrupt ({first}); restore it or delete it and re-run the command that wrote it"
    if kind == "ValidationError" and module.startswith("pydantic"):
        return f"a file does not match what this version of incop expects ({first}); fix it or re-create it"
    if isinstance(exc, ValueError) and text.startswith("Protocol not known"):
        return (f"unknown storage URL ({first}); use a local directory or a URL of an installed fsspec backend "
                "(s3://, gs://, memory://)")
    if isinstance(exc, ImportError) and "install" in text.lower() and " to access " in text:
        return f"a storage backend is missing ({first}); install it with pip, or use a local directory"
    return None


def explain(exc: BaseException, outputs: Optional[Mapping[str, Optional[Path]]] = None) -> Optional[str]:
    """The one sentence for an expected failure, naming the path and the fix; None for a bug.

    `outputs` maps a command's output options to their values (``{"--out": out}``), so a sentence
    about a path under one of them can name the option to change."""
    if isinstance(exc, IncopError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _explain_os(exc, outputs or {})
    return _missing_extra(exc) or _explain_other(exc)
