"""Helpers of the Airflow-facing classes (operators, sensor, notifier, trigger), kept out of the pure
API core: they know about Jinja templates and about what goes into a log line or a trigger event."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_doto.exceptions import DotoConfigError, DotoError

# A templated field ending in one of these is a template file's path (``template_ext``), not text.
TEMPLATE_EXTENSIONS = (".txt", ".md", ".j2")


def is_template(value: Any) -> bool:
    """A Jinja template string: its value is only known, and checked, after rendering."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def is_template_file(value: Any) -> bool:
    """A path to a template file: Airflow reads and renders it, so its text is only known then."""
    return isinstance(value, str) and value.endswith(TEMPLATE_EXTENSIONS)


def is_static(value: Any) -> bool:
    """Known at DAG parse, so checked there: plain data with no template anywhere inside, and no value
    Airflow resolves or renders at run time (an XComArg, an object with its own ``template_fields``)."""
    if isinstance(value, str):
        return not is_template(value)
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_static(v) for v in value)
    if isinstance(value, dict):  # Airflow renders a dict's values, not its keys
        return all(is_static(v) for v in value.values())
    return not hasattr(value, "resolve") and not hasattr(value, "template_fields")


def rendered_list(value: Any, name: str) -> list[Any]:
    """The items of a list field, given as a list (any sequence) or one id, or as the text a template
    renders: a JSON array, a Python literal list (``"[1, 2]"``; read, never evaluated as code),
    comma-separated ids (``"1,2"``) or one id (``"7"``). Checking the items is the caller's part.
    """
    if isinstance(value, str):
        return _list_from_text(value, name)
    if isinstance(value, int):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return list(value)
    raise DotoConfigError(f"{name} must be a list, got {type(value).__name__}: {_shown(value)}.")


def check_query(value: Any, name: str = "conversation_query", *, watch: bool = False) -> None:
    """At DAG parse: a conversation query's static fields (a template's field is checked once
    rendered, by :func:`rendered_query`); its field names, always. A whole-query template or a
    value Airflow resolves at run time (an XComArg) is left for then. ``watch``: a watch's query
    (every status by default, no order or time window)."""
    if isinstance(value, dict):
        value = {k: v if is_static(v) else None for k, v in value.items()}
    elif not is_static(value):
        return
    _build(value, name, watch)


def _build(value: Any, name: str, watch: bool) -> Any:
    if watch:
        from airflow_provider_doto.api._account_watch import watch_query

        return watch_query(value, name=name)
    from airflow_provider_doto.api._conversations import query_from

    return query_from(value, name=name)


def rendered_query(value: Any, name: str = "conversation_query", *, watch: bool = False) -> Any:
    """A conversation query once rendered: a ``ConversationQuery``, a mapping of its fields, or the
    text of one (JSON or a Python literal); ``labels`` may be the text of a list. ``watch``: as
    :func:`check_query`."""
    if isinstance(value, str):
        try:
            value = _literal(value.strip())
        except _LITERAL_ERRORS as exc:
            raise DotoConfigError(f"{name} is not a mapping of the query's fields: {_shown(value)}.") from exc
    if isinstance(value, dict) and isinstance(value.get("labels"), str) and value["labels"]:
        value = {**value, "labels": rendered_labels(value["labels"])}
    return _build(value, name, watch)


def check_templates(template: Any, fallback_template: Any, message_type: Any, private: Any) -> None:
    """At DAG parse: a send's ``template`` and ``fallback_template`` (where each may go, and their
    static parts). The core's template module is loaded only when one is given."""
    if template is None and fallback_template is None:
        return
    from airflow_provider_doto.api._templates import check_template_use

    check_template_use(template, fallback_template, message_type, private)
    check_template_field(template, "template")
    check_template_field(fallback_template, "fallback_template")


def check_template_field(value: Any, name: str = "template") -> None:
    """At DAG parse: a message template's static parts (``api._templates``). A dict's templated
    leaves are checked once rendered (:func:`rendered_template`), its keys and the rest now; a
    whole-template string or an XComArg is left for run time."""
    if value is None:
        return
    if is_static(value):
        rendered_template(value, name)
    elif isinstance(value, dict):
        from airflow_provider_doto.api._templates import check_template

        check_template(value, name=name, pending=lambda leaf: not is_static(leaf))


