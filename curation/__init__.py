"""Layered triplet curation: composite / clean background / RGBA foreground (object + effects) on Ray."""
