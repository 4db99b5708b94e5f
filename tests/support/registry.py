"""A real Docker registry (distribution 2.8, Debian's `docker-registry`) for the pull/push tests.

Three flavours, all plain HTTP on 127.0.0.1: no auth, htpasswd basic auth, and bearer tokens
from a token server written here (JWTs signed ES256 with a key and self-signed certificate made
at start-up), so the client code meets the same challenges a real registry sends. `FlakyProxy`
cuts a blob download part-way to prove resumption, and the `push_*`/`make_*` helpers put
content in over the registry API without going through moord.

Fixtures: `registry`, `basic_registry`, `token_registry` (one each per session),
`fresh_registry` (a factory for private ones) and `flaky_proxy` (in front of `registry`).
Test modules import the ones they use (`from tests.support.registry import registry`) and
list them in `__all__` so the import counts as used; `pytest_plugins` would work too but
warns that this module was imported before pytest could rewrite its asserts.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import gzip as gzip_module
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import attrs
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = "/usr/bin/docker-registry"
HTPASSWD_BINARY = "/usr/bin/htpasswd"
LOCALHOST = "127.0.0.1"

AuthKind = Literal["none", "basic", "token"]
KeyHint = Literal["x5c", "kid"]
ManifestFormat = Literal["oci", "docker"]
Credentials = tuple[str, str]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
# what a client asking for anything the registry may hold sends (without it, 2.8 answers 404
# for OCI manifests and indexes, and rewrites docker schema2 fetched by tag to schema1)
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))

DEFAULT_USER = "moor"
DEFAULT_PASSWORD = "moor-registry-pw"
FIXED_MTIME = 1_700_000_000  # layer tars and configs are byte-for-byte reproducible
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")


def free_port() -> int:
    """A port nobody on 127.0.0.1 listens on right now (the caller retries if it loses a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _die_with_parent() -> None:
    # a registry must not outlive a pytest that was killed: PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key ID registry 2.8 (docker/libtrust) gives a key: what a `kid` header must say.

    SHA-256 of the DER SubjectPublicKeyInfo, cut to 240 bits, base32 without padding,
    in twelve colon-separated groups of four.
    """
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


# ---------------------------------------------------------------------------------------------
# token server

@attrs.define
class TokenRequest:
    """One request the token server answered: who asked, for what, and what it granted."""

    method: str
    user: str | None  # None: anonymous (no credentials)
    service: str | None
    scopes: tuple[str, ...]
    status: int
    access: list[dict[str, Any]] = attrs.field(factory=list)


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """`repository:library/busybox:pull,push` -> (type, name, actions); names may hold ':'."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


@attrs.define(eq=False)
class TokenServer:
    """The Docker token protocol on 127.0.0.1: what a registry's `auth: token` realm points at.

    GET /token?service=..&scope=.. with basic credentials (or POST with an OAuth2 password
    grant) answers a JWT granting the requested actions to a known user; bad credentials get
    401; no credentials get a token with no access (or pull only, with `anonymous_pull`).
    Every request is recorded in `requests` so tests can assert on what a client asked for.
    """

    users: dict[str, str]
    service: str
    issuer: str = "moorage-test-token-issuer"
    key_hint: KeyHint = "x5c"  # how the JWT header names its key: cert chain or libtrust kid
    expires_in: int = 300
    anonymous_pull: bool = False
    requests: list[TokenRequest] = attrs.field(factory=list)
    _key: ec.EllipticCurvePrivateKey = attrs.field(init=False)
    _cert: x509.Certificate = attrs.field(init=False)
    _server: ThreadingHTTPServer | None = attrs.field(init=False, default=None)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moorage test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        """The registry's `rootcertbundle`."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_id(self) -> str:
        return libtrust_key_id(self._key.public_key())

    @property
    def port(self) -> int:
        assert self._server is not None, "token server not started"
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://{LOCALHOST}:{self.port}/token"

    @property
    def scopes_seen(self) -> list[str]:
        """Every scope asked for, in order, flattened over all requests."""
        with self._lock:
            return [s for r in self.requests for s in r.scopes]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        """Forget the recorded requests (the session's token server is shared)."""
        with self._lock:
            self.requests.clear()

    def start(self) -> None:
        handler = _token_handler(self)
        self._server = ThreadingHTTPServer((LOCALHOST, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def issue(self, subject: str, access: list[dict[str, Any]], *, expires_in: int | None = None,
              issuer: str | None = None, audience: str | None = None) -> str:
        """A signed JWT as registry 2.8 verifies it (overrides let tests mint bad ones)."""
        header: dict[str, Any] = {"typ": "JWT", "alg": "ES256"}
        if self.key_hint == "x5c":
            # standard (not url-safe) base64 of the DER certificate, as Go's parser wants
            der = self._cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode()]
        else:
            header["kid"] = self.key_id
        now = int(time.time())
        claims = {
            "iss": issuer if issuer is not None else self.issuer,
            "sub": subject,
            "aud": audience if audience is not None else self.service,  # a string: 2.8 rejects a list
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der_sig = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_sig)
        # JWS ES256 wants raw r||s, 32 bytes each, not the DER that cryptography produces
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def grant(self, user: str | None, scopes: Sequence[str]) -> list[dict[str, Any]]:
        """The `access` claim for these scopes: all asked actions for a user, pull (or none) else."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if user is None:
                actions = ["pull"] if self.anonymous_pull and "pull" in actions else []
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        return access

    def answer(self, method: str, user: str | None, password: str | None, service: str | None,
               scopes: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one token request; recorded either way."""
        body: dict[str, Any]
        if user is not None and self.users.get(user) != password:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "authentication required"}]}
            access: list[dict[str, Any]] = []
        elif service is not None and service != self.service:
            status, body = 400, {"errors": [{"code": "DENIED",
                                             "message": f"unknown service {service!r}"}]}
            access = []
        else:
            access = self.grant(user, scopes)
            token = self.issue(user or "", access)
            issued = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            status, body = 200, {"token": token, "access_token": token,
                                 "expires_in": self.expires_in, "issued_at": issued}
        with self._lock:
            self.requests.append(TokenRequest(method=method, user=user, service=service,
                                              scopes=scopes, status=status, access=access))
        return status, body


