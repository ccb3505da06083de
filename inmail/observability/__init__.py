"""Operating the service: Prometheus metrics, OpenTelemetry traces, JSON logs.

Each piece is built by the composition root (``inmail.app``, ``inmail.cli.serve``)
and handed to the transports and to the seams the command and read sides offer
(``MemberRepository``'s message headers and appended events, ``Projections``'
applied batches); neither side imports anything from here.
"""
