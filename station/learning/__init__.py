"""Learned master data: unit and box weights estimated from what this station weighed."""
