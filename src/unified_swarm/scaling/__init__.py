"""Autoscaling: pools from TOML (pools.py), the scaler that runs the pure decision of
`core/autoscale.py` on the leader (scaler.py), and the spawners that act on it (local
processes, a Kubernetes Deployment's scale, or nothing but GET /swarm/scaling for KEDA).
See docs/scaling.md."""
