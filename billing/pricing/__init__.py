"""The pricing engine: pure functions from prices and quantities to amounts (no ORM).

Calculator, bill preview, estimates and invoices all call this package, so they agree to
the cent by construction.
"""
