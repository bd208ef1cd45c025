#!/usr/bin/python3
"""cgroup v2 suite for sandbox-server, run INSIDE the QEMU guest (scripts/qemu/run-in-guest.sh).

    scripts/qemu/run-in-guest.sh -- /usr/bin/python3 scripts/qemu/cgroup-v2-suite.py

Exercises `sandbox-server run --json` on a real cgroup v2 hierarchy: memory limit with OOM
detection (memory.events), peak memory (memory.peak), pids limit, CPU accounting (cpu.stat),
CPU and wall time limits, whole-group kill (cgroup.kill) of a daemonised grandchild, joining with
clone3(CLONE_INTO_CGROUP), cleanup (no cgroup left behind) and the delegated mode (the service
confined to a delegated subtree, as systemd's Delegate=yes gives it).

Prints one TAP-style line per check (`ok - NAME` / `not ok - NAME`, details as `#` lines), then
`N passed, M failed`; exits 1 on any failure. The first checks (`env:`) only prove the guest
kernel (no sandbox-server needed); then the binary is checked and the suite stops there if it is
missing or its `run --help` does not mention --json.

Environment:
  SANDBOX_SERVER_BIN   binary to test (default: <repo>/.build/release/sandbox-server)
  SANDBOX_SUITE_ONLY   comma-separated substrings: run only the sandbox checks whose name
                       contains one of them (the env: and preflight checks always run)
  SANDBOX_TEST_BREAK   write:NAME[,NAME...] -- deliberately break the product: sandbox-server runs with
                       break-write.so preloaded, which sends its writes to cgroup files with those
                       base names (cgroup.kill, memory.max, pids.max, ...) to /dev/null; the
                       matching checks must then fail. Any value is also passed on to
                       sandbox-server unchanged (for a hook of its own).
  SANDBOX_SUITE_ALLOW_HOST=1  allow running outside the QEMU guest (it writes to the cgroup root
                       and /usr/local/lib; meant for a disposable cgroup v2 machine only)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SANDBOX_SERVER_BIN", os.path.join(REPO, ".build/release/sandbox-server"))
CG = "/sys/fs/cgroup"
PARENT = os.path.join(CG, "sandbox-server")          # default --cgroup-parent
WORK = "/tmp/cgv2-suite"                              # boxes, markers, scratch (guest tmpfs)
TOOLS = "/usr/local/lib/cgv2-suite"                   # visible inside the sandbox via /usr
HOSTILE = os.path.join(TOOLS, "hostile")
BREAK = os.environ.get("SANDBOX_TEST_BREAK", "")
BREAK_SO = os.path.join(TOOLS, "break-write.so")
BIN_ENV = None          # environment of sandbox-server runs (None: the suite's own)
MIB = 1 << 20
ONLY = [s for s in os.environ.get("SANDBOX_SUITE_ONLY", "").split(",") if s]

os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
passed = 0
failed = 0
failed_names = []
leftovers = []          # (run name, [cgroup dirs left under PARENT])
run_counter = 0
T0 = time.time()


def out(line=""):
    print(line, flush=True)


def check(name, ok, details=()):
    global passed, failed
    if ok:
        passed += 1
        out(f"ok - {name}")
    else:
        failed += 1
        failed_names.append(name)
        out(f"not ok - {name}")
        for d in details:
            for line in str(d).splitlines() or [""]:
                out(f"#   {line}")
    return ok


def wanted(name):
    return not ONLY or any(s in name for s in ONLY)


def finish():
    out(f"# elapsed {time.time() - T0:.1f}s")
    if failed_names:
        out("# failed: " + "; ".join(failed_names))
    out(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def kv(text):
    """Parse "key value" lines (memory.events, cpu.stat)."""
    d = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            d[parts[0]] = int(parts[1]) if parts[1].lstrip("-").isdigit() else parts[1]
    return d


def cgroup_dirs(root, exclude=None):
    """All cgroup directories below root (not root itself), as paths relative to CG."""
    found = []
    if not os.path.isdir(root):
        return found
    for dirpath, dirnames, _ in os.walk(root):
        if exclude and (dirpath == exclude or dirpath.startswith(exclude + "/")):
            dirnames[:] = []
            continue
        if dirpath != root:
            found.append(os.path.relpath(dirpath, CG))
    return sorted(found)


def procs_below(root):
    pids = []
    for dirpath, _, _ in os.walk(root):
        pids += (read(os.path.join(dirpath, "cgroup.procs"), "") or "").split()
    return pids


def cgroup_of(pid):
    """The pid's cgroup v2 path as seen from the guest (init cgroup namespace), or None."""
    text = read(f"/proc/{pid}/cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def find_pids(tag, argv0):
    """Pids whose argv[0] is argv0 and whose later arguments include tag. (Matching argv[0]
    keeps out sandbox-server and its not-yet-exec'd children, whose arguments hold the tag too.)"""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        argv = (read(f"/proc/{p}/cmdline") or "").split("\0")
        if argv and argv[0] == argv0 and tag in argv[1:]:
            pids.append(int(p))
    return pids


def wait_for(fn, timeout, interval=0.1):
    end = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(interval)


def enter_cgroup(path):
    def fn():
        write(os.path.join(path, "cgroup.procs"), "0")
    return fn


class Run:
    def __init__(self, name, proc, argv):
        self.name, self.proc, self.argv = name, proc, argv
        self.rc = self.stdout = self.stderr = self.json = None
        self.timed_out = False
        self.elapsed = None
        self.t0 = time.time()

    def wait(self, timeout=240):
        try:
            so, se = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.proc.kill()
            so, se = self.proc.communicate()
        self.elapsed = time.time() - self.t0
        self.rc, self.stdout, self.stderr = self.proc.returncode, so, se
        try:
            self.json = json.loads(so)
            if not isinstance(self.json, dict):
                self.json = None
        except ValueError:
            self.json = None
        return self

    def get(self, key, default=None):
        return (self.json or {}).get(key, default)

    def describe(self):
        d = [f"command: {' '.join(self.argv)}",
             f"exit status {self.rc}{' (killed by the suite: timeout)' if self.timed_out else ''}, "
             f"{self.elapsed:.1f}s"]
        if self.json is not None:
            j = dict(self.json)
            for k in ("stdout", "stderr"):
                if isinstance(j.get(k), str) and len(j[k]) > 300:
                    j[k] = j[k][:300] + "..."
            d.append("json: " + json.dumps(j, sort_keys=True))
        else:
            d.append("stdout (not JSON): " + (self.stdout or "")[:600])
        if self.stderr:
            d.append("stderr: " + self.stderr[-800:])
        return d


def start(name, opts, program, cgroup=None):
    global run_counter
    run_counter += 1
    argv = [BIN, "run", "--json"] + opts + ["--"] + program
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=BIN_ENV,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            preexec_fn=enter_cgroup(cgroup) if cgroup else None)
    return Run(name, proc, argv)


