"""Attachments in the core: parsed leniently, named safely for an export, and the token's origin rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._attachments import (
    Attachment,
    carries_token,
    check_downloadable,
    describe_origin,
    export_file_name,
    origin,
    parse_attachment,
    parse_attachments,
    redirect_target,
    safe_name,
)
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.exceptions import DotoAttachmentError

T0 = 1_712_000_000
CHATWOOT_ATTACHMENT = {  # push_event_data of app/models/attachment.rb, for a file
    "id": 7,
    "message_id": 41,
    "file_type": "file",
    "account_id": 1,
    "extension": "csv",
    "data_url": "https://doto.example/rails/active_storage/blobs/redirect/eyJfcmFpbHMi/weekly%20report.csv",
    "thumb_url": "",
    "file_size": 1234,
    "width": None,
    "height": None,
}


class TestParse:
    def test_every_field_of_chatwoots_attachment(self):
        assert parse_attachment(CHATWOOT_ATTACHMENT) == Attachment(
            id=7,
            message_id=41,
            file_type="file",
            extension="csv",
            data_url=CHATWOOT_ATTACHMENT["data_url"],
            thumb_url=None,  # Chatwoot's "" for a file without a thumbnail
            file_size=1234,
        )

    def test_odd_fields_become_none_and_never_break_the_message(self):
        odd = {
            "id": "7",
            "message_id": True,
            "file_type": 3,
            "extension": None,
            "data_url": ["x"],
            "file_size": -1,
        }
        assert parse_attachment(odd) == Attachment()
        message = parse_message(
            {
                "id": 1,
                "created_at": T0,
                "message_type": 0,
                "attachments": [odd, "junk", None, CHATWOOT_ATTACHMENT],
            }
        )
        assert message.attachments == (Attachment(), parse_attachment(CHATWOOT_ATTACHMENT))

    @pytest.mark.parametrize("value", [None, {}, {"id": 1}, "x", 5])
    def test_anything_but_a_list_is_no_attachments(self, value):
        assert parse_attachments(value) == ()
        message = parse_message({"id": 1, "created_at": T0, "message_type": 0, "attachments": value})
        assert message.attachments == ()

    def test_file_name_is_the_last_segment_of_the_data_url_unquoted(self):
        assert parse_attachment(CHATWOOT_ATTACHMENT).file_name == "weekly report.csv"
        assert Attachment().file_name is None
        assert Attachment(data_url="https://h/").file_name is None


class TestToDict:
    def test_attachments_always_listed_empty_when_none(self):
        plain = parse_message({"id": 1, "created_at": T0, "message_type": 1})
        assert plain.to_dict()["attachments"] == []
        with_file = parse_message(
            {"id": 1, "created_at": T0, "message_type": 1, "attachments": [CHATWOOT_ATTACHMENT]}
        )
        data = json.loads(json.dumps(with_file.to_dict()))
        assert data["attachments"] == [parse_attachment(CHATWOOT_ATTACHMENT).to_dict()]
        assert api.Message.from_dict(data) == with_file


class TestSafeName:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("report.csv", "report.csv"),
            ("weekly report (1).csv", "weekly_report_1_.csv"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("/abs/path.txt", "path.txt"),
            ("..", "attachment"),
            (".hidden", "hidden"),
            ("", "attachment"),
            (None, "attachment"),
            ("日本.pdf", "pdf"),  # no ASCII left of the stem: the extension stays
            ("Ünïcödé.txt", "Unicode.txt"),
            ("a\x00b\nc.txt", "a_b_c.txt"),
        ],
    )
    def test_one_harmless_segment(self, name, expected):
        assert safe_name(name) == expected

    def test_long_names_are_cut_keeping_the_extension(self):
        name = safe_name("x" * 400 + ".csv")
        assert len(name) <= 150 and name.endswith(".csv")


class TestExportFileName:
    def test_message_id_attachment_id_and_name(self):
        attachment = parse_attachment(CHATWOOT_ATTACHMENT)
        assert export_file_name(41, attachment, 0) == "41-7-weekly_report.csv"

    def test_a_traversing_name_stays_inside_the_directory(self):
        attachment = Attachment(id=3, data_url="https://h/blobs/k/..%2F..%2Fsecret.txt")
        assert attachment.file_name == "../../secret.txt"
        assert export_file_name(9, attachment, 0) == "9-3-secret.txt"

    def test_no_name_and_no_id(self):
        assert export_file_name(9, Attachment(extension="png"), 2) == "9-n2-attachment.png"
        assert export_file_name(9, Attachment(), 0) == "9-n0-attachment"


class TestOrigin:
    @pytest.mark.parametrize(
        ("url", "base", "same"),
        [
            ("https://doto.example/rails/x", "https://doto.example", True),
            ("https://DOTO.example:443/x", "https://doto.example/", True),
            ("http://doto.example:80/x", "http://doto.example", True),
            ("http://127.0.0.1:8001/x", "http://127.0.0.1:8000", False),  # another port
            ("http://doto.example/x", "https://doto.example", False),  # another scheme
            ("https://storage.doto.example/x", "https://doto.example", False),  # another host
            ("https://doto.example.evil.test/x", "https://doto.example", False),
            ("https://doto.example@evil.test/x", "https://doto.example", False),  # userinfo trick
            ("https://evil.test/?u=https://doto.example", "https://doto.example", False),
            ("http://[::1]:8000/x", "http://[::1]:8000", True),
            ("http://h:notaport/x", "http://h", False),
        ],
    )
    def test_the_token_goes_only_to_the_base_urls_origin(self, url, base, same):
        assert carries_token(url, base) is same

    def test_origin_defaults_the_port(self):
        assert origin("https://H.example/p?q") == ("https", "h.example", 443)

    def test_described_without_path_or_query(self):
        url = "https://bucket.s3.example/key.csv?X-Amz-Signature=secret"
        assert describe_origin(url) == "https://bucket.s3.example:443"


class TestRedirects:
    def test_not_a_redirect(self):
        assert redirect_target("http://a/x", 200, None) is None
        assert redirect_target("http://a/x", 404, "http://b/") is None

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_relative_and_absolute_locations(self, status):
        assert redirect_target("http://a:1/x/y", status, "/z?s=1") == "http://a:1/z?s=1"
        assert redirect_target("http://a:1/x/y", status, "https://b/k") == "https://b/k"

    @pytest.mark.parametrize("location", [None, "", "file:///etc/passwd", "ftp://b/k"])
    def test_a_redirect_without_an_http_location_is_an_error(self, location):
        with pytest.raises(DotoAttachmentError) as info:
            redirect_target("http://a:1/secret/path?sig=s", 302, location)
        assert "secret" not in str(info.value) and "sig" not in str(info.value)

    def test_an_attachment_without_an_http_url_cannot_be_downloaded(self):
        assert check_downloadable(Attachment(data_url="https://h/x")) == "https://h/x"
        for url in (None, "ftp://h/x", "/relative"):
            with pytest.raises(DotoAttachmentError, match="no http"):
                check_downloadable(Attachment(id=1, message_id=2, data_url=url))


class TestDownloadFlow:
    BASE = "https://doto.example"

    def _drive(
        self, answers: list[tuple[int, str | None]], url: str = "https://doto.example/r/k/a.csv"
    ) -> list[Any]:
        from airflow_provider_doto.api._attachments import download_flow

        flow = download_flow(url, self.BASE)
        hops = [next(flow)]
        for answer in answers:
            try:
                hops.append(flow.send(answer))
            except StopIteration:
                return hops
        raise AssertionError("the flow asked for more hops than answers given")

    def test_the_token_is_decided_per_hop(self):
        hops = self._drive(
            [(302, "https://storage.example/b/k?sig=s"), (307, "https://doto.example/back"), (200, None)]
        )
        assert [(h.url, h.with_token) for h in hops] == [
            ("https://doto.example/r/k/a.csv", True),
            ("https://storage.example/b/k?sig=s", False),
            ("https://doto.example/back", True),  # the Base URL's origin again: the token may go
        ]

    def test_a_data_url_on_another_origin_never_gets_the_token(self):
        hops = self._drive([(200, None)], url="https://cdn.example/a.csv")
        assert [h.with_token for h in hops] == [False]

    def test_an_error_status_is_typed(self):
        with pytest.raises(DotoAttachmentError, match=r"storage.example:443 answered HTTP 403") as info:
            self._drive([(302, "https://storage.example/b/k?sig=s"), (403, None)])
        assert info.value.status == 403 and "sig" not in str(info.value)

    def test_at_most_five_redirects(self):
        self._drive([(302, "/again")] * 5 + [(200, None)])
        with pytest.raises(DotoAttachmentError, match="redirected more than 5 times"):
            self._drive([(302, "/again")] * 6)
