"""What the spend buys: yield, ROI and cost per hour saved, computed from ledger numbers.

Owns pure arithmetic on Decimal inputs (no I/O): `yield_` turns hours saved and AI cost into
labour value, yield ratio and ROI. It does not price calls (`tokenops.pricing`) or read the
ledger itself. The rest of analytics (KPIs, anomalies, forecasts, what-ifs, recommendations)
arrives later, one module each.
"""