def finish_run(r, timeout=240, check_parent=True):
    r.wait(timeout)
    if check_parent:
        left = cgroup_dirs(PARENT)
        if left:
            # Give an asynchronous cleanup a moment before calling it a leak.
            time.sleep(1)
            left = cgroup_dirs(PARENT)
        if left:
            leftovers.append((r.name, left))
            remove_empty(PARENT)    # so that the next run's leftovers are its own
    return r


def remove_empty(root):
    """rmdir the (process-free) cgroups below root, deepest first."""
    for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -t[0].count("/")):
        if dirpath != root:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def sb(name, opts, program, timeout=240):
    return finish_run(start(name, opts, program), timeout)


def status_is(r, status):
    return r.json is not None and r.get("status") == status


def box(name):
    d = os.path.join(WORK, "box-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.chmod(d, 0o777)
    return d


# ---------------------------------------------------------------- environment (the guest kernel)
def env_checks():
    fstype = subprocess.run(["stat", "-f", "-c", "%T", CG], capture_output=True, text=True).stdout.strip()
    if not check("env: /sys/fs/cgroup is a cgroup2 mount", fstype == "cgroup2fs", [f"fs type: {fstype!r}"]):
        finish()
    if os.environ.get("QEMU_HARNESS_GUEST") != "1" and os.environ.get("SANDBOX_SUITE_ALLOW_HOST") != "1":
        check("env: running inside the QEMU harness guest", False,
              ["refusing to write to the cgroup root and /usr/local/lib outside the guest;",
               "run it through scripts/qemu/run-in-guest.sh (or set SANDBOX_SUITE_ALLOW_HOST=1)"])
        finish()
    out(f"# kernel {os.uname().release}, {os.cpu_count()} CPUs")
    controllers = (read(os.path.join(CG, "cgroup.controllers"), "") or "").split()
    check("env: memory, pids and cpu controllers available", {"memory", "pids", "cpu"} <= set(controllers),
          [f"cgroup.controllers: {controllers}"])

    os.makedirs(WORK, exist_ok=True)
    os.makedirs(TOOLS, exist_ok=True)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile.c")
    cc = subprocess.run(["gcc", "-O1", "-o", HOSTILE, src], capture_output=True, text=True)
    if not check("env: gcc builds the test programs", cc.returncode == 0 and os.access(HOSTILE, os.X_OK),
                 [cc.stderr]):
        finish()
    if BREAK.startswith("write:"):
        global BIN_ENV
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "break-write.c")
        cc = subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", BREAK_SO, src, "-ldl"],
                            capture_output=True, text=True)
        if not check("env: gcc builds break-write.so (SANDBOX_TEST_BREAK)", cc.returncode == 0, [cc.stderr]):
            finish()
        BIN_ENV = dict(os.environ, LD_PRELOAD=BREAK_SO)
        out(f"# BREAK MODE (SANDBOX_TEST_BREAK={BREAK}): sandbox-server's writes to {BREAK[6:]} go to "
            f"/dev/null; the checks that depend on them must fail")

    # Manual cgroup v2 tests with a group made by hand: memory.peak, OOM in memory.events,
    # cgroup.kill. Afterwards the root's subtree_control is restored, so that sandbox-server
    # starts from a freshly booted hierarchy (no controller enabled anywhere).
    before = read(os.path.join(CG, "cgroup.subtree_control"), "").split()
    probe = os.path.join(CG, "suite-probe")
    try:
        write(os.path.join(CG, "cgroup.subtree_control"), "+memory +pids +cpu")
        os.mkdir(probe)
        files = set(os.listdir(probe))
        need = {"memory.peak", "cgroup.kill", "memory.events", "cpu.stat", "pids.max", "memory.max"}
        check("env: memory.peak, cgroup.kill, memory.events, cpu.stat, pids.max present",
              need <= files, [f"missing: {sorted(need - files)}"])

        write(os.path.join(probe, "memory.max"), str(32 * MIB))
        write(os.path.join(probe, "memory.swap.max"), "0")
        p = subprocess.run([HOSTILE, "membomb"], preexec_fn=enter_cgroup(probe), timeout=120)
        ev = kv(read(os.path.join(probe, "memory.events")))
        peak = int(read(os.path.join(probe, "memory.peak"), "0") or 0)
        check("env: manual OOM in a 32M cgroup: SIGKILL, oom_kill in memory.events, memory.peak near 32M",
              p.returncode == -signal.SIGKILL and ev.get("oom_kill", 0) >= 1 and 24 * MIB <= peak <= 33 * MIB,
              [f"returncode {p.returncode}, memory.events {ev}, memory.peak {peak}"])

        marker = os.path.join(WORK, "probe-marker")
        write(os.path.join(probe, "memory.max"), "max")
        subprocess.run([HOSTILE, "daemon", marker, "60", "probe-daemon"], preexec_fn=enter_cgroup(probe),
                       stdout=subprocess.DEVNULL, timeout=60)
        n_before = len(read(os.path.join(probe, "cgroup.procs"), "").split())
        write(os.path.join(probe, "cgroup.kill"), "1")
        empty = wait_for(lambda: "populated 0" in read(os.path.join(probe, "cgroup.events"), ""), 10)
        check("env: cgroup.kill kills a daemonised process", n_before >= 1 and empty,
              [f"processes before {n_before}, cgroup.events {read(os.path.join(probe, 'cgroup.events'))!r}"])
    except Exception as e:  # noqa: BLE001 - report, do not crash the suite
        check("env: manual cgroup v2 probe", False, [repr(e)])
    finally:
        if os.path.isdir(probe):
            try:
                os.rmdir(probe)
            except OSError as e:
                out(f"# could not remove {probe}: {e}")
        try:
            drop = [c for c in ("memory", "pids", "cpu") if c not in before]
            if drop:
                write(os.path.join(CG, "cgroup.subtree_control"), " ".join("-" + c for c in drop))
        except OSError as e:
            out(f"# could not restore the root subtree_control: {e}")


