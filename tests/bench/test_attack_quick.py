#!/usr/bin/python3
"""The attack benchmark end to end, tiny (ctest bench/test_attack_quick).

Runs tests/bench/attack_bench.py on IID shards of the first 6,000 training
images, mlp, 4 rounds, fedavg, model poisoning (gb_poison_client as
client-0 and client-1), guard off and flags, plus the attack-free runs, and
checks what must hold whatever the speed: every attack-free run finishes
with a model that learnt (accuracy > 0.5) and both attack test sets
evaluated; the poisoned federation without the guard is clearly hurt (its
accuracy at least 10 points below the clean run's, or it diverged so far
that serve refused every update and the run could not finish); with
--guard flags both attackers are flagged by round 3, their updates are
left out, and the accuracy beats the unguarded poisoned run's.

Usage: test_attack_quick.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time

BUILD, SOURCE = sys.argv[1], sys.argv[2]
ROUNDS = 4


def main():
    t0 = time.time()
    base = tempfile.mkdtemp(prefix="gb-attack-")
    out = os.path.join(base, "attack.json")
    cmd = ["/usr/bin/python3", os.path.join(SOURCE, "tests", "bench", "attack_bench.py"),
           "--build", BUILD, "--shards", "iid", "--attacks", "modelpoison",
           "--aggregators", "fedavg", "--guard", "off,flags", "--rounds", str(ROUNDS),
           "--limit", "6000", "--model", "mlp", "--explain-samples", "16",
           "--deadline", "5", "--round-timeout", "8", "--nice", "0",
           "--out", out, "--work", os.path.join(base, "work")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert os.path.exists(out), "no %s: exit %d\n%s" % (out, p.returncode, p.stderr[-3000:])
    runs = {(r["attack"], r["guard"]): r for r in json.load(open(out))["runs"]}
    assert sorted(runs) == [("modelpoison", "flags"), ("modelpoison", "off"),
                            ("none", "flags"), ("none", "off")], sorted(runs)
    clean = runs[("none", "off")]
    for g in ("off", "flags"):
        r = runs[("none", g)]
        assert "error" not in r, r.get("error")
        assert r["accuracy"] > 0.5, r["accuracy"]
        assert sorted(r["asr"]) == ["backdoor", "labelflip"], r["asr"]
        assert all(0 <= v <= 1 for v in r["asr"].values()), r["asr"]
    bad = runs[("modelpoison", "off")]
    if "error" in bad:  # diverged: every update refused, the rounds stalled
        assert bad["rounds_done"] < ROUNDS, bad
    else:
        assert bad["accuracy"] < clean["accuracy"] - 0.10, (bad["accuracy"], clean["accuracy"])
    good = runs[("modelpoison", "flags")]
    assert "error" not in good, good.get("error")
    for c in ("client-0", "client-1"):
        first = good["attacker_first_flag"][c]
        assert first is not None and first <= 3, (c, good["flagged_rounds"])
        assert good["guarded"][c] >= 1, good["guarded"]
    if "error" not in bad:
        assert good["accuracy"] > bad["accuracy"], (good["accuracy"], bad["accuracy"])
    print("clean %.3f, poisoned %s, guarded %.3f (attackers first flagged %s): ok (%.1f s)"
          % (clean["accuracy"], "diverged" if "error" in bad else "%.3f" % bad["accuracy"],
             good["accuracy"], good["attacker_first_flag"], time.time() - t0))


if __name__ == "__main__":
    main()
