"""The `sslaudit` command line: one verb per lens over a run directory."""