def preflight():
    problems = []
    if not os.access(BIN, os.X_OK):
        problems.append(f"{BIN} not found or not executable (build it: swift build -c release)")
    else:
        # `run --help`; ArgumentParser commands that pass unknown arguments through to PROGRAM
        # reject that, so `help run` is asked too.
        texts = []
        for args in (["run", "--help"], ["help", "run"]):
            try:
                h = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=120)
                texts.append(f"$ sandbox-server {' '.join(args)}  (status {h.returncode})\n{h.stdout}{h.stderr}")
            except Exception as e:  # noqa: BLE001
                texts.append(f"$ sandbox-server {' '.join(args)}: {e!r}")
            if "--json" in texts[-1]:
                break
        else:
            problems.append("neither `run --help` nor `help run` mentions --json; the binary does not "
                            "implement the run contract yet:\n" + "\n".join(t[:1500] for t in texts))
    if not check("preflight: sandbox-server binary present and its run help mentions --json", not problems, problems):
        finish()


# ---------------------------------------------------------------- sandbox checks
def t_basic():
    r = sb("echo", [], ["/bin/echo", "hello"])
    check("run: /bin/echo -> status ok, exit_code 0, stdout captured, cgroup_version 2",
          status_is(r, "ok") and r.get("exit_code") == 0 and r.get("stdout") == "hello\n"
          and r.get("cgroup_version") == 2, r.describe())
    r = sb("exit3", [], ["/bin/sh", "-c", "exit 3"])
    check("run: exit 3 -> runtime_error with exit_code 3",
          status_is(r, "runtime_error") and r.get("exit_code") == 3, r.describe())
    r = sb("cgroupns", [], ["/bin/cat", "/proc/self/cgroup"])
    check("run: the job has its own cgroup namespace (/proc/self/cgroup is 0::/)",
          status_is(r, "ok") and r.get("stdout") == "0::/\n", r.describe())


