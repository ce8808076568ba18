"""Message templates: Chatwoot's ``template_params``, checked before anything is sent.

Outside a messaging channel's reply window only an approved template reaches the customer
(WhatsApp: a message with ``template_params``). A template is given as the dict Chatwoot's create
body takes: ``name``, ``category``, ``language`` and ``processed_params`` (``body``: placeholder ->
text, optional ``header`` with ``media_url`` and ``media_type``, optional ``buttons`` of ``type`` and
``parameter``). Rule: pure checks of the value; a wrong field raises :class:`DotoConfigError`
naming it (``template.processed_params.header.media_type``). No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_doto.exceptions import DotoConfigError

# The create body's schema (chatwoot-openapi.json, conversation_message_create_payload.template_params).
TEMPLATE_CATEGORIES = ("UTILITY", "MARKETING", "SHIPPING_UPDATE", "TICKET_UPDATE", "ISSUE_RESOLUTION")
HEADER_MEDIA_TYPES = ("image", "video", "document")
BUTTON_TYPES = ("url", "copy_code")
_KEYS = ("name", "category", "language", "processed_params")
_PARAM_KEYS = ("body", "header", "buttons")


def check_template(
    value: Any, *, name: str = "template", pending: Callable[[Any], bool] | None = None
) -> dict[str, Any]:
    """The ``template_params`` of a create body: a JSON-safe copy of ``value``, checked.

    ``pending``: a value it says yes to (a Jinja template not rendered yet, at DAG parse) passes
    any check of a leaf; the structure around it is still checked.
    """
    later = pending or (lambda _: False)
    template = _mapping(value, name, _KEYS)
    for key in _KEYS:
        if key not in template:
            raise DotoConfigError(f"{name} lacks {key!r}: a template has {', '.join(_KEYS)}.")
    for key in ("name", "language"):
        _text(template[key], f"{name}.{key}", later)
    _choice(template["category"], f"{name}.category", TEMPLATE_CATEGORIES, later)
    where = f"{name}.processed_params"
    if later(template["processed_params"]):
        return template
    params = _mapping(template["processed_params"], where, _PARAM_KEYS)
    if "body" in params and not later(params["body"]):
        body = _mapping(params["body"], f"{where}.body", None)
        for placeholder, text in body.items():
            if not isinstance(placeholder, str) or not placeholder:
                raise DotoConfigError(f"{where}.body's keys must be placeholder names, got {placeholder!r}.")
            _text(text, f"{where}.body[{placeholder!r}]", later, empty_ok=True)
    if "header" in params and not later(params["header"]):
        header = _mapping(params["header"], f"{where}.header", ("media_url", "media_type"))
        for key in ("media_url", "media_type"):
            if key not in header:
                raise DotoConfigError(f"{where}.header lacks {key!r}.")
        _text(header["media_url"], f"{where}.header.media_url", later)
        _choice(header["media_type"], f"{where}.header.media_type", HEADER_MEDIA_TYPES, later)
    if "buttons" in params and not later(params["buttons"]):
        buttons = params["buttons"]
        if not isinstance(buttons, list | tuple):
            raise DotoConfigError(f"{where}.buttons must be a list, got {type(buttons).__name__}.")
        for index, button in enumerate(buttons):
            at = f"{where}.buttons[{index}]"
            if later(button):
                continue
            button = _mapping(button, at, ("type", "parameter"))
            for key in ("type", "parameter"):
                if key not in button:
                    raise DotoConfigError(f"{at} lacks {key!r}.")
            _choice(button["type"], f"{at}.type", BUTTON_TYPES, later)
            _text(button["parameter"], f"{at}.parameter", later)
    return _plain(template)


def check_template_use(
    template: Any, fallback_template: Any, message_type: Any = "outgoing", private: Any = False
) -> None:
    """Where a template may go: to the customer (a public outgoing message), one way or the other.

    ``template`` is always sent; ``fallback_template`` only when the reply window is closed: one of
    them, never both. Only whether each is given counts, so this runs at DAG parse as at run time.
    """
    if template is not None and fallback_template is not None:
        raise DotoConfigError(
            "Pass template (always sent) or fallback_template (sent only when the reply window is "
            "closed), not both."
        )
    given = "template" if template is not None else "fallback_template"
    if (template is not None or fallback_template is not None) and (
        message_type != "outgoing" or private is not False
    ):
        raise DotoConfigError(
            f"{given} is for public outgoing messages (a template goes to the customer); "
            f"got message_type={message_type!r}, private={private!r}."
        )


def _mapping(value: Any, where: str, keys: tuple[str, ...] | None) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise DotoConfigError(f"{where} must be a dict, got {type(value).__name__}.")
    if keys is not None:
        unknown = sorted(str(k) for k in value if k not in keys)
        if unknown:
            raise DotoConfigError(
                f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; it takes {', '.join(keys)}."
            )
    return dict(value)


def _text(value: Any, where: str, later: Callable[[Any], bool], *, empty_ok: bool = False) -> None:
    if later(value):
        return
    if not isinstance(value, str) or not (empty_ok or value.strip()):
        raise DotoConfigError(f"{where} must be a non-empty string, got {_shown(value)}.")


def _choice(value: Any, where: str, choices: tuple[str, ...], later: Callable[[Any], bool]) -> None:
    if not later(value) and value not in choices:
        raise DotoConfigError(f"{where} must be one of {', '.join(choices)}, got {_shown(value)}.")


def _plain(value: Any) -> Any:
    """A copy made of dicts, lists and the leaves (a tuple of buttons becomes a list: JSON)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