def _split_scopes(values: Sequence[str]) -> tuple[str, ...]:
    # a client may repeat `scope=` or put several space-separated scopes in one
    return tuple(s for v in values for s in v.split(" ") if s)


def _token_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="moorage-test-token"')
            self.end_headers()
            self.wfile.write(data)

        def _basic(self) -> tuple[str | None, str | None]:
            header = self.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return None, None
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return "", None  # garbage credentials: a user nobody knows
            return user, password

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            query = urllib.parse.parse_qs(url.query)
            user, password = self._basic()
            service = query.get("service", [None])[0]
            self._send(*server.answer("GET", user, password, service,
                                      _split_scopes(query.get("scope", []))))

        def do_POST(self) -> None:
            # the OAuth2 password grant containerd-style clients try first
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            if url.path != "/token":
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            if form.get("grant_type", [""])[0] != "password":
                self._send(400, {"error": "unsupported_grant_type"})
                return
            user = form.get("username", [None])[0]
            password = form.get("password", [None])[0]
            service = form.get("service", [None])[0]
            self._send(*server.answer("POST", user, password, service,
                                      _split_scopes(form.get("scope", []))))

    return Handler


# ---------------------------------------------------------------------------------------------
# the registry

def _make_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="moor-reg-", dir="/tmp"))


