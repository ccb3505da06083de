"""The measures of a member's state, recorded against what-if, per member and in total."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from contracts.events import Stage
from contracts.whatif import Compared, MemberDifference, StageCompared, StagesCompared, Totals, WhatIfReport
from services.domain.state import Member

Row = tuple[str, Member | None, Member | None, int, int]
"""A member's id, its recorded and what-if states (None: not registered there), and its refused sends
as recorded and under the what-if."""


def compare(rows: Sequence[Row]) -> WhatIfReport:
    """The report on these members: those that differ, and the total over all of them."""
    compared = [_member(*row) for row in rows]
    stages: tuple[Stage, ...] = get_args(Stage)

    def total(name: str) -> Compared:
        return Compared(
            recorded=sum(getattr(m, name).recorded for m in compared),
            whatif=sum(getattr(m, name).whatif for m in compared),
        )

    return WhatIfReport(
        members=[member for member in compared if member.differs()],
        total=Totals(
            balance=total("balance"),
            charged=total("charged"),
            refunded=total("refunded"),
            forfeited=total("forfeited"),
            refused=total("refused"),
            stage=StagesCompared(
                recorded={s: sum(m.stage.recorded == s for m in compared) for s in stages},
                whatif={s: sum(m.stage.whatif == s for m in compared) for s in stages},
            ),
        ),
    )


def _member(
    member_id: str, recorded: Member | None, whatif: Member | None, refused_recorded: int, refused_whatif: int
) -> MemberDifference:
    def both(name: str) -> Compared:
        return Compared(
            recorded=getattr(recorded, name) if recorded is not None else 0,
            whatif=getattr(whatif, name) if whatif is not None else 0,
        )

    return MemberDifference(
        member_id=member_id,
        balance=both("balance"),
        charged=both("spent"),
        refunded=both("refunded"),
        forfeited=both("forfeited"),
        refused=Compared(recorded=refused_recorded, whatif=refused_whatif),
        stage=StageCompared(
            recorded=recorded.stage if recorded is not None else "ok",
            whatif=whatif.stage if whatif is not None else "ok",
        ),
    )
