"""api._uploads: the checks a set of attachments passes before anything is sent, and the multipart
body's layout (no I/O: sizes and names given)."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from airflow_provider_doto.api._http import send_request
from airflow_provider_doto.api._uploads import (
    MAX_ATTACHMENTS,
    MEGABYTE,
    Upload,
    check_uploads,
    content_type_of,
    is_acceptable_type,
    max_upload_bytes,
    multipart_body,
)
from airflow_provider_doto.exceptions import DotoConfigError, DotoUploadError

LIMIT = max_upload_bytes(None)


def up(name: str, size: int = 10) -> Upload:
    return Upload.of(name, size, b"x" * size)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("report.csv", "text/csv"),
        ("notes.txt", "text/plain"),
        ("data.json", "application/json"),
        ("invoice.pdf", "application/pdf"),
        ("bundle.zip", "application/zip"),
        ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("old.xls", "application/vnd.ms-excel"),
        ("photo.JPG", "image/jpeg"),
        ("clip.mp4", "video/mp4"),
        ("voice.mp3", "audio/mpeg"),
        ("archive.7z", "application/x-7z-compressed"),
    ],
)
def test_accepted_types(name: str, kind: str) -> None:
    assert content_type_of(name) == kind
    assert check_uploads([up(name)], LIMIT)


@pytest.mark.parametrize("name", ["run.exe", "script.sh", "page.html", "no_extension", "x.bin"])
def test_types_off_the_allow_list_are_refused_naming_the_file(name: str) -> None:
    with pytest.raises(DotoUploadError) as err:
        check_uploads([up("fine.csv"), up(name)], LIMIT)
    assert err.value.filename == name and err.value.reason == "type not allowed"
    assert repr(name) in str(err.value) and "nothing was sent" in str(err.value)


def test_a_declared_type_wins_over_the_name() -> None:
    assert check_uploads([Upload.of("export", 5, b"", "text/csv; charset=utf-8")], LIMIT)
    assert not is_acceptable_type("application/octet-stream")
    assert is_acceptable_type("IMAGE/webp")


def test_fifteen_files_pass_sixteen_do_not() -> None:
    assert len(check_uploads([up(f"f{i}.csv") for i in range(MAX_ATTACHMENTS)], LIMIT)) == 15
    with pytest.raises(DotoUploadError) as err:
        check_uploads([up(f"f{i}.csv") for i in range(MAX_ATTACHMENTS + 1)], LIMIT)
    assert err.value.reason == "too many" and err.value.filename is None and "16" in str(err.value)


def test_the_size_limit_is_inclusive_and_forty_megabytes_by_default() -> None:
    assert LIMIT == 40 * MEGABYTE
    assert max_upload_bytes(2) == 2 * MEGABYTE
    assert check_uploads([Upload.of("edge.pdf", LIMIT)], LIMIT)
    with pytest.raises(DotoUploadError) as err:
        check_uploads([Upload.of("big.pdf", LIMIT + 1)], LIMIT)
    assert err.value.reason == "too large" and "40 MB" in str(err.value) and "max_upload_mb" in str(err.value)


@pytest.mark.parametrize("name", ["", 'a"b.csv', "a\r\nb.csv", "dir/x.csv", "a\\b.csv", "a\x00.csv"])
def test_names_a_form_part_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(DotoUploadError) as err:
        check_uploads([up(name)], LIMIT)
    assert err.value.reason == "bad name"


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(DotoUploadError) as err:
        check_uploads([up("empty.csv", 0)], LIMIT)
    assert err.value.reason == "empty"


def _render(body: object) -> bytes:
    from airflow_provider_doto.api._uploads import MultipartBody

    assert isinstance(body, MultipartBody)
    return b"".join(p if isinstance(p, bytes) else p.source for p in body.parts)


def test_the_body_is_the_web_app_s_form_and_its_length_is_exact() -> None:
    request = send_request(
        1,
        2,
        "Here you go",
        private=True,
        content_attributes={"airflow_delivery_key": "k"},
        attachments=[up("a.csv", 7), Upload.of("b.pdf", 3, b"PDF")],
    )
    form = request.multipart
    assert request.json is None and form is not None
    raw = _render(form)
    assert form.length == len(raw)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {form.content_type}\r\n\r\n".encode() + raw
    )
    parts = [(p.get_param("name", header="content-disposition"), p) for p in message.iter_parts()]
    fields = {name: p.get_content() for name, p in parts if not p.get_filename()}
    assert fields == {
        "content": "Here you go",
        "message_type": "outgoing",
        "private": "true",
        "content_type": "text",
        "content_attributes": '{"airflow_delivery_key":"k"}',
    }
    files = [
        (name, p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for name, p in parts
        if p.get_filename()
    ]
    assert files == [
        ("attachments[]", "a.csv", "text/csv", b"x" * 7),
        ("attachments[]", "b.pdf", "application/pdf", b"PDF"),
    ]
    assert form.fields["content_attributes"] == '{"airflow_delivery_key":"k"}'


def test_without_attachments_the_request_stays_json() -> None:
    request = send_request(1, 2, "hi")
    assert request.multipart is None and request.json is not None


def test_a_template_cannot_carry_attachments() -> None:
    template = {
        "name": "t",
        "category": "UTILITY",
        "language": "en_US",
        "processed_params": {"body": {"1": "x"}},
    }
    with pytest.raises(DotoConfigError, match="template"):
        send_request(1, 2, "hi", template_params=template, attachments=[up("a.csv")])


def test_each_body_has_its_own_boundary() -> None:
    first, second = multipart_body({"content": "x"}, []), multipart_body({"content": "x"}, [])
    assert first.boundary != second.boundary
