"""Training-loader throughput: ``layered_loader`` at 256 px over real shards, samples per second.

Writes synthetic 256-px scenes through the sink into a temporary OUT folder, then plays whole epochs:
with 2 DataLoader workers (what a trainer runs), the same over HTTP (the shards served by a local
``http.server``, read through webdataset's ``http://`` URLs: a web server or object store in front of
OUT) and in-process (``num_workers=0``: the cost of decoding and augmenting one sample, without worker
start-up or transfer). Samples/s are also given per worker (the figure to multiply by a trainer's workers).
In-process runs with one torch thread,
as DataLoader workers do: on a shared machine, torch's thread pool spinning on small interpolations
costs more than it saves. Wall-clock samples/s and CPU seconds per sample
(this process plus the reaped workers) are reported; the first epoch of each setting is a warm-up.

    python -m bench.loader_bench [--scenes 96] [--epochs 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from curation.layout import OutDir
from curation.loader import layered_loader
from devdata.http_shards import serve
from devdata.layered_shards import write_layered_shards

SIZE = 256


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _play(out: Path | list[str], workers: int, epochs: int, batch_size: int) -> dict[str, float]:
    loader = layered_loader(out, size=SIZE, batch_size=batch_size, num_workers=workers, crop="random")
    for _ in loader:  # warm-up epoch: page cache, imports in the workers
        pass
    samples, wall, cpu = 0, time.perf_counter(), _cpu_s()
    for _ in range(epochs):
        for batch in loader:
            samples += len(batch["key"])
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    return {"samples_per_s": round(samples / wall, 1), "cpu_s_per_sample": round(cpu / samples, 4), "samples": samples}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=96, help="synthetic 256-px scenes (1-2 samples each)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per setting (after one warm-up epoch)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="loader-bench-"))
    try:
        written = write_layered_shards(scratch / "out", scenes=args.scenes, sizes=(SIZE,), shard_size=32)
        two = _play(written.out, 2, args.epochs, args.batch_size)
        with serve(written.out / "shards") as http:
            urls = [http.url(f"{n}.tar") for n in OutDir(written.out).complete_shards()]
            over_http = _play(urls, 2, args.epochs, args.batch_size)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            one = _play(written.out, 0, args.epochs, args.batch_size)
        finally:
            torch.set_num_threads(threads)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "size_px": SIZE,
        "samples_per_epoch": len(written.accepted),
        "workers2_samples_per_s": two["samples_per_s"],
        "workers2_cpu_s_per_sample": two["cpu_s_per_sample"],
        "files_samples_per_s_per_worker": round(two["samples_per_s"] / 2, 1),
        "http_workers2_samples_per_s": over_http["samples_per_s"],
        "http_samples_per_s_per_worker": round(over_http["samples_per_s"] / 2, 1),
        "http_workers2_cpu_s_per_sample": over_http["cpu_s_per_sample"],
        "inprocess_samples_per_s": one["samples_per_s"],
        "inprocess_cpu_s_per_sample": one["cpu_s_per_sample"],
    }
    print(result)
    return result


if __name__ == "__main__":
    main()
