"""Writing an export: JSON Lines streamed to Airflow's object storage, never left half-written.

Rows are written as they come (a batch of lines at a time), so an export holds what its source
holds, not the file. The file is written under a hidden temporary name beside the target and
renamed over it once complete; a failure removes the temporary file. So the target path holds
either the previous file or a whole new one. On object stores the rename is a server-side copy:
the new object appears whole or not at all.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_doto.exceptions import DotoConfigError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

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


def check_output_path(output_path: Any) -> None:
    if not isinstance(output_path, str) or not output_path.strip():
        raise DotoConfigError(f"output_path must be a non-empty path or URL, got {output_path!r}.")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    count = 0
    try:
        with partial.open("wb") as raw:
            # The gzip header names the final file, not the temporary one.
            out = gzip.GzipFile(path.name, "wb", 6, raw) if compression == "gzip" else raw
            try:
                lines: list[bytes] = []
                for row in rows:
                    lines.append(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                    if len(lines) >= LINES_PER_WRITE:
                        out.write(b"".join(lines))
                        count, lines = count + len(lines), []
                out.write(b"".join(lines))
                count += len(lines)
            finally:
                if out is not raw:
                    out.close()
        partial.rename(path)
    except BaseException:
        try:
            if partial.exists():
                partial.unlink()
        except Exception:  # the export's own error matters more; say where the leftover is
            log.warning("Could not remove the incomplete export %s", partial)
        raise
    return path, count
