"""Production serving: nginx accepts infra/nginx/portal.conf, Gunicorn serves the app with
infra/gunicorn.conf.py and logs nothing about the reporter, and the container file is complete.

Privacy rule: no IP address, user agent, query string or report text in any log.
"""

from __future__ import annotations

import datetime
import grp
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, need
from tests.ports import free_ports

INFRA = ROOT / "infra"
NGINX_CONF = INFRA / "nginx" / "portal.conf"
GUNICORN_CONF = INFRA / "gunicorn.conf.py"
CONTAINERFILE = INFRA / "Containerfile"

# Placeholders in portal.conf that the test points at files of its own.
CERT_PLACEHOLDER = "/etc/portal/tls/fullchain.pem"
KEY_PLACEHOLDER = "/etc/portal/tls/privkey.pem"
ACCESS_LOG_PLACEHOLDER = "/var/log/nginx/portal-access.log"

# nginx variables that carry the client's address, user agent, referer or query string.
FORBIDDEN_NGINX_VARIABLES = {
    "remote_addr", "binary_remote_addr", "realip_remote_addr", "remote_user", "http_user_agent",
    "http_referer", "http_x_forwarded_for", "proxy_add_x_forwarded_for", "http_cookie", "request",
    "request_uri", "args", "query_string", "is_args", "request_body",
}

SECRET_KEY = "serving-test-secret-key-0123456789-abcdefghij"
MARKERS = {"query": "QUERYMARK", "user agent": "UA-MARKER", "forwarded address": "198.51.100.77"}


# ---------------------------------------------------------------- nginx


