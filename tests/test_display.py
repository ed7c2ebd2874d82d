"""Reporter text shown to analysts: steering characters made visible, everything escaped."""

from __future__ import annotations

from sqlalchemy import select

from portal.assessment.display import reveal_controls
from portal.assessment.models import Report
from portal.db import db
from tests.staff import make_user, report_into_centre, sign_in


def test_bidi_override_and_zero_width_characters_are_shown_as_marks():
    shown = str(reveal_controls("abc\u202edcba\u200bx\u2066y\u2069"))
    assert shown == ('abc<span class="control" title="U+202E">[U+202E]</span>dcba'
                     '<span class="control" title="U+200B">[U+200B]</span>x'
                     '<span class="control" title="U+2066">[U+2066]</span>y'
                     '<span class="control" title="U+2069">[U+2069]</span>')


def test_c0_and_c1_controls_are_marked_but_tab_and_newline_kept():
    shown = str(reveal_controls("a\x00b\x1bc\x85d\te\nf"))
    assert "[U+0000]" in shown and "[U+001B]" in shown and "[U+0085]" in shown
    assert "d\te\nf" in shown
    assert "\x00" not in shown and "\x1b" not in shown and "\x85" not in shown


def test_joiners_of_persian_and_indic_writing_stay_as_typed():
    persian = "می\u200cخواهم"
    assert str(reveal_controls(persian)) == persian
    assert str(reveal_controls("क्\u200dष")) == "क्\u200dष"


def test_markup_is_escaped_around_the_marks():
    shown = str(reveal_controls('<b>x</b>\u202e"'))
    assert shown.startswith("&lt;b&gt;x&lt;/b&gt;<span") and shown.endswith("&#34;")


def test_the_analyst_sees_the_override_as_a_mark(app):
    app.config["TESTING"] = True
    edge = app.test_client()
    report_into_centre(app, edge, urls="host.example.test/p", description="gpj.\u202eexe")
    report = db.session.scalar(select(Report))
    lead = app.test_client()
    sign_in(lead, make_user("lead"))
    html = lead.get(f"/staff/reports/{report.id}").get_data(as_text=True)
    assert 'gpj.<span class="control" title="U+202E">[U+202E]</span>exe' in html
    assert "\u202e" not in html
