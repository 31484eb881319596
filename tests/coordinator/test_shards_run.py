#!/usr/bin/python3
"""Data shards dealt by the coordinator, with real processes (the way
docker-compose replicas that share one image and one token get their data):

  serve --simulate-clients 3 --simulate-partition dirichlet:0.5 --rounds 2;
  three `glassbox-client run --shard-from-coordinator` with no --clients or
  --index are dealt slices 0, 1, 2
  their slices by name (kept in --state/shards) while serve waits; a fourth
  is turned away ("all 3 slices are taken") and exits 1 with that reason;
  serve restarted on the same --state deals the three, which reconnect by
  themselves, the slices they had, and both rounds run with all three. One
  client runs with --http: its /status, /healthz and /metrics answer.
  Then `run --virtual 3 --shard-from-coordinator` against a fresh coordinator:
  the three clients of one process are dealt slices 0, 1, 2 and a round runs
  with all three on the whole training split.

Usage: test_shards_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from gbproc import free_port, run, wait_for_text  # noqa: E402 (tests/support)
CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")






def serve(work, port, rounds, min_clients, tag, state="state", explain=("--explain", "none")):
    return subprocess.Popen(
        [COORD, "serve", "--ca", os.path.join(work, "ca"), "--listen",
         "tcp://127.0.0.1:%d" % port, "--http", "none", "--model", "mlp"] + list(explain) + [
         "--rounds", str(rounds), "--min-clients", str(min_clients),
         "--simulate-clients", "3", "--simulate-partition", "dirichlet:0.5",
         "--state", os.path.join(work, state), "--finished-grace", "0", "--json"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve-%s.log" % tag), "w"),
        text=True)


def client(work, port, name, tag, *extra):
    cert = os.path.join(work, "ca", "clients", name)
    return subprocess.Popen(
        [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port, "--cert", cert + ".crt",
         "--key", cert + ".key", "--ca-file", os.path.join(work, "ca", "ca.crt"),
         "--data", "fashion-mnist", "--limit", "3000", "--threads", "1",
         "--shard-from-coordinator"] + list(extra),
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "%s-%s.log" % (name, tag)), "w"))


def dealt(work, name, tag):
    text = open(os.path.join(work, "%s-%s.log" % (name, tag))).read()
    m = re.search(r"dealt slice (\d+) of 3", text)
    assert m, text[-2000:]
    return int(m.group(1))




def virtual_dealt(work, port):
    """Three virtual clients of one process, each dealt its slice by name."""
    for k in range(3):
        run(COORD, "ca", "issue", "--dir", os.path.join(work, "ca"), "--name", "client-%d" % k,
            "--out", os.path.join(work, "certs"))
    # and IG without --explain-steps: a federation asks for 8 steps (a sample doubles past 5%)
    out_dir = os.path.join(work, "out-virtual")
    server = serve(work, port, 1, 3, "virtual", state="state-virtual",
                   explain=("--explain", "ig", "--explain-samples", "8", "--out", out_dir))
    log = os.path.join(work, "virtual.log")
    v = subprocess.Popen(
        [CLIENT, "run", "--virtual", "3", "--cert-dir", os.path.join(work, "certs"),
         "--coordinator", "tcp://127.0.0.1:%d" % port, "--ca-file",
         os.path.join(work, "ca", "ca.crt"), "--data", "fashion-mnist", "--limit", "3000",
         "--threads", "1", "--shard-from-coordinator"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        assert server.stdout.readline().startswith("listening on")
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["participants"] for r in rounds] == [3], rounds
        assert rounds[0]["samples"] == 3000, rounds
        v.wait(timeout=60)
        assert v.returncode == 0, "run --virtual exited %d" % v.returncode
        text = open(log).read()
        got = sorted(int(m) for m in re.findall(r"dealt slice (\d+) of 3", text))
        assert got == [0, 1, 2], text[-3000:]
        report = json.load(open(os.path.join(out_dir, "explanation-1.json")))
        steps = report["quality"]["steps_used"]
        assert 8 <= steps < 16, report["quality"]
    finally:
        for p in (server, v):
            if p.poll() is None:
                p.kill()
    print("run --virtual 3 --shard-from-coordinator: slices %s dealt, a round of 3 on all "
          "3,000 samples, IG at %.1f steps a sample by default: ok" % (got, steps))


def main():
    work = tempfile.mkdtemp(prefix="gb-shards-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "shards")
    names = ["edge-%d" % k for k in range(4)]
    for name in names:
        run(COORD, "ca", "issue", "--dir", ca, "--name", name)
    port = free_port()
    # a partition that does not parse stops serve, naming the flag
    bad = run(COORD, "serve", "--ca", ca, "--listen", "tcp://127.0.0.1:%d" % port,
              "--http", "none", "--simulate-clients", "3", "--simulate-partition", "foo", rc=1)
    assert "--simulate-partition: unknown partition 'foo'" in bad.stderr, bad.stderr
    # phase 1: a coordinator that waits for 4: three are dealt slices, a fourth is refused
    server = serve(work, port, 2, 4, "1")
    ps = []
    try:
        assert server.stdout.readline().startswith("listening on")
        http = free_port()
        ps = [client(work, port, name, "1", *(["--http", "127.0.0.1:%d" % http] if k == 0
                                              else [])) for k, name in enumerate(names[:3])]
        wait_for_text(os.path.join(work, "serve-1.log"), "was dealt slice", 3)
        wait_for_text(os.path.join(work, "serve-1.log"), "joined (glassbox", 6)
        # the client's own endpoint (run --http)
        import urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        base = "http://127.0.0.1:%d" % http
        status = json.loads(urllib.request.urlopen(base + "/status", timeout=5).read())
        assert status["client_id"] == "edge-0" and status["welcomed"], status
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert fams["glassbox_client_connected"].samples[0].value == 1, text
        print("run --http: /status %s, /healthz 200, /metrics parsed" % status["state"])
        extra = client(work, port, names[3], "1")
        extra.wait(timeout=60)
        assert extra.returncode == 1, "the fourth client exited %d" % extra.returncode
        text = open(os.path.join(work, "edge-3-1.log")).read()
        assert "all 3 slices are taken" in text, text[-2000:]
        slices = {name: dealt(work, name, "1") for name in names[:3]}
        assert sorted(slices.values()) == [0, 1, 2], slices
        server.terminate()
        server.wait(timeout=30)
        table = open(os.path.join(work, "state", "shards")).read().splitlines()
        kept = dict(line.split() for line in table if not line.startswith("#"))
        assert {k: int(v) for k, v in kept.items()} == slices, (kept, slices)
        print("dealt by name: %s; a fourth client turned away: ok" % slices)

        # phase 2: a new coordinator on the same --state; the clients come back by themselves
        server = serve(work, port, 2, 3, "2")
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0, "serve exited %d" % server.returncode
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["participants"] for r in rounds] == [3, 3], rounds
        assert all(r["samples"] == 3000 for r in rounds), rounds
        for name, p in zip(names, ps):
            p.wait(timeout=60)
            assert p.returncode == 0, "%s exited %d" % (name, p.returncode)
            text = open(os.path.join(work, "%s-1.log" % name)).read()
            assert "now deals slice" not in text, text[-2000:]
        print("after a restart every client kept its slice; 2 rounds of 3: ok")
        virtual_dealt(work, free_port())
    finally:
        for p in [server] + ps:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    main()
