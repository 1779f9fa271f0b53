"""Monitoring: what serving processes saw per version and variant, drift against a version's
reference profile, the prediction log, and the views and gauges built from them."""
