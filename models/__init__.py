"""Shipped model bundles (package data), one folder each: see ``fundus_vessels.runtime.bundle.shipped_bundle``."""
