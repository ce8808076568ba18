"""The error hierarchy: what callers can catch, and what each error carries."""

from __future__ import annotations

import inspect
import pickle

import pytest

from airflow_provider_doto import exceptions
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoBatchError,
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoHTTPError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
    DotoTransportError,
    DotoTriggerError,
    DotoValidationError,
)

PARENTS = {
    DotoConfigError: DotoError,
    DotoHTTPError: DotoError,
    DotoAuthError: DotoHTTPError,
    DotoNotFoundError: DotoHTTPError,
    DotoValidationError: DotoHTTPError,
    DotoRateLimitError: DotoHTTPError,
    DotoServerError: DotoHTTPError,
    DotoTransportError: DotoError,
    DotoConnectError: DotoTransportError,
    DotoTimeoutError: DotoTransportError,
    DotoConnectionLostError: DotoTransportError,
    DotoResponseError: DotoError,
    DotoBatchError: DotoError,
    exceptions.DotoReplyWindowError: DotoError,
    exceptions.DotoDeliveryError: DotoError,
    exceptions.DotoAttachmentError: DotoError,
    exceptions.DotoUploadError: exceptions.DotoConfigError,
    DotoTriggerError: DotoError,
}


def test_all_lists_every_error_class():
    defined = {
        name
        for name, obj in vars(exceptions).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
    }
    assert set(exceptions.__all__) == defined
    assert set(exceptions.ERRORS_BY_NAME) == defined  # what a trigger event may rebuild: every one
    assert defined == {cls.__name__ for cls in PARENTS} | {"DotoError"}


@pytest.mark.parametrize(("cls", "parent"), PARENTS.items(), ids=lambda c: getattr(c, "__name__", ""))
def test_hierarchy(cls, parent):
    assert cls.__bases__[0] is parent
    assert issubclass(cls, DotoError)


def test_config_error_is_a_value_error():
    """Argument problems can be caught as ValueError, as Python callers expect."""
    assert issubclass(DotoConfigError, ValueError)
    assert not issubclass(DotoHTTPError, ValueError)
    assert not issubclass(DotoTransportError, (ValueError, OSError))


def test_doto_error_carries_method_and_path():
    error = DotoConnectError("Doto GET /x: could not connect", method="GET", path="/x")
    assert (str(error), error.method, error.path) == ("Doto GET /x: could not connect", "GET", "/x")
    bare = DotoResponseError("odd")
    assert (bare.method, bare.path) == (None, None)


@pytest.mark.parametrize(
    "cls", [DotoHTTPError, DotoAuthError, DotoNotFoundError, DotoValidationError, DotoServerError]
)
def test_http_error_fields(cls):
    error = cls(
        "Doto POST /m failed with HTTP 4xx", method="POST", path="/m", status=418, doto_error="teapot"
    )
    assert (error.method, error.path, error.status, error.doto_error) == ("POST", "/m", 418, "teapot")
    assert cls("x", status=500).doto_error is None


def test_http_error_requires_status():
    with pytest.raises(TypeError):
        DotoHTTPError("x")


def test_rate_limit_retry_after():
    error = DotoRateLimitError(
        "slow down", method="GET", path="/m", status=429, retry_after=12.0, doto_error="x"
    )
    assert (error.retry_after, error.status, error.doto_error, error.method) == (12.0, 429, "x", "GET")
    assert DotoRateLimitError("slow down", status=429).retry_after is None


def test_catching_by_family():
    with pytest.raises(DotoTransportError):
        raise DotoTimeoutError("no answer")
    with pytest.raises(DotoHTTPError):
        raise DotoNotFoundError("gone", status=404)
    with pytest.raises(DotoError):
        raise DotoConfigError("bad")


def test_docstring_tree_names_every_class():
    """The module docstring is the one-screen map of the errors; keep it complete."""
    for name in exceptions.__all__:
        assert name in exceptions.__doc__


