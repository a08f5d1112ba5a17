"""The HTTP surface: one router module per resource, thin handlers over the Orchestrator."""
