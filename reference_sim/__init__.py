"""reference_sim package."""
