"""The public statuses of a report (CONTRACT.md), shared by the edge and the centre."""

RECEIVED = "received"
IN_ASSESSMENT = "in_assessment"
ACTION_TAKEN = "action_taken"
NO_ACTION = "no_action"
CLOSED = "closed"
ALL = (RECEIVED, IN_ASSESSMENT, ACTION_TAKEN, NO_ACTION, CLOSED)
# A report in one of these is finished: its reporter's contact details start their retention.
FINISHED = (NO_ACTION, CLOSED)
