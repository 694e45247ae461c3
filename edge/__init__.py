"""vitaledge edge package."""