@pytest.mark.parametrize(
    "error",
    [
        DotoError("plain", method="GET", path="/p"),
        DotoConfigError("bad"),
        DotoTimeoutError("slow", method="POST", path="/p"),
        DotoTriggerError("ended"),
        DotoResponseError("odd", method="GET", path="/p"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_simple_errors_pickle(error):
    """Errors cross process boundaries (task runner to supervisor) with their text intact."""
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)


@pytest.mark.parametrize(
    "error",
    [
        DotoHTTPError("Doto GET /p failed with HTTP 500", method="GET", path="/p", status=500),
        DotoRateLimitError("Doto GET /p failed with HTTP 429", status=429, retry_after=3.0),
        DotoBatchError("2 of 5 Doto message(s) failed", failed=2, total=5, conversation_ids=(4, 9)),
    ],
    ids=lambda e: type(e).__name__,
)
def test_http_errors_pickle(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error)


# ---- a trigger event's error, raised again by name (error_from_event) ---------------------------

SAMPLES: list[DotoError] = [
    DotoError("plain", method="GET", path="/p"),
    DotoConfigError("Doto connection 'c': no Account ID"),
    DotoHTTPError("Doto GET /p failed with HTTP 418", method="GET", path="/p", status=418),
    DotoAuthError(
        "Doto GET /p failed with HTTP 401: Invalid Access Token", method="GET", path="/p", status=401
    ),
    DotoNotFoundError(
        "HTTP 404", method="GET", path="/p", status=404, doto_error="Resource could not be found"
    ),
    DotoValidationError("HTTP 422", method="POST", path="/p", status=422, doto_error="bad"),
    DotoRateLimitError("HTTP 429", method="GET", path="/p", status=429, retry_after=7.5, waited=301.5),
    DotoServerError("HTTP 503 (after 5 consecutive failed polls)", method="GET", path="/p", status=503),
    DotoTransportError("no answer", method="GET", path="/p"),
    DotoConnectError("could not connect", method="GET", path="/p"),
    DotoTimeoutError("no answer within 30 s", method="GET", path="/p"),
    DotoConnectionLostError("the connection broke", method="GET", path="/p"),
    DotoResponseError("not JSON", method="GET", path="/p"),
    DotoBatchError("2 of 5 failed", failed=2, total=5),
    exceptions.DotoReplyWindowError("closed", conversation_id=4, channel="Channel::Whatsapp"),
    exceptions.DotoDeliveryError(
        "failed", conversation_id=4, message_id=9, message_status="failed", external_error="no template"
    ),
    exceptions.DotoAttachmentError("the download at http://127.0.0.1:9 answered HTTP 404", status=404),
    exceptions.DotoUploadError(
        "attachment 'run.exe' is a type the server does not take",
        filename="run.exe",
        reason="type not allowed",
    ),
    DotoTriggerError("ended"),
]


def test_the_samples_cover_every_error_class():
    assert {type(e).__name__ for e in SAMPLES} == set(exceptions.ERRORS_BY_NAME)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_is_rebuilt_by_name_with_its_text_and_fields(error):
    """What a trigger puts in its event (the class name, "Name: text", the plain fields) gives the
    same class back with the same text and attributes."""
    name = type(error).__name__
    rebuilt = exceptions.error_from_event(name, f"{name}: {error}", exceptions.error_fields(error))
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    expected = {k: v for k, v in vars(error).items() if k != "conversation_ids"}
    assert {k: v for k, v in vars(rebuilt).items() if k != "conversation_ids"} == expected
    again = pickle.loads(pickle.dumps(rebuilt))  # and it crosses processes like any other
    assert type(again) is type(error) and str(again) == str(error)


def test_a_rebuilt_error_is_caught_like_the_original():
    with pytest.raises(DotoAuthError) as raised:
        raise exceptions.error_from_event("DotoAuthError", "DotoAuthError: HTTP 401", {"status": 401})
    assert isinstance(raised.value, DotoHTTPError) and raised.value.status == 401
    with pytest.raises(DotoTransportError):
        raise exceptions.error_from_event("DotoTimeoutError", "DotoTimeoutError: no answer within 30 s")


@pytest.mark.parametrize(
    "name",
    [
        "RuntimeError",  # a connection lookup's failure: not the provider's
        "ValueError",
        "KeyError",
        "dotoautherror",  # names match exactly
        "DotoAuthError ",
        "airflow_provider_doto.exceptions.DotoAuthError",
        "os.system",
        "__class__",
        "_rebuild",
        "Mapping",  # a name the module imports
        "",
        None,
        401,
        ["DotoAuthError"],
    ],
)
def test_any_other_name_gives_a_trigger_error_with_the_whole_text(name):
    rebuilt = exceptions.error_from_event(name, "RuntimeError: the secrets backend is down")
    assert type(rebuilt) is DotoTriggerError
    assert str(rebuilt) == "RuntimeError: the secrets backend is down"


def test_missing_fields_are_none_and_foreign_ones_are_ignored():
    rebuilt = exceptions.error_from_event(
        "DotoRateLimitError",
        "DotoRateLimitError: HTTP 429",
        {"token": "x", "__class__": "y", "status": 429, "retry_after": {"not": "plain"}},
    )
    assert vars(rebuilt) == {
        "method": None,
        "path": None,
        "status": 429,
        "doto_error": None,
        "retry_after": None,
        "waited": None,
    }
    assert exceptions.error_from_event("DotoConfigError", "bad", "not a mapping").__dict__ == {
        "method": None,
        "path": None,
    }


def test_text_without_the_class_name_in_front_is_kept_whole():
    rebuilt = exceptions.error_from_event("DotoServerError", "HTTP 503 from DotoServerError: x")
    assert str(rebuilt) == "HTTP 503 from DotoServerError: x"


def test_error_fields_are_plain_values_only():
    error = DotoBatchError("2 of 5 failed", failed=2, total=5, conversation_ids=(4, 9))
    assert exceptions.error_fields(error) == {"failed": 2, "total": 5, "method": None, "path": None}
    assert exceptions.error_fields(RuntimeError("not ours")) == {}
