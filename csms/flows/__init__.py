"""The application layer: every change of state together with the events it causes.

The adapters (`csms/ocpp16/`, `csms/api/`, `csms/ingress.py`) turn their wire formats into
typed core messages and call a flow here; a flow decides with `csms/core/`, writes with
`csms/store/` and builds events with `csms/events/build.py`, and hands the change and its
events to the writer as one job, so they commit together (docs/architecture.md).
"""