@attrs.define(eq=False)
class Registry:
    """A `docker-registry serve` on 127.0.0.1 with its storage, config and log in a temp dir.

    Use as a context manager, or start()/cleanup(). `auth` picks the flavour; with "token"
    a `TokenServer` is started first and the registry trusts its certificate.
    """

    auth: AuthKind = "none"
    username: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    service: str = "moorage-test-registry"
    key_hint: KeyHint = "x5c"
    anonymous_pull: bool = False
    root: Path = attrs.field(factory=_make_root)
    port: int = 0
    token_server: TokenServer | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """What goes in an image reference: `127.0.0.1:PORT`."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage_root(self) -> Path:
        """The filesystem driver's rootdirectory: blobs are under docker/registry/v2/blobs."""
        return self.root / "storage"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @property
    def htpasswd_path(self) -> Path:
        return self.root / "htpasswd"

    @property
    def cert_path(self) -> Path:
        return self.root / "token-cert.pem"

    @property
    def credentials(self) -> Credentials | None:
        """The user the registry knows (None for the no-auth flavour)."""
        return None if self.auth == "none" else (self.username, self.password)

    def blob_path(self, digest: str, *, must_exist: bool = True) -> Path:
        """Where the filesystem driver keeps a blob's bytes (tests corrupt this file)."""
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        path = (self.storage_root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest
                / "data")
        if must_exist and not path.is_file():
            raise FileNotFoundError(f"blob {digest} is not in the registry's storage ({path})")
        return path

    def config(self) -> dict[str, Any]:
        """The registry's configuration (written as JSON, which YAML parsers read too)."""
        conf: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_root)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
                "redirect": {"disable": True},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16),
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.auth == "basic":
            conf["auth"] = {"htpasswd": {"realm": "moorage-test-registry",
                                         "path": str(self.htpasswd_path)}}
        elif self.auth == "token":
            assert self.token_server is not None
            conf["auth"] = {"token": {"realm": self.token_server.realm, "service": self.service,
                                      "issuer": self.token_server.issuer,
                                      "rootcertbundle": str(self.cert_path)}}
        return conf

    def _prepare_auth(self) -> None:
        if self.auth == "basic":
            if not os.access(HTPASSWD_BINARY, os.X_OK):
                raise RuntimeError(f"{HTPASSWD_BINARY} is missing: apt-get install apache2-utils")
            # registry 2.8 only accepts bcrypt entries
            line = subprocess.run([HTPASSWD_BINARY, "-Bbn", self.username, self.password],
                                  capture_output=True, check=True, text=True).stdout.strip()
            self.htpasswd_path.write_text(line + "\n")
        elif self.auth == "token" and self.token_server is None:
            self.token_server = TokenServer(users={self.username: self.password},
                                            service=self.service, key_hint=self.key_hint,
                                            anonymous_pull=self.anonymous_pull)
            self.token_server.start()
            self.cert_path.write_bytes(self.token_server.cert_pem)

    def start(self, timeout: float = 20.0) -> None:
        if not os.access(REGISTRY_BINARY, os.X_OK):
            raise RuntimeError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
        self.storage_root.mkdir(parents=True, exist_ok=True)
        self._prepare_auth()
        # REGISTRY_* variables would override the config file
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        for _attempt in range(5):
            self.port = free_port()
            self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.config_path)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             cwd=self.root, env=env, preexec_fn=_die_with_parent)
            if self._wait_ready(timeout):
                return
            if "address already in use" not in self.log_tail():
                break
        raise RuntimeError(f"docker-registry did not come up on {self.host}:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status = httpx.get(f"{self.url}/v2/", timeout=2).status_code
                if status in (200, 401):
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        """Stop the registry and its token server and remove the temp dir."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Registry:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def client(self, auth: Credentials | None = None, *, anonymous: bool = False,
               base_url: str | None = None) -> httpx.Client:
        """An httpx client that answers the registry's challenges (basic or bearer) itself.

        `auth` defaults to the registry's own user; `anonymous` sends no credentials.
        `base_url` points it elsewhere (a FlakyProxy in front of this registry).
        """
        creds = None if anonymous else (auth or self.credentials)
        return httpx.Client(base_url=base_url or self.url, auth=ChallengeAuth(creds),
                            timeout=60)


def _challenge_params(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


class ChallengeAuth(httpx.Auth):
    """Answers a registry's 401 like a docker client: basic credentials, or a bearer token
    fetched from the challenge's realm for its service and scope."""

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self.token: str | None = None

    def fetch_token(self, params: Mapping[str, str]) -> str:
        query = {k: params[k] for k in ("service", "scope") if k in params}
        auth = httpx.BasicAuth(*self.credentials) if self.credentials else None
        response = httpx.get(params["realm"], params=query, auth=auth, timeout=30)
        response.raise_for_status()
        body = response.json()
        return str(body.get("token") or body["access_token"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return
        scheme, params = _challenge_params(response.headers["www-authenticate"])
        if scheme == "basic" and self.credentials is not None:
            user, password = self.credentials
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.headers["Authorization"] = f"Basic {basic}"
            yield request
        elif scheme == "bearer" and "realm" in params:
            self.token = self.fetch_token(params)
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


# ---------------------------------------------------------------------------------------------
# a proxy that cuts blob downloads

@attrs.define
class ProxiedRequest:
    """One request through a FlakyProxy, and what became of its response."""

    method: str
    target: str
    range: str | None
    status: int | None = None
    body_bytes: int = 0  # response body bytes passed to the client
    cut: bool = False

    @property
    def is_blob(self) -> bool:
        return "/blobs/sha256:" in self.target


_HOP_HEADERS = {b"connection", b"keep-alive", b"proxy-connection"}


def _rewrite_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The head with `Connection: close` instead of any hop-by-hop header, and its headers."""
    lines = head.split(b"\r\n")
    headers: list[tuple[bytes, bytes]] = []
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
        if name.strip().lower() not in _HOP_HEADERS:
            out.append(line)
    out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n", headers


def _read_head(sock: socket.socket, buf: bytearray) -> bytes | None:
    """Read up to the blank line ending an HTTP head; what follows stays in buf."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > 256 * 1024:
            return None
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end - 4])
    del buf[:end]
    return head


@attrs.define(eq=False)
class FlakyProxy:
    """A TCP proxy on 127.0.0.1 that speaks just enough HTTP to cut a blob download.

    Each client connection carries one request (both sides are told `Connection: close`).
    After `arm(n)`, the next GET whose path holds `/blobs/sha256:` has its connection cut once
    n bytes of its response body went through. `requests` records every request line and its
    `Range` header, so a test can see a resumed pull ask for `bytes=n-`.
    """

    upstream: str  # "127.0.0.1:PORT" of the registry
    requests: list[ProxiedRequest] = attrs.field(factory=list)
    _cut_after: int | None = attrs.field(init=False, default=None)
    _cuts_left: int = attrs.field(init=False, default=0)
    _listener: socket.socket | None = attrs.field(init=False, default=None)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _open: set[socket.socket] = attrs.field(init=False, factory=set)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _stopping: threading.Event = attrs.field(init=False, factory=threading.Event)

    @property
    def port(self) -> int:
        assert self._listener is not None, "proxy not started"
        return int(self._listener.getsockname()[1])

    @property
    def host(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def blob_requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests if r.is_blob and r.method == "GET"]

    def arm(self, cut_after: int, times: int = 1) -> None:
        """Cut the next `times` blob GET responses after `cut_after` body bytes."""
        with self._lock:
            self._cut_after, self._cuts_left = cut_after, times

    def disarm(self) -> None:
        with self._lock:
            self._cut_after, self._cuts_left = None, 0

    def start(self) -> None:
        self._listener = socket.create_server((LOCALHOST, 0))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="flaky-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def __enter__(self) -> FlakyProxy:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _claim_cut(self, record: ProxiedRequest) -> int | None:
        with self._lock:
            if (self._cut_after is None or self._cuts_left <= 0 or record.method != "GET"
                    or not record.is_blob or record.status not in (200, 206)):
                return None
            self._cuts_left -= 1
            return self._cut_after

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(120)
        self._track(client)
        upstream: socket.socket | None = None
        try:
            buf = bytearray()
            head = _read_head(client, buf)
            if head is None:
                return
            request_head, headers = _rewrite_head(head)
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            ranges = [v.decode("latin-1") for n, v in headers if n == b"range"]
            record = ProxiedRequest(method=method, target=target,
                                    range=ranges[0] if ranges else None)
            with self._lock:
                self.requests.append(record)
            host, _, port = self.upstream.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=120)
            self._track(upstream)
            upstream.sendall(request_head + bytes(buf))
            # the request body (if any) flows on its own; the response decides when we're done
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            self._relay_response(upstream, client, record)
        except OSError:
            pass
        finally:
            self._forget(client, *([upstream] if upstream is not None else []))

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)

    def _relay_response(self, upstream: socket.socket, client: socket.socket,
                        record: ProxiedRequest) -> None:
        buf = bytearray()
        while True:
            head = _read_head(upstream, buf)
            if head is None:
                return
            status = int(head.split(b" ", 2)[1])
            response_head, _ = _rewrite_head(head) if status >= 200 else (head + b"\r\n\r\n", [])
            client.sendall(response_head)
            if status >= 200:
                break  # 1xx (100 Continue) heads go through and the real one follows
        record.status = status
        cut_after = self._claim_cut(record)
        while True:
            chunk = bytes(buf) if buf else upstream.recv(65536)
            buf.clear()
            if not chunk:
                return
            if cut_after is not None and record.body_bytes + len(chunk) >= cut_after:
                client.sendall(chunk[:cut_after - record.body_bytes])
                record.body_bytes = cut_after
                record.cut = True
                return  # the finally in _serve closes both sides mid-body
            client.sendall(chunk)
            record.body_bytes += len(chunk)


