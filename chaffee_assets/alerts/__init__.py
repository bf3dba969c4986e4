"""Alerts: what is wrong with the pipeline, said once to a webhook and/or by e-mail, and when it clears."""
