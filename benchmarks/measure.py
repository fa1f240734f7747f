"""Run one command in a fresh process tree and measure its wall time and peak memory.

Usage (the benchmark runner does this for every step)::

    python -m benchmarks.measure RESULT.json -- COMMAND [ARG...]

The command's stdout/stderr pass through; its exit code becomes ours; RESULT.json gets the
measurements. Two independent memory measurements are taken, because neither alone is complete:

``tree_peak_kib`` (sampled)
    A sampler thread walks this process's descendants every 50 ms through
    ``/proc/<pid>/task/<tid>/children`` and sums their resident set sizes (``/proc/<pid>/statm``).
    Its maximum is the peak memory of the *whole tree at one instant*, e.g. the step's Python
    process plus the ``dbt`` process it waits for, plus a Prefect server when there is one. A
    spike shorter than 50 ms can be missed, and shared pages (libraries) count once per process.

``max_process_kib`` (exact, kernel-tracked)
    ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read after every descendant was waited for.
    On Linux it is the high-water RSS of the *largest single* process among the waited-for
    children and, recursively, the descendants *they* waited for. Verified on the benchmark
    machine: a child that waits for a grandchild allocating 600 MiB reports ~610 MiB; a grandchild
    that is orphaned (not waited for) is *not* included (~12 MiB). ``/usr/bin/time -f %M`` reads
    the same number, with the same blind spot. To close it, this wrapper makes itself a *child
    subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): orphaned descendants are re-parented to it,
    and it waits for them (up to ``--orphan-timeout`` seconds, then SIGTERM) before reading
    ``RUSAGE_CHILDREN``. It is never a sum: two processes of 1 GiB each report 1 GiB.

The benchmark's "peak RSS" is ``max(tree_peak_kib, max_process_kib)``: the sampled tree sum when it
is larger (several processes alive at once), the exact single-process peak when sampling missed a
spike. The wrapper itself (a small Python process, ~20 MiB) is not counted.

Wall time runs from just before the command is started until it exits; waiting for leftover
orphans is not counted. ``cpu_seconds`` is the CPU time (user + system) of the command and every
descendant waited for; ``machine_busy_seconds`` is the CPU time the whole machine used over the
same wall time (``/proc/stat``), so the difference is what *other* work took from the step.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
SAMPLE_SECONDS = 0.05
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Measurement:
    """What one measured command did."""

    command: list[str]
    returncode: int
    wall_seconds: float
    tree_peak_kib: int
    tree_peak_processes: list[str]
    max_process_kib: int
    samples: int
    orphans_terminated: int
    cpu_seconds: float = 0.0
    machine_busy_seconds: float = 0.0

    @property
    def peak_kib(self) -> int:
        return max(self.tree_peak_kib, self.max_process_kib)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), or [] when it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (not ``pid`` itself)."""
    result: list[int] = []
    stack = _children(pid)
    while stack:
        child = stack.pop()
        result.append(child)
        stack.extend(_children(child))
    return result


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def _name(pid: int) -> str:
    """A short label: the command name, or for Python processes the module or script they run."""
    try:
        with open(f"/proc/{pid}/comm") as handle:
            comm = handle.read().strip()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return "?"
    if not comm.startswith("python") or len(argv) < 2:
        return comm
    if "-m" in argv[1:-1]:
        return argv[argv.index("-m") + 1].rsplit(".", 1)[-1]
    if "-c" in argv[1:-1]:
        code = argv[argv.index("-c") + 1]
        return "prefect-server" if "prefect" in code and "server" in code else "python-c"
    return os.path.basename(argv[1])


class TreeSampler(threading.Thread):
    """Polls the summed RSS of this process's descendants until stopped; keeps the maximum."""

    def __init__(self, root: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.peak_processes: list[str] = []
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        sizes = [(pid, _rss_kib(pid)) for pid in descendants(self.root)]
        total = sum(size for _, size in sizes)
        self.samples += 1
        if total > self.peak_kib:
            self.peak_kib = total
            largest = sorted(sizes, key=lambda item: item[1], reverse=True)
            self.peak_processes = [f"{_name(pid)}:{size // 1024}MiB" for pid, size in largest]

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (``/proc/stat``)."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
    busy = sum(int(value) for index, value in enumerate(fields[1:9]) if index not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap_orphans(timeout: float) -> int:
    """Wait for adopted orphans; SIGTERM (then SIGKILL) those still alive after ``timeout``.

    Returns how many had to be terminated.
    """
    deadline = time.monotonic() + timeout
    terminated = 0
    signalled = False
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return terminated
        if pid:
            continue
        if time.monotonic() > deadline:
            leftover = _children(os.getpid())
            sig = signal.SIGKILL if signalled else signal.SIGTERM
            for child in leftover:
                try:
                    os.kill(child, sig)
                except ProcessLookupError:
                    continue
            if not signalled:
                terminated = len(leftover)
            signalled = True
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def measure(command: list[str], orphan_timeout: float = 60.0) -> Measurement:
    """Run ``command`` to completion and measure it (see the module docstring)."""
    _become_subreaper()
    sampler = TreeSampler(os.getpid())
    sampler.start()
    busy_before = machine_busy_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(command)
    returncode = process.wait()
    wall = time.perf_counter() - started
    busy = machine_busy_seconds() - busy_before
    terminated = _reap_orphans(orphan_timeout)
    sampler.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    max_process_kib = usage.ru_maxrss  # KiB on Linux
    return Measurement(
        command=command,
        returncode=returncode,
        wall_seconds=wall,
        tree_peak_kib=sampler.peak_kib,
        tree_peak_processes=sampler.peak_processes,
        max_process_kib=max_process_kib,
        samples=sampler.samples,
        orphans_terminated=terminated,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        machine_busy_seconds=busy,
    )


def read_result(path: Path) -> Measurement:
    return Measurement(**json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path, help="JSON file to write the measurement to")
    parser.add_argument("--orphan-timeout", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (python -m benchmarks.measure RESULT.json -- CMD ...)")
    result = measure(command, orphan_timeout=args.orphan_timeout)
    args.result.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
