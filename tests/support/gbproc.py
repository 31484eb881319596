"""What the real-process tests share: running a command and checking its
exit code, a free loopback port, a process's resident memory, and waiting
for a line in a log file."""
import os
import socket
import subprocess
import time


def run(*args, rc=0, timeout=120):
    """Runs args; asserts the exit code is rc; returns the CompletedProcess."""
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == rc, "%s: exit %d, want %d\n%s%s" % (args, p.returncode, rc,
                                                               p.stdout, p.stderr)
    return p


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    """Resident memory of process pid, MiB."""
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_text(path, text, count=1, timeout=60):
    """Waits until file path holds text at least count times."""
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and open(path).read().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("%d x '%s' not in %s after %d s" % (count, text, path, timeout))


def cpu_seconds(pid):
    """User + system CPU time of process pid so far, seconds (/proc/PID/stat)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(*procs, timeout=30):
    """Terminates every process of procs still running (None entries are
    skipped), killing one that outlives timeout seconds."""
    for p in procs:
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
