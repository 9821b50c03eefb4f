"""Test helpers (not tests): the Kubernetes API double, fault injection, the browser driver, schema checks."""
