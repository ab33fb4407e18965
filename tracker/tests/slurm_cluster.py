"""A throwaway one-host Slurm for tests: munged with its own key and socket, slurmctld and
slurmd with a configuration of their own, all in a temporary folder, on free ports.

    with SlurmCluster() as slurm:       # waits until the node is idle
        subprocess.run(["srun", ...], env=slurm.env)

Needs root (slurmd runs jobs as any user) and Debian's slurm-wlm and munge (make deps).
why_not() says why it cannot run here, or returns None. Every daemon is stopped by its pid,
read from its own pid file.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

START_SECONDS = 60  # a busy machine may take a while; an idle one takes a few seconds
PROGRAMS = ("munged", "slurmctld", "slurmd", "srun", "sinfo", "sbatch", "squeue", "scontrol")


def why_not():
    missing = [p for p in PROGRAMS if not shutil.which(p)]
    if missing:
        return f"slurm checks: {', '.join(missing)} missing; make deps installs slurm-wlm, munge"
    if os.geteuid() != 0:
        return "slurm checks: need root to run slurmd"
    return None


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class SlurmCluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="slurm-")
        self.host = socket.gethostname().split(".")[0]
        d = self.dir
        self.munge_socket = os.path.join(d, "munge.socket")
        self.conf = os.path.join(d, "slurm.conf")
        self.pid_files = [os.path.join(d, n + ".pid") for n in ("slurmd", "slurmctld", "munged")]
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        for name in [n for n in self.env if n.startswith("SLURM_") and n != "SLURM_CONF"]:
            del self.env[name]  # not inside someone else's allocation

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _start(self):
        d = self.dir
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self._run(["munged", f"--key-file={key}", f"--socket={self.munge_socket}",
                   f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log",
                   f"--seed-file={d}/munged.seed", "--force"])
        ctld_port, slurmd_port = free_ports(2)
        for sub in ("state", "spool"):
            os.mkdir(os.path.join(d, sub))
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=slackline-test
SlurmctldHost={self.host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName={self.host} CPUs=2 State=UNKNOWN
PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
""")
        self._run(["slurmctld", "-f", self.conf])
        self._run(["slurmd", "-f", self.conf])
        wait_until(self._idle, START_SECONDS, f"the Slurm node {self.host} to be idle")

    def _run(self, argv):
        p = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"{argv[0]} failed to start: {p.stdout.strip()}{self.logs()}")

    def _idle(self):
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           timeout=30)
        return p.returncode == 0 and p.stdout.strip() in ("idle", "mixed")

    def logs(self):
        text = ""
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f"\n--- {name}\n" + "".join(f.readlines()[-20:])
        return text

    def stop(self):
        """Stops the daemons by their pid files (SIGTERM, SIGKILL after a deadline)."""
        pids = []
        for path in self.pid_files:
            try:
                with open(path) as f:
                    pids.append(int(f.read().strip()))
            except (OSError, ValueError):
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
