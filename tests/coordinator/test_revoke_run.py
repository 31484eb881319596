#!/usr/bin/python3
"""Revocation during a round, through the real binaries on loopback (issue 10):

  ca init, three client certificates -> serve --rounds 1 --min-clients 3
  --quorum 2 -> client-2 joins first, with the whole of Fashion-MNIST (its
  round takes many seconds), then client-0 and client-1 with 900 images each
  -> once both of them have reported their round-1 task, `ca revoke client-2`
  -> the coordinator reloads the CRL and ends client-2's open session at once
  (its log says the certificate is revoked) -> round 1 completes at its
  deadline (15 s) with the quorum of the two others only (participants 2, samples 1800: nothing of client-2's is
  aggregated) -> client-2's reconnections fail their handshake ("certificate
  revoked") and it never joins again. serve runs without --publish: no PUB
  socket is opened (the PUB stream, when asked for, is public).

Usage: test_revoke_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from gbproc import free_port, run  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")


def wait_for(cond, seconds, what):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def text(path):
    with open(path) as f:
        return f.read()


def client(work, port, k, data_args, out):
    name = os.path.join(work, "ca", "clients", "client-%d" % k)
    return subprocess.Popen(
        [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
         "--cert", name + ".crt", "--key", name + ".key",
         "--ca-file", os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist",
         "--threads", "1", "--json"] + data_args,
        stdout=out, stderr=open(os.path.join(work, "client-%d.log" % k), "w"), text=True)


def main():
    work = tempfile.mkdtemp(prefix="gb-revoke-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "revoke")
    for k in range(3):
        run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k)
    port = free_port()
    serve_log = os.path.join(work, "serve.log")
    server = subprocess.Popen(
        [COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % port,
         "--rounds", "1", "--min-clients", "3", "--quorum", "2",
         "--deadline", "15", "--model", "lenet", "--epochs", "1", "--explain", "none",
         "--json"],
        stdout=subprocess.PIPE, stderr=open(serve_log, "w"), text=True)
    ps = []
    try:
        assert server.stdout.readline().startswith("listening on")
        slow_out = open(os.path.join(work, "client-2.out"), "w")
        ps.append(client(work, port, 2, [], slow_out))  # all 60,000 images: a long round
        wait_for(lambda: "'client-2' joined" in text(serve_log), 60, "client-2 to join")
        outs = [os.path.join(work, "client-%d.out" % k) for k in range(2)]
        for k in range(2):
            ps.append(client(work, port, k, ["--limit", "2700", "--clients", "3",
                                             "--index", str(k)], open(outs[k], "w")))
        wait_for(lambda: all('"round":1' in text(o).replace(" ", "") for o in outs), 120,
                 "client-0 and client-1 to finish their round-1 task")
        assert "client-2" not in text(os.path.join(work, "client-2.out")), "too fast"
        run(COORD, "ca", "revoke", "--dir", ca, "--name", "client-2")
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0, "serve exited %d\n%s" % (server.returncode,
                                                                text(serve_log)[-3000:])
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(rounds) == 1, rounds
        assert rounds[0]["participants"] == 2 and rounds[0]["samples"] == 1800, rounds
        log = text(serve_log)
        assert "certificate revoked" in log, log[-3000:]
        assert "session(s) ended" in log, log[-3000:]
        assert log.count("coordinator: 'client-2' joined") == 1, "client-2 came back"
        # without --publish there is no PUB socket: nothing goes out unauthenticated
        assert "publications on" not in log, log[-3000:]
        assert "'/CN=client-2' refused: certificate revoked" in log, log[-3000:]
        print("revoked during round 1: its session ended, the round completed with",
              rounds[0]["participants"], "clients and", rounds[0]["samples"], "samples")
    finally:
        for p in [server] + ps:
            if p.poll() is None:
                p.kill()
            p.wait()


if __name__ == "__main__":
    main()
