"""Sending email through satworks' SMTP client to the development SMTP server, over real sockets."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from satworks.devnodes.smtp.sink import SinkConfig
from satworks.emails.message import build_message, message_id
from satworks.emails.templates import EmailTemplates, RenderedEmail
from satworks.errors import InvalidPayload, SmtpRejected, SmtpTempFailure
from satworks.integrations.smtp.client import SmtpConfig, send
from tests.integration.smtp_fixtures import HOST, SinkThread, Tls, running_sink
from tests.support import ROOT, free_port, wait_until

SENDER = "Shop <noreply@shop.example.com>"


@pytest.fixture(scope="module")
def sink() -> Iterator[SinkThread]:
    with running_sink() as running:
        yield running


@pytest.fixture(scope="module")
def templates() -> EmailTemplates:
    return EmailTemplates()


def _email(to: list[str], subject: str = "Hello", email_id: str | None = None) -> Any:
    content = RenderedEmail(subject=subject, text="plain words\n", html="<p>plain words</p>")
    return build_message(
        content, sender=SENDER, to=to, message_id=message_id(email_id or uuid.uuid4().hex, "shop.example.com")
    )


def _received(sink: SinkThread, message_id_header: str) -> list[Any]:
    return [m for m in sink.sink.store.all() if m.parsed()["Message-ID"] == message_id_header]


def test_rendered_template_arrives_with_escaped_html_text_part_subject_and_stable_message_id(
    sink: SinkThread, templates: EmailTemplates
) -> None:
    context = {"customer_name": "<script>alert(1)</script>", "amount_sat": 125_000, "payment_id": "p-1", "memo": None}
    email_id = str(uuid.uuid4())
    first = build_message(
        templates.render("payment_settled", context),
        sender=SENDER,
        to=["alice@example.com"],
        message_id=message_id(email_id, "satworks.shop.example.com"),
    )
    receipt = send(sink.client(), first)
    assert receipt.smtp_code == 250 and "queued as" in receipt.smtp_reply and not receipt.refused

    # The same outbox row sent again (a retry after a lost answer) carries the same Message-ID.
    again = build_message(
        templates.render("payment_settled", context),
        sender=SENDER,
        to=["alice@example.com"],
        message_id=message_id(email_id, "satworks.shop.example.com"),
    )
    send(sink.client(), again)

    copies = _received(sink, f"<{email_id}@satworks.shop.example.com>")
    assert len(copies) == 2
    received = copies[0].parsed()
    assert received.get_content_type() == "multipart/alternative"
    assert received["Subject"] == "Payment received: 125,000 sat"
    assert received["From"] == SENDER and received["Date"]
    assert copies[0].rcpt_tos == ("alice@example.com",)
    text = received.get_body(preferencelist=("plain",)).get_content()
    html = received.get_body(preferencelist=("html",)).get_content()
    assert "125,000 sat" in text and "<script>alert(1)</script>" in text  # text is not HTML: kept as written
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html


@pytest.mark.parametrize(
    ("recipient", "error", "code"),
    [
        ("temp-fail@example.com", SmtpTempFailure, 451),
        ("reject@example.com", SmtpRejected, 550),
        ("data-temp-fail@example.com", SmtpTempFailure, 451),
        ("data-reject@example.com", SmtpRejected, 554),
    ],
)
def test_4xx_replies_are_transient_and_5xx_replies_permanent_with_the_reply_kept(
    sink: SinkThread, recipient: str, error: type[Exception], code: int
) -> None:
    message = _email([recipient])
    with pytest.raises(error) as raised:
        send(sink.client(), message)
    assert raised.value.smtp_code == code  # type: ignore[attr-defined]
    assert "devnode rule" in raised.value.smtp_reply  # type: ignore[attr-defined]
    assert raised.value.details == {"smtp_code": code, "smtp_reply": raised.value.smtp_reply}  # type: ignore[attr-defined]
    assert not _received(sink, message["Message-ID"])


def test_a_recipient_refused_among_accepted_ones_is_reported_and_the_others_get_the_message(sink: SinkThread) -> None:
    message = _email(["bob@example.com", "reject@example.com"])
    receipt = send(sink.client(), message)
    assert receipt.smtp_code == 250
    assert list(receipt.refused) == ["reject@example.com"] and receipt.refused["reject@example.com"][0] == 550
    [stored] = _received(sink, message["Message-ID"])
    assert stored.rcpt_tos == ("bob@example.com",)


def test_refused_connection_is_transient() -> None:
    config = SmtpConfig(host=HOST, port=free_port(), helo_name="tests.local")  # nothing listens there
    with pytest.raises(SmtpTempFailure, match="cannot reach"):
        send(config, _email(["alice@example.com"]))


def test_a_server_slower_than_the_command_timeout_is_transient() -> None:
    with running_sink(SinkConfig(delay_s=30)) as slow:
        with pytest.raises(SmtpTempFailure, match="timed out"):
            send(slow.client(command_timeout_s=0.3), _email(["alice@example.com"]))
        assert slow.sink.store.all() == []


def test_message_without_message_id_is_refused_before_connecting(sink: SinkThread) -> None:
    message = _email(["alice@example.com"])
    del message["Message-ID"]
    with pytest.raises(InvalidPayload, match="Message-ID"):
        send(sink.client(port=free_port()), message)


def test_starttls_and_login(tmp_path: Path) -> None:
    tls = Tls(tmp_path)
    config = SinkConfig(tls_cert=tls.cert_file, tls_key=tls.key_file, auth=("mailer", "s3cret-pass"))
    with running_sink(config) as secure:
        good = secure.client(security="starttls", ca_file=str(tls.ca_file), username="mailer", password="s3cret-pass")
        message = _email(["alice@example.com"])
        assert send(good, message).smtp_code == 250
        [stored] = secure.sink.store.all()
        assert stored.parsed()["Message-ID"] == message["Message-ID"]

        with pytest.raises(SmtpRejected) as wrong_password:
            send(
                secure.client(security="starttls", ca_file=str(tls.ca_file), username="mailer", password="nope"),
                message,
            )
        assert wrong_password.value.smtp_code == 535

        with pytest.raises(SmtpRejected) as no_login:  # the sink requires AUTH after STARTTLS
            send(secure.client(security="starttls", ca_file=str(tls.ca_file)), message)
        assert no_login.value.smtp_code == 530

        with pytest.raises(SmtpRejected) as plain:  # without STARTTLS the server refuses to go on
            send(secure.client(security="none"), message)
        assert plain.value.smtp_code == 530

        with pytest.raises(SmtpTempFailure, match="CERTIFICATE_VERIFY_FAILED"):
            send(secure.client(security="starttls"), message)  # a private CA the client was not given
        assert len(secure.sink.store.all()) == 1


def test_implicit_tls(tmp_path: Path) -> None:
    tls = Tls(tmp_path)
    with running_sink(SinkConfig(tls_cert=tls.cert_file, tls_key=tls.key_file, implicit_tls=True)) as secure:
        assert send(secure.client(security="tls", ca_file=str(tls.ca_file)), _email(["a@example.com"])).smtp_code == 250
        assert len(secure.sink.store.all()) == 1


def test_sink_measures_the_peak_number_of_simultaneous_sessions() -> None:
    with running_sink() as sink:
        assert sink.http("/stats")["sessions_peak"] == 0
        sessions = [smtplib.SMTP(HOST, sink.port, local_hostname="tests.local", timeout=10) for _ in range(4)]
        try:
            for session in sessions:
                session.ehlo()
            assert sink.http("/stats")["sessions_now"] == 4
        finally:
            for session in sessions:
                session.quit()
        wait_until(lambda: sink.http("/stats")["sessions_now"] == 0, what="sessions closed")
        stats = sink.http("/stats")
        assert stats["sessions_peak"] == 4 and stats["sessions_total"] == 4
        assert sink.http("/stats/reset", method="POST")["sessions_peak"] == 0


def test_http_listing_shows_received_messages(sink: SinkThread) -> None:
    message = _email(["carol@example.com"], subject="Listing check")
    send(sink.client(), message)
    listed = [m for m in sink.http("/messages")["messages"] if m["message_id"] == message["Message-ID"]]
    assert [m["subject"] for m in listed] == ["Listing check"]
    detail = sink.http(f"/messages/{listed[0]['id']}")
    assert detail["text"] == "plain words\n" and detail["html"].startswith("<p>plain words</p>")
    raw = sink.http(f"/messages/{listed[0]['id']}/raw")
    assert BytesParser(policy=policy.default).parsebytes(raw)["Subject"] == "Listing check"
    assert b"Listing check" in sink.http("/")


def test_devnode_command_keeps_messages_as_eml_files_and_lists_them(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    maildir = tmp_path / "mail"
    command = [sys.executable, "-m", "satworks.cli", "devnode", "smtp"]
    server = subprocess.Popen(
        [*command, "--port", str(smtp_port), "--http-port", str(http_port), "--maildir", str(maildir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config = SmtpConfig(host=HOST, port=smtp_port, helo_name="tests.local")

        def delivered() -> bool:
            try:
                send(config, _email(["dave@example.com"], subject="Receipt 1001"))
            except SmtpTempFailure:
                return False  # not listening yet
            return True

        wait_until(delivered, what="devnode smtp accepting mail")
        listing = subprocess.run(
            [*command, "--list", "--http-port", str(http_port)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert "dave@example.com" in listing.stdout and "Receipt 1001" in listing.stdout
        [eml] = maildir.glob("*.eml")
        assert BytesParser(policy=policy.default).parsebytes(eml.read_bytes())["Subject"] == "Receipt 1001"
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0
