"""vitaledge fusion package."""
