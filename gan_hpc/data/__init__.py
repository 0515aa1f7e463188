"""The data layer: readers, transforms, splits and the dataset cache."""
