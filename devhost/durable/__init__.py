"""Durable Functions backend of devhost: SQLite history, replay worker, management API.

The orchestration semantics come from the real ``azure-functions-durable`` SDK; this
package only plays the part of the Durable Task host (DTFx + the extension): it keeps
the history, runs activities and timers, and feeds history to the SDK for replay.
"""
