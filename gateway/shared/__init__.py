"""Pieces every use case of the gateway needs, written once: who acted, when, why a request was
refused, the audit events that record it and the transactions that make them durable."""
