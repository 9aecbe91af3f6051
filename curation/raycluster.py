"""Which Ray a run uses: a fresh embedded local instance, or the cluster that ``RAY_ADDRESS`` / ``ray.address``
names, and nothing else.

Ray's own default (``ray.init()`` without an address) joins whatever cluster it finds recorded on the machine
(``ray_current_cluster`` under Ray's temp dir), so a head started by someone else would take over a local run.
The embedded instance is therefore started with ``address="local"``, and its processes are listed in the
output folder: a driver killed with ``kill -9`` takes its GCS and raylet with it, but some of Ray's agents
outlive it, and the next run into that folder ends them (:func:`reap_leftovers`). A named cluster is probed first (a TCP
connect to its head, a few seconds), so an address that does not answer is one line naming it instead of a
silent wait inside ``ray.init``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psutil
import ray

from curation.atomicio import write_atomic
from curation.core.config import ConfigError, RunConfig

#: how long the head of a named cluster has to accept a connection, all tries together
PROBE_TIMEOUT_S = 10.0
#: the file in ``OUT/_work`` that lists the embedded Ray's processes (:func:`record_processes`)
RAY_PROCESSES = "ray-processes.json"
#: the Ray Client server's default port (``ray://host`` without a port)
RAY_CLIENT_PORT = 10001


class ClusterUnreachable(ConfigError):
    """The cluster named by RAY_ADDRESS / ``ray.address`` cannot be reached (one line, exit 2)."""


def cluster_address(cfg: RunConfig) -> str | None:
    """The cluster this run joins (RAY_ADDRESS wins over ``ray.address``); None: an embedded local Ray."""
    address = (cfg.ray_address() or "").strip()
    return None if address in ("", "local") else address


def head_of(address: str) -> tuple[str, int]:
    """``(host, port)`` of the head that ``address`` names; ``auto`` is the Ray that ``ray start`` last
    recorded on this machine (Ray's ``ray_current_cluster`` file), else the one GCS process running here."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    if address == "auto":
        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except (ConnectionError, ValueError) as err:
            raise ClusterUnreachable(
                f"RAY_ADDRESS / ray.address 'auto': no Ray cluster found on this machine ({err})"
            ) from None
    bare = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = bare.rstrip("/").rpartition(":")
    if not sep:
        if address.startswith("ray://"):
            return bare.rstrip("/"), RAY_CLIENT_PORT
        raise ClusterUnreachable(f"RAY_ADDRESS / ray.address {address!r}: expected HOST:PORT, 'auto' or ray://HOST")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ClusterUnreachable(f"RAY_ADDRESS / ray.address {address!r}: the port is not a number") from None


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Return once the head that ``address`` names accepts a TCP connection; :class:`ClusterUnreachable`
    (naming the address) when it does not within ``timeout`` seconds."""
    host, port = head_of(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ClusterUnreachable(
                    f"the Ray cluster at {address} ({host}:{port}) does not answer after "
                    f"{timeout:g} s: {err.strerror or err}; check RAY_ADDRESS / ray.address"
                ) from None
            time.sleep(0.5)


def join(address: str, **init_kwargs: Any) -> Any:
    """``ray.init`` on the named cluster once its head answers; the context ``ray.init`` returns."""
    probe(address)
    return ray.init(address=address, **init_kwargs)


def start_local(**init_kwargs: Any) -> Any:
    """A fresh local Ray owned by this process, whatever other Ray runs on the machine."""
    return ray.init(address="local", **init_kwargs)


def describe_cluster(embedded: bool, address: str | None) -> str:
    """One line for the top of a run: which Ray it uses, and what that Ray has."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = ray.cluster_resources()
    has = f"{len(nodes)} node{'' if len(nodes) == 1 else 's'}, {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU"
    if embedded:
        return f"Ray: a fresh local instance started by this run ({has})"
    gcs = ray.get_runtime_context().gcs_address
    head = f"head {gcs}; " if address and address != gcs else ""
    return f"Ray: joined the cluster at {address or gcs} ({head}{has})"


def _ident(p: psutil.Process) -> dict[str, Any]:
    return {"pid": p.pid, "started": p.create_time()}


def _is_ray(p: psutil.Process) -> bool:
    try:
        return "ray" in " ".join(p.cmdline()).lower()
    except psutil.Error:
        return False


def record_processes(path: Path) -> None:
    """Write this driver and the processes of the Ray it started (its descendants that are Ray's) to ``path``."""
    me = psutil.Process()
    ray_procs = [_ident(p) for p in me.children(recursive=True) if _is_ray(p)]
    write_atomic(path, json.dumps({"driver": _ident(me), "ray": ray_procs}))


def _same(entry: dict[str, Any]) -> psutil.Process | None:
    """The live process ``entry`` names (same pid and start time: not a later process that reuses the pid)."""
    try:
        p = psutil.Process(entry["pid"])
        return p if abs(p.create_time() - entry["started"]) < 0.01 else None
    except (psutil.Error, KeyError, TypeError):
        return None


def reap_leftovers(path: Path) -> int:
    """End what is still alive of the Ray that an earlier run recorded in ``path``, and the workers its raylet
    started later, when that run's driver is gone (killed: the caller holds the output folder's lock, so that
    run is over); how many were ended."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    if _same(record.get("driver", {})) is not None:  # its driver lives on (a notebook, --hold): its Ray is in use
        return 0
    entries = record.get("ray", [])
    left = [p for p in map(_same, entries) if p is not None and p.pid != os.getpid()]
    # workers started after the list was written: their raylet (one of the listed, gone now, its pid not reused)
    # is in their environment
    gone = {str(e["pid"]) for e in entries if isinstance(e.get("pid"), int) and not psutil.pid_exists(e["pid"])}
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get("RAY_RAYLET_PID") in gone:
                left.append(p)
        except psutil.Error:
            continue
    ended = 0
    for p in {p.pid: p for p in left}.values():
        try:
            p.send_signal(signal.SIGKILL)
            ended += 1
        except psutil.Error:
            pass
    path.unlink(missing_ok=True)
    return ended