# ---------------------------------------------------------------------------------------------
# content helpers

def make_layer_tar(files: Mapping[str, bytes], gzip: bool = True, *,
                   compresslevel: int = 6) -> bytes:
    """A layer tarball holding `files` (path -> content), reproducible byte for byte.

    Parent directories get their own entries; owners are root, mtimes fixed.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path, data in files.items():
            rel = path.lstrip("/")
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
                    tar.addfile(info)
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, FIXED_MTIME
            tar.addfile(info, io.BytesIO(data))
    if not gzip:
        return raw.getvalue()
    return gzip_module.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def random_layers(seed: int, count: int = 5, size: int = 8 << 20, *, gzip: bool = True) -> list[bytes]:
    """`count` layers of `size` random (incompressible) bytes each, the same for the same seed."""
    rng = random.Random(seed)
    return [make_layer_tar({f"/data/layer-{i}.bin": rng.randbytes(size)}, gzip=gzip, compresslevel=1)
            for i in range(count)]


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def _platform_fields(platform: str) -> dict[str, str]:
    os_name, arch, *variant = platform.split("/")
    fields = {"architecture": arch, "os": os_name}
    if variant:
        fields["variant"] = variant[0]
    return fields


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise AssertionError(f"{response.request.method} {response.request.url} -> "
                             f"{response.status_code}: {response.text[:500]}")
    return response


def _push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    if client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
        return digest
    started = _expect(client.post(f"/v2/{repo}/blobs/uploads/"), 202)
    location = started.headers["location"]
    sep = "&" if "?" in location else "?"
    _expect(client.put(f"{location}{sep}digest={digest}", content=data,
                       headers={"Content-Type": "application/octet-stream"}), 201)
    return digest


def _push_manifest(client: httpx.Client, repo: str, ref: str, manifest: bytes, media_type: str) -> str:
    response = _expect(client.put(f"/v2/{repo}/manifests/{ref}", content=manifest,
                                  headers={"Content-Type": media_type}), 201)
    digest = sha256_digest(manifest)
    assert response.headers.get("docker-content-digest") == digest, response.headers
    return digest


def push_blob(registry: Registry, repo: str, data: bytes, auth: Credentials | None = None) -> str:
    """Upload a blob (POST then monolithic PUT ?digest=); returns its digest. `auth` defaults
    to the registry's own user."""
    with registry.client(auth) as client:
        return _push_blob(client, repo, data)


