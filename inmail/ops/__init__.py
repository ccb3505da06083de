"""Operator commands over NATS alone: ``replay``, ``status``, ``verify`` and ``events``.

Each needs only the NATS URL (and, on a server with authentication, the operator's
credentials file): the stream is read through JetStream, and the running service is
asked through its query and admin subjects. Each prints its
output and returns the exit code; an operator mistake or an unreachable server
raises ``OperatorError`` (``client.py``) with a one-line message, never a traceback.
"""