def t_memory():
    r = sb("oom", ["--memory", "64M", "--wall-time", "60"], [HOSTILE, "membomb"])
    mem = r.get("memory_bytes")
    check("memory: a memory bomb under --memory 64M -> memory_limit (OOM kill seen in memory.events)",
          status_is(r, "memory_limit") and isinstance(mem, int) and mem <= 72 * MIB, r.describe())
    check("memory: peak of the OOM-killed job (memory.peak) is close to 64M",
          isinstance(mem, int) and 48 * MIB <= mem <= 72 * MIB, r.describe())

    r = sb("selfkill", ["--memory", "64M"], [HOSTILE, "selfkill"])
    check("memory: a plain SIGKILL (no OOM) -> signaled, signal 9, not memory_limit",
          status_is(r, "signaled") and r.get("signal") == 9, r.describe())

    r = sb("alloc48", ["--memory", "256M"], [HOSTILE, "alloc", "48"])
    mem = r.get("memory_bytes")
    check("memory: 48 MiB allocated under --memory 256M -> ok, memory_bytes between 48M and 256M",
          status_is(r, "ok") and isinstance(mem, int) and 48 * MIB <= mem <= 256 * MIB, r.describe())

    r = sb("alloc-child", ["--memory", "256M"], [HOSTILE, "alloc-child", "48"])
    mem = r.get("memory_bytes")
    check("memory: peak counts a child that allocated 48 MiB and exited (cgroup peak, not the main process)",
          status_is(r, "ok") and isinstance(mem, int) and 48 * MIB <= mem <= 256 * MIB, r.describe())


def t_pids():
    r = sb("forkbomb", ["--processes", "8", "--wall-time", "60"], [HOSTILE, "forkbomb", "500"])
    words = (r.get("stdout") or "").split()
    n = int(words[1]) if len(words) >= 4 and words[0] == "forked" and words[1].isdigit() else None
    check("pids: --processes 8 stops a fork bomb (fork fails with EAGAIN after at most 8)",
          status_is(r, "ok") and n is not None and n <= 8 and words[3] == "EAGAIN", r.describe())


