"""The worker runs one task under every job name the core, adapters and CLI enqueue."""
from __future__ import annotations

from connector import queue
from jobs import tasks
from jobs.worker import TASKS, functions


def test_the_worker_runs_a_task_under_every_job_name_and_no_other() -> None:
    assert sorted(f.name for f in functions()) == sorted(queue.JOB_NAMES)


def test_each_name_runs_the_task_of_that_name() -> None:
    assert all(TASKS[name] is getattr(tasks, name) for name in queue.JOB_NAMES)


def test_job_ids_name_their_work_and_an_origin_makes_a_fresh_one() -> None:
    assert queue.apply_id(7) == "apply:7:0"
    assert queue.apply_id(7, 2, "sweep:9") == "apply:7:2:sweep:9" != queue.apply_id(7, 2, "sweep:10")
    assert queue.install_id(3, "abc") == "install:3:abc"
    assert queue.sync_id(3) == "sync:3" and queue.recompute_id(3) == "recompute:3"
