"""Policies shipped with decisionflow (package data: ``*.yaml``)."""