def t_cpu():
    r = sb("spin-child", ["--cpu-time", "30", "--wall-time", "120"], [HOSTILE, "spin-child", "1.0"])
    cpu = r.get("cpu_time_ms")
    check("cpu: cpu_time_ms (cpu.stat) counts 1 s burnt by an auto-reaped child",
          status_is(r, "ok") and isinstance(cpu, (int, float)) and 900 <= cpu <= 10000, r.describe())

    r = sb("cpu-limit", ["--cpu-time", "1", "--wall-time", "60"], [HOSTILE, "loop"])
    cpu = r.get("cpu_time_ms")
    check("cpu: --cpu-time 1 stops an endless loop -> time_limit, time_limit_kind cpu",
          status_is(r, "time_limit") and r.get("time_limit_kind") == "cpu"
          and isinstance(cpu, (int, float)) and cpu >= 900, r.describe())

    r = sb("wall-limit", ["--wall-time", "2", "--cpu-time", "30"], ["/bin/sleep", "30"])
    wall = r.get("wall_time_ms")
    check("wall: --wall-time 2 stops a sleeper -> time_limit, time_limit_kind wall",
          status_is(r, "time_limit") and r.get("time_limit_kind") == "wall"
          and isinstance(wall, (int, float)) and 1900 <= wall <= 30000, r.describe())


def no_survivor(name, mode, opts):
    b = box(name)
    tag = f"cgv2-{name}-{os.getpid()}"
    marker = os.path.join(b, "marker")
    r = sb(name, ["--box", b] + opts, [HOSTILE, mode, "/box/marker", "3", tag])
    alive_now = find_pids(tag, HOSTILE)
    time.sleep(4.5)
    alive_later = find_pids(tag, HOSTILE)
    details = r.describe() + [f"processes with tag {tag} right after run: {alive_now}, 4.5 s later: {alive_later}",
                              f"marker written by the grandchild 3 s later: {os.path.exists(marker)}"]
    for p in alive_later:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return r, (not alive_now and not alive_later and not os.path.exists(marker)), details


def t_kill():
    r, clean, d = no_survivor("daemon", "daemon", ["--wall-time", "60"])
    check("kill: a daemonised grandchild (setsid, ignores SIGTERM) does not outlive the job",
          status_is(r, "ok") and clean, d)
    r, clean, d = no_survivor("daemon-timeout", "daemon-then-sleep", ["--wall-time", "2"])
    check("kill: after a wall time limit no process of the job survives (cgroup.kill)",
          status_is(r, "time_limit") and clean, d)

    # The outcome checks above also pass when the job's PID namespace takes the orphans down with
    # its init; this one checks the mechanism: ending a job at its time limit writes cgroup.kill.
    if not shutil.which("strace"):
        check("kill: ending a job at its wall time limit writes cgroup.kill (strace)", False,
              ["strace not installed (Debian package strace, in the Makefile's TEST_PACKAGES)"])
        return
    st = os.path.join(WORK, "strace-kill.log")
    argv = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", st,
            BIN, "run", "--json", "--wall-time", "2", "--", "/bin/sleep", "30"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=BIN_ENV)
    opens = [l for l in (read(st, "") or "").splitlines()
             if 'cgroup.kill"' in l and ("O_WRONLY" in l or "O_RDWR" in l) and "= -1" not in l]
    try:
        status = json.loads(p.stdout).get("status")
    except ValueError:
        status = None
    check("kill: ending a job at its wall time limit writes cgroup.kill (strace)",
          bool(opens) and status == "time_limit",
          [f"command: {' '.join(argv)} -> status {p.returncode}, json status {status!r}",
           "stdout: " + p.stdout[:500], "stderr: " + p.stderr[-500:],
           f"successful opens of cgroup.kill for writing: {opens[:5]}"])
    left = cgroup_dirs(PARENT)
    if left:
        leftovers.append(("kill under strace", left))
        remove_empty(PARENT)


