"""vitaledge drivers package."""
