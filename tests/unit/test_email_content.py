"""Email content without a server: templates, address validation, the message built for sending."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from satworks.db.draw_states import WinnerNotice
from satworks.emails.addresses import EmailAddress, normalize_address, normalize_addresses
from satworks.emails.message import build_message, message_id, sender_domain
from satworks.emails.outbox import Composer, ReportReady, winner_key
from satworks.emails.templates import EmailTemplates, RenderedEmail
from satworks.errors import InvalidEmailAddress, InvalidPayload, TemplateError
from satworks.integrations.smtp.client import SmtpConfig
from satworks.settings import Settings

TEMPLATES = EmailTemplates()
CONTEXTS = {
    "payment_settled": {"customer_name": "Ann", "amount_sat": 125_000, "payment_id": "p-1", "memo": "order 1001"},
    "draw_won": {
        "raffle_id": "summer-raffle",
        "draw_id": "d-1",
        "entry_id": "ann",
        "ticket": 17,
        "verify_url": "https://raffle.example/p/draws/tok",
    },
    "report_ready": {"report_name": "Sales", "period": "May 2026", "download_url": "https://x.example/r.csv"},
    "generic": {"subject": "Hello", "body": "First paragraph.\n\nSecond <b>one</b>."},
}


def test_shipped_templates_are_found_by_listing_the_directory() -> None:
    assert TEMPLATES.names == ["draw_won", "generic", "payment_settled", "report_ready"]


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_each_shipped_template_renders_subject_text_and_html(name: str) -> None:
    rendered = TEMPLATES.render(name, CONTEXTS[name])
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and rendered.html is not None and "<html" in rendered.html


def test_html_is_escaped_and_text_is_not() -> None:
    context = {**CONTEXTS["payment_settled"], "memo": '<script>alert("x")</script>'}
    rendered = TEMPLATES.render("payment_settled", context)
    assert rendered.html is not None and "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in rendered.html
    assert '<script>alert("x")</script>' in rendered.text
    assert rendered.subject == "Payment received: 125,000 sat"


def test_missing_variables_are_named_before_rendering() -> None:
    with pytest.raises(TemplateError, match="needs amount_sat, payment_id") as raised:
        TEMPLATES.render("payment_settled", {"customer_name": "Ann", "memo": None})
    assert raised.value.details["missing"] == ["amount_sat", "payment_id"]
    assert isinstance(raised.value, InvalidPayload)  # permanent: retrying cannot help


def test_a_missing_attribute_of_a_given_value_is_an_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = _package(tmp_path, monkeypatch, {"receipt": ("{{ order.number }}", "{{ order.number }}", "x")})
    assert templates.render("receipt", {"order": {"number": 7}}).subject == "7"
    with pytest.raises(TemplateError, match="has no attribute 'number'"):
        templates.render("receipt", {"order": {}})


def test_wrong_kinds_of_values_and_unsafe_links_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="integer"):
        TEMPLATES.render("payment_settled", {**CONTEXTS["payment_settled"], "amount_sat": "lots"})
    with pytest.raises(TemplateError, match="http"):
        TEMPLATES.render("report_ready", {**CONTEXTS["report_ready"], "download_url": "javascript:alert(1)"})
    with pytest.raises(TemplateError, match="unknown email template 'nope'"):
        TEMPLATES.render("nope", {})


def test_adding_a_template_is_adding_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = _package(
        tmp_path,
        monkeypatch,
        {"welcome": ("Welcome {{ name }}", "Hi {{ name }}", "<p>Hi {{ name }}</p>"), "_partials": None},
    )
    assert templates.names == ["welcome"]
    rendered = templates.render("welcome", {"name": "<Ann>"})
    assert (rendered.subject, rendered.text, rendered.html) == ("Welcome <Ann>", "Hi <Ann>\n", "<p>Hi &lt;Ann&gt;</p>")


def _package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: dict[str, tuple[str, str, str] | None]
) -> EmailTemplates:
    """A fresh importable package (imports are cached) holding ``templates`` (None: an empty folder)."""
    package_name = f"mail_templates_{uuid.uuid4().hex}"
    package = tmp_path / package_name
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for template, parts in templates.items():
        folder = package / "templates" / template
        folder.mkdir()
        if parts is not None:
            for filename, source in zip(("subject.txt", "text.txt", "html.html"), parts, strict=True):
                (folder / filename).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return EmailTemplates(package=package_name)


def test_addresses_are_normalized_and_bad_ones_named() -> None:
    assert normalize_address("Ann <Ann@Example.COM>") == "Ann <Ann@example.com>"
    assert normalize_addresses(["a@example.com", "b@example.org"]) == ["a@example.com", "b@example.org"]
    with pytest.raises(InvalidEmailAddress) as raised:
        normalize_addresses(["ok@example.com", "nope@", "two@@example.com"])
    assert [d["address"] for d in raised.value.details] == ["nope@", "two@@example.com"]
    assert "'nope@'" in raised.value.message


def test_email_address_type_gives_a_validation_error_naming_the_address() -> None:
    class Request(BaseModel):
        to: list[EmailAddress]

    assert Request(to=["X@Example.com"]).to == ["X@example.com"]
    with pytest.raises(ValidationError, match="not-an-address"):
        Request(to=["ok@example.com", "not-an-address"])


def test_message_is_multipart_alternative_with_stable_headers() -> None:
    content = RenderedEmail(subject="Hi\r\nBcc: victim@example.com", text="words\n", html="<p>words</p>")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    built = build_message(
        content,
        sender="Shop <no@shop.example>",
        to=["a@example.com"],
        message_id=message_id("e-1", "shop.example"),
        date=when,
    )
    assert built.get_content_type() == "multipart/alternative"
    assert built["Message-ID"] == "<e-1@shop.example>" and built["Subject"] == "Hi Bcc: victim@example.com"
    assert built["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000" and built["Bcc"] is None
    assert [p.get_content_type() for p in built.iter_parts()] == ["text/plain", "text/html"]
    text_only = build_message(
        RenderedEmail("s", "t\n"), sender="no@shop.example", to=["a@example.com"], message_id="<x@y>"
    )
    assert text_only.get_content_type() == "text/plain"
    assert sender_domain("Shop <No@Shop.Example>") == "shop.example"
    with pytest.raises(InvalidPayload):
        message_id("bad id", "shop.example")
    with pytest.raises(InvalidPayload):
        build_message(content, sender="no@shop.example", to=[], message_id="<x@y>")


def test_smtp_config_comes_from_settings_and_never_shows_the_password() -> None:
    settings = Settings(
        smtp_host="relay.example.com", smtp_port=587, smtp_security="starttls", smtp_username="mailer",
        smtp_password="hunter2-secret", smtp_timeout_s=12,
    )  # fmt: skip
    config = SmtpConfig.from_settings(settings)
    assert (config.host, config.port, config.security, config.command_timeout_s) == (
        "relay.example.com", 587, "starttls", 12,
    )  # fmt: skip
    assert config.password == "hunter2-secret" and "hunter2" not in repr(config)


def test_a_winner_email_without_a_verification_link_leaves_the_link_out() -> None:
    rendered = TEMPLATES.render("draw_won", {**CONTEXTS["draw_won"], "verify_url": None})
    assert 'Your entry ann won in the raffle "summer-raffle" with ticket #17.' in rendered.text
    assert rendered.html is not None and "href" not in rendered.html and "None" not in rendered.text


def test_satworks_own_emails_are_keyed_by_what_they_tell_and_link_to_the_public_address() -> None:
    draw_id, report_id, app_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    notice = WinnerNotice(draw_id, app_id, "summer", 1, "ann", 17, "Ann@Example.ORG", "tok123", {})
    composer = Composer(Settings(public_base_url="https://raffle.example/sat/"))
    won = composer.winner(notice)
    assert won is not None and won.to_addrs == ["Ann@example.org"] and won.template == "draw_won"
    assert won.idempotency_key == winner_key(draw_id, "ann") != winner_key(draw_id, "bob")
    assert won.context is not None and won.context["verify_url"] == "https://raffle.example/sat/p/draws/tok123"
    assert composer.winner(dataclasses.replace(notice, email="nobody@localhost")) is None  # no longer valid

    local = Composer(Settings(public_base_url=None, http_host="127.0.0.1", http_port=8080))
    ready = ReportReady(report_id, "Jobs report", "2026-12-05 UTC", f"/v1/reports/{report_id}/download")
    report = local.report(app_id, "Ops <ops@example.org>", ready)
    assert report is not None and report.idempotency_key == f"satworks:report:{report_id}"
    assert report.subject == "Your report is ready: Jobs report (2026-12-05 UTC)"
    assert f"http://127.0.0.1:8080/v1/reports/{report_id}/download" in report.text_body