def t_clone3():
    st = os.path.join(WORK, "strace.log")
    if not shutil.which("strace"):
        check("clone3: the job is started with clone3(CLONE_INTO_CGROUP)", False,
              ["strace not installed (Debian package strace, in the Makefile's TEST_PACKAGES)"])
    else:
        argv = ["strace", "-f", "-qq", "-e", "trace=clone3", "-o", st, BIN, "run", "--json", "--", "/bin/true"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=BIN_ENV)
        log = read(st, "") or ""
        hits = [l for l in log.splitlines() if "CLONE_INTO_CGROUP" in l]
        check("clone3: the job is started with clone3(CLONE_INTO_CGROUP)", bool(hits) and p.returncode == 0,
              [f"command: {' '.join(argv)} -> status {p.returncode}", "stdout: " + p.stdout[:500],
               "stderr: " + p.stderr[-500:], "clone3 calls seen:"] + log.splitlines()[-15:])
        left = cgroup_dirs(PARENT)
        if left:
            leftovers.append(("clone3 under strace", left))
            remove_empty(PARENT)

    # Host-side view of a running job: its cgroup, the limits written there, the server outside.
    tag = "7.2031"
    r = start("observe", ["--memory", "128M", "--processes", "16", "--wall-time", "60"], ["/bin/sleep", tag])
    pids = wait_for(lambda: find_pids(tag, "/bin/sleep"), 60)
    details = []
    ok = False
    if pids:
        cg = cgroup_of(pids[0]) or ""
        server_cg = cgroup_of(r.proc.pid)
        path = os.path.join(CG, cg.lstrip("/"))
        mmax = (read(os.path.join(path, "memory.max"), "") or "").strip()
        pmax = (read(os.path.join(path, "pids.max"), "") or "").strip()
        details = [f"job pid {pids[0]} cgroup {cg!r}; server pid {r.proc.pid} cgroup {server_cg!r}",
                   f"memory.max {mmax!r}, pids.max {pmax!r}"]
        ok = (cg.startswith("/sandbox-server/") and server_cg is not None and server_cg != cg
              and mmax.isdigit() and 128 * MIB <= int(mmax) <= 144 * MIB
              and pmax.isdigit() and int(pmax) <= 18)
    else:
        details = [f"no process with command line containing {tag} appeared within 60 s"]
    if not pids and r.proc.poll() is None:
        r.proc.kill()
    finish_run(r, 120)
    check("clone3: a running job sits in its own group under /sys/fs/cgroup/sandbox-server with "
          "memory.max and pids.max set", ok and status_is(r, "ok"), details + r.describe())


def t_cleanup():
    stray = procs_below(PARENT)
    check(f"cleanup: no cgroup left under {PARENT} after any of the {run_counter} runs",
          not leftovers,
          [f"after {name}: {left}" for name, left in leftovers] + [f"processes still inside: {stray}"])
    check(f"cleanup: no process left in {PARENT}", not stray, [f"pids: {stray}"])


