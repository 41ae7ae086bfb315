"""A draw's states, the moves between them and the app events they raise (docs/draws.md, "States").

Only the named moves below change a draw's status; each refuses a move its state does not allow, and
the database repeats the same rule with a conditional UPDATE, so a late or repeated job cannot move a
draw backwards or past its result.
"""

from __future__ import annotations

from enum import StrEnum


class DrawStatus(StrEnum):
    #: entries frozen and the commitment stored; the node has not yet been asked whether the beacon block exists
    COMMITTED = "committed"
    #: the node's tip was below the beacon height after the commit: the block was unknown when the entries were fixed
    WAITING = "waiting"
    #: the beacon block is mined; waiting for its confirmations (a reorg may still replace it)
    CONFIRMING = "confirming"
    #: the winners are selected and stored: final, whatever happens to the chain later
    COMPLETED = "completed"
    #: the beacon block already existed when satworks first asked the node: no winners are ever drawn
    REFUSED = "refused"

    @property
    def is_final(self) -> bool:
        return self in FINAL


FINAL = frozenset({DrawStatus.COMPLETED, DrawStatus.REFUSED})
OPEN = frozenset({DrawStatus.COMMITTED, DrawStatus.WAITING, DrawStatus.CONFIRMING})

TRANSITIONS: dict[DrawStatus, frozenset[DrawStatus]] = {
    DrawStatus.COMMITTED: frozenset({DrawStatus.WAITING, DrawStatus.REFUSED}),
    # WAITING -> COMPLETED: the block had all its confirmations the first time the job saw it.
    DrawStatus.WAITING: frozenset({DrawStatus.CONFIRMING, DrawStatus.COMPLETED}),
    # CONFIRMING -> CONFIRMING: a reorg replaced the beacon block; -> WAITING: the chain fell below the height.
    DrawStatus.CONFIRMING: frozenset({DrawStatus.CONFIRMING, DrawStatus.WAITING, DrawStatus.COMPLETED}),
    DrawStatus.COMPLETED: frozenset(),
    DrawStatus.REFUSED: frozenset(),
}

COMMITTED_EVENT = "draw.committed"
EVENT_FOR_STATUS = {DrawStatus.COMPLETED: "draw.completed", DrawStatus.REFUSED: "draw.refused"}


class IllegalDrawTransition(ValueError):
    pass


def check_transition(current: DrawStatus, target: DrawStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalDrawTransition(f"{current} -> {target}")


def confirm_future(current: DrawStatus) -> DrawStatus:
    """The node's tip is below the beacon height, asked after the commit."""
    check_transition(current, DrawStatus.WAITING)
    return DrawStatus.WAITING


def refuse(current: DrawStatus) -> DrawStatus:
    """The beacon block was already mined when the node was first asked."""
    check_transition(current, DrawStatus.REFUSED)
    return DrawStatus.REFUSED


def see_beacon(current: DrawStatus) -> DrawStatus:
    """A block at the beacon height (the first one, or one a reorg put in place of the last one seen)."""
    check_transition(current, DrawStatus.CONFIRMING)
    return DrawStatus.CONFIRMING


def lose_beacon(current: DrawStatus) -> DrawStatus:
    """A reorg left the chain below the beacon height."""
    check_transition(current, DrawStatus.WAITING)
    return DrawStatus.WAITING


def complete(current: DrawStatus) -> DrawStatus:
    """The beacon block has its confirmations and the winners are stored."""
    check_transition(current, DrawStatus.COMPLETED)
    return DrawStatus.COMPLETED
