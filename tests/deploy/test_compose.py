#!/usr/bin/python3
"""The federation in containers, with Docker's engine (GLASSBOX_DOCKER=1; skipped
otherwise: it builds images and takes minutes).

With the images of deploy/compose.sh build (the base image made with
debootstrap, no registry):

  1. docker-compose up --scale client=8: the coordinator deals 8 slices by
     name; its HEALTHCHECK turns healthy and /metrics parses with
     Prometheus's own parser;
  2. a client container killed mid-round: the round completes at quorum;
     started again, it is dealt the slice it had;
  3. `docker-compose restart coordinator`: it resumes at its checkpointed
     round and the clients reconnect by themselves;
  4. `docker network disconnect` then `connect` of a client: it rejoins
     and trains again;
  5. all rounds finish, the coordinator exits 0 and every publication
     verifies with openssl (deploy/compose.sh's check);
  6. the swarm: `docker stack deploy` with 8 replicas runs 3 rounds.

Usage: test_compose.py SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

SOURCE = sys.argv[1]
PROJECT = "gbtest"
FILE = os.path.join(SOURCE, "deploy", "docker-compose.yml")
# rounds long enough (LeNet, 3 epochs on 7,500 samples a client) to act mid-round
ENV = dict(os.environ, PROJECT=PROJECT, CLIENTS="8", ROUNDS="7", QUORUM="2",
           MODEL="lenet", EPOCHS="3", LIMIT="60000", EXPLAIN="gradxinput",
           HTTP_PORT="17702", FINISHED_GRACE="20", DEADLINE="120")


def sh(*args, check=True, env=ENV, timeout=1800):
    p = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (args, p.returncode, p.stdout[-3000:],
                                                     p.stderr[-3000:]))
    return p


def compose(*args, **kw):
    return sh("docker-compose", "--compatibility", "-p", PROJECT, "-f", FILE, *args, **kw)


def coordinator():
    return compose("ps", "-q", "coordinator").stdout.strip()


def clients():
    return compose("ps", "-q", "client").stdout.split()


def rounds_logged(cid):
    out = sh("docker", "logs", cid).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def dealt(container, last=False):
    """The slice the client in `container` was dealt (its first, or last, Welcome)."""
    import re
    found = re.findall(r"dealt slice (\d+) of", sh("docker", "logs", container).stderr)
    if not found:
        return None
    return int(found[-1] if last else found[0])


def wait_until(what, cond, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        got = cond()
        if got:
            return got
        time.sleep(1)
    raise AssertionError("waited %d s in vain for %s" % (timeout, what))


def main():
    if os.environ.get("GLASSBOX_DOCKER") != "1":
        print("skipped: set GLASSBOX_DOCKER=1 to run the container tests")
        sys.exit(77)
    t0 = time.time()
    sh("bash", os.path.join(SOURCE, "deploy", "compose.sh"), "build")
    print("images built in %.0f s" % (time.time() - t0))
    compose("down", "-v", "--remove-orphans", check=False)
    try:
        t0 = time.time()
        compose("up", "-d", "--scale", "client=8")
        cid = coordinator()
        wait_until("round 1", lambda: rounds_logged(cid))
        print("round 1 after %.0f s: %s" % (time.time() - t0, rounds_logged(cid)[0]))
        health = wait_until("a healthy coordinator", lambda: sh(
            "docker", "inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip()
            == "healthy", 120)
        assert health
        text = urllib.request.urlopen("http://127.0.0.1:17702/metrics", timeout=5).read()
        from prometheus_client.parser import text_string_to_metric_families
        names = {f.name for f in text_string_to_metric_families(text.decode())}
        assert "glassbox_round" in names and "glassbox_clients_joined" in names, names
        print("HEALTHCHECK healthy; /metrics parsed: %d families" % len(names))
        mem = sh("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}",
                 *clients()).stdout.split("\n")
        print("client containers' memory: %s" % mem[:3])

        # 2. a client killed mid-round
        done = len(rounds_logged(cid))
        killed = clients()[0]
        slice_before = dealt(killed)
        sh("docker", "kill", killed)
        wait_until("the round after the kill", lambda: len(rounds_logged(cid)) > done)
        r = rounds_logged(cid)[done]
        print("client killed: round %d completed with %d participants" % (r["round"],
                                                                         r["participants"]))
        assert r["participants"] >= 2, r
        # the same container started again: same name, same slice
        sh("docker", "start", killed)
        wait_until("the restarted client's slice", lambda: dealt(killed, last=True) is not None
                   and sh("docker", "logs", killed).stderr.count("dealt slice") >= 2, 120)
        assert dealt(killed, last=True) == slice_before
        print("the killed client started again: dealt slice %d again" % slice_before)

        # 3. the coordinator restarted: resumes at its checkpoint
        done_before = rounds_logged(cid)[-1]["round"]
        compose("restart", "coordinator")
        since = time.time()
        wait_until("a round after the restart", lambda: any(
            r["round"] > done_before for r in rounds_logged(cid)))
        logs = sh("docker", "logs", cid).stderr
        assert "resum" in logs, logs[-2000:]
        print("coordinator restarted after round %d: resumed, next round in %.0f s" % (
            done_before, time.time() - since))

        # 4. a client cut off the network and back
        victim = clients()[-1]
        net = "%s_federation" % PROJECT
        sh("docker", "network", "disconnect", net, victim)
        time.sleep(5)
        sh("docker", "network", "connect", net, victim)
        seen = len(sh("docker", "logs", victim).stderr.split("welcomed to federation"))
        wait_until("the client to rejoin", lambda: len(sh("docker", "logs", victim).stderr.split(
            "welcomed to federation")) > seen - 1 and "task" in sh(
            "docker", "logs", victim).stderr.split("welcomed to federation")[-1], 300)
        print("client disconnected 5 s from the network: rejoined and trained")

        # 5. the end: exit 0, every publication verified
        status = wait_until("the coordinator to finish", lambda: sh(
            "docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid
        ).stdout.strip() if sh("docker", "inspect", "-f", "{{.State.Status}}", cid
                               ).stdout.strip() == "exited" else None, 1200)
        assert status == "exited 0", status
        print("all 7 rounds in %.0f s" % (time.time() - t0))
    finally:
        compose("down", "-v", "--remove-orphans", check=False)

    # 6. the swarm
    env = dict(ENV, ROUNDS="3", MODEL="mlp", EPOCHS="1", LIMIT="6000", FINISHED_GRACE="10")
    t0 = time.time()
    try:
        sh("bash", os.path.join(SOURCE, "deploy", "compose.sh"), "stack", "8", env=env)
        print("swarm stack of 8 replicas: 3 rounds, publications verified, in %.0f s" % (
            time.time() - t0))
    finally:
        sh("docker", "stack", "rm", PROJECT, check=False)
        time.sleep(5)
        sh("docker", "swarm", "leave", "--force", check=False)
    print("ok")


if __name__ == "__main__":
    main()
