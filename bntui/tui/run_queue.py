"""The queue of runs this session launched: one run at a time per device by default."""

from __future__ import annotations

from dataclasses import dataclass

from bntui.config import RunConfig


@dataclass
class Job:
    key: str  # the session's name for the run until the trainer gives it a run id
    config: RunConfig
    group: str | None
    lane: str  # the device it waits for ("cpu", "cuda:0", ...)


class RunQueue:
    def __init__(self, runs_per_device: int = 1) -> None:
        self.runs_per_device = runs_per_device
        self.waiting: list[Job] = []
        self.running: dict[str, Job] = {}

    def add(self, job: Job) -> None:
        self.waiting.append(job)

    def drop(self, key: str) -> Job | None:
        """Take a job that has not started off the queue."""
        for job in self.waiting:
            if job.key == key:
                self.waiting.remove(job)
                return job
        return None

    def take_ready(self) -> list[Job]:
        """Jobs that may start now (in queue order), moved to `running`."""
        started = []
        for job in list(self.waiting):
            busy = sum(1 for other in self.running.values() if other.lane == job.lane)
            if busy < self.runs_per_device:
                self.waiting.remove(job)
                self.running[job.key] = job
                started.append(job)
        return started

    def done(self, key: str) -> None:
        self.running.pop(key, None)

    def __len__(self) -> int:
        return len(self.waiting) + len(self.running)
