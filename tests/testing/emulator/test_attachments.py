"""The emulator's attachments: listed as Chatwoot lists them, a data_url on the API's host answering
302 to a second "storage" listener (another origin) that serves the bytes and records every request."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_doto.testing.emulator.recorder import MASK

pytestmark = pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)

CSV = b"day,count\n2026-01-01,3\n" * 1000


def _listed(emu: Any, cid: int) -> list[dict[str, Any]]:
    answer = requests.get(emu.messages_url(cid), headers={"api_access_token": emu.token}, timeout=10)
    assert answer.status_code == 200
    return answer.json()["payload"]


def test_a_message_lists_its_attachments_as_chatwoot_does(doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = emu.add_message(
        cid, "the report", attachments=[("report.csv", CSV), ("photo.png", b"\x89PNG\r\n", "image/png")]
    )
    emu.add_message(cid, "no files")
    with_files, plain = _listed(emu, cid)
    assert with_files["id"] == sent["id"]
    first, second = with_files["attachments"]
    api_origin = urlsplit(emu.base_url).netloc
    assert first == {
        "id": first["id"],
        "message_id": sent["id"],
        "file_type": "file",
        "account_id": 1,
        "extension": "csv",
        "data_url": first["data_url"],
        "thumb_url": "",
        "file_size": len(CSV),
        "width": None,
        "height": None,
    }
    assert (second["file_type"], second["extension"], second["file_size"]) == ("image", "png", 6)
    assert second["thumb_url"] == second["data_url"]
    assert second["id"] == first["id"] + 1
    for attachment in (first, second):
        url = urlsplit(attachment["data_url"])
        assert url.netloc == api_origin and url.path.startswith("/rails/active_storage/blobs/redirect/")
    assert first["data_url"].endswith("/report.csv")
    if emu.flavor == "chatwoot":
        assert "attachments" not in plain  # Chatwoot's jbuilder leaves the key out when there are none
    else:
        assert plain["attachments"] == []


def test_the_data_url_redirects_to_storage_on_another_origin(doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "the report", attachments=[("weekly report.csv", CSV, "text/csv")])
    (attachment,) = _listed(emu, cid)[0]["attachments"]

    redirect = requests.get(attachment["data_url"], allow_redirects=False, timeout=10)  # no token: signed id
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(emu.storage_url + "/blobs/")
    assert urlsplit(location).port not in (None, emu.port)  # another port: another origin

    emu.clear_storage_requests()
    stored = requests.get(location, timeout=10)
    assert stored.status_code == 200 and stored.content == CSV
    assert stored.headers["content-type"].startswith("text/csv")
    (seen,) = emu.storage_requests
    assert (seen.method, seen.path) == ("GET", urlsplit(location).path.replace("%20", " "))
    assert "api_access_token" not in seen.headers


def test_storage_records_a_token_that_reaches_it(doto_emulator: Any) -> None:
    """The record a download test relies on: a token sent to storage shows up there (masked)."""
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "x", attachments=[("a.txt", b"a")])
    location = requests.get(
        _listed(emu, cid)[0]["attachments"][0]["data_url"], allow_redirects=False, timeout=10
    ).headers["location"]
    emu.clear_storage_requests()
    requests.get(
        location, headers={"api_access_token": emu.token, "X-Other": f"Bearer {emu.token}"}, timeout=10
    )
    (seen,) = emu.storage_requests
    assert seen.headers["api_access_token"] == MASK and seen.headers["x-other"] == MASK
    assert seen.authorized
    assert emu.token not in repr(seen)


def test_unknown_blobs_and_reset(doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "x", attachments=[("a.txt", b"a")])
    data_url = _listed(emu, cid)[0]["attachments"][0]["data_url"]
    location = requests.get(data_url, allow_redirects=False, timeout=10).headers["location"]
    assert (
        requests.get(emu.base_url + "/rails/active_storage/blobs/redirect/nope/a.txt", timeout=10).status_code
        == 404
    )
    assert requests.get(location.rsplit("/", 1)[0] + "/other.txt", timeout=10).status_code == 404
    emu.reset(flavor=emu.flavor)
    assert emu.storage_requests == []
    assert requests.get(data_url, allow_redirects=False, timeout=10).status_code == 404
    assert requests.get(location, timeout=10).status_code == 404


def test_attachments_need_file_names_and_bytes(doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    with pytest.raises(ValueError, match="file name"):
        emu.add_message(cid, "x", attachments=[("", b"a")])
    with pytest.raises(TypeError, match="bytes"):
        emu.add_message(cid, "x", attachments=[("a.txt", "text")])


# ---- uploads: a multipart create, as Chatwoot's web app sends one ------------------------------------


def _upload(emu: Any, cid: int, files: list[tuple[str, bytes, str]], **fields: str) -> requests.Response:
    data = {"content": "files", "message_type": "outgoing", **fields}
    parts = [("attachments[]", f) for f in files]
    return requests.post(
        emu.messages_url(cid), data=data, files=parts, headers={"api_access_token": emu.token}, timeout=10
    )


def test_a_multipart_create_stores_the_files_and_reads_the_fields_as_rails_does(doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    answer = _upload(
        doto_emulator,
        cid,
        [("a.csv", CSV, "text/csv"), ("b.png", b"\x89PNG", "image/png")],
        private="true",
        content_attributes='{"ref": "R-1"}',
    )
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert message["private"] is True and message["content_attributes"] == {"ref": "R-1"}
    assert [(a["extension"], a["file_type"], a["file_size"]) for a in message["attachments"]] == [
        ("csv", "file", len(CSV)),
        ("png", "image", 4),
    ]
    assert requests.get(message["attachments"][0]["data_url"], timeout=10).content == CSV
    assert [a["id"] for a in _listed(doto_emulator, cid)[0]["attachments"]] == [
        a["id"] for a in message["attachments"]
    ]
    not_json = _upload(doto_emulator, cid, [("c.txt", b"x", "text/plain")], content_attributes="{oops")
    assert not_json.status_code == 200 and not_json.json()["content_attributes"] == {}


def test_a_web_widget_inbox_checks_type_and_size_others_take_anything(doto_emulator: Any) -> None:
    web = doto_emulator.add_conversation(api_inbox=False)
    api = doto_emulator.add_conversation()
    doto_emulator.max_upload_bytes = 1000
    exe = [("run.exe", b"MZ", "application/x-msdownload")]
    big = [("big.csv", b"x" * 1001, "text/csv")]
    edge = [("edge.csv", b"x" * 1000, "text/csv")]

    refused_type, refused_size = _upload(doto_emulator, web, exe), _upload(doto_emulator, web, big)
    assert (refused_type.status_code, refused_type.json()["error"]) == (
        422,
        "Validation failed: File type not supported",
    )
    assert (refused_size.status_code, refused_size.json()["error"]) == (
        422,
        "Validation failed: File size is too big",
    )
    assert _upload(doto_emulator, web, edge).status_code == 200
    assert len(doto_emulator.messages(web)) == 1  # the refused ones left nothing behind
    for files in (exe, big):
        taken = _upload(doto_emulator, api, files)
        assert taken.status_code == 200 and len(taken.json()["attachments"]) == 1
