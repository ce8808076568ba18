"""DotoNotifier: post a note to a conversation from any task or DAG callback."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_provider_doto._airflow import (
    check_attachments_use,
    check_templates,
    is_template,
    rendered_template,
    untemplated_files,
)
from airflow_provider_doto.api._values import DEFAULT_DELIVERY_TIMEOUT, check_wait_for, to_id, validate_send
from airflow_provider_doto.exceptions import DotoConfigError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.hooks.doto import DotoHook
    from airflow_provider_doto.hooks.doto_async import DotoAsyncHook


class DotoNotifier(BaseNotifier):
    """Post a message to a conversation; by default a private note for the team.

    Use as ``on_failure_callback=DotoNotifier(conversation_id=42, content="{{ ti.task_id }} failed")``,
    in ``default_args``, or as a DAG callback. ``content`` and ``conversation_id`` are templated with
    the callback's context.

    :param conversation_id: conversation to post to (templated).
    :param content: the text (templated).
    :param private: private note (default True) or a message the customer sees.
    :param template: with ``private=False``, an approved message template sent with the message
        (templated): a dict in Chatwoot's ``template_params`` shape, as for ``SendMessageOperator``.
    :param fallback_template: with ``private=False``, the same, sent only when the conversation's
        reply window is closed (one read of the conversation); inside it the free text goes.
    :param wait_for: with ``private=False``, None (default) or ``"sent"``, ``"delivered"`` or
        ``"read"``: the message is read back until its status reaches that, as for
        ``SendMessageOperator``; ``failed`` (or ``delivery_timeout`` seconds without reaching it)
        raises :class:`~airflow_provider_doto.exceptions.DotoDeliveryError` with the server's
        ``external_error``, which Airflow logs as the callback's failure. A private note reaches no
        channel: it has nothing to wait for.
    :param delivery_timeout: seconds to wait for ``wait_for`` (default 60).
    :param attachments: files sent with the message (templated), as for ``SendMessageOperator``:
        local paths, ``ObjectStoragePath``s or ``(filename, bytes)`` pairs, checked before anything
        is sent (at most 15, each within the connection's ``max_upload_mb`` and of a type the server
        takes); a refused file raises :class:`~airflow_provider_doto.exceptions.DotoUploadError`
        naming it, which Airflow logs as the callback's failure, and nothing is posted. Not with
        ``template`` or ``fallback_template``.
    :param doto_conn_id: the ``doto`` connection.
    :param context: set by Airflow when it awaits the notifier (Deadline Alerts); leave it out.
    """

    template_fields: Sequence[str] = (
        "conversation_id",
        "content",
        "template",
        "fallback_template",
        "attachments",
    )

    def __init__(
        self,
        *,
        conversation_id: int | str,
        content: str = "Airflow task {{ ti.task_id }} in run {{ run_id }} of {{ dag.dag_id }} ended {{ ti.state }}.",
        private: bool = True,
        template: dict[str, Any] | str | None = None,
        fallback_template: dict[str, Any] | str | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        attachments: Sequence[Any] | None = None,
        doto_conn_id: str = "doto_default",
        context: Context | None = None,
    ) -> None:
        # ``context`` is how Airflow's triggerer hands a Deadline Alert's context to an async notifier.
        super().__init__(context=context)
        self.conversation_id = conversation_id
        self.content = content
        self.private = private
        self.template = template
        self.fallback_template = fallback_template
        self.wait_for = wait_for
        self.delivery_timeout = delivery_timeout
        self.attachments = untemplated_files(attachments)
        self.doto_conn_id = doto_conn_id
        if not is_template(conversation_id):
            to_id(conversation_id, name="conversation_id")
        validate_send(content, "outgoing", private, "text", None)
        check_templates(template, fallback_template, "outgoing", private)
        check_wait_for(wait_for, delivery_timeout)
        check_attachments_use(attachments, template, fallback_template)
        if wait_for is not None and private is True:
            raise DotoConfigError(
                f"wait_for={wait_for!r} needs private=False: a private note reaches no channel, "
                "so it has no delivery status to wait for."
            )

    @cached_property
    def hook(self) -> DotoHook:
        from airflow_provider_doto.hooks.doto import DotoHook

        return DotoHook(self.doto_conn_id)

    @cached_property
    def async_hook(self) -> DotoAsyncHook:
        from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

        return DotoAsyncHook(self.doto_conn_id)

    def notify(self, context: Context) -> None:
        self.hook.send_message(self.conversation_id, self.content, **self._options())

    async def async_notify(self, context: Context) -> None:
        await self.async_hook.send_message(self.conversation_id, self.content, **self._options())

    def _options(self) -> dict[str, Any]:
        """The send's options once rendered: privacy, the templates (checked), the wait and the
        files (checked by the hook before anything is sent)."""
        return {
            "attachments": self.attachments,
            "private": self.private,
            "wait_for": self.wait_for,
            "delivery_timeout": self.delivery_timeout,
            "template": rendered_template(self.template, "template"),
            "fallback_template": rendered_template(self.fallback_template, "fallback_template"),
        }


send_doto_notification = DotoNotifier
