"""Stage 1: action lists, knowledge files (motion, visual, description per class) and their generators."""
