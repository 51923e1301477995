"""arq task shells, one module per flow: load, call the pure or adapter code, save. Each is safe to run twice."""
from __future__ import annotations

from jobs.tasks.ingest import INSTALL_SWEEP_TRIES, apply_event, sweep_inbox
from jobs.tasks.proof import accuracy_shop
from jobs.tasks.recompute import recompute_shop, refit_due
from jobs.tasks.sync import install_shop, reconcile_all, sync_shop

__all__ = ["INSTALL_SWEEP_TRIES", "accuracy_shop", "apply_event", "install_shop", "reconcile_all", "recompute_shop", "refit_due",
           "sweep_inbox", "sync_shop"]
