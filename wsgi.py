"""WSGI entry point: ``gunicorn wsgi:app``. Configuration comes from PORTAL_* variables."""

from portal.app import create_app

app = create_app()
