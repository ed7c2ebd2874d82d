"""Back-office forms. Every one carries a CSRF token; sizes are bounded."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import ValidationError

from portal.security import PortalForm

OUTCOME_LABELS = {
    "international_illegal": _l("Baseline: illegal internationally"),
    "national_illegal": _l("Illegal under national law"),
    "not_illegal": _l("Not illegal"),
    "not_found": _l("Content not found or already removed"),
}
AGE_LABELS = {
    "": _l("Not recorded"),
    "infant": _l("Infant or toddler"),
    "prepubescent": _l("Pre-pubescent"),
    "pubescent": _l("Pubescent"),
    "unknown": _l("Cannot tell"),
}
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def _bounded(limit: int):
    def check(form, field) -> None:
        if len(field.data or "") > limit:
            raise ValidationError(_l("This is too long."))

    return check


def _country(form, field) -> None:
    value = (field.data or "").strip().upper()
    field.data = value
    if value and not COUNTRY_RE.match(value):
        raise ValidationError(_l("Use a two-letter country code, for example FR."))


class AssessForm(PortalForm):
    outcome = SelectField(_l("Outcome"),
                          choices=[SelectChoice(k, v) for k, v in OUTCOME_LABELS.items()])
    national_country = StringField(_l("Country whose law it breaks (for national illegality)"),
                                   validators=[_country])
    category = SelectField(_l("Severity category"))
    age_group = SelectField(_l("Apparent age of the victim"),
                            choices=[SelectChoice(k, v) for k, v in AGE_LABELS.items()])
    notes = TextAreaField(_l("Notes"), validators=[_bounded(4000)])

    def validate_national_country(self, field) -> None:
        if self.outcome.data == "national_illegal" and not field.data:
            raise ValidationError(_l("Name the country whose law makes it illegal."))


class TraceCorrectionForm(PortalForm):
    country = StringField(_l("Hosting country"), validators=[_country])
    asn = StringField(_l("Network number (ASN)"), validators=[_bounded(20)])
    network = StringField(_l("Network or hosting provider"), validators=[_bounded(200)])

    def validate_asn(self, field) -> None:
        value = (field.data or "").strip().upper()
        if value and not re.match(r"^(AS)?\d{1,10}$", value):
            raise ValidationError(_l("Use a network number such as AS64500."))
        field.data = ("AS" + value.removeprefix("AS")) if value else ""


class NoticeForm(PortalForm):
    recipient = StringField(_l("Abuse contact of the hosting provider"),
                            validators=[_bounded(254)])

    def validate_recipient(self, field) -> None:
        value = (field.data or "").strip()
        if not re.match(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$", value):
            raise ValidationError(_l("Enter the provider's abuse email address."))
        field.data = value


class ReferenceForm(PortalForm):
    reference = StringField(_l("Police reference or channel"), validators=[_bounded(200)])


class PlainForm(PortalForm):
    """A button-only form: just the CSRF token."""
