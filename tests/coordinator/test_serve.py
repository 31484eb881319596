#!/usr/bin/python3
"""glassbox-coordinator serve and glassbox-client enroll, end to end through
the real binaries, on loopback:

  ca init -> token create (2 uses) -> serve ->
  enroll edge-1 (granted: key 0600, certificate that `openssl verify` accepts)
  -> enroll with a wrong token (refused: ERROR_UNAUTHENTICATED, logged)
  -> enroll edge-2 (granted, last use) -> enroll edge-3 (refused: used up)
  -> edge-1 joins with its new certificate (Python's ssl over pyzmq:
     Welcome with client id edge-1, Heartbeat acknowledged, a malformed
     message answered with ERROR_MALFORMED and the session kept)
  -> ca revoke edge-1 -> serve reloads crl.pem by itself -> edge-1's next
     handshake is refused, while edge-2 still joins
  -> SIGTERM: serve exits 0.

Usage: test_serve.py BUILD_DIR SOURCE_DIR
"""
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time

import zmq

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
import gblink  # noqa: E402 (tests/support)
from gbproc import free_port, run  # noqa: E402 (tests/support)

CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
NAME = "localhost"  # the coordinator's certificate name, and the host clients dial
pb = gblink.load_protocol(SOURCE)


def join(ca_dir, ident, name, expect_refusal=False):
    """Connects as `name` with ident/name.{crt,key}; returns the replies to
    Join, Heartbeat and a malformed message, or None when the handshake is
    refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(ca_dir, "ca.crt"))
    ctx.load_cert_chain(os.path.join(ident, name + ".crt"), os.path.join(ident, name + ".key"))
    zctx = zmq.Context()
    sock = zctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(ENDPOINT)
    s = gblink.TlsOverLink(ctx, False, lambda h, p: sock.send_multipart([h, p]),
                           secrets.randbits(63) + 1, NAME)
    got, failed = [], []

    def pump():
        if not sock.poll(50):
            return
        h, payload = sock.recv_multipart()
        if h[0:1] == b"R":
            failed.append("reset")
            return
        try:
            s.feed(payload)
        except ssl.SSLError as e:
            failed.append(str(e))
            return
        for body in s.messages():
            env = pb.Envelope()
            env.ParseFromString(body)
            got.append(env)

    try:
        s.step()
        ok = gblink.wait_for(lambda: s.accepted or failed, pump, 10)
        if expect_refusal:
            assert failed and not s.accepted, "a revoked client was accepted"
            return None
        assert ok and s.accepted, "no session: %s" % failed
        s.send(gblink.envelope(pb, 1, join=pb.Join(min_protocol_version=1,
                                                   max_protocol_version=1, client_name=name,
                                                   software_version="test_serve")))
        s.send(gblink.envelope(pb, 2, heartbeat=pb.Heartbeat(sent_unix_ms=1,
                                                             state=pb.CLIENT_STATE_IDLE)))
        s.send(b"\x08\x00 not an envelope")
        assert gblink.wait_for(lambda: len(got) >= 3, pump, 10), "replies: %s" % got
        return got
    finally:
        zctx.destroy(linger=0)


def main():
    global ENDPOINT
    work = tempfile.mkdtemp(prefix="gb-serve-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "test", "--name", NAME)
    token = os.path.join(work, "token")
    run(COORD, "token", "create", "--dir", ca, "--uses", "2", "--ttl", "600", "--out", token)
    port = free_port()
    ENDPOINT = "tcp://%s:%d" % (NAME, port)
    log = open(os.path.join(work, "serve.log"), "w+")
    serve = subprocess.Popen([COORD, "serve", "--ca", ca, "--listen",
                              "tcp://127.0.0.1:%d" % port, "--federation", "test",
                              "--publish", "none"],
                             stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = serve.stdout.readline()
        assert line.startswith("listening on"), line

        def enroll(name, token_file, rc):
            return run(CLIENT, "enroll", "--coordinator", ENDPOINT, "--token-file", token_file,
                       "--ca-file", os.path.join(ca, "ca.crt"), "--out",
                       os.path.join(work, name), "--name", name, "--timeout", "20", rc=rc)

        enroll("edge-1", token, 0)
        ident1 = os.path.join(work, "edge-1")
        assert os.stat(os.path.join(ident1, "edge-1.key")).st_mode & 0o777 == 0o600
        v = run("openssl", "verify", "-CAfile", os.path.join(ca, "ca.crt"),
                os.path.join(ident1, "edge-1.crt"))
        assert "OK" in v.stdout, v.stdout

        wrong = os.path.join(work, "wrong-token")
        with open(wrong, "w") as f:
            f.write("ab" * 32 + "\n")
        p = enroll("edge-9", wrong, 1)
        assert "ERROR_UNAUTHENTICATED" in p.stderr, p.stderr
        enroll("edge-2", token, 0)
        p = enroll("edge-3", token, 1)
        assert "ERROR_UNAUTHENTICATED" in p.stderr, p.stderr

        got = join(ca, ident1, "edge-1")
        kinds = [e.WhichOneof("body") for e in got]
        assert kinds == ["welcome", "ack", "error"], kinds
        assert got[0].welcome.client_id == "edge-1" and got[0].welcome.federation == "test"
        assert got[1].ack.acked_sequence == 2
        assert got[2].error.code == pb.ERROR_MALFORMED, got[2].error
        print("enrolled edge-1 and edge-2; refused a wrong and a used-up token; "
              "edge-1 joined: ok")

        run(COORD, "ca", "revoke", "--dir", ca, "--name", "edge-1")
        time.sleep(1.5)  # serve looks at crl.pem's time stamp every second
        join(ca, ident1, "edge-1", expect_refusal=True)
        got = join(ca, os.path.join(work, "edge-2"), "edge-2")
        assert got[0].WhichOneof("body") == "welcome"
        print("after ca revoke: edge-1 refused, edge-2 still joins: ok")

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=10) == 0
        log.seek(0)
        text = log.read()
        for expected in ("enrollment token", "revocation list reloaded", "'edge-1' joined"):
            assert expected in text, "serve's log lacks %r:\n%s" % (expected, text)
        assert open(token).read().strip() not in text, "the token was logged"
        print("serve: ok")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