def push_manifest(registry: Registry, repo: str, ref: str, manifest: bytes, media_type: str,
                  auth: Credentials | None = None) -> str:
    """PUT a manifest or index under a tag or digest; returns its digest."""
    with registry.client(auth) as client:
        return _push_manifest(client, repo, ref, manifest, media_type)


@attrs.frozen
class PushedImage:
    """A single-platform image in a registry, with everything a pull test checks against."""

    host: str
    repo: str
    tag: str | None
    platform: str
    digest: str  # the manifest's
    manifest: bytes
    media_type: str
    config_digest: str
    config: bytes
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    layer_sizes: tuple[int, ...]

    @property
    def ref(self) -> str:
        """host/repo:tag, or host/repo@digest when pushed untagged."""
        return f"{self.host}/{self.repo}:{self.tag}" if self.tag else self.digest_ref

    @property
    def digest_ref(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


@attrs.frozen
class PushedIndex:
    """A multi-platform index (OCI) or manifest list (docker) and its per-platform images."""

    host: str
    repo: str
    tag: str
    digest: str
    index: bytes
    media_type: str
    images: dict[str, PushedImage]  # "linux/arm/v7" -> image

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def digest_ref(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


def _make_image(client: httpx.Client, host: str, repo: str, tag: str | None, layers: Sequence[bytes],
                platform: str, manifest_format: ManifestFormat,
                config: Mapping[str, Any] | None) -> PushedImage:
    oci = manifest_format == "oci"
    layer_descs, diff_ids, digests = [], [], []
    for layer in layers:
        gz = _is_gzip(layer)
        digest = _push_blob(client, repo, layer)
        digests.append(digest)
        diff_ids.append(sha256_digest(gzip_module.decompress(layer)) if gz else digest)
        media = ((OCI_LAYER_GZIP if gz else OCI_LAYER_TAR) if oci
                 else (DOCKER_LAYER_GZIP if gz else DOCKER_LAYER_TAR))
        layer_descs.append({"mediaType": media, "digest": digest, "size": len(layer)})
    created = datetime.datetime.fromtimestamp(FIXED_MTIME, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    image_config: dict[str, Any] = {
        **_platform_fields(platform),
        "created": created,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"moorage test layer {i}"}
                    for i in range(len(layers))],
    }
    config_bytes = _canonical(image_config)
    config_digest = _push_blob(client, repo, config_bytes)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = _canonical({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "digest": config_digest,
                   "size": len(config_bytes)},
        "layers": layer_descs,
    })
    digest = _push_manifest(client, repo, tag or sha256_digest(manifest), manifest, media_type)
    return PushedImage(host=host, repo=repo, tag=tag, platform=platform, digest=digest,
                       manifest=manifest, media_type=media_type, config_digest=config_digest,
                       config=config_bytes, layer_digests=tuple(digests), diff_ids=tuple(diff_ids),
                       layer_sizes=tuple(len(layer) for layer in layers))


