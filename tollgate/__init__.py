"""Tollgate's Python client: protect your own Django or ASGI API with the gate (GATE-6).

    MIDDLEWARE = [..., "tollgate.middleware.TollgateMiddleware"]
    TOLLGATE = {"URL": "https://tollgate.example.com", "TOKEN": "tg_op_..."}

This package depends on nothing of the Tollgate server; it talks to it over HTTP.
"""
