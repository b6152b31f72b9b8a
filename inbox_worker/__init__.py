"""Reads the billing mailbox and turns each email into a case: fetch, parse, route, act, reply."""
