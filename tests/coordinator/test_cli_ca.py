#!/usr/bin/python3
"""Command-line tests of `glassbox-coordinator ca` and `glassbox-coordinator token`.

Runs the real binary: --help everywhere, exit code 2 and a message for bad
flags and missing options, `ca init` files and modes, `ca issue` / `revoke` /
`list` / `crl` with openssl's own verdict on the results, refusals naming the
bad value, and `token create` / `list` (the token printed once or written
0600, never stored or listed). Usage: test_cli_ca.py BUILD_DIR.
"""
import os
import re
import stat
import subprocess
import sys
import tempfile
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
COORD = os.path.join(BUILD, "glassbox-coordinator")


def run(*args, check_rc=None, cwd=None):
    p = subprocess.run([COORD, *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"{args}: exit {p.returncode}, want {check_rc}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def openssl(*args, cwd=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Usage(unittest.TestCase):
    def test_help_everywhere(self):
        for args in (["--help"], ["ca", "--help"], ["token", "--help"],
                     ["ca", "init", "--help"], ["ca", "issue", "--help"],
                     ["ca", "revoke", "--help"], ["ca", "list", "--help"],
                     ["ca", "crl", "--help"], ["token", "create", "--help"],
                     ["token", "list", "--help"]):
            with self.subTest(args=args):
                p = run(*args, check_rc=0)
                self.assertIn("usage:", p.stdout)
        self.assertIn("ca ", run("--help").stdout)
        self.assertIn("token ", run("--help").stdout)

    def test_bad_usage(self):
        cases = [
            (["ca"], "usage: glassbox-coordinator ca"),
            (["ca", "frob"], "unknown subcommand 'frob'"),
            (["token", "frob"], "unknown subcommand 'frob'"),
            (["ca", "init"], "--dir is required"),
            (["ca", "issue", "--dir", "x"], "--name is required"),
            (["ca", "init", "--dir", "x", "--days", "0"], "--days: expected an integer in 1..36500"),
            (["ca", "init", "--dir", "x", "--bogus"], "unknown option '--bogus'"),
            (["ca", "list", "--dir"], "--dir needs a value"),
            (["token", "create", "--dir", "x", "--uses", "1"], "--ttl is required"),
            (["token", "create", "--dir", "x", "--uses", "0", "--ttl", "5"],
             "--uses: expected an integer"),
            (["token", "create", "--dir", "x", "--uses", "1", "--ttl", "0"],
             "--ttl: expected 1.."),
            (["token", "create", "--dir", "x", "--uses", "1", "--ttl", "-5"],
             "--ttl: expected a non-negative integer"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = run(*args, check_rc=2)
                self.assertIn(msg, p.stderr)


class CA(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "ca")

    def tearDown(self):
        self.tmp.cleanup()

    def init(self, *extra):
        return run("ca", "init", "--dir", self.dir, *extra, check_rc=0)

    def test_init_files_and_modes(self):
        p = self.init("--federation", "demo", "--name", "coord.example", "--days", "100")
        self.assertIn("created the CA 'demo CA'", p.stdout)
        self.assertEqual(mode(self.dir), 0o700)
        for name, want in (("ca.key", 0o600), ("coordinator.key", 0o600), ("registry", 0o600),
                           ("ca.crt", 0o644), ("coordinator.crt", 0o644), ("crl.pem", 0o644)):
            with self.subTest(file=name):
                self.assertEqual(mode(os.path.join(self.dir, name)), want)
        # Keys are never printed.
        self.assertNotIn("PRIVATE KEY", p.stdout + p.stderr)
        v = openssl("verify", "-x509_strict", "-CAfile", "ca.crt", "-crl_check", "-CRLfile",
                    "crl.pem", "coordinator.crt", cwd=self.dir)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("coordinator.crt: OK", v.stdout)
        text = openssl("x509", "-in", "coordinator.crt", "-noout", "-text", cwd=self.dir).stdout
        self.assertIn("DNS:coord.example", text)
        # serverAuth and the publication-signing mark (net/pki.h); no clientAuth
        self.assertIn("TLS Web Server Authentication, "
                      "2.25.61096395399426130411232771718032252530", text)
        self.assertNotIn("TLS Web Client Authentication", text)
        self.assertIn("Issuer: CN = demo CA", text)
        ca_text = openssl("x509", "-in", "ca.crt", "-noout", "-text", cwd=self.dir).stdout
        self.assertIn("CA:TRUE", ca_text)
        self.assertIn("Certificate Sign, CRL Sign", ca_text)
        # Not twice.
        p = run("ca", "init", "--dir", self.dir, check_rc=1)
        self.assertIn("is not empty", p.stderr)

    def test_init_refusals(self):
        p = run("ca", "init", "--dir", self.dir, "--name", "bad name", check_rc=1)
        self.assertIn("coordinator name 'bad name'", p.stderr)
        self.assertFalse(os.path.exists(self.dir))
        p = run("ca", "init", "--dir", os.path.join(self.dir, "a", "b"), check_rc=1)
        self.assertIn("cannot create CA directory", p.stderr)

    def test_issue_revoke_list(self):
        self.init()
        p = run("ca", "issue", "--dir", self.dir, "--name", "client-1", "--days", "30",
                check_rc=0)
        self.assertIn("issued a certificate for 'client-1'", p.stdout)
        crt = os.path.join(self.dir, "clients", "client-1.crt")
        key = os.path.join(self.dir, "clients", "client-1.key")
        self.assertEqual(mode(key), 0o600)
        self.assertEqual(mode(os.path.dirname(key)), 0o700)
        v = openssl("verify", "-CAfile", "ca.crt", "-crl_check", "-CRLfile", "crl.pem", crt,
                    cwd=self.dir)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # --out elsewhere.
        out = os.path.join(self.tmp.name, "elsewhere")
        run("ca", "issue", "--dir", self.dir, "--name", "client-2", "--out", out, check_rc=0)
        self.assertTrue(os.path.exists(os.path.join(out, "client-2.crt")))
        # Refusals name the value.
        p = run("ca", "issue", "--dir", self.dir, "--name", "client-1", check_rc=1)
        self.assertIn("'client-1' already holds a valid certificate", p.stderr)
        p = run("ca", "issue", "--dir", self.dir, "--name", "../x", check_rc=1)
        self.assertIn("client name '../x'", p.stderr)
        p = run("ca", "issue", "--dir", self.dir, "--name", "localhost", check_rc=1)
        self.assertIn("coordinator's name", p.stderr)
        for name in ("LOCALHOST", "LocalHost.", "x.localhost", "127.0.0.1"):
            p = run("ca", "issue", "--dir", self.dir, "--name", name, check_rc=1)
            self.assertIn("reserved for", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "clients", name + ".crt")))
        p = run("ca", "issue", "--dir", os.path.join(self.tmp.name, "none"), "--name", "a",
                check_rc=1)
        self.assertIn("run 'ca init' first", p.stderr)

        p = run("ca", "list", "--dir", self.dir, check_rc=0)
        lines = p.stdout.strip().splitlines()
        self.assertEqual(lines[0].split()[0], "NAME")
        self.assertEqual(len(lines), 4)
        self.assertRegex(p.stdout, r"localhost\s+[0-9a-f]{32}\s+\S+Z\s+valid \(coordinator\)")
        self.assertRegex(p.stdout, r"client-1\s+[0-9a-f]{32}\s+\S+Z\s+valid")

        crl_before = openssl("crl", "-in", "crl.pem", "-noout", "-crlnumber",
                             cwd=self.dir).stdout
        p = run("ca", "revoke", "--dir", self.dir, "--name", "client-1", check_rc=0)
        self.assertIn("revoked 'client-1'", p.stdout)
        crl_after = openssl("crl", "-in", "crl.pem", "-noout", "-crlnumber", cwd=self.dir).stdout
        self.assertNotEqual(crl_before, crl_after)
        v = openssl("verify", "-CAfile", "ca.crt", "-crl_check", "-CRLfile", "crl.pem", crt,
                    cwd=self.dir)
        self.assertNotEqual(v.returncode, 0)
        self.assertIn("certificate revoked", v.stdout + v.stderr)
        self.assertRegex(run("ca", "list", "--dir", self.dir).stdout, r"client-1\s+\S+\s+\S+\s+revoked")
        p = run("ca", "revoke", "--dir", self.dir, "--name", "ghost", check_rc=1)
        self.assertIn("no certificate was ever issued to 'ghost'", p.stderr)
        # Re-issue after revocation is the administrator's call.
        run("ca", "issue", "--dir", self.dir, "--name", "client-1", check_rc=0)

        p = run("ca", "crl", "--dir", self.dir, check_rc=0)
        self.assertIn("re-signed", p.stdout)
        v = openssl("crl", "-in", "crl.pem", "-CAfile", "ca.crt", "-noout", cwd=self.dir)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("verify OK", v.stdout + v.stderr)

    def test_group_readable_ca_key_refused(self):
        self.init()
        os.chmod(os.path.join(self.dir, "ca.key"), 0o644)
        p = run("ca", "issue", "--dir", self.dir, "--name", "a", check_rc=1)
        self.assertIn("mode 0644", p.stderr)


class Token(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "ca")
        run("ca", "init", "--dir", self.dir, check_rc=0)

    def tearDown(self):
        self.tmp.cleanup()

    def test_create_stdout_and_list(self):
        p = run("token", "create", "--dir", self.dir, "--uses", "3", "--ttl", "3600", check_rc=0)
        token = p.stdout.strip()
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        m = re.search(r"token ([0-9a-f]{12}): 3 use\(s\), expires", p.stderr)
        self.assertIsNotNone(m, p.stderr)
        tid = m.group(1)
        self.assertNotIn(token, p.stderr)
        store = os.path.join(self.dir, "tokens")
        self.assertEqual(mode(store), 0o600)
        with open(store) as f:
            text = f.read()
        self.assertNotIn(token, text)
        self.assertIn(tid, text)
        p = run("token", "list", "--dir", self.dir, check_rc=0)
        self.assertRegex(p.stdout, tid + r"\s+\S+Z\s+\S+Z\s+3/3\s+active")
        self.assertNotIn(token, p.stdout + p.stderr)

    def test_create_out_file(self):
        out = os.path.join(self.tmp.name, "enroll.token")
        p = run("token", "create", "--dir", self.dir, "--uses", "50", "--ttl", "86400",
                "--out", out, check_rc=0)
        self.assertIn("written to " + out, p.stdout)
        self.assertEqual(mode(out), 0o600)
        with open(out) as f:
            token = f.read()
        self.assertRegex(token, r"^[0-9a-f]{64}\n$")
        self.assertNotIn(token.strip(), p.stdout + p.stderr)
        p = run("token", "create", "--dir", self.dir, "--uses", "1", "--ttl", "5",
                "--out", os.path.join(self.tmp.name, "no", "such"), check_rc=1)
        self.assertIn("stored but lost", p.stderr)

    def test_missing_dir(self):
        p = run("token", "list", "--dir", os.path.join(self.tmp.name, "nope"), check_rc=1)
        self.assertIn("does not exist", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
