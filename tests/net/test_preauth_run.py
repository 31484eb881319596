#!/usr/bin/python3
"""Outsiders before any certificate, against the real coordinator.

serve --rounds 1 --min-clients 1 (MLP), then, from this process:

  - 70 peers each open a TLS handshake (a real ClientHello) and never finish
    it, and keep doing so with fresh peers for the whole test;
  - 60 anonymous (enrolling) sessions each send the start of a 4 MiB message;
  - one socket sends 50,000 junk frames;

and while that goes on an honest `glassbox-client run` joins, trains and
finishes the round. What must hold: the honest client is in within a few
seconds of starting (the handshake flood holds at most its address's share
of the slots, and half-open handshakes give way), the anonymous sessions are
cut off at the pre-authentication byte bound (the coordinator grows by far
less than the 240 MiB they announced), the junk writes a bounded number of
log lines (the rest counted as held back), and serve and the client exit 0.

Usage: test_preauth_run.py BUILD_DIR SOURCE_DIR
"""
import os
import re
import secrets
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import zmq

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
import gblink  # noqa: E402 (tests/support)
from gbproc import free_port, rss_mib, run  # noqa: E402

CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")








class Flood:
    """Half-open handshakes: a ClientHello each, never followed up."""

    def __init__(self, zctx, endpoint, ca_file):
        self.zctx, self.endpoint = zctx, endpoint
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_verify_locations(ca_file)
        self.socks = []

    def hello(self):
        sock = self.zctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(self.endpoint)
        t = gblink.TlsOverLink(self.ctx, False, lambda h, p: sock.send_multipart([h, p]),
                               secrets.randbits(63) + 1, "localhost")
        t.step()
        self.socks.append(sock)
        if len(self.socks) > 400:  # the oldest peers go; their slots were lost anyway
            self.socks.pop(0).close()

    def drain(self):
        for s in self.socks:
            while s.poll(0):
                s.recv_multipart()


def anonymous_partial(zctx, endpoint, ca_file, deadline):
    """An enrolling session that announces a 4 MiB message and sends 1 MiB of it;
    returns True when the coordinator cut it off (reset, alert or close)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca_file)
    sock = zctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    t = gblink.TlsOverLink(ctx, False, lambda h, p: sock.send_multipart([h, p]),
                           secrets.randbits(63) + 1, "localhost")
    ended = []

    def pump():
        if not sock.poll(20):
            return
        h, payload = sock.recv_multipart()
        if h[0:1] in (b"R", b"B"):
            ended.append(h[0:1])
            return
        try:
            t.feed(payload)
        except (ssl.SSLError, ssl.SSLZeroReturnError) as e:
            ended.append(str(e))
        list(t.messages())

    t.step()
    assert gblink.wait_for(lambda: t.accepted or ended, pump, 10), "no anonymous session"
    if ended:
        return True
    t.tls.write(struct.pack(">I", 4 << 20))
    for _ in range(16):
        t.tls.write(b"\0" * 65536)
        t.flush()
    gblink.wait_for(lambda: ended, pump, max(0.5, deadline - time.time()))
    sock.close()
    return bool(ended)


def main():
    work = tempfile.mkdtemp(prefix="gb-preauth-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "preauth")
    run(COORD, "ca", "issue", "--dir", ca, "--name", "honest")
    ca_file = os.path.join(ca, "ca.crt")
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    serve_log = os.path.join(work, "serve.log")
    server = subprocess.Popen(
        [COORD, "serve", "--ca", ca, "--listen", endpoint, "--http", "none", "--model", "mlp",
         "--rounds", "1", "--min-clients", "1", "--epochs", "1", "--explain", "none",
         "--finished-grace", "0"],
        stdout=subprocess.PIPE, stderr=open(serve_log, "w"), text=True)
    zctx = zmq.Context()
    client = None
    try:
        assert server.stdout.readline().startswith("listening on")
        time.sleep(0.5)
        base_rss = rss_mib(server.pid)

        flood = Flood(zctx, endpoint, ca_file)
        for _ in range(70):
            flood.hello()
        # the anonymous partial messages, one after another
        cut = sum(anonymous_partial(zctx, endpoint, ca_file, time.time() + 3)
                  for _ in range(60))
        assert cut == 60, "only %d of 60 anonymous floods were cut off" % cut
        grown = rss_mib(server.pid) - base_rss
        print("60 anonymous sessions announcing 4 MiB each: all cut off; coordinator grew "
              "%.1f MiB" % grown)
        assert grown < 64, "the coordinator grew %.1f MiB" % grown

        junk = zctx.socket(zmq.DEALER)
        junk.linger = 0
        junk.connect(endpoint)
        t0 = time.time()
        for i in range(50000):
            junk.send(b"x")
        print("50,000 junk frames sent in %.1f s" % (time.time() - t0))

        name = os.path.join(ca, "clients", "honest")
        started = time.time()
        client = subprocess.Popen(
            [CLIENT, "run", "--coordinator", endpoint, "--cert", name + ".crt",
             "--key", name + ".key", "--ca-file", ca_file, "--data", "fashion-mnist",
             "--limit", "1000", "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "honest.log"), "w"))
        joined = None
        while client.poll() is None and time.time() - started < 120:
            for _ in range(10):
                flood.hello()  # the flood goes on
            flood.drain()
            if joined is None and "'honest' joined" in open(serve_log).read():
                joined = time.time() - started
            time.sleep(0.1)
        if joined is None and "'honest' joined" in open(serve_log).read():
            joined = time.time() - started  # it finished between two looks
        assert joined is not None, "the honest client never joined"
        print("honest client joined %.1f s after it started, during the flood" % joined)
        assert joined < 10, "the flood kept the honest client out for %.1f s" % joined
        client.wait(timeout=60)
        assert client.returncode == 0, "the honest client exited %d" % client.returncode
        server.wait(timeout=60)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        log = open(serve_log).read().splitlines()
        peer_lines = [l for l in log if re.search(r"link: (peer|new peer|too many)", l)]
        held = sum(int(m.group(1)) for m in
                   (re.search(r"(\d+) more log lines about misbehaving peers", l) for l in log)
                   if m)
        print("serve wrote %d log lines in all, %d about junk and refused peers; %d held "
              "back" % (len(log), len(peer_lines), held))
        assert len(log) < 3000, "%d log lines" % len(log)
        assert held > 10000, "only %d lines were held back" % held
    finally:
        for p in (server, client):
            if p and p.poll() is None:
                p.kill()
        zctx.destroy(linger=0)
    print("ok: outsiders held to their budgets; the honest client was served")


if __name__ == "__main__":
    main()
