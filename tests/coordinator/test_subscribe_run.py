#!/usr/bin/python3
"""The federation's publication stream is for the federation (issue 10),
through the real binaries on loopback:

  ca init; client-0, client-1 and a subscriber "watcher" from the CA; an
  "outsider" from another CA -> serve --rounds 2 --min-clients 2 without
  --publish (no PUB socket) -> `glassbox-client subscribe` as watcher, and as
  the outsider -> two clients run two rounds -> the subscriber is not a
  participant (2 per round) and saved both rounds' publications, which pass
  README's openssl recipe (signer's name and purpose, the publication-signing
  mark, the signature) -> the outsider's handshake is refused and it saved
  nothing.

Usage: test_subscribe_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from gbproc import free_port  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
MARK = "2.25.61096395399426130411232771718032252530"


def run(*args, rc=0, cwd=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)
    assert p.returncode == rc, "%s: exit %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr)
    return p


def subscribe(work, port, ca_dir, name, out, extra):
    os.makedirs(out)
    crt = os.path.join(ca_dir, "clients", name)
    return subprocess.Popen(
        [CLIENT, "subscribe", "--coordinator", "tcp://127.0.0.1:%d" % port,
         "--server-name", "localhost", "--cert", crt + ".crt", "--key", crt + ".key",
         "--ca-file", os.path.join(ca_dir, "ca.crt"), "--out", out] + extra,
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, name + ".log"), "w"), text=True)


def main():
    work = tempfile.mkdtemp(prefix="gb-subscribe-")
    ca, other = os.path.join(work, "ca"), os.path.join(work, "other")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "sub")
    run(COORD, "ca", "init", "--dir", other, "--federation", "other")
    for name in ("client-0", "client-1", "watcher"):
        run(COORD, "ca", "issue", "--dir", ca, "--name", name)
    run(COORD, "ca", "issue", "--dir", other, "--name", "outsider")
    port = free_port()
    serve_log = os.path.join(work, "serve.log")
    server = subprocess.Popen(
        [COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % port,
         "--rounds", "2", "--min-clients", "2", "--model", "mlp", "--epochs", "1",
         "--explain", "none", "--deadline", "60", "--json"],
        stdout=subprocess.PIPE, stderr=open(serve_log, "w"), text=True)
    ps = []
    try:
        assert server.stdout.readline().startswith("listening on")
        got = os.path.join(work, "got")
        watcher = subscribe(work, port, ca, "watcher", got, ["--count", "2", "--timeout", "120"])
        # the outsider trusts this coordinator's CA (and its own, so that its
        # certificate loads) but holds another CA's certificate
        both = os.path.join(work, "both-ca.crt")
        with open(both, "w") as f:
            f.write(open(os.path.join(ca, "ca.crt")).read() +
                    open(os.path.join(other, "ca.crt")).read())
        outsider = subprocess.Popen(
            [CLIENT, "subscribe", "--coordinator", "tcp://127.0.0.1:%d" % port,
             "--server-name", "localhost",
             "--cert", os.path.join(other, "clients", "outsider.crt"),
             "--key", os.path.join(other, "clients", "outsider.key"),
             "--ca-file", both, "--out", work, "--timeout", "6"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "outsider.log"), "w"),
            text=True)
        ps += [watcher, outsider]
        for k in range(2):
            name = os.path.join(ca, "clients", "client-%d" % k)
            ps.append(subprocess.Popen(
                [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
                 "--cert", name + ".crt", "--key", name + ".key",
                 "--ca-file", os.path.join(ca, "ca.crt"), "--server-name", "localhost",
                 "--data", "fashion-mnist", "--limit", "1200", "--clients", "2",
                 "--index", str(k), "--threads", "1", "--json"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "client-%d.log" % k), "w")))
        out, _ = server.communicate(timeout=180)
        assert server.returncode == 0, open(serve_log).read()[-3000:]
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["participants"] for r in rounds] == [2, 2], rounds  # watcher is no participant
        wout, _ = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, wout + open(os.path.join(work, "watcher.log")).read()
        assert "round 1: verified" in wout and "round 2: verified" in wout, wout
        oout, _ = outsider.communicate(timeout=60)
        assert outsider.returncode == 1, oout
        assert not [f for f in os.listdir(work) if f.endswith(".pub")], os.listdir(work)
        log = open(serve_log).read()
        assert "'watcher' subscribed to publications" in log, log[-3000:]
        assert "publications on" not in log  # no PUB socket
        assert "CN=outsider" in log and "refused" in log, log[-3000:]
        # README's recipe on what the subscriber saved
        run("cp", os.path.join(ca, "ca.crt"), got)
        v = run("openssl", "verify", "-CAfile", "ca.crt", "-purpose", "sslserver",
                "-verify_hostname", "localhost", "coordinator.crt", cwd=got)
        assert "coordinator.crt: OK" in v.stdout
        e = run("openssl", "x509", "-in", "coordinator.crt", "-noout", "-ext",
                "extendedKeyUsage", cwd=got)
        assert MARK in e.stdout, e.stdout
        run("sh", "-c", "openssl x509 -in coordinator.crt -pubkey -noout > c.pem", cwd=got)
        for r in (1, 2):
            d = run("openssl", "dgst", "-sha256", "-verify", "c.pem", "-signature",
                    "round-%06d.sig" % r, "round-%06d.pub" % r, cwd=got)
            assert "Verified OK" in d.stdout
        print("subscriber saved and verified rounds 1, 2; the outsider got nothing")
    finally:
        for p in [server] + ps:
            if p.poll() is None:
                p.kill()
            p.wait()


if __name__ == "__main__":
    main()
