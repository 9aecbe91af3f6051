"""Other benchmarks under ``bench/`` that ``make bench`` folds into its table, when their files exist.

Each is a module with ``main() -> dict`` (flat name -> figure); it is imported as ``bench.<stem>`` (a
real import, so that multiprocessing children can find its functions) and called with no arguments;
a failure is recorded in the results instead of stopping the benchmark.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
#: file stem -> what it measures
EXTRAS = {
    "ingest_coco": "COCO ingest (issue 3)",
    "caption_bench": "captioning (issue 5)",
    "sam_cpu": "SAM on CPU (issue 4)",
    "loader_bench": "training loader, 256 px (issue 14)",
}


def run_extra(stem: str) -> dict[str, Any]:
    """Import ``bench/{stem}.py`` and return what its ``main()`` returns, plus the wall time it took."""
    started = time.perf_counter()
    saved_argv = sys.argv
    sys.argv = [str(BENCH_DIR / f"{stem}.py")]  # a main() that parses arguments sees none of ours
    try:
        result = importlib.import_module(f"bench.{stem}").main()
        if not isinstance(result, dict):
            raise TypeError(f"main() returned {type(result).__name__}, not a dict")
        return {"ok": True, "wall_s": round(time.perf_counter() - started, 2), "results": result}
    except SystemExit as exc:  # a main() that exits instead of returning
        return {"ok": False, "wall_s": round(time.perf_counter() - started, 2), "error": f"SystemExit: {exc.code}"}
    except Exception as exc:  # noqa: BLE001 - someone else's benchmark must not sink this one
        return {
            "ok": False,
            "wall_s": round(time.perf_counter() - started, 2),
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=5),
        }
    finally:
        sys.argv = saved_argv


def available() -> list[str]:
    return [stem for stem in EXTRAS if (BENCH_DIR / f"{stem}.py").exists()]
