"""``_settings``: connection fields, Base URL checks, the flavor setting."""

from __future__ import annotations

import traceback

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._settings import is_loopback, normalise_base_url
from airflow_provider_doto.exceptions import DotoConfigError

from ._support import _assert_doto_or_result


class TestNormaliseBaseUrl:
    @pytest.mark.parametrize(
        ("host", "kwargs", "expected"),
        [
            (None, {}, "https://app.usendoto.com"),
            ("", {}, "https://app.usendoto.com"),
            ("   ", {}, "https://app.usendoto.com"),
            ("doto.example.test", {}, "https://doto.example.test"),
            ("doto.example.test", {"port": 8443}, "https://doto.example.test:8443"),
            ("doto.example.test", {"schema": "https"}, "https://doto.example.test"),
            ("doto.example.test", {"schema": "some_db_schema"}, "https://doto.example.test"),
            ("https://doto.example.test/", {}, "https://doto.example.test"),
            ("https://doto.example.test/base/", {}, "https://doto.example.test/base"),
            ("HTTPS://Doto.Example.TEST:8443", {}, "https://doto.example.test:8443"),
            ("https://[2001:db8::1]:8443/", {}, "https://[2001:db8::1]:8443"),
            ("http://127.0.0.1:8080", {}, "http://127.0.0.1:8080"),
            ("http://127.4.5.6", {}, "http://127.4.5.6"),
            ("http://localhost:3000/", {}, "http://localhost:3000"),
            ("http://[::1]:3000", {}, "http://[::1]:3000"),
            ("127.0.0.1", {"schema": "http", "port": 8080}, "http://127.0.0.1:8080"),
            ("http://doto.internal", {"allow_insecure": True}, "http://doto.internal"),
        ],
    )
    def test_accepts(self, host, kwargs, expected):
        assert normalise_base_url("my_doto", host, **kwargs) == expected

    @pytest.mark.parametrize(
        "host",
        [
            "ftp://doto.example.test",
            "https://",
            "https://:443",
            "not a url",
            "https://doto example.test",
            "https://doto.example.test\n.evil",
            "https://doto.example.test:99999",
            "https://doto.example.test:port",
            "http://[::1",
            "https://[not-an-ip]/",
            "://doto.example.test",
        ],
    )
    def test_rejects_what_is_not_a_url(self, host):
        with pytest.raises(
            DotoConfigError, match=r"Doto connection 'my_doto': Base URL .* is not an http\(s\) URL"
        ):
            normalise_base_url("my_doto", host)

    @pytest.mark.parametrize(
        "host",
        [
            "http://doto.example.test",
            "http://10.0.0.5:3000",
            "http://localhost.evil.test",
            "http://127.0.0.1.nip.io",
        ],
    )
    def test_plain_http_refused_for_non_loopback(self, host):
        with pytest.raises(DotoConfigError, match=r"'my_doto'.*plain http.*allow_insecure_http"):
            normalise_base_url("my_doto", host)
        assert normalise_base_url("my_doto", host, allow_insecure=True).startswith("http://")

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("localhost", True),
            ("LOCALHOST", True),
            ("127.0.0.1", True),
            ("127.255.0.9", True),
            ("::1", True),
            ("10.0.0.1", False),
            ("0.0.0.0", False),
            ("example.com", False),
            ("localhost.com", False),
        ],
    )
    def test_is_loopback(self, name, expected):
        assert is_loopback(name) is expected


