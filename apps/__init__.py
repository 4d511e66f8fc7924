"""Applications that the infrastructure in this repository deploys."""
