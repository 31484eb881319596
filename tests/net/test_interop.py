#!/usr/bin/python3
"""Interoperability of Glassbox's link with an independent TLS stack.

Python's ssl module (an SSLObject over two MemoryBIOs) speaks the link
framing of common/net/link.h over pyzmq, and protocol messages generated from
proto/glassbox.proto by protoc for Python. Both directions are checked
against the real C code in tests/net/link_peer.c:

  1. Python client -> C server: mutual TLS 1.3 handshake with alice's
     certificate, Join -> Welcome, Heartbeat -> Ack, and a malformed
     envelope -> Error(ERROR_MALFORMED) with the session still usable.
  2. C client -> Python server: the C client checks the Python coordinator's
     certificate and name, sends Join and Heartbeat, and expects Welcome and
     Ack; the Python side checks the client's certificate (CN bob).

Usage: test_interop.py BUILD_DIR SOURCE_DIR
"""
import os
import secrets
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import gblink  # noqa: E402 (tests/support)
from gblink import TlsOverLink, wait_for  # noqa: E402

BUILD, SOURCE = sys.argv[1], sys.argv[2]
PKI = os.path.join(BUILD, "test-pki")
PEER = os.path.join(BUILD, "tests", "gb_link_peer")
SERVER_NAME = "coordinator.test"


pb = gblink.load_protocol(SOURCE)


def envelope(seq, **body):
    return gblink.envelope(pb, seq, **body)


def python_client_against_c_server():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(PKI, "ca.pem"))
    ctx.load_cert_chain(os.path.join(PKI, "alice.pem"), os.path.join(PKI, "alice.key"))

    zctx = zmq.Context()
    port_file = tempfile.mktemp()
    server = subprocess.Popen([PEER, "server", PKI, "tcp://127.0.0.1:*", port_file],
                              stdout=subprocess.PIPE, text=True)
    try:
        end = time.time() + 10
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            assert time.time() < end, "C server did not start"
            time.sleep(0.05)
        endpoint = open(port_file).read().strip()
        sock = zctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        session = TlsOverLink(ctx, False, lambda h, p: sock.send_multipart([h, p]),
                              secrets.randbits(63) + 1, SERVER_NAME)
        session.step()  # ClientHello

        received = []

        def pump():
            if sock.poll(50):
                h, payload = sock.recv_multipart()
                assert h[0:1] == b"D", "unexpected link frame %r" % h[0:1]
                session.feed(payload)
                for body in session.messages():
                    env = pb.Envelope()
                    env.ParseFromString(body)
                    received.append(env)

        assert wait_for(lambda: session.established, pump), "no handshake with the C server"
        assert wait_for(lambda: session.accepted, pump), "the C server did not accept"
        assert session.tls.version() == "TLSv1.3", session.tls.version()
        peer = dict(x[0] for x in session.tls.getpeercert()["subject"])
        assert peer["commonName"] == SERVER_NAME, peer

        session.send(envelope(1, join=pb.Join(min_protocol_version=1, max_protocol_version=1,
                                              client_name="alice",
                                              software_version="python interop")))
        assert wait_for(lambda: len(received) >= 1, pump), "no Welcome"
        assert received[0].WhichOneof("body") == "welcome", received[0]
        assert received[0].welcome.protocol_version == 1

        session.send(envelope(2, heartbeat=pb.Heartbeat(sent_unix_ms=int(time.time() * 1000),
                                                        state=pb.CLIENT_STATE_IDLE)))
        assert wait_for(lambda: len(received) >= 2, pump), "no Ack"
        assert received[1].WhichOneof("body") == "ack", received[1]
        assert received[1].ack.acked_sequence == 2

        session.send(b"\xff\xff\xff not protobuf")
        assert wait_for(lambda: len(received) >= 3, pump), "no Error"
        assert received[2].WhichOneof("body") == "error", received[2]
        assert received[2].error.code == pb.ERROR_MALFORMED, received[2].error

        session.send(envelope(3, heartbeat=pb.Heartbeat(sent_unix_ms=1,
                                                        state=pb.CLIENT_STATE_TRAINING)))
        assert wait_for(lambda: len(received) >= 4, pump), "session died after a bad message"
        assert received[3].WhichOneof("body") == "ack"
        sock.close()
        print("python client -> C server: handshake, Join/Welcome, Heartbeat/Ack, "
              "malformed/Error: ok")
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
        sys.stdout.write(out)
        zctx.destroy(linger=0)


def c_client_against_python_server():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(os.path.join(PKI, "ca.pem"))
    ctx.load_cert_chain(os.path.join(PKI, "coordinator.pem"),
                        os.path.join(PKI, "coordinator.key"))

    zctx = zmq.Context()
    sock = zctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    client = subprocess.Popen([PEER, "client", PKI, "tcp://127.0.0.1:%d" % port, "bob"],
                              stdout=subprocess.PIPE, text=True)
    sessions = {}
    got = []
    try:
        def pump():
            if not sock.poll(50):
                return
            rid, h, payload = sock.recv_multipart()
            kind, sid = h[0:1].decode(), struct.unpack(">Q", h[1:9])[0]
            if kind == "H":
                sessions[rid] = TlsOverLink(
                    ctx, True, lambda hh, p, rid=rid: sock.send_multipart([rid, hh, p]), sid)
            s = sessions[rid]
            s.feed(payload)
            for body in s.messages():
                env = pb.Envelope()
                env.ParseFromString(body)
                got.append(env)
                which = env.WhichOneof("body")
                if which == "join":
                    peer = dict(x[0] for x in s.tls.getpeercert()["subject"])
                    assert peer["commonName"] == "bob", peer
                    s.send(envelope(1, welcome=pb.Welcome(protocol_version=1,
                                                          client_id="bob",
                                                          federation="interop",
                                                          heartbeat_interval_ms=1000,
                                                          heartbeat_timeout_ms=5000,
                                                          software_version="python")))
                elif which == "heartbeat":
                    s.send(envelope(2, ack=pb.Ack(acked_sequence=env.sequence)))

        assert wait_for(lambda: client.poll() is not None, pump, 20), "C client did not finish"
        out, _ = client.communicate()
        sys.stdout.write(out)
        assert client.returncode == 0, "C client failed (exit %d)" % client.returncode
        kinds = [e.WhichOneof("body") for e in got]
        assert kinds[:2] == ["join", "heartbeat"], kinds
        print("C client -> python server: handshake, Join/Welcome, Heartbeat/Ack: ok")
    finally:
        if client.poll() is None:
            client.kill()
        zctx.destroy(linger=0)


if __name__ == "__main__":
    python_client_against_c_server()
    c_client_against_python_server()
    print("interop: ok")
