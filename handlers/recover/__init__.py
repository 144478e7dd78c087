"""Recovery sweeps: find deliveries a platform could not get to us, and bring each back once.

GitHub never retries a failed delivery; Stripe stops after three days. A platform that can be
swept lists what it sent and how that went (``Source.page``, newest first, a page at a time) and
can bring a delivery back (``Source.bring_back``: ask GitHub to redeliver it, queue a Stripe
event through the ingress's own claim and enqueue). This package is what every sweep shares
(``types``: the shapes; ``walk``: one source's walk and checkpoint; ``sweep``: the lock, the
record and the workers' timer):

- the **lock**: one sweep per platform at a time across all workers and ``gateway recover``
  (``keys.recover_lock``, a TTL renewed while the sweep runs);
- the **checkpoint** per source (``keys.recover_state``): the start of the last sweep that walked
  down from the newest delivery, and, for a walk that stopped part way (rate limited, an error,
  a crash), the cursor and the floor it still has to reach. The next sweep walks the new
  deliveries down to the last start (with ``OVERLAP``), then resumes at the cursor;
- the **claim check**: a listed delivery whose id the gateway has claimed was received, whatever
  the platform says (an acknowledgement that arrived late); only unclaimed ones are brought back;
- the **record**: each delivery brought back is logged (``outcome: recovered`` and its source)
  and marked in its run record; each sweep's outcome is ``keys.last_sweep`` (``gateway.recovery``
  names its fields), shown by ``/health`` and ``gateway check``.

The first sweep of a source looks back ``FIRST_LOOKBACK``; ``since`` overrides where a sweep
stops (never past the platform's retention). The workers sweep every platform that is on and has
credentials every ``GATEWAY_RECOVER_INTERVAL`` seconds (``sweep_due``).
"""

from handlers.recover.sweep import LOCK_TTL, parse_duration, sweep, sweep_due
from handlers.recover.types import Found, Missed, Page, Report, Source, SourceReport, Sweep
from handlers.recover.walk import FIRST_LOOKBACK, OVERLAP

__all__ = [
    "FIRST_LOOKBACK",
    "LOCK_TTL",
    "OVERLAP",
    "Found",
    "Missed",
    "Page",
    "Report",
    "Source",
    "SourceReport",
    "Sweep",
    "parse_duration",
    "sweep",
    "sweep_due",
]
