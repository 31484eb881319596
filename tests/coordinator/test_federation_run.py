#!/usr/bin/python3
"""A whole federation through the real binaries, on loopback:

  ca init, three client certificates -> bad serve flags exit 2 -> serve --rounds 2 (LeNet, IG
  explanations, server-side test set, signed publications to files and to the
  PUB socket, checkpoints) -> three `glassbox-client run` on disjoint slices of
  Fashion-MNIST -> two rounds: one JSON line each from serve, one per task
  from each client; every client exits 0 when told the federation finished
  -> a subscriber (pyzmq) got both publications and their ECDSA signatures
  verify against the coordinator's certificate (python3-cryptography), and
  `openssl dgst -verify` accepts the files -> the aggregate explanation JSON
  names all three clients -> class support (serve --class-names, lower-case
  Fashion-MNIST names, --min-class-clients 3): per round and class the
  clients and samples the aggregate explanation rests on, on the JSON line
  and in explanation-2.json, summing to what the clients' task lines say
  they explained, weak exactly below 3 clients; a names file one short and
  --min-class-clients past its bound are refused -> serve again with
  --rounds 3 and the same state
  directory resumes at round 3 -> the checkpointed model evaluates with
  `glassbox-client eval`.

Usage: test_federation_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import zmq
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
import gblink  # noqa: E402 (tests/support)
import gbproc  # noqa: E402 (tests/support)
from gbproc import free_port  # noqa: E402 (tests/support)

CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
pb = gblink.load_protocol(SOURCE)
N = 3
NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot"]
MIN_CLASS_CLIENTS = 3


def run(*args, rc=0):
    return gbproc.run(*args, rc=rc, timeout=300)


def serve(work, port, pub_port, rounds, as_json=True):
    log = open(os.path.join(work, "serve-%d.log" % rounds), "w")
    p = subprocess.Popen([COORD, "serve", "--ca", os.path.join(work, "ca"),
                          "--listen", "tcp://127.0.0.1:%d" % port,
                          "--publish", "tcp://127.0.0.1:%d" % pub_port,
                          "--rounds", str(rounds), "--min-clients", str(N),
                          "--model", "lenet", "--test-data", "fashion-mnist",
                          "--explain", "ig", "--explain-samples", "16", "--explain-steps", "8",
                          "--out", os.path.join(work, "out"),
                          "--state", os.path.join(work, "state"),
                          "--epochs", "2", "--deadline", "120"] +
                         (["--json"] if as_json else []) +
                         ["--class-names", os.path.join(work, "names.txt"),
                          "--min-class-clients", str(MIN_CLASS_CLIENTS)],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening on"), line
    return p


def clients(work, port):
    ps = []
    for k in range(N):
        name = os.path.join(work, "ca", "clients", "client-%d" % k)
        log = open(os.path.join(work, "client-%d.log" % k), "a")
        ps.append(subprocess.Popen(
            [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
             "--cert", name + ".crt", "--key", name + ".key",
             "--ca-file", os.path.join(work, "ca", "ca.crt"),
             "--data", "fashion-mnist", "--limit", "6000", "--clients", str(N),
             "--index", str(k), "--threads", "1", "--json"],
            stdout=subprocess.PIPE, stderr=log, text=True))
    return ps


def finish(server, ps):
    out, _ = server.communicate(timeout=240)
    assert server.returncode == 0, "serve exited %d" % server.returncode
    rounds = [json.loads(line) if line.startswith("{") else line
              for line in out.splitlines() if line.startswith(("{", "round "))]
    tasks = []
    for p in ps:
        cout, _ = p.communicate(timeout=60)
        assert p.returncode == 0, "client exited %d" % p.returncode
        tasks.append([json.loads(line) for line in cout.splitlines() if line.startswith("{")])
    return rounds, tasks


def verify(cert_pem, data, sig):
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.public_key().verify(sig, data, ec.ECDSA(hashes.SHA256()))


def main():
    work = tempfile.mkdtemp(prefix="gb-federation-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "e2e")
    for k in range(N):
        run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k)
    # bad values are usage errors, named, before anything starts
    for flags, says in ((["--aggregator", "krum:x"], "--aggregator"),
                        (["--server-optimizer", "adamw"], "--server-optimizer"),
                        (["--min-clients", "2", "--quorum", "5"], "quorum"),
                        (["--explain", "shap"], "--explain"),
                        (["--rounds", "-1"], "--rounds")):
        p = run(COORD, "serve", "--ca", ca, *flags, rc=2)
        assert says in p.stderr, (flags, p.stderr)
    p = run(COORD, "serve", "--ca", ca, "--min-class-clients", "10001", rc=2)
    assert "--min-class-clients 10001 is more than the 10000 clients" in p.stderr, p.stderr
    # a names file must name every class: one short stops serve at start
    short = os.path.join(work, "short.txt")
    open(short, "w").write("\n".join(NAMES[:9]) + "\n")
    p = run(COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % free_port(),
            "--http", "none", "--class-names", short, rc=1)
    assert short + ": 9 names for the model's 10 classes" in p.stderr, p.stderr
    open(os.path.join(work, "names.txt"), "w").write("\n".join(NAMES) + "\n")
    port, pub_port = free_port(), free_port()

    server = serve(work, port, pub_port, 2)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect("tcp://127.0.0.1:%d" % pub_port)
    # glassbox-client subscribe --pub: the same stream, checked and saved by
    # the client (no certificate of its own: the PUB socket is public)
    pub_saved = os.path.join(work, "pub-saved")
    os.mkdir(pub_saved)
    listener = subprocess.Popen(
        [CLIENT, "subscribe", "--pub", "tcp://127.0.0.1:%d" % pub_port,
         "--ca-file", os.path.join(ca, "ca.crt"), "--server-name", "localhost",
         "--out", pub_saved, "--count", "2", "--timeout", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the subscriptions reach the PUB socket before round 1
    try:
        ps = clients(work, port)
        rounds, tasks = finish(server, ps)
    finally:
        for p in [server] + (ps if "ps" in dir() else []):
            if p.poll() is None:
                p.kill()
    assert [r["round"] for r in rounds] == [1, 2], rounds
    for r in rounds:
        assert r["participants"] == N and r["samples"] == 6000, r
        assert 0 < r["test_accuracy"] <= 1 and r["train_loss"] > 0, r
        assert r["max_explanation_distance"] >= 0, r
        # the bias view: accuracy per class by name; Fashion-MNIST's test
        # split has 1,000 images a class, so their mean is the accuracy
        classes = r["class_accuracy"]
        assert list(classes) == NAMES, classes
        assert all(0 <= v <= 1 for v in classes.values()), classes
        assert abs(sum(classes.values()) / 10 - r["test_accuracy"]) < 1e-4, r
        assert r["flagged"] == [], r  # honest clients
    assert rounds[1]["test_accuracy"] > 0.3, rounds  # LeNet learns from 6,000 images
    for t in tasks:
        assert [x["round"] for x in t] == [1, 2], t
        assert all(x["samples"] == 2000 for x in t), t
    print("two rounds: ok", rounds[1])
    for k, r in enumerate(rounds):
        support = r["class_support"]
        assert [c["class"] for c in support] == NAMES, support
        explained = sum(t[k]["explained"] for t in tasks)
        assert explained == N * 16, explained  # --explain-samples 16 each
        assert sum(c["samples"] for c in support) == explained, (support, explained)
        assert all(0 <= c["clients"] <= N for c in support), support
        assert all(c["clients"] <= c["samples"] for c in support), support
        assert all(c["weak"] == (c["clients"] < MIN_CLASS_CLIENTS) for c in support), support
    print("class support: ok", rounds[1]["class_support"])

    cert_pem = open(os.path.join(ca, "coordinator.crt"), "rb").read()
    got = []
    while sub.poll(2000):
        topic, signed = sub.recv_multipart()
        sp = pb.SignedPublication()
        sp.ParseFromString(signed)
        verify(cert_pem, sp.publication, sp.signature)
        p = pb.Publication()
        p.ParseFromString(sp.publication)
        got.append(p)
    assert [p.round for p in got] == [1, 2], [p.round for p in got]
    assert got[1].participants == N and got[1].aggregator == "fedavg"
    assert len(got[1].explanation_distance) == N
    assert got[1].model.param_count > 50000  # LeNet
    print("publications on the PUB socket: ok")
    lout, lerr = listener.communicate(timeout=60)
    assert listener.returncode == 0, (listener.returncode, lerr)
    assert "round 2: verified" in lout, lout
    for r in (1, 2):
        pub_file = os.path.join(pub_saved, "round-%06d.pub" % r)
        verify(open(os.path.join(pub_saved, "coordinator.crt"), "rb").read(),
               open(pub_file, "rb").read(),
               open(os.path.join(pub_saved, "round-%06d.sig" % r), "rb").read())
    print("subscribe --pub: ok")

    out = os.path.join(work, "out")
    pub, sig = os.path.join(out, "round-000002.pub"), os.path.join(out, "round-000002.sig")
    key = subprocess.run(["openssl", "x509", "-in", os.path.join(out, "coordinator.crt"),
                          "-pubkey", "-noout"], capture_output=True, check=True).stdout
    keyfile = os.path.join(work, "coordinator.pub.pem")
    open(keyfile, "wb").write(key)
    v = run("openssl", "dgst", "-sha256", "-verify", keyfile, "-signature", sig, pub)
    assert "Verified OK" in v.stdout
    report = json.load(open(os.path.join(out, "explanation-2.json")))
    assert report["round"] == 2 and report["method"]
    names = sorted(c["client"] for c in report["distance"]["clients"])
    assert names == ["client-%d" % k for k in range(N)], names
    # the report's class support is the round line's
    by_name = {c["class"]: c for c in rounds[1]["class_support"]}
    assert report["min_class_clients"] == MIN_CLASS_CLIENTS, report
    for c in report["classes"]:
        line = by_name[c["class_name"]]
        assert NAMES[c["class"]] == c["class_name"], c
        assert (c["clients"], c["samples"], c["weakly_explained"]) == \
            (line["clients"], line["samples"], line["weak"]), (c, line)
        assert c["samples"] == c["count"], c
    assert sum(c["samples"] for c in report["classes"]) == report["samples"], report
    unexplained = [u["class_name"] for u in report["unexplained_classes"]]
    assert unexplained == [n for n in NAMES if by_name[n]["clients"] == 0], unexplained
    print("files and explanation: ok")

    server = serve(work, port, pub_port, 3, as_json=False)
    try:
        ps = clients(work, port)
        rounds, tasks = finish(server, ps)
    finally:
        for p in [server] + ps:
            if p.poll() is None:
                p.kill()
    assert len(rounds) == 1 and rounds[0].startswith("round 3: 3 clients"), rounds
    # the text line names the weakly explained classes as the report marks them
    report = json.load(open(os.path.join(out, "explanation-3.json")))
    weak = ["%s %d" % (c["class_name"], c["clients"]) for c in report["classes"]
            if c["weakly_explained"]]
    weak += ["%s 0" % u["class_name"] for u in report["unexplained_classes"]]
    weak.sort(key=lambda w: NAMES.index(w.rsplit(" ", 1)[0]))
    if weak:
        assert (", weakly explained (fewer than %d clients): %s," %
                (MIN_CLASS_CLIENTS, ", ".join(weak))) in rounds[0], (weak, rounds[0])
    else:
        assert "weakly explained" not in rounds[0], rounds[0]
    print("text line:", rounds[0])
    assert all([x["round"] for x in t] == [3] for t in tasks), tasks
    log = open(os.path.join(work, "serve-3.log")).read()
    assert "resuming after round 2" in log, log
    e = run(CLIENT, "eval", "--model-file", os.path.join(work, "state", "model-3.gbm"),
            "--data", "fashion-mnist", "--limit", "1000")
    print("resumed at round 3: ok;", e.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
