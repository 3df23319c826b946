"""The SDK: attribution, task runs and outcomes from inside an application.

Owns the task context (contextvars), client instrumentation and where SDK events go. Metering,
pricing and storage are the gateway's own (`tokenops.meter`, `tokenops.pricing`,
`tokenops.store`), so an SDK call and a gateway call leave identical ledger rows.
"""
