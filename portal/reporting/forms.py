"""The public forms. Every message is in our own catalogue, so every language is complete.

A message that quotes what the person typed is made with ``gettext`` when the form is
validated, never with ``lazy_gettext``: Jinja escapes a plain string, but a lazy string's
``__html__`` hands its text over as markup, so quoted input would become HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from markupsafe import escape
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import ValidationError

from portal import payload
from portal.reporting import urls as url_rules
from portal.reporting.choices import CONTENT_TYPES, WHERE_FOUND
from portal.security import PortalCSRF, PortalForm

MAX_DESCRIPTION = payload.MAX_DESCRIPTION
MAX_URLS_FIELD = payload.MAX_URLS * (payload.MAX_URL_LENGTH + 2)
CONTROL_MESSAGE = _l("This contains an invisible control character, which cannot be sent. "
                     "Please remove it and try again.")

URL_REASONS = {
    "scheme": _l("only web addresses starting with http:// or https:// can be reported"),
    "no_host": _l("this does not contain a website name"),
    "private": _l("this points to a private or local network, not to the public internet"),
    "too_long": _l("this is longer than 2,048 characters"),
    "invalid": _l("this is not a valid web address"),
    "control": _l("this contains an invisible control character"),
}


class ChoiceField(SelectField):
    """A select whose "not a valid choice" message is in our catalogue."""

    def pre_validate(self, form) -> None:
        if self.data not in {choice.value for choice in self.choices}:
            raise ValidationError(_l("Choose one of the options in the list."))


class _TokenWhenShown:
    """This request's CSRF token, made only when the form is shown: a report accepted at the
    first try is answered with its receipt and needs no new token."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], str]):
        self._make = make

    def __str__(self) -> str:
        return self._make()

    def __html__(self) -> str:
        return str(escape(self._make()))


class _CSRFWhenShown(PortalCSRF):
    """The app's CSRF for forms, with the token made only when the form is shown."""

    def generate_csrf_token(self, csrf_token_field) -> _TokenWhenShown:  # type: ignore[override]
        make = super().generate_csrf_token
        return _TokenWhenShown(lambda: make(csrf_token_field))


class PublicForm(PortalForm):
    """The public forms: the CSRF token made only when the form is rendered, and no control
    character accepted in any field, except the line breaks (and tabs) a field allows."""

    class Meta:
        csrf_class = _CSRFWhenShown

    allowed_controls: ClassVar[dict[str, str]] = {}

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            allowed = self.allowed_controls.get(field.name, "")
            if any(isinstance(value, str) and payload.has_control(value, allowed)
                   for value in field.raw_data or ()):
                # This message alone: the field's others may quote the character.
                field.errors = [CONTROL_MESSAGE]
                valid = False
        return valid


class ReportForm(PublicForm):
    allowed_controls: ClassVar[dict[str, str]] = {
        "urls": payload.LINE_BREAKS, "description": payload.TEXT_CONTROLS}

    urls = TextAreaField(_l("Web addresses (URLs)"))
    content_type = ChoiceField(
        _l("What did you see?"),
        choices=[SelectChoice(k, v) for k, v in CONTENT_TYPES.items()],
        default="unsure",
    )
    where_found = ChoiceField(
        _l("Where did you find it?"),
        choices=[SelectChoice(k, v) for k, v in WHERE_FOUND.items()],
        default="unsure",
    )
    description = TextAreaField(_l("Anything else we should know (optional)"))
    child_in_danger = BooleanField(_l("A child is in immediate danger"))
    contact_email = StringField(_l("Your email address (optional)"))

    cleaned_urls: list[str]

    def validate_urls(self, field: TextAreaField) -> None:
        raw = field.data or ""
        if len(raw) > MAX_URLS_FIELD:
            raise ValidationError(_l("This is too long. Report at most 20 addresses at a time."))
        urls, problems = url_rules.parse_urls(raw)
        if problems:
            messages = [
                _("Line %(line)s (%(text)s): %(reason)s", line=p.line, text=p.text,
                  reason=URL_REASONS[p.reason])
                for p in problems[:5]
            ]
            # One message per bad line: all but the last go straight onto the field.
            field.errors.extend(messages[:-1])
            raise ValidationError(messages[-1])
        if not urls:
            raise ValidationError(_l("Enter at least one web address."))
        if len(urls) > payload.MAX_URLS:
            raise ValidationError(
                ngettext(
                    "You entered %(num)d address. Report at most 20 at a time.",
                    "You entered %(num)d addresses. Report at most 20 at a time.",
                    len(urls),
                )
            )
        self.cleaned_urls = urls

    def validate_description(self, field: TextAreaField) -> None:
        if len(field.data or "") > MAX_DESCRIPTION:
            raise ValidationError(
                _("Please shorten this to at most %(max)s characters (now %(now)s).",
                  max=MAX_DESCRIPTION, now=len(field.data))
            )

    def validate_contact_email(self, field: StringField) -> None:
        value = (field.data or "").strip()
        if not value:
            field.data = ""
            return
        if len(value) > payload.MAX_EMAIL:
            raise ValidationError(_l("This email address is too long."))
        try:
            normalized = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValidationError(
                _l("This does not look like an email address. Leave it empty to stay anonymous.")
            ) from exc
        if len(normalized) > payload.MAX_EMAIL:
            raise ValidationError(_l("This email address is too long."))
        field.data = normalized


class StatusForm(PublicForm):
    receipt = StringField(_l("Receipt code"))

    def validate_receipt(self, field: StringField) -> None:
        if not (field.data or "").strip():
            raise ValidationError(_l("Enter the receipt code you were given."))
        if len(field.data) > 64:
            raise ValidationError(_l("A receipt code has 16 digits."))
