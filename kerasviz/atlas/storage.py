"""Where kerasviz keeps its files: a local folder or an fsspec URL (`file://`, `s3://`, `gs://`, `memory://`;
fsspec is imported only when a URL is used). Each file is written whole: a local one to a temporary name,
fsynced and renamed; on a URL, one put. The atlas cache, the dataset examples, the concept samples and the
explorer's layer pages all read and write through here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import zipfile

import numpy as np

from kerasviz import names

TMP_PREFIX = ".tmp-"  # a file being written: its name until the rename


def join(root: str | os.PathLike, *parts: str) -> str:
    """`parts` under `root`: joined with `/` on a URL, with the OS's separator on a local path."""
    if is_url(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return os.path.join(os.fspath(root), *parts)


def read_arrays(path: str | os.PathLike, settings: dict | None = None) -> dict | None:
    """The arrays of an `.npz` file written by `write_arrays`, or None when it is missing, unreadable, or was
    written for other `settings` (its `settings` entry, JSON, differs)."""
    data = read_file(path)
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        if settings is not None and json.loads(str(arrays.pop("settings"))) != settings:
            return None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # a corrupt or foreign file is recomputed
    return arrays


def write_arrays(path: str | os.PathLike, arrays: dict, settings: dict | None = None) -> None:
    """Write `arrays` as one `.npz` file (whole, as `write_file` does), with `settings` as JSON beside them."""
    if settings is not None:
        arrays = dict(arrays, settings=np.array(json.dumps(settings, sort_keys=True)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_file(path, buffer.getvalue())


def _atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(://|::)")  # `s3://...`, or a chain `simplecache::s3://...`


def is_url(folder) -> bool:
    """Whether `folder` is an fsspec URL (`s3://...`, `memory://...`, `file://...`, chained `a::b://...`)
    rather than a local path."""
    return isinstance(folder, str) and bool(_URL.match(folder))


def read_file(path: str | os.PathLike) -> bytes | None:
    """The bytes of one file of the cache (a local path or an fsspec URL), or None when it is missing or
    unreadable."""
    folder, name = _split(path)
    try:
        return store_for(folder).read(name)
    except (OSError, ValueError):
        return None


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """Write one file of the cache whole (a local path: temporary file, fsync and rename; an fsspec URL: one
    put), making its folder where the store has folders."""
    folder, name = _split(path)
    store = store_for(folder)
    store.makedirs()
    store.write(name, data)


def _split(path) -> tuple[str, str]:
    """`(folder, file name)` of a local path or a URL."""
    if is_url(path):
        folder, _, name = path.rstrip("/").rpartition("/")
        return folder, name
    return os.path.split(os.fspath(path))


def _filesystem(url: str):
    """`(fs, path)` for an fsspec URL, with errors that name what to install or what was meant."""
    try:
        import fsspec
        from fsspec.registry import known_implementations, registry
    except ImportError as e:
        raise ImportError(f"The cache folder {url!r} is a URL, which needs fsspec: pip install fsspec") from e
    protocol = url.split("::")[-1].split("://", 1)[0] if "://" in url else url.split("::")[0]
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        known = known_implementations.get(protocol, {})
        package = known.get("class", protocol).split(".", 1)[0]
        raise ImportError(f"The cache folder {url!r} uses the protocol {protocol!r}, which needs the package "
                          f"{package!r}: pip install {package} ({e})") from e
    except ValueError as e:
        if "Protocol not known" not in str(e):
            raise
        choices = sorted(set(known_implementations) | set(registry))
        raise ValueError(f"The cache folder {url!r} uses the protocol {protocol!r}, which fsspec does not know. "
                         "Use a local path or a URL such as 'file:///tmp/kv', 's3://bucket/kv', 'gs://bucket/kv' "
                         f"or 'memory://kv'.{names.did_you_mean(protocol, choices)}") from e


class _LocalStore:
    """A folder on this machine: os calls, each file written to a temporary name, fsynced and renamed."""

    local = True

    def __init__(self, path: str):
        self.path = path

    def _join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read(self, name: str) -> bytes:
        with open(self._join(name), "rb") as f:
            return f.read()

    def read_many(self, file_names: list) -> dict:
        found = {}
        for name in file_names:
            with contextlib.suppress(OSError):
                found[name] = self.read(name)
        return found

    def write(self, name: str, data: bytes) -> None:
        _atomic_write(self._join(name), data)

    def exists(self, name: str) -> bool:
        return os.path.exists(self._join(name))

    def names(self) -> set:
        try:
            return set(os.listdir(self.path))
        except OSError:
            return set()

    def makedirs(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    def remove(self, name: str) -> None:
        os.remove(self._join(name))


# stores of keys, not folders: a put is atomic and needs no parent folder
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}


class _FsspecStore:
    """A folder of an fsspec file system: each file is one put (atomic on object stores; on other file systems,
    such as sftp, a half-written file fails the record's checks and reads as missing), one listing per scan,
    reads batched in one `cat` (concurrent on async stores such as s3fs and gcsfs)."""

    local = False

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path.rstrip("/")
        self._made = False

    def _join(self, name: str) -> str:
        return f"{self.path}/{name}"

    def read(self, name: str) -> bytes:
        return self.fs.cat_file(self._join(name))

    def read_many(self, file_names: list) -> dict:
        if not file_names:
            return {}
        try:
            data = self.fs.cat([self._join(n) for n in file_names], on_error="omit")
        except OSError:
            return {}
        # keyed by the file name: fsspec may hand the paths back with or without their protocol
        return {k.rstrip("/").rsplit("/", 1)[-1]: v for k, v in data.items()}

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._join(name), data)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self._join(name))

    def names(self) -> set:
        self.fs.invalidate_cache(self.path)  # listings are cached by s3fs and gcsfs: other writers add files
        try:
            return {p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path, detail=False)}
        except (OSError, ValueError):
            return set()

    def makedirs(self) -> None:
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        if not self._made and not protocols & _OBJECT_STORES:  # (s3fs would even make a missing bucket)
            self.fs.makedirs(self.path, exist_ok=True)
        self._made = True

    def remove(self, name: str) -> None:
        self.fs.rm_file(self._join(name))


def store_for(folder):
    if not is_url(folder):
        return _LocalStore(os.fspath(folder))
    fs, path = _filesystem(folder)
    if _is_plain_local(fs):  # file://: the same os-level writes as a plain path (a rename is atomic)
        return _LocalStore(path)
    return _FsspecStore(fs, path)


def _is_plain_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return type(fs) is LocalFileSystem


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image as PNG file bytes."""
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(data: bytes, channels: int) -> np.ndarray:
    """PNG file bytes as a uint8 `(H, W, channels)` image."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 and channels == 1 else arr
