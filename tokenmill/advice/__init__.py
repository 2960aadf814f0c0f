"""The cost advisor: serverless (per token) or dedicated (per accelerator-hour), from a
tenant's own traffic replayed in the fleet simulator."""