def nginx_binary() -> str | None:
    # /usr/sbin is often missing from an unprivileged user's PATH.
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("portal.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "fullchain.pem", folder / "privkey.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    key_file.chmod(0o600)
    return cert_file, key_file


def log_formats(conf: str) -> dict[str, str]:
    """Every log_format in the file, by name, with its (possibly multi-line) format text."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^\s*log_format\s+(\S+)\s+(.*?);", conf, re.MULTILINE | re.DOTALL)}


def local_listens(conf: str) -> str:
    """`nginx -t` binds every listen address: move 80 and 443 to free loopback ports, so the test
    needs no privilege and no idle port 80. IPv6 listens go to [::1], or away without IPv6."""
    ports = dict(zip(("80", "443"), map(str, free_ports(2)), strict=True))
    have_ipv6 = ipv6_loopback()
    listen = re.compile(r"^(\s*)listen\s+(\[::\]:)?(80|443)\b([^;]*);", re.MULTILINE)

    def local(match: re.Match[str]) -> str:
        indent, ipv6, port, options = match.groups()
        if ipv6 and not have_ipv6:
            return f"{indent}# (no IPv6 here) {match.group(0).strip()}"
        return f"{indent}listen {'[::1]' if ipv6 else '127.0.0.1'}:{ports[port]}{options};"

    moved, count = listen.subn(local, conf)
    assert count, "portal.conf has no listen 80 or 443: update this test"
    assert not re.search(r"^\s*listen\s+(?!127\.0\.0\.1:|\[::1\]:)", moved, re.MULTILINE), moved
    return moved


def test_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx = nginx_binary()
    need(nginx is not None, "nginx is not installed")
    assert nginx is not None
    conf = NGINX_CONF.read_text(encoding="utf-8")

    # What the file logs: only the private format, with none of the reporter's data.
    formats = log_formats(conf)
    assert list(formats) == ["portal_private"], formats
    used = set(re.findall(r"\$\{?([A-Za-z0-9_]+)", formats["portal_private"]))
    assert used, "the log format names no variable"
    assert not used & FORBIDDEN_NGINX_VARIABLES, used & FORBIDDEN_NGINX_VARIABLES
    assert not {v for v in used if v.startswith(("arg_", "cookie_"))}
    # Every server logs with that format or not at all: a server without access_log would fall
    # back to nginx.conf's `combined` log, with the address and user agent.
    servers = conf.count("server {")
    access_logs = re.findall(r"^\s*access_log\s+([^;]+);", conf, re.MULTILINE)
    assert len(access_logs) == servers, access_logs
    for entry in access_logs:
        assert entry == "off" or entry.split()[1:2] == ["portal_private"], entry

    # nginx -t on a throwaway nginx.conf that includes a copy pointing at files in tmp_path.
    for placeholder in (CERT_PLACEHOLDER, KEY_PLACEHOLDER, ACCESS_LOG_PLACEHOLDER):
        assert placeholder in conf, f"{placeholder} is no longer in portal.conf: update this test"
    cert_file, key_file = self_signed_certificate(tmp_path)
    copy = tmp_path / "portal.conf"
    copy.write_text(
        local_listens(conf)
        .replace(CERT_PLACEHOLDER, str(cert_file))
        .replace(KEY_PLACEHOLDER, str(key_file))
        .replace(ACCESS_LOG_PLACEHOLDER, str(tmp_path / "portal-access.log")),
        encoding="utf-8",
    )
    # As root, nginx checks the worker user and group it was built with (nobody and nobody or
    # nogroup), which a minimal container may lack: name the current user and group instead.
    # Unprivileged, nginx ignores `user` with a warning, so it is left out.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp_paths = "\n".join(f"    {name}_temp_path {tmp_path / name};"
                           for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"{user}\n"
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        f"{temp_paths}\n"
        f"    access_log {tmp_path / 'access.log'};\n"
        f"    include {copy};\n"
        "}\n",
        encoding="utf-8",
    )
    checked = subprocess.run(
        [nginx, "-t", "-q", "-c", str(main), "-p", f"{tmp_path}/"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert checked.returncode == 0, checked.stderr


# ---------------------------------------------------------------- gunicorn





def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def get(url: str, headers: dict[str, str] | None = None) -> int:
    # No proxy from the environment: the request must reach Gunicorn directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def wait_until_healthy(base: str, server: subprocess.Popen, stderr: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.returncode}:\n{stderr.read_text()}")
        try:
            if get(f"{base}/healthz") == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer 200 within {seconds:.0f} s:\n{stderr.read_text()}")


def test_gunicorn_access_log_and_threads_from_the_environment(monkeypatch) -> None:
    """The app's JSON line is the access log; gunicorn's own repeats it only on request. The
    threads per worker default to 4."""
    import runpy

    for name in ("GUNICORN_ACCESSLOG", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    defaults = runpy.run_path(str(GUNICORN_CONF))
    assert defaults["accesslog"] is None and defaults["threads"] == 4
    monkeypatch.setenv("GUNICORN_ACCESSLOG", "-")
    monkeypatch.setenv("GUNICORN_THREADS", "2")
    told = runpy.run_path(str(GUNICORN_CONF))
    assert told["accesslog"] == "-" and told["threads"] == 2


def test_gunicorn_serves_and_logs_no_reporter_data(instance: Path, tmp_path: Path) -> None:
    need(importlib.util.find_spec("gunicorn") is not None, "gunicorn is not installed")
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "GUNICORN_"))}
    env.update({
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_SECRET_KEY": SECRET_KEY,
        "PORTAL_RATELIMIT_ENABLED": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESSLOG": "-",  # off by default; on here so that its format is checked too
    })
    stdout, stderr = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    base = f"http://127.0.0.1:{port}"
    # Output goes to files, not pipes: a full pipe would block Gunicorn, and files need no reader.
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )
    try:
        # Start-up builds the app once to prepare the instance folder, then once per worker.
        wait_until_healthy(base, server, stderr, seconds=30)
        status = get(f"{base}/demo/en/report?secret={MARKERS['query']}", {
            "User-Agent": MARKERS["user agent"], "X-Forwarded-For": MARKERS["forwarded address"],
        })
        assert status == 200
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=45)
    finally:
        if server.poll() is None:  # only when something above failed
            server.kill()
            server.wait(timeout=10)

    access, errors = stdout.read_text(), stderr.read_text()
    assert exit_code == 0, errors
    report_lines = [line for line in access.splitlines() if "/demo/en/report" in line]
    assert report_lines, access
    assert re.search(r"\b200\b", report_lines[0]), report_lines[0]
    # The app's own JSON access line, on stderr, names the route pattern, not the path.
    app_lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    assert [(entry["route"], entry["status"]) for entry in app_lines
            if entry["logger"] == "portal.access" and entry["route"].endswith("/report")] \
        == [("/<portal>/<lang>/report", 200)], errors
    for what, marker in MARKERS.items():
        assert marker not in access + errors, f"the {what} was logged"
    # The client address; stderr legitimately says "Listening at: http://127.0.0.1:<port>".
    assert "127.0.0.1" not in access, access


# ---------------------------------------------------------------- container image


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()
                                          if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def test_containerfile_is_complete() -> None:
    steps = instructions(CONTAINERFILE.read_text(encoding="utf-8"))
    keywords = [keyword for keyword, _ in steps]

    def of(keyword: str) -> list[str]:
        return [args for k, args in steps if k == keyword]

    assert len(of("FROM")) >= 2, "expected a multi-stage build"
    assert all(args.split()[0].startswith("python:3.11-slim-bookworm") for args in of("FROM"))

    users = of("USER")
    assert users, "no USER: the app would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]
    assert keywords.index("USER") < keywords.index("CMD")

    healthchecks = of("HEALTHCHECK")
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0], healthchecks
    assert "urllib" in healthchecks[0]

    assert any("8000" in args.split() for args in of("EXPOSE")), of("EXPOSE")

    cmds = of("CMD")
    assert len(cmds) == 1, cmds
    command = exec_form(cmds[0])
    assert command[0] == "gunicorn" and "infra/gunicorn.conf.py" in command and "wsgi:app" in command

    env = " ".join(of("ENV"))
    for setting in ("PORTAL_INSTANCE_PATH=/var/lib/portal", "PORTAL_THEMES_PATH=/app/themes",
                    "PORTAL_TRANSLATIONS_PATH=/app/translations"):
        assert setting in env, setting

    copies = [args.split() for args in of("COPY")]
    sources = [part for parts in copies if not any(p.startswith("--from") for p in parts)
               for part in parts[:-1] if not part.startswith("--")]
    for folder in ("themes", "translations", "wsgi.py", "infra/gunicorn.conf.py"):
        assert folder in sources, f"{folder} is not copied into the image"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"

    for args in of("ADD"):
        assert not re.search(r"\b(https?|ftp|git)://|git@", args), f"ADD from a URL: {args}"
    assert "--no-cache-dir" in " ".join(of("RUN")), "pip should not keep its cache in the image"
