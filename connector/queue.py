"""The job queue's vocabulary: every job name and job id format, defined once for the core, adapters and worker."""
from __future__ import annotations

# The worker registers a function under each of these names (jobs/worker.py checks it has them all).
APPLY_EVENT = "apply_event"
INSTALL_SHOP = "install_shop"
SYNC_SHOP = "sync_shop"
RECOMPUTE_SHOP = "recompute_shop"
SWEEP_INBOX = "sweep_inbox"
RECONCILE_ALL = "reconcile_all"
REFIT_DUE = "refit_due"
ACCURACY_SHOP = "accuracy_shop"

JOB_NAMES = (APPLY_EVENT, INSTALL_SHOP, SYNC_SHOP, RECOMPUTE_SHOP, SWEEP_INBOX, RECONCILE_ALL, REFIT_DUE, ACCURACY_SHOP)


# arq runs a job id once while it is queued or running (and never again while its result is kept). An id that names
# one piece of work (a shop's sync) deduplicates bursts; an id with an origin lets the same work be queued again later.
def apply_id(inbox_id: int, attempts: int = 0, origin: str = "") -> str:
    """Apply one inbox row: `apply:{id}:{attempts}` at intake, with an origin (sweep window, replay) when queued again."""
    return f"apply:{inbox_id}:{attempts}" + (f":{origin}" if origin else "")


def install_id(shop_id: int, origin: str) -> str:
    """Finish one install of a shop; `origin` tells installs apart (OAuth state, time, sweep)."""
    return f"install:{shop_id}:{origin}"


def sync_id(shop_id: int) -> str:
    """Backfill or reconcile a shop: one at a time per shop."""
    return f"sync:{shop_id}"


def accuracy_id(shop_id: int) -> str:
    """Check a shop's predictions against what happened: one at a time per shop."""
    return f"accuracy:{shop_id}"


def recompute_id(shop_id: int) -> str:
    """Recompute a shop: one at a time per shop (a burst of events costs one)."""
    return f"recompute:{shop_id}"
