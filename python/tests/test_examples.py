"""The original's three example programs, written for this package
(python/examples), run as processes and talking over the wire to the Rust
examples and the `pike` command line, as people would use them."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "python" / "examples"
# The README's test command's features, for a build of the binaries when needed.
FEATURES = "pike/postcard,pike/json,pike/msgpack,pike/metrics,pike/tls,pike/tls-webpki-roots"


def newest_source():
    """The newest modification time of the Rust sources the binaries come from."""
    newest = 0.0
    for tree in ("pike/src", "pike/examples", "pike-cli/src", "Cargo.lock"):
        root = ROOT / tree
        paths = [root] if root.is_file() else root.rglob("*")
        newest = max([newest] + [p.stat().st_mtime for p in paths if p.is_file()])
    return newest


@pytest.fixture(scope="session")
def rust():
    """The path of a Rust example or of the `pike` binary. `cargo test`
    (the README's test command runs it first) builds them all; they are
    built here only if missing or older than their sources, since a cargo
    run from here can see them as stale when the one inside `cargo test`
    does not, and rebuild for nothing."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
    names = ["pike"] + [f"examples/{n}" for n in ("doubler_server", "doubler_client", "chat_server",
                                                   "chat_client", "filecopy_server", "filecopy_client")]
    binaries = [target / n for n in names]
    if not all(b.exists() for b in binaries) or min(b.stat().st_mtime for b in binaries) < newest_source():
        subprocess.run(
            ["cargo", "build", "--quiet", "--workspace", "--examples", "--bin", "pike", "--features", FEATURES],
            cwd=ROOT,
            check=True,
        )

    def path(name):
        exe = target / name if name == "pike" else target / "examples" / name
        assert exe.exists(), f"{exe} not built"
        return str(exe)

    return path


def python_example(name):
    return [sys.executable, "-u", str(EXAMPLES / f"{name}.py")]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_python_doubler_server_with_the_rust_client(procs, rust):
    server = procs(python_example("doubler_server") + ["--port", "0", "--num-threads", "3"])
    port = str(server.listening_port())
    client = procs([rust("doubler_client"), "--host", "127.0.0.1", "--port", port])
    client.type_line("1.5")
    assert client.stdout_line() == "3.0"
    client.type_line("oops")
    assert "oops" in client.stderr_line_with("not a number")
    client.type_line("0.1")
    assert client.stdout_line() == "0.2"
    client.type_line("quit")
    assert client.wait() == 0
    server.type_line("quit")
    assert server.wait() == 0


def test_rust_doubler_server_with_the_python_client(procs, rust):
    server = procs([rust("doubler_server"), "--port", "0", "--num-threads", "3"])
    port = str(server.listening_port())
    client = procs(python_example("doubler_client") + ["--host", "127.0.0.1", "--port", port])
    client.type_line("1.5")
    assert client.stdout_line() == "3.0"
    client.type_line("oops")
    assert "oops" in client.stderr_line_with("not a number")
    client.type_line("-1e16")
    assert client.stdout_line() == "-2e+16"
    client.close_stdin()
    assert client.wait() == 0
    server.close_stdin()
    assert server.wait() == 0


def test_python_doubler_over_a_unix_socket(procs, rust, tmp_path):
    path = str(tmp_path / "doubler.sock")
    server = procs(python_example("doubler_server") + ["--unix", path, "--num-threads", "2"])
    server.stderr_line_with("listening on")
    client = procs([rust("doubler_client"), "--unix", path])
    client.type_line("21")
    assert client.stdout_line() == "42.0"
    client.type_line("quit")
    assert client.wait() == 0
    server.type_line("quit")
    assert server.wait() == 0


def test_python_chat_server_with_rust_and_python_clients(procs, rust):
    server = procs(python_example("chat_server") + ["--port", "0", "--server-nickname", "hub"])
    port = str(server.listening_port())
    alice = procs([rust("chat_client"), "--host", "127.0.0.1", "--port", port])
    alice.type_line("alice")
    assert alice.stdout_line() == "nickname: joined as alice"
    assert server.stdout_line() == "alice joined"
    bob = procs(python_example("chat_client") + ["--host", "127.0.0.1", "--port", port])
    # Taken names are refused and the client asks again.
    bob.type_line("hub")
    assert bob.stdout_line() == "nickname: nickname taken by server"
    bob.type_line("alice")
    assert bob.stdout_line() == "nickname: nickname taken by another user"
    bob.type_line("bob")
    assert bob.stdout_line() == "nickname: joined as bob"
    assert server.stdout_line() == "bob joined"
    alice.type_line("hello bob")
    assert server.stdout_line() == "alice says: hello bob"
    assert bob.stdout_line() == "alice says: hello bob"
    bob.type_line("hi alice")
    assert server.stdout_line() == "bob says: hi alice"
    assert alice.stdout_line() == "bob says: hi alice"
    server.type_line("welcome, both")
    assert alice.stdout_line() == "hub says: welcome, both"
    assert bob.stdout_line() == "hub says: welcome, both"
    bob.type_line("quit")
    assert bob.wait() == 0
    assert server.stdout_line() == "bob left"
    server.type_line("quit")
    assert server.wait() == 0
    assert alice.stdout_line() == "the server closed the chat"
    assert alice.wait() == 0


def test_python_chat_client_with_the_rust_server(procs, rust):
    server = procs([rust("chat_server"), "--port", "0", "--server-nickname", "hub"])
    port = str(server.listening_port())
    ann = procs(python_example("chat_client") + ["--host", "127.0.0.1", "--port", port])
    ann.type_line("ann")
    assert ann.stdout_line() == "nickname: joined as ann"
    assert server.stdout_line() == "ann joined"
    ann.type_line("hello")
    assert server.stdout_line() == "ann says: hello"
    server.type_line("hi ann")
    assert ann.stdout_line() == "hub says: hi ann"
    server.type_line("quit")
    assert server.wait() == 0
    assert ann.stdout_line() == "the server closed the chat"
    assert ann.wait() == 0


def test_the_pike_cli_talks_to_the_python_chat_server(procs, rust):
    server = procs(python_example("chat_server") + ["--port", "0"])
    port = server.listening_port()
    cli = procs([rust("pike"), "connect", f"127.0.0.1:{port}"])
    cli.type_line("carol")
    assert cli.stdout_line().endswith("ok")
    assert server.stdout_line() == "carol joined"
    cli.type_line("from the command line")
    assert server.stdout_line() == "carol says: from the command line"
    cli.close_stdin()
    assert cli.wait() == 0
    assert server.stdout_line() == "carol left"
    server.type_line("quit")
    assert server.wait() == 0


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "src" / "notes.txt"
    path.parent.mkdir()
    with open(path, "w") as f:
        for i in range(50_000):
            f.write(f"line {i}\n")
    return path


def test_python_filecopy_client_to_the_rust_server(procs, rust, tmp_path, source_file):
    received = tmp_path / "received"
    server = procs([rust("filecopy_server"), "--port", "0", "--directory", str(received)])
    port = str(server.listening_port())
    for expected in ("notes.txt", "notes_(1).txt"):
        client = procs(
            python_example("filecopy_client")
            + ["--host", "127.0.0.1", "--port", port, "--filename", str(source_file)]
        )
        assert client.wait() == 0
        saved = Path(server.stdout_line())
        assert saved == received / expected
        assert digest(saved) == digest(source_file)
    server.type_line("quit")
    assert server.wait() == 0


def test_rust_filecopy_client_to_the_python_server(procs, rust, tmp_path, source_file):
    received = tmp_path / "received"
    server = procs(python_example("filecopy_server") + ["--port", "0", "--directory", str(received)])
    port = str(server.listening_port())
    client = procs(
        [rust("filecopy_client"), "--host", "127.0.0.1", "--port", port, "--filename", str(source_file)]
    )
    assert client.wait() == 0
    saved = Path(server.stdout_line())
    assert saved == received / "notes.txt"
    assert digest(saved) == digest(source_file)
    server.type_line("quit")
    assert server.wait() == 0


def test_python_filecopy_client_to_pike_recv_files(procs, rust, tmp_path, source_file):
    received = tmp_path / "received"
    server = procs([rust("pike"), "recv-files", "127.0.0.1:0", "--dir", str(received), "--count", "1"])
    port = str(server.listening_port())
    client = procs(
        python_example("filecopy_client")
        + ["--host", "127.0.0.1", "--port", port, "--filename", str(source_file)]
    )
    assert client.wait() == 0
    assert server.wait() == 0
    assert digest(received / "notes.txt") == digest(source_file)
