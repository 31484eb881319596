#!/usr/bin/python3
"""`glassbox-client run` from the command line, through the real binaries:

  --help describes the command and its partition options; the command list
  names it; every bad flag or value exits 2 and names the flag; a missing
  certificate, key or CA file exits 1 naming the flag and the file; --virtual
  refuses --cert, --key and --name, needs --cert-dir and enough --clients
  (exit 2 naming the flag), --cert-dir and --name-prefix need --virtual, and a
  certificate missing from --cert-dir exits 1 naming the file; and, with
  a CA from `glassbox-coordinator ca init` / `ca issue` and `serve`, the
  daemon joins over mutual TLS, says it was welcomed, and on SIGTERM closes
  its session (the coordinator logs that it left) and exits 0.

Usage: test_run_cli.py BUILD_DIR
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "."
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from gbproc import free_port  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")


def run(*args, rc):
    p = subprocess.run([CLIENT, "run", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == rc, "%s: exit %d, want %d\n%s%s" % (args, p.returncode, rc,
                                                               p.stdout, p.stderr)
    return p


def wait_for(path, text, proc, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        with open(path, encoding="utf-8", errors="replace") as f:
            if text in f.read():
                return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, encoding="utf-8", errors="replace") as f:
        raise AssertionError("no %r in %s:\n%s" % (text, path, f.read()))


class RunCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ca = os.path.join(self.tmp.name, "ca")
        subprocess.run([COORD, "ca", "init", "--dir", self.ca], check=True,
                       capture_output=True, timeout=60)
        subprocess.run([COORD, "ca", "issue", "--dir", self.ca, "--name", "edge-1"],
                       check=True, capture_output=True, timeout=60)
        ident = os.path.join(self.ca, "clients")
        self.ident = ["--cert", os.path.join(ident, "edge-1.crt"),
                      "--key", os.path.join(ident, "edge-1.key"),
                      "--ca-file", os.path.join(self.ca, "ca.crt")]
        self.csv = os.path.join(self.tmp.name, "d.csv")
        with open(self.csv, "w") as f:
            f.write("a,b,label\n")
            for i in range(100):
                f.write("%d,%d,%d\n" % (i % 7, i % 5, i % 2))
        self.data = ["--data", "csv:" + self.csv, "--label", "label"]

    def tearDown(self):
        self.tmp.cleanup()

    def test_help(self):
        p = run("--help", rc=0)
        self.assertIn("usage: glassbox-client run", p.stdout)
        for flag in ("--coordinator", "--cert", "--key", "--ca-file", "--server-name",
                     "--virtual", "--cert-dir", "--name-prefix",
                     "--partition", "--clients", "--index", "--partition-seed", "--threads",
                     "--limit", "--json", "--log"):
            self.assertIn(flag, p.stdout)
        p = subprocess.run([CLIENT, "--help"], capture_output=True, text=True, timeout=60)
        self.assertIn("  run ", p.stdout)

    def test_bad_flags_exit_2(self):
        ok = ["--coordinator", "tcp://127.0.0.1:1", *self.ident]
        cases = [
            (["--bogus"], "--bogus"),
            ([*self.ident], "--coordinator"),
            (["--coordinator", "tcp://127.0.0.1:1"], "--cert"),
            ([*ok, "--threads", "0"], "--threads"),
            ([*ok, "--log", "loud"], "--log"),
            ([*ok, "--limit", "x"], "--limit"),
            ([*ok, "--partition", "sorted", "--clients", "2"], "--partition"),
            ([*ok, "--clients", "3", "--index", "3"], "--index 3"),
            ([*ok, "--clients", "0"], "--clients"),
            ([*ok, "--partition-seed", "-1"], "--partition-seed"),
            (["--coordinator", "http://x:1", *self.ident], "--coordinator"),
        ]
        for args, flag in cases:
            with self.subTest(args=args):
                p = run(*args, rc=2)
                self.assertIn(flag, p.stderr)
                last = p.stderr.strip().splitlines()[-1]
                self.assertTrue(last.startswith("glassbox-client run: "), p.stderr)

    def test_virtual_flags_exit_2(self):
        ca = ["--coordinator", "tcp://127.0.0.1:1", "--ca-file", os.path.join(self.ca, "ca.crt")]
        certs = ["--cert-dir", os.path.join(self.ca, "clients")]
        cases = [
            ([*ca, "--virtual", "2", "--clients", "2", *certs,
              "--cert", self.ident[1]], "--cert cannot be used with --virtual"),
            ([*ca, "--virtual", "2", "--clients", "2", *certs,
              "--key", self.ident[3]], "--key cannot be used with --virtual"),
            ([*ca, "--virtual", "2", "--clients", "2", *certs, "--name", "x"],
             "--name cannot be used with --virtual"),
            ([*ca, "--virtual", "2", "--clients", "2"], "--cert-dir is required"),
            ([*ca, "--virtual", "0", "--clients", "2", *certs], "--virtual"),
            ([*ca, "--virtual", "x", *certs], "--virtual"),
            ([*ca, "--virtual", "3", "--clients", "2", *certs],
             "--clients 2 is too few for --index 0 and --virtual 3"),
            ([*ca, "--virtual", "2", "--clients", "4", "--index", "3", *certs],
             "--clients 4 is too few for --index 3 and --virtual 2"),
            ([*ca, *self.ident[:4], *certs], "--cert-dir needs --virtual"),
            ([*ca, *self.ident[:4], "--name-prefix", "edge-"], "--name-prefix needs --virtual"),
            ([*ca, "--key", self.ident[3]], "--cert is required"),
            ([*ca, "--cert", self.ident[1]], "--key is required"),
            (["--coordinator", "tcp://127.0.0.1:1", *self.ident[:4]], "--ca-file is required"),
            (["--coordinator", "tcp://127.0.0.1:1", "--virtual", "1", *certs],
             "--ca-file is required"),
        ]
        for args, text in cases:
            with self.subTest(args=args):
                p = run(*args, *self.data, rc=2)
                self.assertIn(text, p.stderr)
                last = p.stderr.strip().splitlines()[-1]
                self.assertTrue(last.startswith("glassbox-client run: "), p.stderr)

    def test_virtual_missing_cert_exit_1(self):
        # edge-1 is the only identity in the directory: with --name-prefix edge-
        # client edge-1 is found and edge-2 is not; with the default prefix
        # client-0 is missing. Neither run loads data or connects.
        certs = os.path.join(self.ca, "clients")
        ca = ["--coordinator", "tcp://127.0.0.1:1", "--ca-file", self.ident[5],
              "--cert-dir", certs]
        p = run(*ca, "--virtual", "2", "--clients", "3", "--index", "1",
                "--name-prefix", "edge-", *self.data, rc=1)
        self.assertIn(os.path.join(certs, "edge-2.crt"), p.stderr)
        self.assertNotIn("edge-1.", p.stderr)
        p = run(*ca, "--virtual", "1", "--clients", "1", *self.data, rc=1)
        self.assertIn(os.path.join(certs, "client-0.crt"), p.stderr)
        os.remove(os.path.join(certs, "edge-1.key"))
        p = run(*ca, "--virtual", "1", "--clients", "2", "--index", "1",
                "--name-prefix", "edge-", *self.data, rc=1)
        self.assertIn(os.path.join(certs, "edge-1.key"), p.stderr)

    def test_missing_files_exit_1(self):
        for i, flag in ((1, "--cert"), (3, "--key"), (5, "--ca-file")):
            with self.subTest(flag=flag):
                ident = list(self.ident)
                ident[i] = os.path.join(self.tmp.name, "nope.pem")
                p = run("--coordinator", "tcp://127.0.0.1:1", *ident, *self.data, rc=1)
                self.assertIn(flag, p.stderr)
                self.assertIn("nope.pem", p.stderr)

    def test_joins_and_stops_on_sigterm(self):
        port = free_port()
        serve_log = os.path.join(self.tmp.name, "serve.log")
        client_log = os.path.join(self.tmp.name, "client.log")
        with open(serve_log, "w") as slog, open(client_log, "w") as clog:
            serve = subprocess.Popen([COORD, "serve", "--ca", self.ca, "--listen",
                                      "tcp://127.0.0.1:%d" % port, "--heartbeat-ms", "100"],
                                     stdout=slog, stderr=subprocess.STDOUT)
            client = None
            try:
                wait_for(serve_log, "listening on", serve)
                client = subprocess.Popen(
                    [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port, *self.ident,
                     *self.data, "--clients", "4", "--index", "1", "--threads", "1"],
                    stdout=clog, stderr=subprocess.STDOUT)
                wait_for(client_log, "welcomed to federation 'glassbox' as 'edge-1'", client)
                wait_for(serve_log, "'edge-1' joined", serve)
                with open(client_log) as f:
                    self.assertIn("csv:%s iid 1/4" % self.csv, f.read())
                client.send_signal(signal.SIGTERM)
                self.assertEqual(client.wait(timeout=60), 0)
                wait_for(serve_log, "'edge-1' left", serve)
            finally:
                if client and client.poll() is None:
                    client.kill()
                    client.wait()
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
