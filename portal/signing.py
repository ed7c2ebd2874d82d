"""The signed values of every request: Flask's session cookie and Flask-WTF's CSRF token.

Both are itsdangerous' URL-safe timed serializations, signed with HMAC-SHA1. What is made
here is what Flask and Flask-WTF make, byte for byte, and what they make is read here; only
the way there is shorter, because every public page makes two of them and every report reads
two. ``tests/test_fast_paths.py`` compares each shortcut with the library's own way.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from datetime import UTC, datetime

from flask import Flask, Request, Response, current_app
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import (
    base64_decode,
    base64_encode,
    bytes_to_int,
    int_to_bytes,
    want_bytes,
)
from itsdangerous.signer import HMACAlgorithm
from werkzeug.http import dump_cookie

# itsdangerous turns every timestamp it reads into a datetime, and fails on one past the last
# day a datetime can hold: later ones are left to it.
_LAST_TIMESTAMP = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


class _KeyCachingSigner(TimestampSigner):
    """itsdangerous' timestamp signer, deriving the signing key of each of its secrets once
    instead of on every signature made or checked (one HMAC each): the same keys, so the same
    signatures. ``_PortalSerializer`` keeps one signer per salt, so the keys are derived once
    per serializer.

    ``plain_hmac`` says its signatures are plain HMACs joined with a ``.`` (the default), which
    ``_PortalSerializer`` may then make and check through ``mac`` in one call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[bytes, bytes] = {}
        self._macs: dict[bytes, hmac.HMAC] = {}
        self.plain_hmac = type(self.algorithm) is HMACAlgorithm and want_bytes(self.sep) == b"."

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = self._keys.get(secret)
        if key is None:
            key = self._keys[secret] = super().derive_key(secret)
        return key

    def mac(self, value: bytes) -> bytes:
        """The HMAC of ``value`` with the current key, from a copy of an HMAC keyed once
        (keying one costs two digest blocks and, in OpenSSL 3, a lookup of the digest by
        name; a copy costs neither): what ``self.algorithm`` computes, when ``plain_hmac``."""
        secret = self.secret_keys[-1]
        keyed = self._macs.get(secret)
        if keyed is None:
            keyed = self._macs[secret] = hmac.new(self.derive_key(secret),
                                                  digestmod=self.algorithm.digest_method)
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


# Payloads shorter than this are base64-encoded without first being offered to zlib.
_COMPRESS_FROM = 64


class _PortalSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer, for the session cookie and the CSRF token,
    without the costs it pays on every call:

    - the signer is made once per salt, not per call (a signer holds only its settings);
    - the signer derives its signing key once per secret (``_KeyCachingSigner``);
    - a payload under ``_COMPRESS_FROM`` bytes is not offered to zlib, which needs a quarter
      of a megabyte of working memory per call to save a few bytes at most;
    - ``dumps`` joins payload, timestamp and signature itself, with one call for the HMAC,
      instead of through some twenty calls of signer, algorithm and encoding helpers;
    - ``loads`` checks a value signed with the current key, within its age, the same short
      way. Anything else (a fallback key, a bad signature or timestamp, an expired value, a
      timestamp asked for) goes the stock way, which raises the stock errors.

    Only the third changes what is made, and only the form: the stock serializer reads these
    tokens and cookies, and this one reads the stock ones (tested)."""

    default_signer = _KeyCachingSigner

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict[bytes, Signer] = {}

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        salt = want_bytes(self.salt if salt is None else salt)
        signer = self._signers.get(salt)
        if signer is None:
            signer = self._signers[salt] = super().make_signer(salt)
        return signer

    def dump_payload(self, obj: object) -> bytes:
        payload = want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))
        if len(payload) < _COMPRESS_FROM:
            return base64_encode(payload)
        return super().dump_payload(obj)

    def dumps(self, obj: object, salt: str | bytes | None = None) -> str | bytes:
        signer = self.make_signer(salt)
        if not getattr(signer, "plain_hmac", False):
            return super().dumps(obj, salt)
        value = self.dump_payload(obj) + b"." + base64_encode(int_to_bytes(signer.get_timestamp()))
        signed = value + b"." + base64_encode(signer.mac(value))
        return signed.decode() if self.is_text_serializer else signed

    def loads(self, s: str | bytes, max_age: int | None = None,  # type: ignore[override]
              return_timestamp: bool = False, salt: str | bytes | None = None) -> object:
        signer = self.make_signer(salt)
        if (getattr(signer, "plain_hmac", False) and not return_timestamp
                and not self.fallback_signers):
            value, _, signature = want_bytes(s).rpartition(b".")
            payload, dot, stamp = value.rpartition(b".")
            if dot and hmac.compare_digest(signature, base64_encode(signer.mac(value))):
                try:
                    signed_at = bytes_to_int(base64_decode(stamp))
                except Exception:  # any fault: the stock way below names it
                    signed_at = -1
                age = signer.get_timestamp() - signed_at
                if 0 <= signed_at <= _LAST_TIMESTAMP and (
                        max_age is None or 0 <= age <= max_age):
                    return self.load_payload(payload)
        return super().loads(s, max_age=max_age, return_timestamp=return_timestamp, salt=salt)


_PLAIN = frozenset({str, int, bool, type(None)})


@functools.lru_cache(maxsize=4)
def _json_encoder(sort_keys: bool, ensure_ascii: bool) -> json.JSONEncoder:
    return json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                            separators=(",", ":"))


class _SessionJSON(TaggedJSONSerializer):
    """Flask's tagged JSON for session cookies. A session of strings, numbers, booleans and
    None, the usual kind, needs no tags: it is encoded by one JSON encoder kept per setting
    of the app's JSON provider, into the very text Flask's path (tagging every value, then
    ``flask.json.dumps`` through the provider, which builds a new encoder per call) gives.
    Anything else, or an app with a JSON provider of its own, takes Flask's path (tested)."""

    __slots__ = ()

    def dumps(self, value: object) -> str:
        if (type(value) is dict and current_app
                and type(provider := current_app.json) is DefaultJSONProvider
                and all(type(k) is str and type(v) in _PLAIN for k, v in value.items())
                and not (len(value) == 1 and next(iter(value)) in self.tags)):
            return _json_encoder(provider.sort_keys, provider.ensure_ascii).encode(value)
        return super().dumps(value)


