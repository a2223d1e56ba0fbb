"""Metrics shared by eval, benchmarks and the app (DESIGN.md, "Metrics")."""
