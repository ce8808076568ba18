"""Writing an export: JSON Lines streamed to Airflow's object storage, never left half-written.

Rows are written as they come (a batch of lines at a time), so an export holds what its source
holds, not the file. The file is written under a hidden temporary name beside the target and
renamed over it once complete; a failure removes the temporary file. So the target path holds
either the previous file or a whole new one. On object stores the rename is a server-side copy:
the new object appears whole or not at all. A message's attachments are copied the same way, one
file each, streamed from their download into the target (a chunk in memory, never the file).
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_provider_doto.exceptions import DotoConfigError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_doto.api import Attachment, Message

log = logging.getLogger(__name__)

COMPRESSIONS = ("infer", "gzip", None)
# Lines encoded before each write: fewer, larger writes to the (possibly remote, gzip) stream.
LINES_PER_WRITE = 500


def check_compression(compression: Any) -> None:
    if compression not in COMPRESSIONS:
        raise DotoConfigError(f"compression must be 'gzip', None or 'infer', got {compression!r}.")


def compression_for(output_path: str, compression: str | None) -> str | None:
    """``infer``: gzip for a path ending in ``.gz``, plain otherwise."""
    check_compression(compression)
    if compression == "infer":
        return "gzip" if str(output_path).endswith(".gz") else None
    return compression


def check_output_path(output_path: Any, name: str = "output_path") -> None:
    if not isinstance(output_path, str) or not output_path.strip():
        raise DotoConfigError(f"{name} must be a non-empty path or URL, got {output_path!r}.")


@contextmanager
def written_whole(path: ObjectStoragePath) -> Iterator[BinaryIO]:
    """A stream to a hidden temporary file beside ``path``, renamed to ``path`` when the block ends
    without an error; on any error the temporary file is removed and ``path`` left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        with partial.open("wb") as raw:
            yield raw
        partial.rename(path)
    except BaseException:
        try:
            if partial.exists():
                partial.unlink()
        except Exception:  # the export's own error matters more; say where the leftover is
            log.warning("Could not remove the incomplete export %s", partial)
        raise


def write_attachments(
    directory: str, message: Message, download: Callable[[Attachment, BinaryIO], int]
) -> list[str]:
    """Copy ``message``'s attachments into ``directory`` (a local path or object storage URL), one
    file each, named ``<message id>-<attachment id>-<file name>``; the paths written, in order.

    ``download`` writes an attachment's bytes to a stream (:meth:`DotoHook.download_attachment`).
    Attachments without a ``data_url`` (a shared location, a contact card) have no file: skipped.
    """
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_doto.api._attachments import export_file_name

    target = ObjectStoragePath(directory)
    written = []
    for index, attachment in enumerate(message.attachments):
        if not attachment.data_url:
            continue
        path = target / export_file_name(message.id, attachment, index)
        with written_whole(path) as out:
            download(attachment, out)
        written.append(str(path))
    return written


def write_jsonl(
    output_path: str, rows: Iterable[Mapping[str, Any]], *, compression: str | None = "infer"
) -> tuple[ObjectStoragePath, int]:
    """Write ``rows`` as JSON Lines to ``output_path`` (a local path or an object storage URL).

    Returns the path and the number of lines. Parent directories are created. If ``rows`` raises
    (or anything else fails), the error is raised and ``output_path`` is left as it was.
    """
    from airflow.sdk import ObjectStoragePath

    check_output_path(output_path)
    compression = compression_for(output_path, compression)
    path = ObjectStoragePath(output_path)
    count = 0
    with written_whole(path) as raw:
        # The gzip header names the final file, not the temporary one.
        zipped = gzip.GzipFile(path.name, "wb", 6, raw) if compression == "gzip" else None
        write = raw.write if zipped is None else zipped.write
        try:
            lines: list[bytes] = []
            for row in rows:
                lines.append(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                if len(lines) >= LINES_PER_WRITE:
                    write(b"".join(lines))
                    count, lines = count + len(lines), []
            write(b"".join(lines))
            count += len(lines)
        finally:
            if zipped is not None:
                zipped.close()
    return path, count