# A cookie value of these characters only is written by werkzeug as it is, unquoted.
_BARE_COOKIE_VALUE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               b"0123456789-_.")
_PROBE = "PortalCookieValue"


class PortalSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, only cheaper to make: the signing serializer
    (``_PortalSerializer``) is built once per set of keys instead of twice per request
    (building one serializes a probe value), and HMAC-SHA1 is given as ``hashlib.sha1``
    itself, which the ``hmac`` module computes in OpenSSL, rather than as Flask's Python
    wrapper around it, which makes ``hmac`` fall back to its pure-Python construction."""

    digest_method = staticmethod(hashlib.sha1)
    serializer = _SessionJSON()

    def __init__(self) -> None:
        self._serializers: dict[tuple, _PortalSerializer] = {}
        self._cookies: dict[tuple, tuple[str, str]] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        # As Flask's: the fallback keys first, the current key last.
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = _PortalSerializer(
                list(keys), salt=self.salt, serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation,
                               "digest_method": self.digest_method})
            if len(self._serializers) > 8:  # keys changed at run time (tests): forget old ones
                self._serializers.clear()
            self._serializers[keys] = serializer
        return serializer

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        """Flask's; a request without any cookie (every first visit) gets its new, empty
        session without the cookie header being looked for and parsed first."""
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()
        return super().open_session(app, request)

    def _cookie_options(self, app: Flask) -> dict[str, object]:
        """The session cookie's attributes, as ``set_cookie`` and ``dump_cookie`` take them."""
        return {"domain": self.get_cookie_domain(app), "path": self.get_cookie_path(app),
                "secure": self.get_cookie_secure(app), "httponly": self.get_cookie_httponly(app),
                "samesite": self.get_cookie_samesite(app),
                "partitioned": self.get_cookie_partitioned(app)}

    def _cookie(self, app: Flask, name: str, options: dict[str, object],
                value: str) -> str | None:
        """The Set-Cookie header werkzeug's ``dump_cookie`` writes for the cookie ``name``
        holding ``value``, from its parts made once per cookie configuration; None for a
        value werkzeug would quote, or a header over the app's cookie size limit."""
        if not _BARE_COOKIE_VALUE.issuperset(value.encode()):
            return None
        key = (name, *options.values())
        parts = self._cookies.get(key)
        if parts is None:
            head, _, tail = dump_cookie(name, _PROBE, **options).partition(_PROBE)
            parts = (head, tail)
            if len(self._cookies) > 8:  # configuration changed at run time (tests)
                self._cookies.clear()
            self._cookies[key] = parts
        header = parts[0] + value + parts[1]
        limit = app.config["MAX_COOKIE_SIZE"]
        return None if limit and len(header) > limit else header

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Flask's, with the cookie's header made from parts kept per configuration and its
        ``Vary`` header written once instead of being parsed and rewritten twice. A session
        that is empty or permanent, or that is not to be written, takes Flask's own path; a
        test compares the two on every kind of session."""
        if not session or session.permanent or not self.should_set_cookie(app, session):
            super().save_session(app, session, response)
            return
        value = self.get_signing_serializer(app).dumps(dict(session))
        name, options = self.get_cookie_name(app), self._cookie_options(app)
        header = self._cookie(app, name, options, value)
        if header is None:
            response.set_cookie(name, value, **options)
        else:
            response.headers.add("Set-Cookie", header)
        vary = response.headers.get("Vary")
        if not vary:
            response.headers["Vary"] = "Cookie"
        elif "cookie" not in (part.strip().lower() for part in vary.split(",")):
            response.vary.add("Cookie")


@functools.lru_cache(maxsize=8)
def csrf_serializer(secret: str | bytes) -> URLSafeTimedSerializer:
    """Flask-WTF's token serializer for ``secret``, built once instead of on every call, with
    HMAC-SHA1 computed in OpenSSL (see PortalSessionInterface): ``_PortalSerializer``."""
    return _PortalSerializer(secret, salt="wtf-csrf-token",
                             signer_kwargs={"digest_method": hashlib.sha1})