class TestDotoSettings:
    def fields(self, **overrides):
        base = {
            "host": "https://doto.example.test",
            "password": "tok-SECRET-1234",
            "extra": {"account_id": 7},
        }
        base.update(overrides)
        return base

    def test_valid(self):
        settings = api.DotoSettings.from_connection_fields("c1", **self.fields())
        assert settings == api.DotoSettings("https://doto.example.test", "tok-SECRET-1234", 7, 30.0, "c1")
        assert "tok-SECRET-1234" not in repr(settings)
        assert settings.conversation_url(9) == "https://doto.example.test/app/accounts/7/conversations/9"

    @pytest.mark.parametrize(
        ("extra", "account_id", "timeout"),
        [
            ({"account_id": "12"}, 12, 30.0),
            ({"account_id": " 12 ", "timeout": "7.5"}, 12, 7.5),
            ({"account_id": 3, "timeout": 5}, 3, 5.0),
            ({"account_id": 3, "timeout": None}, 3, 30.0),
            ({"account_id": 3, "timeout": ""}, 3, 30.0),
        ],
    )
    def test_extra_coercion(self, extra, account_id, timeout):
        settings = api.DotoSettings.from_connection_fields("c1", **self.fields(extra=extra))
        assert (settings.account_id, settings.timeout) == (account_id, timeout)

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"password": None}, "'c1' has no API Token"),
            ({"password": ""}, "'c1' has no API Token"),
            ({"extra": {}}, "'c1' has no Account ID .*'account_id'"),
            ({"extra": None}, "'c1' has no Account ID"),
            ({"extra": {"account_id": ""}}, "'c1' has no Account ID"),
            ({"extra": {"account_id": "abc"}}, "'c1': Account ID must be an integer, got 'abc'"),
            ({"extra": {"account_id": 1, "timeout": "soon"}}, "'c1': timeout must be a number"),
            ({"extra": {"account_id": 1, "timeout": 0}}, "'c1': timeout must be positive"),
            ({"extra": {"account_id": 1, "timeout": -3}}, "'c1': timeout must be positive"),
            ({"extra": {"account_id": 1, "timeout": [1]}}, "'c1': timeout must be a number"),
            ({"host": "http://doto.example.test"}, "'c1'.*plain http"),
            (
                {
                    "host": "http://doto.example.test",
                    "extra": {"account_id": 1, "allow_insecure_http": "false"},
                },
                "'c1'.*plain http",
            ),
        ],
    )
    def test_problems_name_the_connection_and_field(self, overrides, match):
        with pytest.raises(DotoConfigError, match=match) as info:
            api.DotoSettings.from_connection_fields("c1", **self.fields(**overrides))
        # Nor anywhere in the chain a log would print (the causes are kept).
        assert "tok-SECRET-1234" not in "".join(traceback.format_exception(info.value))

    @pytest.mark.parametrize(
        ("token", "what"),
        [
            ("tok-SECRET-1234\n", "a line break at its end"),  # a secret file's last line
            ("tok-SECRET-1234\r\n", "a line break at its end"),
            ("tok-SECRET\n1234", "a line break inside it"),
            ("tok-SECRET-1234 ", "whitespace at its end"),  # pasted with a space
            (" tok-SECRET-1234", "whitespace at its start"),
            ("tok-SECRET 1234", "whitespace inside it"),
            ("tok-SECRET-1234\t", "whitespace at its end"),
            ("tok-SECRET-1234\u00a0", "whitespace at its end"),  # a no-break space
            ("tok-SECRET-1234\x00", "a control character at its end"),
            ("tok-SECRET-1234\u200b", "a control character at its end"),  # a zero-width space
            ("tok-SECRET-1234\u2019", "a non-ASCII character at its end"),
        ],
    )
    def test_a_token_no_header_can_carry_is_refused_naming_the_field_not_the_token(self, token, what):
        with pytest.raises(DotoConfigError) as info:
            api.DotoSettings.from_connection_fields("c1", **self.fields(password=token))
        text = str(info.value)
        assert text.startswith("Doto connection 'c1': the API Token (the connection's password) has ")
        assert what in text and "Base URL" not in text
        shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert "tok-SECRET" not in shown and "1234" not in shown
        assert info.value.__cause__ is None and info.value.__context__ is None

    def test_a_token_of_printable_ascii_is_kept_as_given(self):
        token = "".join(chr(c) for c in range(0x21, 0x7F))  # every visible ASCII character
        assert api.DotoSettings.from_connection_fields("c1", **self.fields(password=token)).token == token

    @pytest.mark.parametrize(
        ("extra", "cause"),
        [
            ({"account_id": "abc"}, ValueError),
            ({"account_id": 1, "timeout": "soon"}, ValueError),
            ({"account_id": 1, "timeout": [1]}, TypeError),
        ],
    )
    def test_parse_errors_keep_their_cause(self, extra, cause):
        with pytest.raises(DotoConfigError) as info:
            api.DotoSettings.from_connection_fields("c1", **self.fields(extra=extra))
        assert type(info.value.__cause__) is cause

    @pytest.mark.parametrize("flag", [True, "true", "True", "1", "yes", "on"])
    def test_allow_insecure_http(self, flag):
        fields = self.fields(
            host="http://doto.internal:3000", extra={"account_id": 1, "allow_insecure_http": flag}
        )
        assert api.DotoSettings.from_connection_fields("c1", **fields).base_url == "http://doto.internal:3000"


def test_settings_read_the_flavor():
    def settings(**extra):
        return api.DotoSettings.from_connection_fields(
            "c", host="https://x.test", password="t", extra={"account_id": 1, **extra}
        )

    assert settings().flavor == "auto"
    assert settings(flavor="Chatwoot ").flavor == "chatwoot"
    assert settings(flavor="").flavor == "auto"
    with pytest.raises(DotoConfigError, match="flavor must be one of auto, doto, chatwoot, got 'rails'"):
        settings(flavor="rails")


class TestRobustness:
    @settings(max_examples=200, deadline=None)
    @given(
        host=st.text(max_size=40)
        | st.builds(
            lambda s, h: f"{s}://{h}", st.sampled_from(["http", "https", "ftp"]), st.text(max_size=30)
        ),
        port=st.none() | st.integers(-5, 70000),
    )
    @example(host="http://[::1", port=None)
    @example(host="https://[zz]/", port=None)
    def test_normalise_base_url_never_raises_bare(self, host, port):
        result = _assert_doto_or_result(lambda: normalise_base_url("c", host, port=port))
        assert result is None or result.startswith(("https://", "http://"))
