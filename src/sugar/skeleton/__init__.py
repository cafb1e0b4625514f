"""Everything before a tensor reaches a model: samples, layouts, readers, datasets, transforms."""

from sugar.skeleton.layouts import Layout, get_layout, list_layouts
from sugar.skeleton.sample import Sample

__all__ = ["Layout", "Sample", "get_layout", "list_layouts"]