def t_delegated():
    """systemd Delegate=yes: the service gets deleg.slice/sbx-N.service and may do anything below
    it, nothing outside it. Each run gets a fresh service cgroup, as each service start would."""
    slice_ = os.path.join(CG, "deleg.slice")
    # The empty default parent may remain after the default-mode runs; remove it so that a
    # delegated run recreating it would be seen.
    if os.path.isdir(PARENT) and not cgroup_dirs(PARENT):
        try:
            os.rmdir(PARENT)
        except OSError:
            pass
    os.makedirs(slice_, exist_ok=True)
    write(os.path.join(CG, "cgroup.subtree_control"), "+memory +pids +cpu")
    write(os.path.join(slice_, "cgroup.subtree_control"), "+memory +pids +cpu")

    def snapshot(exclude):
        dirs = [""] + cgroup_dirs(CG, exclude=exclude)
        return {d: (read(os.path.join(CG, d, "cgroup.subtree_control"), "") or "").strip() for d in dirs}

    def service(n):
        s = os.path.join(slice_, f"sbx-{n}.service")
        os.mkdir(s)
        return s

    def remove_service(s):
        for dirpath, _, _ in sorted(os.walk(s), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError as e:
                out(f"# could not remove {dirpath}: {e}")

    def after(s):
        """Problems left in the service cgroup after the run: anything but an empty supervisor."""
        probs = []
        for d in cgroup_dirs(s):
            rel = os.path.relpath(os.path.join(CG, d), s)
            if rel != "supervisor":
                probs.append(f"left behind: {d}")
        if procs_below(s):
            probs.append(f"processes left: {procs_below(s)}")
        return probs

    # 1. a job observed while it runs
    s = service(1)
    snap = snapshot(s)
    tag = "6.4127"
    r = start("delegated-observe", ["--cgroup-delegated", "--memory", "128M", "--wall-time", "60"],
              ["/bin/sleep", tag], cgroup=s)
    pids = wait_for(lambda: find_pids(tag, "/bin/sleep"), 60)
    rel_s = "/" + os.path.relpath(s, CG)
    details, ok = [], False
    if pids:
        job_cg = cgroup_of(pids[0]) or ""
        server_cg = cgroup_of(r.proc.pid) or ""
        own_procs = (read(os.path.join(s, "cgroup.procs"), "") or "").split()
        sub = (read(os.path.join(s, "cgroup.subtree_control"), "") or "").split()
        details = [f"service cgroup {rel_s}: cgroup.procs {own_procs}, subtree_control {sub}",
                   f"server pid {r.proc.pid} in {server_cg!r}; job pid {pids[0]} in {job_cg!r}"]
        ok = (server_cg == rel_s + "/supervisor" and job_cg.startswith(rel_s + "/")
              and not job_cg.startswith(rel_s + "/supervisor") and not own_procs
              and {"memory", "pids", "cpu"} <= set(sub))
    else:
        details = [f"no process with command line containing {tag} appeared within 60 s"]
    finish_run(r, 120, check_parent=False)
    check("delegated: server moves itself to <service>/supervisor, job runs in a sibling leaf, "
          "controllers enabled in the service's subtree_control, no internal process",
          ok and status_is(r, "ok"), details + r.describe())
    probs = after(s)
    check("delegated: after the run only an empty supervisor remains in the service cgroup",
          not probs, probs)
    changed = {k: v for k, v in snapshot(s).items() if snap.get(k) != v}
    gone = [k for k in snap if k not in snapshot(s)]
    check("delegated: nothing created or changed outside the delegated cgroup (no /sys/fs/cgroup/sandbox-server)",
          not changed and not gone and not os.path.isdir(PARENT),
          [f"new or changed: {changed}", f"removed: {gone}", f"{PARENT} exists: {os.path.isdir(PARENT)}"])
    remove_service(s)

    # 2. limits work inside the delegated subtree
    s = service(2)
    r = finish_run(start("delegated-oom", ["--cgroup-delegated", "--memory", "64M", "--wall-time", "60"],
                         [HOSTILE, "membomb"], cgroup=s), 240, check_parent=False)
    mem = r.get("memory_bytes")
    # The peak bound matters: without memory.max the bomb fills the guest until the global OOM
    # killer strikes, and that kill is counted in the job's memory.events too.
    check("delegated: a memory bomb under --memory 64M -> memory_limit, peak at most ~64M",
          status_is(r, "memory_limit") and isinstance(mem, int) and mem <= 72 * MIB, r.describe())
    probs = after(s)
    check("delegated: no job cgroup left after an OOM kill", not probs, probs)
    remove_service(s)

    s = service(3)
    b = box("delegated-daemon")
    tag = f"cgv2-deleg-daemon-{os.getpid()}"
    r = finish_run(start("delegated-daemon", ["--cgroup-delegated", "--box", b, "--wall-time", "60"],
                         [HOSTILE, "daemon", "/box/marker", "3", tag], cgroup=s), 240, check_parent=False)
    time.sleep(4.5)
    alive = find_pids(tag, HOSTILE)
    check("delegated: a daemonised grandchild does not outlive the job",
          status_is(r, "ok") and not alive and not os.path.exists(os.path.join(b, "marker")),
          r.describe() + [f"survivors: {alive}, marker: {os.path.exists(os.path.join(b, 'marker'))}"])
    for p in alive:
        os.kill(p, signal.SIGKILL)
    remove_service(s)
    try:
        os.rmdir(slice_)
    except OSError:
        pass


def main():
    out("# cgroup v2 suite for sandbox-server")
    env_checks()
    preflight()
    out(f"# binary {BIN}")
    for name, fn in [("run", t_basic), ("memory", t_memory), ("pids", t_pids), ("cpu", t_cpu),
                     ("kill", t_kill), ("clone3", t_clone3), ("cleanup", t_cleanup),
                     ("delegated", t_delegated)]:
        if not wanted(name):
            continue
        t = time.time()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one broken group must not hide the others
            import traceback
            check(f"{name}: checks ran to completion", False, [traceback.format_exc()])
        out(f"# {name}: {time.time() - t:.1f}s")
    finish()


if __name__ == "__main__":
    main()
