"""Due work, derived from the log: scheduled sends, automated follow-ups, assessments, email alerts.

Nothing waits in memory only. ``index`` folds the events stream (from sequence 1,
at every start) into the work still to do; ``runner`` performs each item as a
command whose id derives from the item (so restarts, a crash between two steps
and several instances converge on one effect: the member's receipts dedupe),
driven by the server's clock or, under trusted client time, by ``RunDue``;
``notifier`` publishes one email alert per InMail delivered, deduplicated by an
id derived from the InMail.
"""
