"""The sponsors' side. Signed-in sponsors see only their own portals; the progress reports
themselves (figures, charts, PDF, CSV) come with the sponsor reports work."""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template
from flask.typing import ResponseReturnValue

from portal.accounts import auth

bp = Blueprint("sponsors", __name__, url_prefix="/sponsors", template_folder="templates")


@bp.before_request
def sponsor_language() -> None:
    user = auth.load_user()
    g.lang = user.language if user is not None else "en"


@bp.get("/")
@auth.roles_required("sponsor")
def home() -> ResponseReturnValue:
    portals = current_app.extensions["portal.tenancy"].portals
    mine = [portals[slug] for slug in g.user.portal_list if slug in portals]
    return render_template("sponsors/home.html", portals=mine)
