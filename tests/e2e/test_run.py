"""edgeslim run on real images built from Debian's packages (tests/e2e/fixtures.py): nginx with its
own CMD in a private network namespace (reached from the host through nsenter into that netns),
the Flask app, the static scratch image as its non-root user, a Python server on the host network
with a CMD override, exit code propagation, Ctrl-C (SIGINT) cleanup, and bad input (a command the
image lacks, an image for another architecture, a missing image, usage errors)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time

import pytest

from conftest import bin_path
from fixtures import image


def es_env(tmp_path):
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)  # unpack dir and sandbox state dir land here: checked empty after
    return env


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def container_init(proc, timeout=120):
    """Host pid of the container's init: edgeslim -> relay -> init."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            pytest.fail(f"edgeslim run exited early ({proc.returncode}): {proc.stderr.read().decode()}")
        for relay in children(proc.pid):
            kids = children(relay)
            if kids:
                return kids[0]
        time.sleep(0.2)
    pytest.fail("container did not start")


def in_netns(init_pid, cmd, check=True):
    return subprocess.run(["nsenter", "-t", str(init_pid), "-n"] + cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=check, timeout=60)


def http_in_netns(init_pid, url, timeout=60):
    """GET url inside the container's netns, retrying until the server is up: (status, body)."""
    end = time.time() + timeout
    while True:
        p = in_netns(init_pid, ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", url], check=False)
        if p.returncode == 0:
            body, _, code = p.stdout.decode().rpartition("\n")
            return int(code), body
        if time.time() > end:
            pytest.fail(f"{url} not reachable in the container: {p.stderr.decode()}")
        time.sleep(0.3)


def start_run(args, tmp_path):
    return subprocess.Popen([bin_path(), "run"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=es_env(tmp_path))


def stop(proc, sig=signal.SIGINT):
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("edgeslim run did not stop on a forwarded signal")
    return proc.returncode


def assert_clean(tmp_path, pids=()):
    left = [p for p in os.listdir(tmp_path) if p.startswith("edgeslim-")]
    assert left == [], f"temporary dirs left behind: {left}"
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read(), "a mount under the temp dir is visible on the host"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"container process {pid} still exists"


def run_es(args, tmp_path, timeout=600):
    return subprocess.run([bin_path(), "run"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=es_env(tmp_path), timeout=timeout)


def test_exit_code_propagates_with_cmd_override(tmp_path):
    p = run_es([image("nginx"), "--", "sh", "-c", "cat /etc/os-release | grep -q bookworm && exit 7"], tmp_path)
    assert p.returncode == 7, p.stderr.decode()
    assert_clean(tmp_path)


def test_nginx_own_cmd_private_network(tmp_path):
    proc = start_run([image("nginx")], tmp_path)
    init = container_init(proc)
    code, body = http_in_netns(init, "http://127.0.0.1:80/")
    assert code == 200 and "hello from a real nginx" in body
    code, _ = http_in_netns(init, "http://127.0.0.1:80/no-such-page")
    assert code == 404
    # private netns: loopback only; the workers run as www-data (the image's nginx.conf user)
    dev = in_netns(init, ["cat", "/proc/net/dev"]).stdout.decode().splitlines()[2:]
    assert [line.split(":")[0].strip() for line in dev] == ["lo"]
    procs = [init] + children(init)
    procs += [c for p in list(procs) for c in children(p)]
    users = set()
    for pid in procs:
        with open(f"/proc/{pid}/status") as f:
            users.add(next(l.split()[1] for l in f if l.startswith("Uid:")))
    assert "33" in users and "0" in users
    rc = stop(proc, signal.SIGINT)  # Ctrl-C: forwarded, nginx exits, everything removed
    assert rc == 0, proc.stderr.read().decode()
    assert_clean(tmp_path, procs)


def test_python_flask_app(tmp_path):
    proc = start_run([image("python")], tmp_path)
    init = container_init(proc)
    code, body = http_in_netns(init, "http://127.0.0.1:8000/greet/bob", timeout=120)
    assert code == 200 and json.loads(body) == {"greeting": "hello, bob"}
    code, body = http_in_netns(init, "http://127.0.0.1:8000/")
    assert json.loads(body)["app"] == "edgeslim-fixture-python"
    rc = stop(proc, signal.SIGTERM)
    assert rc in (0, 143), proc.stderr.read().decode()
    assert_clean(tmp_path, [init])


def test_static_image_runs_as_its_user(tmp_path):
    proc = start_run([image("static")], tmp_path)
    init = container_init(proc)
    code, body = http_in_netns(init, "http://127.0.0.1:8080/")
    assert code == 200 and "edgeslim-fixture-static" in body
    app = children(init)[0]
    with open(f"/proc/{app}/status") as f:
        st = f.read()
    assert "\nUid:\t65532\t65532\t65532\t65532\n" in st and "\nGid:\t65532\t65532\t65532\t65532\n" in st
    stop(proc, signal.SIGTERM)
    assert_clean(tmp_path, [init, app])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_host_network_with_cmd_override(tmp_path):
    port = free_port()
    proc = start_run(["--net", "host", image("python"), "--", "python3", "-m", "http.server", str(port),
                      "--bind", "127.0.0.1", "--directory", "/app"], tmp_path)
    init = container_init(proc)
    end = time.time() + 120
    while True:
        try:
            body = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/app.py"], stdout=subprocess.PIPE,
                                  check=True, timeout=30).stdout.decode()
            break
        except subprocess.CalledProcessError:
            if time.time() > end:
                pytest.fail("python http.server on the host network not reachable")
            time.sleep(0.3)
    assert "edgeslim python fixture" in body
    rc = stop(proc, signal.SIGINT)
    assert rc in (0, 1, 130)  # python exits on KeyboardInterrupt
    assert_clean(tmp_path, [init])


def test_ctrl_c_kills_and_cleans_up(tmp_path):
    proc = start_run([image("nginx"), "--", "sleep", "1000"], tmp_path)
    init = container_init(proc)
    app = None
    for _ in range(100):
        kids = children(init)
        if kids:
            app = kids[0]
            break
        time.sleep(0.1)
    assert app
    rc = stop(proc, signal.SIGINT)
    assert rc == 130  # sleep killed by the forwarded SIGINT
    assert_clean(tmp_path, [init, app])


def test_command_not_in_image(tmp_path):
    # the static image's ENTRYPOINT is /server: clear it so the command is `sh -c true`
    p = run_es(["--entrypoint", "", image("static"), "--", "sh", "-c", "true"], tmp_path, timeout=120)
    assert p.returncode == 11
    assert p.stderr.decode().strip() == "edgeslim run: command not found in image: sh"
    assert_clean(tmp_path)


def retarget_arch(src, dst, arch):
    """Copy of a docker-archive whose config says another architecture (names and digests redone)."""
    import hashlib
    with tarfile.open(src) as t:
        members = {m.name: t.extractfile(m).read() if m.isfile() else None for m in t.getmembers()}
    manifest = json.loads(members["manifest.json"])
    old_cfg = manifest[0]["Config"]
    cfg = json.loads(members[old_cfg])
    cfg["architecture"] = arch
    data = json.dumps(cfg).encode()
    new_cfg = hashlib.sha256(data).hexdigest() + ".json"
    manifest[0]["Config"] = new_cfg
    members.pop(old_cfg)
    members[new_cfg] = data
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(dst, "w") as t:
        for name, body in members.items():
            if body is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, __import__("io").BytesIO(body))


def test_other_architecture_is_refused(tmp_path):
    bad = tmp_path / "arm.tar"
    retarget_arch(image("static"), bad, "arm64")
    p = run_es([str(bad)], tmp_path)
    assert p.returncode == 7, p.stderr.decode()
    assert "image is linux/arm64, this host is linux/amd64" in p.stderr.decode()
    assert_clean(tmp_path)


def test_usage_and_missing_image(tmp_path):
    assert run_es(["--help"], tmp_path).returncode == 0
    assert run_es([], tmp_path).returncode == 2
    assert run_es(["--net", "bogus", image("static")], tmp_path).returncode == 2
    p = run_es([str(tmp_path / "nope.tar")], tmp_path)
    assert p.returncode == 3, p.stderr.decode()
    assert_clean(tmp_path)


def test_sigint_during_unpack_cleans_up(tmp_path):
    # SIGINT half a second in lands while the layers are unpacked (or, on a fast machine, after
    # the start, when it is forwarded to sleep): either way 130 and nothing left behind.
    proc = start_run([image("nginx"), "--", "sleep", "1000"], tmp_path)
    time.sleep(0.5)
    rc = stop(proc, signal.SIGINT)
    assert rc == 130, proc.stderr.read().decode()
    assert_clean(tmp_path)


def trace_ops(path):
    with open(path) as f:
        doc = json.load(f)
    return {p["path"]: set(p["ops"]) for p in doc["paths"]}, doc


def test_trace_nginx_workers(tmp_path):
    """Tracing follows nginx's forked workers (running as www-data): the page a worker serves and
    the missing page it looked for show up, besides what the master read at start-up."""
    out = tmp_path / "trace.json"
    proc = start_run(["--trace", str(out), image("nginx")], tmp_path)
    init = container_init(proc)
    assert http_in_netns(init, "http://127.0.0.1:80/")[0] == 200
    assert http_in_netns(init, "http://127.0.0.1:80/no-such-page")[0] == 404
    assert stop(proc, signal.SIGQUIT) == 0  # the image's STOPSIGNAL: graceful
    ops, doc = trace_ops(out)
    assert doc["overflowed"] is False
    assert {"open", "exec"} <= ops["/usr/sbin/nginx"]
    assert "open" in ops["/etc/nginx/nginx.conf"]
    assert "open" in ops["/var/www/html/index.html"]  # opened by a worker, after the fork
    assert "missing" in ops["/var/www/html/no-such-page"]
    assert "listdir" in ops["/etc/nginx/sites-enabled"]
    # a library reached through the merged-/usr symlink: the name asked for and the file opened
    assert "open" in ops["/lib/x86_64-linux-gnu/libc.so.6"]
    assert "open" in ops["/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert {"accept4", "setuid", "execve"} <= set(doc["syscalls"])
    assert not any(p.startswith(("/proc/", "/dev/", "/sys/")) for p in ops)
    assert_clean(tmp_path, [init])


def test_trace_python_threads(tmp_path):
    """Flask's development server answers each request in a new thread: the modules imported
    while answering are traced, and Python's import probing shows up as stat/missing paths."""
    out = tmp_path / "trace.json"
    proc = start_run(["--trace", str(out), image("python")], tmp_path)
    init = container_init(proc)
    code, body = http_in_netns(init, "http://127.0.0.1:8000/greet/bob", timeout=120)
    assert code == 200 and json.loads(body) == {"greeting": "hello, bob"}
    stop(proc, signal.SIGTERM)
    ops, doc = trace_ops(out)
    assert doc["overflowed"] is False
    assert "open" in ops["/app/app.py"]
    assert "exec" in ops["/usr/bin/python3"]
    flask = [p for p, o in ops.items() if p.startswith("/usr/lib/python3/dist-packages/flask/") and "open" in o]
    assert "/usr/lib/python3/dist-packages/flask/__init__.py" in flask
    assert any("missing" in o for p, o in ops.items() if p.startswith("/usr/lib/python3"))
    assert any("listdir" in o for p, o in ops.items() if p.startswith("/usr/lib/python3"))
    assert "clone3" in doc["syscalls"] or "clone" in doc["syscalls"]
    assert_clean(tmp_path, [init])


def busybox_rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE, check=True,
                                 text=True).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    return root


def test_terminal_ctrl_c_reaches_the_app(tmp_path):
    """At a real terminal (a pty), Ctrl-C goes to the whole foreground process group: the app's
    own INT trap runs, edgeslim, the relay and init survive it, and the app's exit code comes back.
    (Whether it arrived once or twice cannot be proven here: two SIGINTs close together coalesce.)"""
    import pty
    root = busybox_rootfs(tmp_path)
    script = ('n=0; trap \'n=$((n+1)); echo INT$n\' INT; echo ready; '
              'while [ $n -lt 1 ]; do sleep 0.1; done; sleep 1; echo total=$n; exit 3')
    pid, master = pty.fork()
    if pid == 0:
        os.environ["TMPDIR"] = str(tmp_path)
        os.execv(bin_path(), [bin_path(), "run", "--rootfs", str(root), "--", "sh", "-c", script])
    out = b""
    sent = False
    end = time.time() + 60
    while time.time() < end:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break  # EIO: the other side closed
        if not chunk:
            break
        out += chunk
        if b"ready" in out and not sent:
            os.write(master, b"\x03")  # the terminal's VINTR
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(master)
    text = out.decode(errors="replace")
    assert "INT1" in text and "total=1" in text and "INT2" not in text, text
    assert os.waitstatus_to_exitcode(status) == 3
    assert_clean(tmp_path)
