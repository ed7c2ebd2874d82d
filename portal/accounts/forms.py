"""Sign-in and account forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import ValidationError

from portal.accounts.models import ROLES
from portal.security import PortalForm


def _required(form, field) -> None:
    if not (field.data or "").strip():
        raise ValidationError(_l("This field is required."))


def _bounded(limit: int):
    def check(form, field) -> None:
        if len(field.data or "") > limit:
            raise ValidationError(_l("This is too long."))

    return check


class LoginForm(PortalForm):
    email = StringField(_l("Email address"), validators=[_required, _bounded(254)])
    password = PasswordField(_l("Password"), validators=[_required, _bounded(256)])


class CodeForm(PortalForm):
    code = StringField(_l("Code"), validators=[_required, _bounded(20)])


class PasswordForm(PortalForm):
    current = PasswordField(_l("Current password"), validators=[_required, _bounded(256)])
    new = PasswordField(_l("New password"), validators=[_required, _bounded(256)])
    confirm = PasswordField(_l("New password again"), validators=[_required, _bounded(256)])

    def validate_confirm(self, field) -> None:
        if field.data != self.new.data:
            raise ValidationError(_l("The two new passwords are not the same."))


ROLE_LABELS = {
    "analyst": _l("Analyst"),
    "lead": _l("Lead analyst"),
    "admin": _l("Administrator"),
    "sponsor": _l("Sponsor"),
}


class UserForm(PortalForm):
    email = StringField(_l("Email address"), validators=[_required, _bounded(254)])
    name = StringField(_l("Name"), validators=[_required, _bounded(120)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r, ROLE_LABELS[r]) for r in ROLES])
    language = SelectField(_l("Language"))
    portals = StringField(_l("Portals (sponsors only, comma-separated)"),
                          validators=[_bounded(500)])

    def validate_email(self, field) -> None:
        value = (field.data or "").strip()
        if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
            raise ValidationError(_l("This does not look like an email address."))
