"""The HTTP surface of ``inmail serve``: probes, Prometheus metrics, and the operator dashboard.

One ASGI application (Starlette) served by uvicorn on the service's own event loop,
beside the NATS handlers. Not FastStream's ASGI integration: it matches exact paths
and answers whole bodies, and the dashboard needs a path parameter
(``/members/<member_id>``), a streamed response (server-sent events) and static
files, which Starlette (the toolkit under FastStream's FastAPI integration) has.

The dashboard reads through the same queries as every client (NATS requests on
``inmail.query.*``), never the read models' tables, and is told of new events by
following the event stream (``inmail.http.live``).
"""
