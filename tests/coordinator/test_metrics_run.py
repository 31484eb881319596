#!/usr/bin/python3
"""/metrics of a real federation, read by Prometheus's own parser.

serve (--rounds 2, two `glassbox-client run` on Fashion-MNIST, gradxinput
explanations, server-side evaluation on Fashion-MNIST's test split, client
evaluations, --state on a slow disk: GLASSBOX_TEST_CHECKPOINT_DELAY_MS) with
--http on a free port; once round 1 is reported, /metrics
is fetched while serve runs and parsed with prometheus_client's
text_string_to_metric_families (python3-prometheus-client), which must take
it whole. Every family has a HELP and a type, and the run's numbers are
there and sane: updates accepted, link bytes both ways, the round's selected
and answered clients, its duration and its steps', test and client
accuracy, and one explanation distance per client, labelled by its name;
the class support (glassbox_class_explanation_clients, _samples and
glassbox_class_weakly_explained, one series per class by name) equals round
1's class_support on the JSON line and sums to what the clients explained.
Then serve and the clients exit 0.

Usage: test_metrics_run.py BUILD_DIR SOURCE_DIR
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from gbproc import free_port, run  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
NAMES = ["client-0", "client-1"]
DELAY_S = 1.5  # every checkpoint takes this much more (the test hook of a slow disk)






def fetch_metrics(http):
    with urllib.request.urlopen("http://%s/metrics" % http, timeout=10) as r:
        assert r.status == 200, r.status
        ctype = r.headers.get("Content-Type", "")
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
        return r.read().decode("utf-8")


def samples(families, name):
    """The samples named `name` (a counter's carry _total), as [(labels, value)]."""
    return [(s.labels, s.value) for f in families for s in f.samples if s.name == name]


def one(families, name):
    got = samples(families, name)
    assert len(got) == 1 and got[0][0] == {}, (name, got)
    return got[0][1]


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def check_support(families, line):
    """The class-support gauges against the round line's class_support."""
    support = line["class_support"]
    assert [c["class"] for c in support] == FASHION, support
    got = {}
    for name in ("glassbox_class_explanation_clients", "glassbox_class_explanation_samples",
                 "glassbox_class_weakly_explained"):
        series = samples(families, name)
        assert all(set(labels) == {"class"} for labels, _ in series), series
        got[name] = {labels["class"]: v for labels, v in series}
        assert sorted(got[name]) == sorted(FASHION), got[name]
    for c in support:
        assert got["glassbox_class_explanation_clients"][c["class"]] == c["clients"], (c, got)
        assert got["glassbox_class_explanation_samples"][c["class"]] == c["samples"], (c, got)
        assert got["glassbox_class_weakly_explained"][c["class"]] == (1 if c["weak"] else 0)
        assert c["weak"] == (c["clients"] < 2), c  # the default --min-class-clients 2
        assert 0 <= c["clients"] <= len(NAMES), c
    # two clients, --explain-samples 8 each
    assert sum(c["samples"] for c in support) == 8 * len(NAMES), support


def check(text):
    families = list(text_string_to_metric_families(text))  # raises on a bad line
    names = [f.name for f in families]
    assert len(names) == len(set(names)), names
    for f in families:
        assert f.documentation.strip(), "%s has no HELP" % f.name
        assert f.type in ("counter", "gauge"), (f.name, f.type)
        if f.type == "counter":
            assert all(s.name == f.name + "_total" for s in f.samples), (f.name, f.samples)
            assert all(s.value >= 0 for s in f.samples), (f.name, f.samples)

    accepted = one(families, "glassbox_updates_accepted_total")
    assert accepted >= 2, accepted
    for name in ("glassbox_link_bytes_received_total", "glassbox_link_bytes_sent_total"):
        v = one(families, name)
        assert v > 0 and v == int(v), (name, v)
    selected = one(families, "glassbox_round_selected")
    answered = one(families, "glassbox_round_answered")
    assert 0 <= answered <= selected <= len(NAMES), (selected, answered)

    seconds = one(families, "glassbox_round_seconds")
    assert 0 < seconds < 300, seconds
    phases = {s[0].get("phase"): s[1] for s in samples(families, "glassbox_round_phase_seconds")}
    assert set(phases) == {"aggregate", "evaluate", "publish", "checkpoint"}, phases
    assert all(v >= 0 for v in phases.values()), phases
    assert sum(phases.values()) <= seconds, (phases, seconds)
    assert phases["evaluate"] > 0, phases  # 10,000 test images were evaluated
    assert phases["checkpoint"] >= DELAY_S, phases  # the slow disk is timed in its step

    test_acc = one(families, "glassbox_test_accuracy")
    assert 0 <= test_acc <= 1, test_acc
    test_loss = one(families, "glassbox_test_loss")
    assert math.isfinite(test_loss) and test_loss > 0, test_loss
    client_acc = one(families, "glassbox_client_accuracy")
    assert 0 <= client_acc <= 1, client_acc

    # the bias view: the clients' accuracy spread and the accuracy per class
    spread = {s[0].get("quantile"): s[1]
              for s in samples(families, "glassbox_client_accuracy_quantile")}
    assert set(spread) == {"0", "0.1", "0.5", "1"}, spread
    assert 0 <= spread["0"] <= spread["0.1"] <= spread["0.5"] <= spread["1"] <= 1, spread
    assert spread["0"] <= client_acc <= spread["1"], (spread, client_acc)
    per_class = {s[0].get("class"): s[1] for s in samples(families, "glassbox_class_accuracy")}
    assert len(per_class) == 10 and "Sneaker" in per_class, per_class
    assert abs(sum(per_class.values()) / 10 - test_acc) < 1e-4, (per_class, test_acc)
    assert one(families, "glassbox_clients_flagged") == 0

    dist = samples(families, "glassbox_explanation_distance")
    assert sorted(labels.get("client") for labels, _ in dist) == NAMES, dist
    assert all(set(labels) == {"client"} for labels, _ in dist), dist
    assert all(0 <= v <= 1 for _, v in dist), dist

    assert one(families, "glassbox_round") >= 1
    assert one(families, "glassbox_clients_known") == len(NAMES)
    return {"families": len(families), "accepted": accepted, "round_seconds": seconds,
            "phases": phases, "test_accuracy": test_acc, "client_accuracy": client_acc,
            "distance": {labels["client"]: v for labels, v in dist},
            "bytes_in": one(families, "glassbox_link_bytes_received_total"),
            "bytes_out": one(families, "glassbox_link_bytes_sent_total")}


def main():
    t0 = time.time()
    base = tempfile.mkdtemp(prefix="gb-metrics-")
    ca = os.path.join(base, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "metrics")
    for name in NAMES:
        run(COORD, "ca", "issue", "--dir", ca, "--name", name)
    port, http = free_port(), "127.0.0.1:%d" % free_port()
    serve_log = os.path.join(base, "serve.log")
    serve = subprocess.Popen(
        [COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % port, "--http", http,
         "--model", "mlp", "--rounds", "2", "--min-clients", "2", "--epochs", "1",
         "--explain", "gradxinput", "--explain-samples", "8", "--test-data", "fashion-mnist",
         "--client-eval", "--state", os.path.join(base, "state"), "--finished-grace", "0",
         "--json"],
        stdout=subprocess.PIPE, stderr=open(serve_log, "w"), text=True,
        env=dict(os.environ, GLASSBOX_TEST_CHECKPOINT_DELAY_MS=str(int(DELAY_S * 1000))))
    ps = []
    try:
        assert serve.stdout.readline().startswith("listening on")
        for k, name in enumerate(NAMES):
            key = os.path.join(ca, "clients", name)
            ps.append(subprocess.Popen(
                [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
                 "--cert", key + ".crt", "--key", key + ".key",
                 "--ca-file", os.path.join(ca, "ca.crt"), "--data", "fashion-mnist",
                 "--limit", "1000", "--clients", "2", "--index", str(k), "--threads", "1"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(base, "client-%d.log" % k), "w")))
        rounds = []
        got = None
        for line in serve.stdout:
            if not line.startswith("{"):
                continue
            obj = json.loads(line)
            rounds.append(obj["round"])
            if got is None:
                assert rounds == [1], rounds
                # round 1's gauges are set before its line is printed, and
                # round 2 (its checkpoint DELAY_S at least) keeps serve
                # running while this is read
                text = fetch_metrics(http)
                got = check(text)
                check_support(list(text_string_to_metric_families(text)), obj)
        serve.wait(timeout=120)
        log = open(serve_log).read()
        assert serve.returncode == 0, "serve exited %d\n%s" % (serve.returncode, log[-3000:])
        assert rounds == [1, 2], rounds
        assert got is not None
        for k, p in enumerate(ps):
            p.wait(timeout=60)
            assert p.returncode == 0, "client-%d exited %d" % (k, p.returncode)
    finally:
        for p in [serve] + ps:
            if p.poll() is None:
                p.kill()
    print("round 1 /metrics parsed by prometheus_client: %d families, %d updates accepted, "
          "%d bytes in, %d out, round %.2f s (%s), test accuracy %.3f, client accuracy %.3f, "
          "distances %s" % (got["families"], got["accepted"], got["bytes_in"], got["bytes_out"],
                            got["round_seconds"],
                            ", ".join("%s %.3f" % kv for kv in sorted(got["phases"].items())),
                            got["test_accuracy"], got["client_accuracy"], got["distance"]))
    print("serve and both clients exited 0: ok (%.1f s)" % (time.time() - t0))


if __name__ == "__main__":
    main()
