"""What is written to disk: the one atomic write (files), checkpoints (safetensors + JSON
sidecar) and run directories. Knows nothing of training."""
