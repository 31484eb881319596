#!/usr/bin/python3
"""Command-line tests of glassbox-client and glassbox-coordinator.

Runs the real binaries: exit codes and messages for bad flags and values,
--help on every command, JSON output of train, save -> inspect -> eval round
trips, refusal of damaged model files and bad spec files, and determinism of a
seeded run. Usage: test_cli.py BUILD_DIR. Needs Debian's dataset-fashion-mnist.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
DATA = "/usr/share/datasets/fashion-mnist"


def run(*args, check_rc=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=600)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"{args}: exit {p.returncode}, want {check_rc}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def train(*extra):
    args = ["--limit", "600", "--batch", "32", "--threads", "2", *extra]
    if "--epochs" not in extra:
        args += ["--epochs", "1"]
    return run(CLIENT, "train", *args)


class Usage(unittest.TestCase):
    def test_help_everywhere(self):
        for cmd in ([CLIENT, "--help"], [CLIENT, "train", "--help"], [CLIENT, "eval", "--help"],
                    [CLIENT, "inspect", "--help"], [CLIENT, "enroll", "--help"],
                    [COORD, "--help"]):
            p = run(*cmd, check_rc=0)
            self.assertIn("usage:", p.stdout)

    def test_no_command(self):
        self.assertEqual(run(CLIENT).returncode, 2)
        self.assertEqual(run(COORD).returncode, 2)

    def test_unknown_command(self):
        p = run(CLIENT, "frobnicate", check_rc=2)
        self.assertIn("unknown command 'frobnicate'", p.stderr)

    def test_unknown_flag(self):
        p = run(CLIENT, "train", "--bogus", "1", check_rc=2)
        self.assertIn("unknown option '--bogus'", p.stderr)

    def test_bad_values(self):
        cases = [
            (["--epochs", "x"], "--epochs: expected an integer in 1..100000, got 'x'"),
            (["--epochs", "0"], "--epochs: expected an integer"),
            (["--batch", "-3"], "--batch: expected an integer"),
            (["--lr", "-1"], "--lr: expected a number"),
            (["--lr", "nan"], "--lr: expected a number"),
            (["--optimizer", "rmsprop"], "--optimizer: expected one of sgd|adam, got 'rmsprop'"),
            (["--seed", "-1"], "--seed: expected a non-negative integer"),
            (["--threads", "1000"], "--threads: expected an integer in 1..256"),
            (["--epochs"], "--epochs needs a value"),
            (["--json=1"], "--json takes no value"),
            (["--epochs", "1", "--epochs", "2"], "--epochs given twice"),
            (["stray"], "unexpected argument 'stray'"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = run(CLIENT, "train", *args, check_rc=2)
                self.assertIn(msg, p.stderr)

    def test_eval_requires_model_file(self):
        p = run(CLIENT, "eval", check_rc=2)
        self.assertIn("--model-file is required", p.stderr)


@unittest.skipUnless(os.path.isdir(DATA), "dataset-fashion-mnist not installed")
class Training(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_json_lines(self):
        p = train("--epochs", "2", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(lines), 3)
        for e, line in enumerate(lines[:2], 1):
            for key in ("epoch", "samples_per_s", "train_loss", "test_loss", "test_accuracy",
                        "seconds"):
                self.assertIn(key, line)
            self.assertEqual(line["epoch"], e)
            self.assertGreater(line["samples_per_s"], 0)
            self.assertTrue(0.0 <= line["test_accuracy"] <= 1.0)
        self.assertLess(lines[1]["train_loss"], lines[0]["train_loss"] + 0.5)
        self.assertGreater(lines[2]["peak_rss_kb"], 1000)

    def test_kernel_path_from_the_environment(self):
        env = dict(os.environ)
        best = None
        for name in ("portable", "bogus", "avx9000"):
            env["GLASSBOX_KERNELS"] = name
            p = subprocess.run([CLIENT, "train", "--limit", "100", "--json"], env=env,
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr)
            got = json.loads(p.stdout.splitlines()[0])["kernels"]
            if name == "portable":
                self.assertEqual(got, "portable")
                continue
            # an unknown path is said once and ignored: the CPU's best runs
            self.assertEqual(p.stderr.count("GLASSBOX_KERNELS: kernels '%s'" % name), 1,
                             p.stderr)
            self.assertIn("expected portable, avx2, avx512 or auto", p.stderr)
            self.assertIn(got, ("portable", "avx2", "avx512"))
            best = best or got
            self.assertEqual(got, best)

    def test_plain_lines(self):
        p = train("--epochs", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("epoch 1/2", p.stdout)
        self.assertIn("epoch 2/2", p.stdout)
        self.assertIn("test loss", p.stdout)

    def test_save_inspect_eval(self):
        model = self.path("m.gbm")
        p = train("--json", "--save", model, "--optimizer", "adam", "--lr", "0.001")
        self.assertEqual(p.returncode, 0, p.stderr)
        trained = json.loads(p.stdout.splitlines()[0])
        info = json.loads(run(CLIENT, "inspect", "--model-file", model, "--json",
                              check_rc=0).stdout)
        self.assertEqual(info["parameters"], 80202)
        self.assertEqual(info["metadata"]["dataset"], "fashion-mnist")
        self.assertIn("conv 16 5", info["spec"])
        ev = json.loads(run(CLIENT, "eval", "--model-file", model, "--limit", "600", "--json",
                            check_rc=0).stdout.splitlines()[0])
        self.assertAlmostEqual(ev["test_accuracy"], trained["test_accuracy"], places=6)
        self.assertAlmostEqual(ev["test_loss"], trained["test_loss"], places=4)

    def test_continue_from_model_file(self):
        model = self.path("m.gbm")
        train("--save", model)
        p = run(CLIENT, "train", "--model", model, "--limit", "600", "--json", check_rc=0)
        self.assertIn("test_accuracy", p.stdout)

    def test_damaged_model_files(self):
        model = self.path("m.gbm")
        train("--save", model)
        good = open(model, "rb").read()
        cases = {
            "truncated": good[: len(good) // 2],
            "tampered": good[:-200] + bytes([good[-200] ^ 0x40]) + good[-199:],
            "empty": b"",
            "garbage": bytes(range(256)) * 4,
        }
        for name, data in cases.items():
            with self.subTest(name=name):
                bad = self.path(name + ".gbm")
                open(bad, "wb").write(data)
                p = run(CLIENT, "eval", "--model-file", bad, "--limit", "10")
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(bad, p.stderr)
        p = run(CLIENT, "eval", "--model-file", self.path("missing.gbm"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.gbm", p.stderr)

    def test_spec_files(self):
        spec = self.path("net.spec")
        open(spec, "w").write("input 1 28 28\nflatten\ndense 32\ntanh\ndropout 0.1\ndense 10\n")
        p = train("--model", spec, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        open(spec, "w").write("input 1 28 28\nconv 8\nflatten\ndense 10\n")
        p = train("--model", spec)
        self.assertEqual(p.returncode, 1)
        self.assertIn("spec line 2: conv expects out_channels kernel", p.stderr)
        open(spec, "w").write("input 1 28 28\nconv 8 30\nflatten\ndense 10\n")
        p = train("--model", spec)
        self.assertEqual(p.returncode, 1)
        self.assertIn("spec line 2: conv kernel 30 larger than the padded input 28x28", p.stderr)
        open(spec, "w").write("input 1 28 28\nflatten\ndense 7\n")
        p = train("--model", spec)
        self.assertEqual(p.returncode, 1)
        self.assertIn("7 outputs but fashion-mnist has 10 classes", p.stderr)

    def test_bad_dataset(self):
        p = train("--data", "idx:/nonexistent")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent", p.stderr)
        p = train("--data", "imagenet")
        self.assertEqual(p.returncode, 1)
        self.assertIn("imagenet", p.stderr)

    def test_same_seed_same_parameters(self):
        digests = []
        for run_no, seed in enumerate((7, 7, 8)):
            model = self.path(f"r{run_no}.gbm")
            train("--seed", str(seed), "--save", model, "--model", "mlp")
            info = json.loads(run(CLIENT, "inspect", "--model-file", model, "--json",
                                  check_rc=0).stdout)
            digests.append(info["params_sha256"])
        self.assertEqual(digests[0], digests[1])
        self.assertNotEqual(digests[0], digests[2])


SUNSPOTS = "/usr/lib/python3/dist-packages/statsmodels/datasets/sunspots/sunspots.csv"


class Csv(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_table_classification(self):
        rows = ["a,b,label"] + ["%d,%d,%d" % (i % 7, (i * 3) % 5, (i % 7) > 3) for i in range(200)]
        data = self.write("t.csv", "\n".join(rows) + "\n")
        spec = self.write("t.spec", "input 2\ndense 8\nrelu\ndense 2\n")
        p = run(CLIENT, "train", "--model", spec, "--data", "csv:" + data, "--label", "label",
                "--epochs", "30", "--batch", "16", "--optimizer", "adam", "--lr", "0.01",
                "--threads", "1", "--json", check_rc=0)
        last = json.loads(p.stdout.splitlines()[-2])
        self.assertGreater(last["test_accuracy"], 0.9)

    def test_malformed_csv_named(self):
        spec = self.write("t.spec", "input 1\ndense 2\n")
        cases = {
            "ragged.csv": ("a,label\n1,0\n2\n", "ragged.csv line 3 has 1 cell"),
            "text.csv": ("a,label\n1,0\nx,1\n", "text.csv line 3, column 1 (a): 'x' is not a number"),
        }
        for name, (text, msg) in cases.items():
            with self.subTest(name=name):
                path = self.write(name, text)
                p = run(CLIENT, "train", "--model", spec, "--data", "csv:" + path, "--label",
                        "label")
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(msg, p.stderr)
        path = self.write("nolabel.csv", "a,b\n1,0\n2,1\n")
        p = run(CLIENT, "train", "--model", spec, "--data", "csv:" + path, "--label", "label")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no column named 'label'", p.stderr)

    @unittest.skipUnless(os.path.exists(SUNSPOTS), "python3-statsmodels not installed")
    def test_forecast_beats_last_value(self):
        spec = self.write("ar.spec", "input 10 1\nflatten\ndense 1\n")
        model = os.path.join(self.dir, "sun.gbm")
        args = ["--data", "csv:" + SUNSPOTS, "--label", "SUNACTIVITY", "--features",
                "SUNACTIVITY", "--window", "10", "--horizon", "1", "--regression"]
        p = run(CLIENT, "train", "--model", spec, *args, "--epochs", "60", "--batch", "16",
                "--optimizer", "adam", "--lr", "0.01", "--threads", "1", "--seed", "1",
                "--json", "--save", model, check_rc=0)
        last = json.loads(p.stdout.splitlines()[-2])
        self.assertIsNone(last["test_accuracy"])
        self.assertLess(last["test_loss"], 0.6 * last["baseline_mse"])
        self.assertLess(last["test_mse_units"], 0.6 * last["baseline_mse_units"])
        ev = json.loads(run(CLIENT, "eval", "--model-file", model, *args, "--json",
                            check_rc=0).stdout.splitlines()[0])
        self.assertAlmostEqual(ev["test_loss"], last["test_loss"], places=5)


class Enroll(unittest.TestCase):
    """glassbox-client enroll without a coordinator: usage errors exit 2, a
    coordinator that never answers exits 1 with a message saying what to check,
    and the key it made is private. The granted path runs against the real
    enrollment service in tests/coordinator/test_enroll_service.c."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gb-enroll-")
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as f:
            f.write("00" * 32 + "\n")
        self.ca = os.path.join(self.dir, "ca")
        run(COORD, "ca", "init", "--dir", self.ca, "--name", "127.0.0.1", check_rc=0)

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def enroll(self, *extra, check_rc):
        return run(CLIENT, "enroll", "--coordinator", "tcp://127.0.0.1:9", "--token-file",
                   self.token, "--ca-file", os.path.join(self.ca, "ca.crt"), "--out",
                   os.path.join(self.dir, "id"), *extra, check_rc=check_rc)

    def test_usage(self):
        p = run(CLIENT, "enroll", "--token-file", self.token, check_rc=2)
        self.assertIn("--coordinator is required", p.stderr)
        p = run(CLIENT, "enroll", "--coordinator", "udp://x", "--token-file", self.token,
                "--ca-file", "ca.crt", "--out", self.dir, check_rc=2)
        self.assertIn("tcp://HOST:PORT", p.stderr)
        p = self.enroll("--timeout", "0", check_rc=2)
        self.assertIn("--timeout", p.stderr)

    def test_no_coordinator(self):
        p = self.enroll("--name", "edge-1", "--timeout", "1", check_rc=1)
        self.assertIn("no secure session", p.stderr)
        key = os.path.join(self.dir, "id", "edge-1.key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "id", "edge-1.crt")))

    def test_bad_token_and_name(self):
        with open(self.token, "w") as f:
            f.write("\n")
        p = self.enroll("--name", "edge-1", check_rc=1)
        self.assertIn("empty", p.stderr)
        with open(self.token, "w") as f:
            f.write("00" * 32)
        p = self.enroll("--name", "bad name", check_rc=1)
        self.assertIn("client name", p.stderr)


def png_size(path):
    """(width, height) from a PNG's IHDR, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@unittest.skipUnless(os.path.isdir(DATA), "dataset-fashion-mnist not installed")
class Explain(unittest.TestCase):
    """glassbox-client explain: summary.json, heatmaps, exit codes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = os.path.join(cls.tmp.name, "m.gbm")
        p = train("--save", cls.model)
        if p.returncode != 0:
            raise AssertionError(p.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def explain(self, out, *extra, check_rc=0):
        return run(CLIENT, "explain", "--model-file", self.model, "--limit", "20",
                   "--threads", "2", "--out", out, *extra, check_rc=check_rc)

    def test_help(self):
        p = run(CLIENT, "explain", "--help", check_rc=0)
        self.assertIn("usage:", p.stdout)
        for flag in ("--method", "--steps", "--rule", "--baseline", "--target", "--clip",
                     "--out", "--data", "--limit"):
            self.assertIn(flag, p.stdout)

    def test_summary_and_heatmaps(self):
        for method, extra in (("saliency", []), ("ig", ["--steps", "8"])):
            with self.subTest(method=method):
                out = os.path.join(self.tmp.name, "out-" + method, "nested")  # created
                p = self.explain(out, "--method", method, "--json", *extra)
                line = json.loads(p.stdout)
                self.assertEqual(line["samples"], 20)
                self.assertEqual(line["heatmaps"], 10)
                self.assertEqual(line["summary"], os.path.join(out, "summary.json"))
                with open(line["summary"]) as f:
                    s = json.load(f)
                for key in ("method", "steps", "rule", "baseline", "samples",
                            "mean_completeness_error", "classes", "importance", "clip",
                            "attribution_shape"):
                    self.assertIn(key, s)
                self.assertEqual(s["method"], method)
                self.assertEqual(s["samples"], 20)
                self.assertEqual(s["target"], "true")
                self.assertEqual(s["attribution_shape"], [1, 28, 28])
                if method == "ig":
                    self.assertEqual(s["steps"], 8)
                    self.assertEqual(s["rule"], "gauss")
                    self.assertEqual(s["baseline"], "zero")
                    self.assertGreaterEqual(s["mean_completeness_error"], 0)
                    self.assertLess(s["mean_completeness_error"], 1)
                else:
                    self.assertIsNone(s["steps"])
                    self.assertIsNone(s["mean_completeness_error"])
                self.assertEqual(len(s["classes"]), 10)
                self.assertEqual(sum(c["count"] for c in s["classes"]), 20)
                for c in s["classes"]:
                    self.assertGreater(c["count"], 0)  # the first 20 hold all 10 classes
                    for key in ("mean", "variance", "importance"):
                        self.assertEqual(len(c[key]), 784)
                    self.assertTrue(all(v >= 0 for v in c["variance"]))
                    self.assertTrue(all(v >= 0 for v in c["importance"]))
                    self.assertTrue(all(abs(m) <= i + 1e-9
                                        for m, i in zip(c["mean"], c["importance"])))
                self.assertEqual(len(s["importance"]), 784)
                pngs = sorted(n for n in os.listdir(out) if n.endswith(".png"))
                self.assertEqual(pngs, [f"class_{c}.png" for c in range(10)])
                for name in pngs:
                    w, h = png_size(os.path.join(out, name))
                    self.assertGreaterEqual(w, 280)
                    self.assertGreaterEqual(h, 280)

    def test_deterministic(self):
        a, b = (os.path.join(self.tmp.name, d) for d in ("det-a", "det-b"))
        self.explain(a, "--method", "ig", "--steps", "4")
        self.explain(b, "--method", "ig", "--steps", "4")
        for name in ("summary.json", "class_3.png"):
            with open(os.path.join(a, name), "rb") as f, open(os.path.join(b, name), "rb") as g:
                self.assertEqual(f.read(), g.read(), name)

    def test_bad_usage_exits_2(self):
        out = os.path.join(self.tmp.name, "bad")
        cases = [
            (["--method", "lime"], "--method: expected one of ig|saliency|gradxinput|"
                                   "smoothgrad|gradcam|occlusion, got 'lime'"),
            (["--steps", "0"], "--steps: expected an integer"),
            (["--method", "saliency", "--steps", "8"], "--steps applies to --method ig only"),
            (["--rule", "simpson"], "--rule: expected one of gauss|trapezoid"),
            (["--target", "maybe"], "--target: expected one of true|predicted"),
            (["--clip", "0"], "--clip: expected a number"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = self.explain(out, *args, check_rc=2)
                self.assertIn(msg, p.stderr)
        p = run(CLIENT, "explain", "--model-file", self.model, check_rc=2)
        self.assertIn("--out is required", p.stderr)
        p = run(CLIENT, "explain", "--out", out, check_rc=2)
        self.assertIn("--model-file is required", p.stderr)

    def test_failures_exit_1(self):
        out = os.path.join(self.tmp.name, "fail")
        missing = os.path.join(self.tmp.name, "missing.gbm")
        p = run(CLIENT, "explain", "--model-file", missing, "--out", out, check_rc=1)
        self.assertIn("missing.gbm", p.stderr)
        short = os.path.join(self.tmp.name, "short.f32")
        with open(short, "wb") as f:
            f.write(bytes(100))
        p = self.explain(out, "--baseline", short, check_rc=1)
        self.assertIn("expected 3136 bytes", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "summary.json")))


@unittest.skipUnless(os.path.exists(SUNSPOTS), "python3-statsmodels not installed")
class ExplainSequence(unittest.TestCase):
    def test_time_and_feature_importance(self):
        with tempfile.TemporaryDirectory() as d:
            spec = os.path.join(d, "ar.spec")
            with open(spec, "w") as f:
                f.write("input 10 1\nflatten\ndense 1\n")
            model = os.path.join(d, "sun.gbm")
            args = ["--data", "csv:" + SUNSPOTS, "--label", "SUNACTIVITY", "--features",
                    "SUNACTIVITY", "--window", "10", "--regression"]
            run(CLIENT, "train", "--model", spec, *args, "--epochs", "5", "--threads", "1",
                "--save", model, check_rc=0)
            out = os.path.join(d, "out")
            run(CLIENT, "explain", "--model-file", model, *args, "--method", "gradxinput",
                "--out", out, check_rc=0)
            with open(os.path.join(out, "summary.json")) as f:
                s = json.load(f)
            self.assertEqual(s["task"], "regression")
            self.assertEqual(len(s["importance_time"]), 10)
            self.assertEqual(len(s["importance_features"]), 1)
            self.assertAlmostEqual(sum(s["importance_time"]), s["importance_features"][0],
                                   places=6)
            self.assertEqual(sorted(os.listdir(out)), ["output.png", "summary.json"])
            p = run(CLIENT, "explain", "--model-file", model, *args, "--target", "predicted",
                    "--out", out)
            self.assertEqual(p.returncode, 1)
            self.assertIn("--target predicted needs a classification dataset", p.stderr)


class ConfigFiles(unittest.TestCase):
    """`serve --config` and `run --config`: keys are flags without --, the
    command line wins, every error names the file, the line and the key."""

    def conf(self, d, text):
        path = os.path.join(d, "glassbox.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_errors_name_file_line_and_key(self):
        with tempfile.TemporaryDirectory() as d:
            for cmd in ([COORD, "serve"], [CLIENT, "run"]):
                for text, says in (("# ok\n\nbogus = 1\n", ":3: unknown key 'bogus'"),
                                   ("threads = many\n", ":1: threads: expected an integer"),
                                   ("threads 2\n", ":1: expected 'key = value'"),
                                   ("threads = 1\nthreads = 2\n", ":2: threads given twice"),
                                   ("config = other.conf\n", ":1: config: not allowed")):
                    path = self.conf(d, text)
                    p = run(*cmd, "--config", path, check_rc=2)
                    self.assertIn(path + says, p.stderr, (cmd, text))
                p = run(*cmd, "--config", os.path.join(d, "missing.conf"), check_rc=2)
                self.assertIn("missing.conf", p.stderr)

    def test_values_come_from_the_file_and_flags_win(self):
        with tempfile.TemporaryDirectory() as d:
            # --ca, required, is taken from the file: serve reaches the CA and
            # says it is not there
            path = self.conf(d, "ca = %s/no-such-ca\nmin-clients = 2\n" % d)
            p = run(COORD, "serve", "--config", path, check_rc=1)
            self.assertIn("no-such-ca", p.stderr)
            # the command line wins over the file
            p = run(COORD, "serve", "--config", path, "--ca", d + "/other-ca", check_rc=1)
            self.assertIn("other-ca", p.stderr)
            self.assertNotIn("no-such-ca", p.stderr)
            # a client's whole invocation from a file
            path = self.conf(d, "coordinator = tcp://127.0.0.1:9\ncert = %s/c.crt\n"
                                "key = %s/c.key\nca-file = %s/ca.crt\n" % (d, d, d))
            p = run(CLIENT, "run", "--config", path, check_rc=1)
            self.assertIn("--ca-file: cannot read '%s/ca.crt'" % d, p.stderr)


class ServeProbe(unittest.TestCase):
    """serve's update probe (coordinator/update_probe.h) does not take a model
    of more than 256 outputs: serve still starts, warns that updates are not
    probed, and runs as it did before the probe existed."""

    def test_a_model_the_probe_does_not_take(self):
        with tempfile.TemporaryDirectory() as tmp:
            ca = os.path.join(tmp, "ca")
            run(COORD, "ca", "init", "--dir", ca, "--federation", "probe", check_rc=0)
            spec = os.path.join(tmp, "wide.spec")
            with open(spec, "w") as f:
                f.write("input 1 28 28\nflatten\ndense 300\n")
            p = subprocess.Popen([COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:0",
                                  "--http", "none", "--model", spec, "--test-data",
                                  "fashion-mnist", "--rounds", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines = []
            try:
                for line in p.stderr:
                    lines.append(line)
                    if "waiting for" in line:
                        break
            finally:
                p.terminate()
                p.wait(timeout=30)
            log = "".join(lines)
            self.assertIn("updates are not probed for what they teach", log)
            self.assertIn("300 outputs, more than the 256 a pass takes", log)
            self.assertIn("waiting for", log, "serve did not start its first round")


if __name__ == "__main__":
    unittest.main(verbosity=2)
