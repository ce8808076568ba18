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
    DotoTriggerError: DotoError,
}


def test_all_lists_every_error_class():
    defined = {
        name
        for name, obj in vars(exceptions).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
    }
    assert set(exceptions.__all__) == defined
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
