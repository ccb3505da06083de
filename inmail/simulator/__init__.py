"""Simulated traffic: members, InMails and their responses, sent to a running service over NATS.

It is the README's demo (``inmail simulate``) and the data source of the benchmarks.

Determinism: simulated time advances in ticks of one day, and every command of a
tick carries the same ``occurred_at``. All random draws of a tick happen while
planning it, before any of its commands is sent, and everything an InMail will
ever do (read, acknowledge, respond, be followed up) is drawn when it is
planned; replies only fill in the ids the service chose. A tick runs in five
phases (due work, member, social, send, respond) so that no command reads what
another command of the same phase writes, and commands whose order could change
an outcome (those of one aggregate: credits, refreshes, tier) run one after the
other in planned order. So the same seed gives the same commands and the same
outcomes, however the concurrent replies interleave. The service's own due work
(scheduled sends, automated follow-ups, assessments) runs first each day, with
``RunDue``: in due order, whatever order the day's replies came in.

The parts: ``options`` (what to simulate), ``corpus`` (the population as data),
``model`` (the simulated world's state), ``draws`` (its random draws), ``planner`` and
``sends`` (what each day brings), ``driver`` (commands over NATS), ``summary`` (what a
run did).
"""

from inmail.simulator.driver import SimulationError, simulate
from inmail.simulator.options import ID_PREFIX_PATTERN, MONTH_PATTERN, SimulationOptions
from inmail.simulator.summary import EXPECTED_REFUSALS, SegmentRate, Summary, TemplateCount

__all__ = [
    "EXPECTED_REFUSALS",
    "ID_PREFIX_PATTERN",
    "MONTH_PATTERN",
    "SegmentRate",
    "SimulationError",
    "SimulationOptions",
    "Summary",
    "TemplateCount",
    "simulate",
]
