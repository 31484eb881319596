#!/usr/bin/python3
"""The report a person reads, in a real browser:

  ca init, three client certificates -> serve --rounds 1 --out (MLP, IG
  explanations, server-side test set, client evaluations) with three
  `glassbox-client run` -> out/index.html and out/history.json hold round 1
  -> serve again with --rounds 2 and the same --state and --out: the
  history is read back and round 2 appended -> the page names no file
  outside its folder and every file it names exists (chromium logs no
  missing image, so this is checked here) -> Debian's chromium, headless,
  loads the page with no console message (an error, an uncaught exception:
  --enable-logging=stderr prints each as CONSOLE), its DOM (--dump-dom) shows round 2 with the
  class names and the clients' distance plots, and its screenshot is a PNG
  of the window's size that is not blank.

Skipped (exit 77) when chromium is not installed (deploy/install-deps.sh
installs it).

Usage: test_report_run.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BUILD, SOURCE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from gbproc import free_port, run, stop  # noqa: E402 (tests/support)

CLIENT = os.path.join(BUILD, "glassbox-client")
COORD = os.path.join(BUILD, "glassbox-coordinator")
N = 3
WIDTH, HEIGHT = 1200, 2400


def federation(work, rounds):
    """serve --rounds ROUNDS and N clients until all exit 0; the round lines."""
    port = free_port()
    serve = subprocess.Popen(
        [COORD, "serve", "--ca", os.path.join(work, "ca"),
         "--listen", "tcp://127.0.0.1:%d" % port, "--http", "none",
         "--rounds", str(rounds), "--min-clients", str(N), "--model", "mlp",
         "--epochs", "1", "--test-data", "fashion-mnist", "--client-eval",
         "--explain", "ig", "--explain-samples", "8", "--explain-steps", "4",
         "--out", os.path.join(work, "out"), "--state", os.path.join(work, "state"),
         "--finished-grace", "0", "--federation", "report", "--json"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve-%d.log" % rounds), "w"),
        text=True)
    ps = []
    try:
        line = serve.stdout.readline()
        assert line.startswith("listening on"), line
        for k in range(N):
            name = os.path.join(work, "ca", "clients", "client-%d" % k)
            ps.append(subprocess.Popen(
                [CLIENT, "run", "--coordinator", "tcp://127.0.0.1:%d" % port,
                 "--cert", name + ".crt", "--key", name + ".key",
                 "--ca-file", os.path.join(work, "ca", "ca.crt"),
                 "--data", "fashion-mnist", "--limit", "3000", "--clients", str(N),
                 "--index", str(k), "--threads", "1"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "client-%d.log" % k), "a")))
        out, _ = serve.communicate(timeout=240)
        assert serve.returncode == 0, "serve exited %d" % serve.returncode
        for k, p in enumerate(ps):
            p.wait(timeout=60)
            assert p.returncode == 0, "client-%d exited %d" % (k, p.returncode)
    finally:
        stop(serve, *ps)
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def png_pixels(path):
    """(width, height, distinct byte values of the decoded scanlines)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    return width, height, len(set(raw))


def check_files(out, page):
    """Every src and href of the page is a relative name of a file in out."""
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs, "the page names no file"
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/") and ".." not in ref, ref
        assert os.path.exists(os.path.join(out, ref)), "the page names %s, not in %s" % (ref, out)
    assert "<script" not in page
    return len(refs)


def chromium(url, work, *flags):
    profile = tempfile.mkdtemp(prefix="chromium-", dir=work)
    return run(shutil.which("chromium"), "--headless", "--disable-gpu", "--no-sandbox",
               "--no-first-run", "--user-data-dir=" + profile, *flags, url, timeout=120)


def main():
    if not shutil.which("chromium"):
        print("chromium is not installed (deploy/install-deps.sh installs it): skipped")
        sys.exit(77)
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="gb-report-")
    ca = os.path.join(work, "ca")
    run(COORD, "ca", "init", "--dir", ca, "--federation", "report")
    for k in range(N):
        run(COORD, "ca", "issue", "--dir", ca, "--name", "client-%d" % k)
    out = os.path.join(work, "out")

    rounds = federation(work, 1)
    assert [r["round"] for r in rounds] == [1], rounds
    history = json.load(open(os.path.join(out, "history.json")))
    assert history["format"] == "glassbox-report-history"
    assert [r["round"] for r in history["rounds"]] == [1], history["rounds"]
    assert 'data-round="1"' in open(os.path.join(out, "index.html")).read()
    print("round 1: index.html and history.json: ok (%.1f s)" % (time.time() - t0))

    rounds = federation(work, 2)  # resumes at round 2 and appends to the history
    assert [r["round"] for r in rounds] == [2], rounds
    history = json.load(open(os.path.join(out, "history.json")))
    assert [r["round"] for r in history["rounds"]] == [1, 2], history["rounds"]
    last = history["rounds"][-1]
    assert abs(last["test_accuracy"] - rounds[0]["test_accuracy"]) < 1e-6, (last, rounds)
    assert history["classes"][0] == "T-shirt/top" and len(last["class_accuracy"]) == 10
    assert sorted(d[0] for d in last["distances"]) == ["client-%d" % k for k in range(N)]
    assert None not in last["client_accuracy_spread"], last
    page = open(os.path.join(out, "index.html")).read()
    files = check_files(out, page)
    print("restart: history read back, round 2 appended; %d files named, all there: ok"
          % files)

    url = "file://" + os.path.join(out, "index.html")
    shot = os.path.join(work, "report.png")
    t1 = time.time()
    p = chromium(url, work, "--enable-logging=stderr", "--v=0",
                 "--window-size=%d,%d" % (WIDTH, HEIGHT), "--screenshot=" + shot)
    console = [l for l in p.stderr.splitlines() if "CONSOLE" in l or "Failed to load" in l
               or "ERR_FILE_NOT_FOUND" in l or "Uncaught" in l]
    assert not console, "the browser reported:\n" + "\n".join(console)
    width, height, distinct = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT), (width, height)
    assert distinct > 20, "the screenshot looks blank (%d distinct byte values)" % distinct
    dom = chromium(url, work, "--dump-dom").stdout
    assert 'id="last-round" data-round="2"' in dom, dom[:2000]
    assert "<title>Glassbox report: round 2</title>" in dom, dom[:400]
    assert "Ankle boot" in dom and 'src="explanation-2-class-9.png"' in dom
    assert dom.count('<div class="cell') == N, dom.count('<div class="cell')
    assert 'id="accuracy-plot"' in dom and 'id="spread-plot"' in dom
    print("chromium: loaded without errors, round 2 in the DOM, screenshot %dx%d with %d "
          "distinct byte values: ok (%.1f s)" % (width, height, distinct, time.time() - t1))
    print("ok (%.1f s)" % (time.time() - t0))


if __name__ == "__main__":
    main()