def make_image(registry: Registry, repo: str, tag: str | None, layers: Sequence[bytes], *,
               platform: str = "linux/amd64", manifest_format: ManifestFormat = "oci",
               config: Mapping[str, Any] | None = None,
               auth: Credentials | None = None) -> PushedImage:
    """Push a single-platform image made of `layers` (tarballs, gzipped or not): layers,
    config (with `config` merged into its container config, e.g. {"Cmd": [...]}) and manifest.
    `tag=None` pushes by digest only."""
    with registry.client(auth) as client:
        return _make_image(client, registry.host, repo, tag, layers, platform, manifest_format,
                           config)


def platform_layer(platform: str) -> bytes:
    """The one layer of a multi-arch test image: /platform.txt naming its platform."""
    return make_layer_tar({"/platform.txt": platform.encode() + b"\n"})


def push_multiarch_index(registry: Registry, repo: str, tag: str,
                         platforms: Sequence[str] = DEFAULT_PLATFORMS, *,
                         manifest_format: ManifestFormat = "oci",
                         auth: Credentials | None = None) -> PushedIndex:
    """Push one small image per platform (a layer with /platform.txt) and an index over them
    (OCI image index, or a docker manifest list with manifest_format="docker") tagged `tag`."""
    with registry.client(auth) as client:
        images = {p: _make_image(client, registry.host, repo, None, [platform_layer(p)], p,
                                 manifest_format, None) for p in platforms}
        media_type = OCI_INDEX if manifest_format == "oci" else DOCKER_MANIFEST_LIST
        index = _canonical({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [{"mediaType": image.media_type, "digest": image.digest,
                           "size": len(image.manifest), "platform": _platform_fields(p)}
                          for p, image in images.items()],
        })
        digest = _push_manifest(client, repo, tag, index, media_type)
    return PushedIndex(host=registry.host, repo=repo, tag=tag, digest=digest, index=index,
                       media_type=media_type, images=images)


# ---------------------------------------------------------------------------------------------
# fixtures

def _require_registry() -> None:
    problems = [f"{b} is missing: run scripts/test.sh (apt packages {pkg})"
                for b, pkg in ((REGISTRY_BINARY, "docker-registry"), (HTPASSWD_BINARY, "apache2-utils"))
                if not os.access(b, os.X_OK)]
    if problems:
        pytest.fail("the registry tests cannot run here:\n  " + "\n  ".join(problems), pytrace=False)


def _started(reg: Registry) -> Registry:
    _require_registry()
    try:
        reg.start()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        reg.cleanup()
        pytest.fail(f"could not start docker-registry ({reg.auth}): {e}", pytrace=False)
    return reg


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """The session's registry without auth."""
    reg = _started(Registry(auth="none"))
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[Registry]:
    """The session's registry with htpasswd basic auth for `.username`/`.password`."""
    reg = _started(Registry(auth="basic"))
    yield reg
    reg.cleanup()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[Registry]:
    """The session's bearer-token registry; `.token_server` records what clients asked for."""
    reg = _started(Registry(auth="token"))
    yield reg
    reg.cleanup()


@pytest.fixture
def fresh_registry() -> Iterator[Callable[..., Registry]]:
    """Start private registries (`Registry(**kwargs)`, started); all cleaned up after the test."""
    made: list[Registry] = []

    def make(**kwargs: Any) -> Registry:
        reg = Registry(**kwargs)
        made.append(reg)
        return _started(reg)

    yield make
    for reg in made:
        reg.cleanup()


@pytest.fixture
def flaky_proxy(registry: Registry) -> Iterator[FlakyProxy]:
    """A FlakyProxy (disarmed) in front of the session's no-auth registry."""
    with FlakyProxy(registry.host) as proxy:
        yield proxy
