"""The embedded mode's mailbox: e-mails the portal 'sent', for a person trying it out.

Registered only in demo mode with the database mail backend; never in production.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from portal.auth.access import public
from portal.mail import SentEmail
from portal.web import db_session

bp = Blueprint("devmail", __name__, url_prefix="/dev")


@bp.route("/mailbox")
@public
def mailbox() -> str:
    emails = db_session().execute(select(SentEmail).order_by(SentEmail.id.desc()).limit(100)).scalars().all()
    return render_template("devmail.html", emails=emails)
