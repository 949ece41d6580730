"""Probes, who-am-I and the effective settings: operating the gateway itself."""
