"""`moor` and its HTTP client against a fake daemon on a unix socket.

The fake is a boundary stand-in: it parses requests with h11 (an implementation
independent of ours) and answers with canned bytes, so the tests check what moor
sends and how it reads chunked bodies, `101` hijacks and late `wait` replies.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import pytest

from engine.cli.client import APIError, Client, DaemonUnreachable, ProtocolError
from engine.cli.main import main
from engine.cli.streams import encode_chunked, encode_frame

REPO = Path(__file__).resolve().parents[2]
CID = "a" * 64


@attrs.define
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


Handler = Callable[[Recorded, socket.socket], None]


def reply(sock: socket.socket, status: int, body: Any = None, *, reason: str = "OK",
          headers: dict[str, str] | None = None, chunked: bool = False) -> None:
    """Write a whole response; JSON unless `body` is bytes."""
    if body is None:
        data = b""
        ctype = None
    elif isinstance(body, bytes):
        data, ctype = body, "text/plain"
    else:
        data, ctype = json.dumps(body).encode(), "application/json"
    head = [f"HTTP/1.1 {status} {reason}", "Api-Version: 1.50"]
    if ctype:
        head.append(f"Content-Type: {ctype}")
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = encode_chunked([data[i:i + 7] for i in range(0, len(data), 7)])
    else:
        if status not in (204, 304):
            head.append(f"Content-Length: {len(data)}")
        payload = data
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)


def error(sock: socket.socket, status: int, message: str) -> None:
    reply(sock, status, {"message": message}, reason="Error")


class FakeDaemon:
    """Answers requests on a unix socket with handlers registered per (method, path)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Recorded] = []
        self.started = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(32)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def json_route(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.route(method, path, lambda _r, s: reply(s, status, body))

    def find(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        h = h11.Connection(h11.SERVER)
        request = None
        body = b""
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(65536)
                    h.receive_data(data)
                    if not data and request is None:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
                if h.their_state is h11.MUST_CLOSE:
                    break
            assert request is not None
            url = urlsplit(request.target.decode())
            path = url.path
            if path.startswith("/v1.50/"):
                path = path[len("/v1.50"):]
            recorded = Recorded(
                request.method.decode(), path, parse_qs(url.query, keep_blank_values=True),
                {k.decode().lower(): v.decode() for k, v in request.headers}, body)
            self.requests.append(recorded)
            handler = self.routes.get((recorded.method, path))
            if handler is None:
                error(conn, 404, f"page not found: {recorded.method} {path}")
            else:
                handler(recorded, conn)
        except (BrokenPipeError, ConnectionResetError):
            pass  # moor hung up first (it exits on an in-stream error): a real client's right
        finally:
            conn.close()


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    # A short path: unix socket paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="moor-") as tmp:
        fake = FakeDaemon(Path(tmp) / "d.sock")
        yield fake
        fake.close()


@pytest.fixture
def moor(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run `moor ARGS...` in-process against the fake: (exit status, stdout, stderr)."""
    monkeypatch.setenv("MOORAGE_HOST", daemon.host)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), captured.out, captured.err

    return run


def run_moor_process(daemon: FakeDaemon, *args: str, stdin: bytes = b"",
                     timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MOORAGE_HOST=daemon.host, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], input=stdin,
                          capture_output=True, env=env, timeout=timeout, check=False)


# --- the client ----------------------------------------------------------------------

def test_request_sends_versioned_path_and_reads_json(daemon: FakeDaemon) -> None:
    daemon.json_route("GET", "/containers/json", 200, [{"Id": CID}])
    client = Client(daemon.host)
    result = client.get_json("/containers/json", {"all": True, "limit": None})
    assert result == [{"Id": CID}]
    (req,) = daemon.find("GET", "/containers/json")
    assert req.query == {"all": ["1"]}


def test_chunked_response_is_decoded(daemon: FakeDaemon) -> None:
    payload = {"Id": CID, "Names": ["/x" * 50]}
    daemon.route("GET", "/info", lambda _r, s: reply(s, 200, payload, chunked=True))
    assert Client(daemon.host).get_json("/info") == payload


def test_streamed_chunks_arrive_in_pieces(daemon: FakeDaemon) -> None:
    release = threading.Event()

    def logs(_req: Recorded, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"5\r\nfirst\r\n")
        release.wait(5)
        sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

    daemon.route("GET", "/containers/x/logs", logs)
    response = Client(daemon.host).call("GET", "/containers/x/logs")
    pieces = response.iter_body()
    assert next(pieces) == b"first"  # before the server sent the rest
    release.set()
    assert list(pieces) == [b"second"]


def test_error_message_comes_from_json_body(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/containers/nope/json",
                 lambda _r, s: error(s, 404, "No such container: nope"))
    with pytest.raises(APIError) as caught:
        Client(daemon.host).get_json("/containers/nope/json")
    assert caught.value.status == 404
    assert caught.value.message == "No such container: nope"


def test_error_message_plain_text_body(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/x", lambda _r, s: reply(s, 500, b"something broke\n"))
    with pytest.raises(APIError, match=r"^something broke$"):
        Client(daemon.host).get_json("/x")


def test_missing_socket_is_a_clear_error(tmp_path: Path) -> None:
    client = Client(f"unix://{tmp_path}/absent.sock")
    with pytest.raises(DaemonUnreachable, match=r"Cannot connect to the moorage daemon at "
                                                r"unix://.*/absent.sock\. Is moord running\?"):
        client.get_json("/version")


def test_hijack_returns_stream_and_bytes_read_past_headers(daemon: FakeDaemon) -> None:
    def attach(_req: Recorded, sock: socket.socket) -> None:
        # Headers and the first frame in one write: the client must not lose the frame.
        sock.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker."
                     b"multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                     + encode_frame(1, b"early\n"))
        got = sock.recv(100)
        sock.sendall(encode_frame(2, b"echo:" + got))

    daemon.route("POST", "/containers/x/attach", attach)
    conn = Client(daemon.host).hijack("POST", "/containers/x/attach", {"stream": 1})
    assert conn.content_type == "application/vnd.docker.multiplexed-stream"
    conn.send(b"ping")
    data = b"".join(conn.chunks())
    assert data == encode_frame(1, b"early\n") + encode_frame(2, b"echo:ping")
    (req,) = daemon.find("POST", "/containers/x/attach")
    assert req.headers["upgrade"] == "tcp"
    assert req.headers["connection"].lower() == "upgrade"


def test_hijack_refused_without_101(daemon: FakeDaemon) -> None:
    daemon.json_route("POST", "/containers/x/attach", 200, {})
    with pytest.raises(ProtocolError, match="unable to upgrade to tcp, received 200"):
        Client(daemon.host).hijack("POST", "/containers/x/attach")


def test_streamed_request_body_uses_chunked_encoding(daemon: FakeDaemon) -> None:
    daemon.json_route("POST", "/images/create", 200, {"status": "ok"})
    Client(daemon.host).call("POST", "/images/create", body=iter([b"abc", b"", b"defg"]))
    (req,) = daemon.find("POST", "/images/create")
    assert req.headers["transfer-encoding"] == "chunked"
    assert req.body == b"abcdefg"


# --- commands ------------------------------------------------------------------------

def test_ps_table(daemon: FakeDaemon, moor: Any) -> None:
    import time

    now = time.time()
    daemon.json_route("GET", "/containers/json", 200, [
        {"Id": CID, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:" + "b" * 64,
         "Command": "sleep 1000000000000000", "Created": int(now - 150), "State": "running",
         "Status": "Up 2 minutes", "Ports": []},
    ])
    code, out, _ = moor("ps")
    assert code == 0
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         "
        "PORTS     NAMES",
        "aaaaaaaaaaaa   busybox   \"sleep 1000000000000…\"   2 minutes ago   Up 2 minutes   "
        "          web",
    ]


def test_ps_quiet_all_filters(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("GET", "/containers/json", 200, [{"Id": CID}, {"Id": "c" * 64}])
    code, out, _ = moor("ps", "-aq", "-f", "status=exited", "--filter", "name=x")
    assert (code, out) == (0, "aaaaaaaaaaaa\ncccccccccccc\n")
    (req,) = daemon.find("GET", "/containers/json")
    assert req.arg("all") == "1"
    assert json.loads(req.arg("filters") or "") == {"status": {"exited": True},
                                                    "name": {"x": True}}


def test_ps_format_json_and_template(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("GET", "/containers/json", 200, [
        {"Id": CID, "Names": ["/web"], "Image": "busybox", "Command": "true", "Created": 0,
         "State": "exited", "Status": "Exited (0) 1 second ago", "Labels": {"b": "2", "a": "1"}},
    ])
    _, out, _ = moor("ps", "-a", "--format", "json")
    row = json.loads(out)
    assert row["ID"] == "aaaaaaaaaaaa"
    assert row["Names"] == "web"
    assert row["Command"] == '"true"'
    assert row["Labels"] == "a=1,b=2"
    assert row["State"] == "exited"
    _, out, _ = moor("ps", "-a", "--format", "{{.ID}}\\t{{.Names}} {{.Label \"b\"}}")
    assert out == "aaaaaaaaaaaa\tweb 2\n"
    _, out, _ = moor("ps", "-a", "--format", "table {{.Names}}\\t{{.State}}")
    assert out == "NAMES     STATE\nweb       exited\n"


def test_images_table_and_quiet(daemon: FakeDaemon, moor: Any) -> None:
    import time

    daemon.json_route("GET", "/images/json", 200, [
        {"Id": "sha256:" + "1" * 64, "RepoTags": ["busybox:latest", "busybox:1.36"],
         "Created": int(time.time() - 3 * 86400), "Size": 4_261_550},
        {"Id": "sha256:" + "2" * 64, "RepoTags": [], "Created": int(time.time() - 30),
         "Size": 1200},
    ])
    code, out, _ = moor("images")
    assert code == 0
    assert out.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE",
        "busybox      latest    111111111111   3 days ago       4.26MB",
        "busybox      1.36      111111111111   3 days ago       4.26MB",
        "<none>       <none>    222222222222   30 seconds ago   1.2kB",
    ]
    _, out, _ = moor("images", "-q")
    assert out == "111111111111\n222222222222\n"


def test_run_detached(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("POST", "/containers/create", 201, {"Id": CID, "Warnings": ["low mem"]})
    daemon.route("POST", f"/containers/{CID}/start", lambda _r, s: reply(s, 204))
    code, out, err = moor("run", "-d", "--name", "web", "-e", "A=1", "-l", "k=v",
                          "--network", "none", "--restart", "on-failure:3", "--init",
                          "busybox", "sleep", "-x", "100")
    assert (code, out) == (0, CID + "\n")
    assert err == "WARNING: low mem\n"
    (req,) = daemon.find("POST", "/containers/create")
    assert req.arg("name") == "web"
    body = req.json()
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["sleep", "-x", "100"]
    assert body["Env"] == ["A=1"]
    assert body["Labels"] == {"k": "v"}
    assert body["AttachStdout"] is False
    assert body["HostConfig"]["NetworkMode"] == "none"
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert body["HostConfig"]["Init"] is True


def _foreground_routes(daemon: FakeDaemon, status: int = 0,
                       frames: bytes = b"", wait_error: str | None = None) -> None:
    """create → attach (101) → wait (headers now, body after start) → start."""
    daemon.json_route("POST", "/containers/create", 201, {"Id": CID, "Warnings": []})
    attached = threading.Event()

    def attach(req: Recorded, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker."
                     b"multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        attached.set()
        daemon.started.wait(10)
        if req.arg("stdin") == "1":
            received = b""
            while data := sock.recv(4096):  # until moor half-closes
                received += data
            sock.sendall(encode_frame(1, b"stdin was: " + received))
        sock.sendall(frames)

    def wait(_req: Recorded, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        daemon.started.wait(10)
        result: dict[str, Any] = {"StatusCode": status, "Error": None}
        if wait_error:
            result["Error"] = {"Message": wait_error}
        sock.sendall(encode_chunked([json.dumps(result).encode() + b"\n"]))

    def start(_req: Recorded, sock: socket.socket) -> None:
        assert attached.is_set()
        assert daemon.find("POST", f"/containers/{CID}/wait"), "wait must come before start"
        reply(sock, 204)
        daemon.started.set()

    daemon.route("POST", f"/containers/{CID}/attach", attach)
    daemon.route("POST", f"/containers/{CID}/wait", wait)
    daemon.route("POST", f"/containers/{CID}/start", start)


def test_run_foreground_streams_and_exits_with_status(daemon: FakeDaemon) -> None:
    _foreground_routes(daemon, status=3, frames=encode_frame(1, b"out\n")
                       + encode_frame(2, b"err\n") + encode_frame(1, b"more\n"))
    done = run_moor_process(daemon, "run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == b"out\nmore\n"
    assert done.stderr == b"err\n"
    (wait,) = daemon.find("POST", f"/containers/{CID}/wait")
    assert wait.arg("condition") == "removed"
    (attach,) = daemon.find("POST", f"/containers/{CID}/attach")
    assert attach.query == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    body = daemon.find("POST", "/containers/create")[0].json()
    assert body["AttachStdout"] is True
    assert body["HostConfig"]["AutoRemove"] is True


def test_run_interactive_copies_stdin_and_half_closes(daemon: FakeDaemon) -> None:
    _foreground_routes(daemon)
    done = run_moor_process(daemon, "run", "-i", "busybox", "cat", stdin=b"hello\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"stdin was: hello\n"
    (wait,) = daemon.find("POST", f"/containers/{CID}/wait")
    assert wait.arg("condition") == "next-exit"
    body = daemon.find("POST", "/containers/create")[0].json()
    assert (body["OpenStdin"], body["AttachStdin"], body["StdinOnce"]) == (True, True, True)


def test_run_daemon_error_in_stream_exits_125(daemon: FakeDaemon) -> None:
    _foreground_routes(daemon, frames=encode_frame(3, b"exec failed: no such file\n"))
    done = run_moor_process(daemon, "run", "busybox", "nope")
    assert done.returncode == 125
    assert b"exec failed: no such file" in done.stderr


def test_run_passes_127_through(daemon: FakeDaemon) -> None:
    _foreground_routes(daemon, status=127)
    assert run_moor_process(daemon, "run", "busybox", "nope").returncode == 127


def test_run_missing_image_tries_pull_and_exits_125(daemon: FakeDaemon, moor: Any) -> None:
    daemon.route("POST", "/containers/create",
                 lambda _r, s: error(s, 404, "No such image: alpine:3.20"))
    daemon.route("POST", "/images/create",
                 lambda _r, s: error(s, 501, "pulling images is not supported yet"))
    code, out, err = moor("run", "alpine:3.20", "true")
    assert code == 125
    assert out == ""
    assert err.splitlines() == [
        "Unable to find image 'alpine:3.20' locally",
        "Error response from daemon: pulling images is not supported yet",
    ]
    (pull,) = daemon.find("POST", "/images/create")
    assert pull.query == {"fromImage": ["docker.io/library/alpine"], "tag": ["3.20"]}


def test_create_conflict_is_125(daemon: FakeDaemon, moor: Any) -> None:
    daemon.route("POST", "/containers/create", lambda _r, s: error(
        s, 409, 'Conflict. The container name "/web" is already in use'))
    code, _, err = moor("create", "--name", "web", "busybox")
    assert code == 125
    assert err == 'Error response from daemon: Conflict. The container name "/web" is ' \
                  "already in use\n"


def test_stop_reports_each_failure(daemon: FakeDaemon, moor: Any) -> None:
    daemon.route("POST", "/containers/a/stop", lambda _r, s: reply(s, 204))
    daemon.route("POST", "/containers/b/stop",
                 lambda _r, s: error(s, 404, "No such container: b"))
    daemon.route("POST", "/containers/c/stop", lambda _r, s: reply(s, 304))
    code, out, err = moor("stop", "-t", "2", "a", "b", "c")
    assert code == 1
    assert out == "a\nc\n"
    assert err == "Error response from daemon: No such container: b\n"
    assert daemon.find("POST", "/containers/a/stop")[0].query == {"t": ["2"]}


def test_kill_rm_restart_params(daemon: FakeDaemon, moor: Any) -> None:
    for path in ("/containers/x/kill", "/containers/x/restart"):
        daemon.route("POST", path, lambda _r, s: reply(s, 204))
    daemon.route("DELETE", "/containers/x", lambda _r, s: reply(s, 204))
    assert moor("kill", "-s", "TERM", "x")[:2] == (0, "x\n")
    assert moor("rm", "-fv", "x")[:2] == (0, "x\n")
    assert moor("restart", "-t", "0", "x")[:2] == (0, "x\n")
    assert daemon.find("POST", "/containers/x/kill")[0].query == {"signal": ["TERM"]}
    assert daemon.find("DELETE", "/containers/x")[0].query == {"force": ["1"], "v": ["1"]}
    assert daemon.find("POST", "/containers/x/restart")[0].query == {"t": ["0"]}


def test_logs_demultiplexes_and_converts_since(daemon: FakeDaemon) -> None:
    daemon.json_route("GET", "/containers/web/json", 200, {"Id": CID, "Config": {"Tty": False}})
    frames = encode_frame(1, b"line one\n") + encode_frame(2, b"oops\n")
    daemon.route("GET", "/containers/web/logs", lambda _r, s: reply(
        s, 200, frames, chunked=True,
        headers={"Content-Type": "application/vnd.docker.multiplexed-stream"}))
    done = run_moor_process(daemon, "logs", "--since", "1700000000", "--until", "10m",
                            "-n", "5", "-t", "web")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"line one\n", b"oops\n")
    (req,) = daemon.find("GET", "/containers/web/logs")
    assert req.arg("since") == "1700000000"
    assert req.arg("tail") == "5"
    assert req.arg("timestamps") == "1"
    assert req.arg("follow") is None
    assert float(req.arg("until") or 0) > 1_700_000_000


def test_logs_raw_for_tty_container(daemon: FakeDaemon) -> None:
    daemon.json_route("GET", "/containers/t/json", 200, {"Id": CID, "Config": {"Tty": True}})
    daemon.route("GET", "/containers/t/logs", lambda _r, s: reply(s, 200, b"raw\r\nbytes"))
    done = run_moor_process(daemon, "logs", "t")
    assert done.stdout == b"raw\r\nbytes"


def test_inspect_falls_back_to_images(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("GET", "/images/busybox/json", 200, {"Id": "sha256:1", "Tag": "<a&b>"})
    code, out, err = moor("inspect", "busybox", "nothing")
    assert code == 1
    # inspect prints like docker: 4-space indent, and (unlike `ps --format json`) no
    # HTML escaping.
    assert out == '[\n    {\n        "Id": "sha256:1",\n        "Tag": "<a&b>"\n    }\n]\n'
    assert err == "Error: No such object: nothing\n"
    code, out, _ = moor("inspect", "-f", "{{.Id}} {{json .Tag}}", "busybox")
    assert (code, out) == (0, 'sha256:1 "<a&b>"\n')


def test_import_streams_file(daemon: FakeDaemon, moor: Any, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(b"x" * 100_000)
    daemon.route("POST", "/images/create", lambda _r, s: reply(
        s, 200, b'{"status":"sha256:' + b"f" * 64 + b'"}\n', chunked=True))
    code, out, _ = moor("import", "-c", "CMD [\"sh\"]", "-c", "ENV A=1", "-m", "hi",
                        str(tarball), "mine:v1")
    assert (code, out) == (0, "sha256:" + "f" * 64 + "\n")
    (req,) = daemon.find("POST", "/images/create")
    assert req.query == {"fromSrc": ["-"], "repo": ["mine"], "tag": ["v1"], "message": ["hi"],
                         "changes": ['CMD ["sh"]', "ENV A=1"]}
    assert req.body == b"x" * 100_000


def test_import_error_in_stream(daemon: FakeDaemon, moor: Any, tmp_path: Path) -> None:
    (tmp_path / "t.tar").write_bytes(b"junk")
    daemon.route("POST", "/images/create", lambda _r, s: reply(
        s, 200, b'{"errorDetail":{"message":"not a tar archive"},"error":"x"}\n'))
    code, _, err = moor("import", str(tmp_path / "t.tar"))
    assert (code, err) == (1, "not a tar archive\n")


def test_rmi_tag_rename_wait(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("DELETE", "/images/old", 200,
                      [{"Untagged": "old:latest"}, {"Deleted": "sha256:" + "e" * 64}])
    daemon.route("POST", "/images/busybox/tag", lambda _r, s: reply(s, 201))
    daemon.route("POST", "/containers/a/rename", lambda _r, s: reply(s, 204))
    daemon.json_route("POST", "/containers/a/wait", 200, {"StatusCode": 42})
    assert moor("rmi", "old")[1] == f"Untagged: old:latest\nDeleted: sha256:{'e' * 64}\n"
    assert moor("tag", "busybox", "registry:5000/me/box")[0] == 0
    assert daemon.find("POST", "/images/busybox/tag")[0].query == {
        "repo": ["registry:5000/me/box"], "tag": ["latest"]}
    assert moor("rename", "a", "b")[0] == 0
    assert moor("wait", "a")[:2] == (0, "42\n")


def test_version_prints_both_sections(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("GET", "/version", 200, {
        "Platform": {"Name": "moorage"}, "Version": "0.1.0", "ApiVersion": "1.50",
        "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {
            "ApiVersion": "1.50", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
            "Experimental": "false"}},
            {"Name": "crun", "Version": "1.8", "Details": {"GitCommit": "abc"}}]})
    code, out, _ = moor("version")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Client:"
    assert lines[1].startswith(" Version:           ")
    assert "Server: moorage" in lines
    assert "  API version:      1.50 (minimum version 1.24)" in lines
    assert " crun:" in lines
    assert "  GitCommit:        abc" in lines


def test_daemon_down_message(tmp_path: Path, moor: Any, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    monkeypatch.setenv("MOORAGE_HOST", f"unix://{tmp_path}/none.sock")
    code, _, err = moor("ps")
    assert code == 1
    assert err == f"Cannot connect to the moorage daemon at unix://{tmp_path}/none.sock. " \
                  "Is moord running?\n"
    code, _, err = moor("run", "busybox")
    assert code == 125


def test_tcp_host_is_refused(moor: Any) -> None:
    code, _, err = moor("-H", "tcp://127.0.0.1:2375", "ps")
    assert code == 1
    assert "only speaks to a unix socket" in err


def test_prune_with_force(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("POST", "/containers/prune", 200,
                      {"ContainersDeleted": [CID], "SpaceReclaimed": 1500})
    code, out, _ = moor("container", "prune", "-f")
    assert code == 0
    assert out == f"Deleted Containers:\n{CID}\n\nTotal reclaimed space: 1.5kB\n"


def test_usage_error_is_125(moor: Any) -> None:
    code, _, err = moor("stop", "--bogus", "x")
    assert code == 125
    assert "No such option '--bogus'" in err


def test_attach_to_running_container_waits_after_the_stream(daemon: FakeDaemon) -> None:
    daemon.json_route("GET", "/containers/web/json", 200, {
        "Id": CID, "State": {"Running": True}, "Config": {"Tty": False, "OpenStdin": False}})
    streamed = threading.Event()

    def attach(_req: Recorded, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                     + encode_frame(1, b"attached\n"))
        streamed.set()

    def wait(req: Recorded, sock: socket.socket) -> None:
        assert streamed.is_set()
        assert req.arg("condition") is None
        reply(sock, 200, {"StatusCode": 4})

    daemon.route("POST", f"/containers/{CID}/attach", attach)
    daemon.route("POST", f"/containers/{CID}/wait", wait)
    done = run_moor_process(daemon, "attach", "web")
    assert (done.returncode, done.stdout) == (4, b"attached\n")
    assert not daemon.find("POST", f"/containers/{CID}/start")


def test_attach_refuses_stopped_container(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("GET", "/containers/old/json", 200, {"Id": CID, "State": {}})
    code, _, err = moor("attach", "old")
    assert (code, err) == (1, "You cannot attach to a stopped container, start it first\n")


def test_start_attach_uses_run_sequence(daemon: FakeDaemon) -> None:
    _foreground_routes(daemon, status=2, frames=encode_frame(1, b"hi\n"))
    daemon.json_route("GET", "/containers/job/json", 200, {
        "Id": CID, "Config": {"Tty": False, "OpenStdin": False},
        "HostConfig": {"AutoRemove": False}})
    done = run_moor_process(daemon, "start", "-a", "job")
    assert (done.returncode, done.stdout) == (2, b"hi\n")


def test_run_start_failure_maps_to_127(daemon: FakeDaemon, moor: Any) -> None:
    daemon.json_route("POST", "/containers/create", 201, {"Id": CID, "Warnings": None})
    daemon.route("POST", f"/containers/{CID}/start", lambda _r, s: error(
        s, 500, "OCI runtime create failed: executable file `nope` not found in $PATH"))
    code, out, err = moor("run", "-d", "busybox", "nope")
    assert (code, out) == (127, "")
    assert err.startswith("Error response from daemon: OCI runtime create failed")