def rendered_template(value: Any, name: str = "template") -> dict[str, Any] | None:
    """A message template once rendered, checked: a dict, or the text of one (JSON or a Python
    literal, as a template renders a param). None, ``{}`` or text rendering to nothing: no template
    (a DAG param left empty)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = _literal(text) if text else None
        except _LITERAL_ERRORS as exc:
            raise DotoConfigError(f"{name} is not a template's dict: {_shown(value)}.") from exc
    if value is None or (isinstance(value, dict) and not value):
        return None
    from airflow_provider_doto.api._templates import check_template

    return check_template(value, name=name)


def rendered_labels(text: str) -> list[Any]:
    """Labels as a template renders them: a JSON or Python list, or comma-separated names."""
    try:
        parsed = _literal(text.strip())
    except _LITERAL_ERRORS:
        parsed = [part.strip() for part in text.split(",") if part.strip()]
    return list(parsed) if isinstance(parsed, list | tuple) else [parsed]


# What reading a text as a literal may raise (``ast.literal_eval`` on malformed or huge input).
_LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def _list_from_text(value: str, name: str) -> list[Any]:
    text = value.strip()
    try:
        parsed = _literal(text)
    except _LITERAL_ERRORS as exc:
        # Ids that no literal reads (a leading zero: "07", "1,07") are ids all the same.
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if parts and all(part.isascii() and part.isdigit() for part in parts):
            return parts
        raise _not_a_list(name, text) from exc
    if isinstance(parsed, list | tuple):
        return list(parsed)
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        return [parsed]
    raise _not_a_list(name, text)


def _literal(text: str) -> Any:
    """``text`` read as JSON, else as a Python literal (never evaluated as code)."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _not_a_list(name: str, text: str) -> DotoConfigError:
    return DotoConfigError(
        f"{name} is not a list: the text {_shown(text)} is neither a JSON or Python list nor "
        "comma-separated ids; pass a list or an XComArg, or render the DAG's templates as native "
        "objects (render_template_as_native_obj=True)."
    )


def _shown(value: Any) -> str:
    """The bad value for an error message, cut short: a rendered list may be long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def describe_error(error: BaseException) -> str:
    """One line for logs and trigger events: the typed error's text (never carries the token)."""
    if isinstance(error, DotoError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}"


@dataclass(frozen=True)
class GivenFile:
    """A ``(filename, bytes)`` pair as an operator keeps it: not a tuple, so Airflow's templating
    leaves it alone (it would read a name ending in ``.txt`` as a template file)."""

    filename: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class LocalFile:
    """A local path as an operator keeps it: not a ``str`` (Airflow would read a name ending in
    ``.txt`` as a template file) and not a ``pathlib.Path`` (Airflow 3.1's templating calls any
    value's ``resolve`` with the context, and ``Path.resolve(strict=...)`` then raises for a file
    that is not there yet). The hooks take it as any ``os.PathLike``."""

    path: str

    def __fspath__(self) -> str:
        return self.path


def untemplated_files(attachments: Any) -> Any:
    """``attachments`` as templating leaves them intact: a ``str`` path that ends in a template
    extension, or a local ``Path``, as a :class:`LocalFile` and a ``(filename, bytes)`` pair as a
    :class:`GivenFile` (Airflow would read such a name as a template file and put its rendered text
    in place of the name; Airflow 3.1 would resolve a ``Path`` strictly)."""
    if isinstance(attachments, tuple) and len(attachments) == 2 and isinstance(attachments[1], bytes):
        attachments = [attachments]
    if not isinstance(attachments, list | tuple):
        return attachments  # None, one path, or an XComArg resolved when the task runs
    return [_untemplated(a) for a in attachments]


def _untemplated(item: Any) -> Any:
    if isinstance(item, str) and item.endswith(TEMPLATE_EXTENSIONS):
        return LocalFile(item)
    if type(item) is type(Path()):  # a plain local Path (an ObjectStoragePath is templated as such)
        return LocalFile(str(item))
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes | bytearray):
        return GivenFile(str(item[0]), bytes(item[1]))
    return item


def check_attachments_use(attachments: Any, template: Any, fallback_template: Any) -> None:
    """At DAG parse: a message with attachments carries no template (the create request takes one
    or the other: ``api._http.send_request``). Only given values are compared: a template string
    may render to nothing, so it is left for the send's own check."""
    if attachments is None or (isinstance(attachments, list | tuple) and not attachments):
        return  # (an XComArg or a template string counts as files: they come when the task runs)
    from airflow_provider_doto.api._values import check_attachments_alone

    given = [value if isinstance(value, dict) and value else None for value in (template, fallback_template)]
    check_attachments_alone(True, *given)
