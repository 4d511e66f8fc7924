"""Pulumi ComponentResources that together declare the private AI chat topology."""
