"""vitaledge models package."""
