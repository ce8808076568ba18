"""Attachments to send, on the I/O side: what each file is (name, size) and its bytes, streamed.

:func:`uploads_of` looks at each file a caller names (a local path, an Airflow ``ObjectStoragePath``
or its URL as text, or a ``(filename, bytes)`` pair) without reading it; the core checks those (``api._uploads``).
:class:`StreamedBody` is the multipart body requests sends: an iterable with a length, so requests
sends a ``Content-Length`` and reads one chunk at a time from each file's source, opened anew for
every attempt (a connect failure is resent from the start).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import IO, Any

from airflow_provider_doto._airflow import GivenFile
from airflow_provider_doto.api._attachments import CHUNK_SIZE
from airflow_provider_doto.api._uploads import MultipartBody, Upload
from airflow_provider_doto.exceptions import DotoUploadError

# What ``attachments=`` takes: a path (str or os.PathLike), an ObjectStoragePath, or (name, bytes).
AttachmentSource = Any


def uploads_of(attachments: Sequence[AttachmentSource] | None) -> list[Upload]:
    """An :class:`Upload` per attachment: its name and size (a ``stat``, never a read). A file that
    cannot be looked at raises :class:`DotoUploadError` naming it, before anything is sent."""
    if attachments is None:
        return []
    if (
        isinstance(attachments, str | bytes | os.PathLike | GivenFile)
        or _is_object_storage(attachments)
        or (isinstance(attachments, tuple) and len(attachments) == 2 and isinstance(attachments[1], bytes))
    ):
        attachments = [attachments]  # one file given on its own
    return [_upload(item) for item in attachments]


def _upload(item: AttachmentSource) -> Upload:
    if isinstance(item, GivenFile):
        item = (item.filename, item.data)
    if isinstance(item, str) and "://" in item:
        item = _storage_path(item)  # a URL (an XCom carries a path as text): any object storage
    if isinstance(item, tuple) and len(item) == 2:
        name, data = item
        if not isinstance(name, str) or not isinstance(data, bytes | bytearray | memoryview):
            raise DotoUploadError(
                "an attachment pair must be (file name, bytes); nothing was sent", reason="bad value"
            )
        return Upload.of(name, len(data), bytes(data))
    if _is_object_storage(item):
        try:
            size = int(item.stat().st_size)
        except (OSError, ValueError) as err:
            raise _unreadable(str(item), err) from err
        return Upload.of(item.name, size, item)
    if isinstance(item, str | os.PathLike):
        path = os.fspath(item)
        try:
            size = os.stat(path).st_size
        except (OSError, ValueError) as err:
            raise _unreadable(str(path), err) from err
        return Upload.of(os.path.basename(str(path)), size, path)
    raise DotoUploadError(
        f"an attachment must be a path, an ObjectStoragePath or (file name, bytes), not "
        f"{type(item).__name__}; nothing was sent",
        reason="bad value",
    )


def _storage_path(url: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def _is_object_storage(item: Any) -> bool:
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return False
    return isinstance(item, ObjectStoragePath)


def _unreadable(name: str, err: BaseException) -> DotoUploadError:
    return DotoUploadError(
        f"attachment {name!r} cannot be read ({type(err).__name__}: {err}); nothing was sent",
        filename=name,
        reason="unreadable",
    )


def open_source(upload: Upload) -> AbstractContextManager[IO[bytes]]:
    """The upload's bytes as a binary file: its path opened, or the given bytes."""
    import io

    source = upload.source
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if _is_object_storage(source):
        return source.open("rb")
    return open(source, "rb")


def iter_upload(upload: Upload, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
    """Exactly ``upload.size`` bytes of its source, ``chunk_size`` at a time. A file that changed
    size since it was looked at raises (the ``Content-Length`` already sent would be a lie)."""
    left = upload.size
    with open_source(upload) as file:
        while left > 0:
            chunk = file.read(min(chunk_size, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
        if left or file.read(1):
            raise DotoUploadError(
                f"attachment {upload.filename!r} changed size while it was being sent",
                filename=upload.filename,
                reason="changed",
            )


def iter_body(body: MultipartBody, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The whole multipart body, a part or a chunk at a time."""
    for part in body.parts:
        if isinstance(part, Upload):
            yield from iter_upload(part, chunk_size)
        else:
            yield part


async def aiter_body(body: MultipartBody, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """:func:`iter_body` for aiohttp: each file opened and read in a worker thread, a chunk at a
    time, so the event loop never waits on a disk or an object store."""
    for part in body.parts:
        if not isinstance(part, Upload):
            yield part
            continue
        chunks = iter_upload(part, chunk_size)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk
        finally:
            chunks.close()


class StreamedBody:
    """A multipart body for requests: ``len()`` gives the ``Content-Length`` (so nothing is sent
    chunked), and each iteration streams the files again from their sources."""

    def __init__(self, body: MultipartBody, chunk_size: int = CHUNK_SIZE) -> None:
        self.body = body
        self.chunk_size = chunk_size

    def __len__(self) -> int:
        return self.body.length

    def __iter__(self) -> Iterator[bytes]:
        return iter_body(self.body, self.chunk_size)
