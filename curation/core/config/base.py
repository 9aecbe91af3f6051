"""Shared pieces of the run config: strict models and the per-stage resource declaration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a run config must fail at start-up, not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    """What one stage asks of the cluster, declared in one visible place per stage.

    ``concurrency`` is the actor-pool size; with ``max_concurrency`` the pool autoscales between the two
    (Ray Data adds actors while work queues up and removes idle ones). ``batch_size`` is the number of
    rows per call. Fractional ``num_cpus`` lets several pools share a small machine.
    """

    num_cpus: float = Field(0.5, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1)
    concurrency: int = Field(1, ge=1)
    #: the most actors the pool may grow to (None: a fixed pool of ``concurrency`` actors)
    max_concurrency: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _pool_bounds(self) -> Resources:
        if self.max_concurrency is not None and self.max_concurrency < self.concurrency:
            raise ValueError(
                f"max_concurrency ({self.max_concurrency}) must not be below concurrency ({self.concurrency})"
            )
        return self
