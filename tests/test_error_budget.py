"""A run whose stage code fails is a failed run: the error budget (curation/core/errorbudget.py).

Bad input is a reject and the run goes on; an exception in stage code is a ``stage_error`` reject, tolerated on a
few rows. A model that breaks on every row must end non-zero with one line naming the stage and the error, both
when it is caught at the end (a small run) and when an actor stops the run as soon as its budget is spent.
The broken model here is real: a tiny BLIP captioner asked for more tokens than its position table holds, so it
loads and passes the start-up checks, then raises ``IndexError`` in ``generate`` on every row.
"""

from __future__ import annotations

import pytest
import yaml

from curation.cli import main
from curation.core.errorbudget import ErrorBudget, ErrorBudgetExceeded, budget_verdict
from curation.verify import verify
from devdata.tiny_vlm import build_tiny_blip


def _row(stage: str | None, reason: str | None = None, detail: str = "") -> dict:
    return {
        "status": "ok" if stage is None else "rejected",
        "reject_stage": stage,
        "reject_reason": reason,
        "reject_detail": detail,
    }


def test_an_actor_budget_raises_once_its_share_of_errors_is_spent_after_the_first_rows():
    budget = ErrorBudget("caption", max_fraction=0.25, min_rows=4)
    budget.add(2, [_row("caption", "stage_error", "ValueError: x"), _row(None)])  # 1 of 2: too few rows to judge
    budget.add(2, [_row(None), _row("masks", "empty_mask")])  # bad input elsewhere is no error: 1 of 4
    with pytest.raises(ErrorBudgetExceeded, match=r"stage caption raised on 2 of 6 rows.*ValueError: x"):
        budget.add(2, [_row("caption", "stage_error", "ValueError: x"), _row(None)])


def test_the_end_of_run_verdict_names_the_stage_and_the_most_common_error():
    stages = ["ingest", "masks", "caption", "curate"]
    fine = [_row(None)] * 30 + [_row("masks", "empty_mask")] * 10 + [_row("caption", "stage_error", "E: a")]
    assert budget_verdict(fine, stages, 0.05, 20, accepted_in_out=30) is None
    broken = [_row("masks", "empty_mask")] * 2 + [_row("caption", "stage_error", "IndexError: x")] * 4
    assert budget_verdict(broken, stages, 0.05, 20, accepted_in_out=0) == (
        "stage caption raised on 4 of 4 rows (run.max_error_fraction 0.05); most common error (4x): IndexError: x"
    )
    only_input = [_row("masks", "empty_mask")] * 3
    assert "accepted nothing" in budget_verdict(only_input, stages, 0.05, 20, accepted_in_out=0)
    assert budget_verdict(only_input, stages, 0.05, 20, accepted_in_out=5) is None  # a resume of a good run


@pytest.fixture(scope="module")
def broken_captioner(tmp_path_factory):
    return str(build_tiny_blip(tmp_path_factory.mktemp("tiny-blip")))


def _config(tmp_path, model: str, count: int, **run) -> str:
    data = {
        "run": {"out": str(tmp_path / "out"), **run},
        "sources": [
            {"type": "synthetic", "name": "synth", "count": count, "size": 96, "seed": 3, "paired_fraction": 1.0}
        ],
        "caption": {
            "backend": "transformers",
            "resources": {"batch_size": 2},
            "transformers": {"model": model, "generation": {"min_new_tokens": 200, "max_new_tokens": 200}},
        },
        "sink": {"shard_size": 8},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_stage_that_raises_on_every_row_fails_the_run_with_one_line(ray_session, broken_captioner, tmp_path, capsys):
    code = main(["run", _config(tmp_path, broken_captioner, count=3), "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("curate run")]
    assert code == 1
    assert len(err) == 1 and "FAILED" in err[0] and "stage caption raised on" in err[0] and "IndexError" in err[0]
    rep = verify(tmp_path / "out", 35.0)  # the rows are all there (nothing lost), and nothing was accepted
    assert rep.ingested > 0 and rep.accepted == 0 and not rep.ok
    assert any("no sample accepted" in p for p in rep.problems)


def test_an_actor_stops_the_run_once_the_budget_is_spent(ray_session, broken_captioner, tmp_path, capsys):
    cfg = _config(tmp_path, broken_captioner, count=12, error_budget_min_rows=2)
    code = main(["run", cfg, "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("curate run")]
    assert code == 1
    assert len(err) == 1 and "FAILED: stopped: stage caption raised on" in err[0] and "IndexError" in err[0]
