"""Models: the skeleton encoder (stage 2), the frozen text encoder, losses, and stage-3 parts."""
