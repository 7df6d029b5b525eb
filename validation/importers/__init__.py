"""Importers of public measurement datasets into roofsim's measurement format."""
